/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The per-CPU scratch (map scratch): one packet's working state.  XDP runs
 * a packet to its end on one CPU without preemption (softirq, or
 * BPF_PROG_TEST_RUN with bottom halves off), so a per-CPU value is the
 * packet's own; nothing in it outlives the packet.
 *
 * Why not the stack: the message loop runs as a bpf_loop callback, which the
 * verifier checks until its states converge.  Values on the stack are
 * tracked exactly (every reject reason, side or count a state of its own)
 * and never converge; values in map memory are not tracked.  So the loop's
 * state, the message, its decision and the copies of the configs live
 * here, and the 512-byte stack stays free.
 *
 * Two things here outlive a packet, on purpose: the engine-wide config's
 * copy (g, with the stamp it was made for), and the symbols' copies (map
 * symbol_copies, per CPU, by config slot): a copy is used again only while
 * its config's published stamp is the one it was made for (hft_structs.h:
 * config stamps).
 *
 * Kernel-only: user space never reads it.  BPF-only.
 */
#ifndef HFT_SCRATCH_H
#define HFT_SCRATCH_H

#include <linux/types.h>
#include "hft_structs.h"
#include "feed_types.h"

/* The config slots (hft_structs.h): the symbols', then the engine-wide config's. */
#define CONFIG_SLOTS         (1U << HFT_CONFIG_SLOT_BITS)
#define GLOBAL_CONFIG_SLOT   CONFIG_SLOTS

/* A symbol's slot: the top bits of its 8 key bytes (a little-endian u64) times the multiplier. */
static __always_inline __u32 config_slot(__u64 key)
{
	return (__u32)((key * HFT_SLOT_HASH_MULT) >> (64 - HFT_CONFIG_SLOT_BITS));
}

/*
 * A symbol's config as this CPU last copied it under the config's lock
 * (map symbol_copies, by slot), with the key it is for and the slot's stamp
 * as read before the copy was made.
 */
struct hft_symbol_copy {
	__u64 stamp;
	struct hft_symbol_key key;
	struct hft_symbol_params p;
	__u32 seq_epoch;
	__u32 _pad;
};

/* One message's way through the phases. */
struct decision {
	__u32 side;         /* HFT_TYPE_BUY, HFT_TYPE_SELL or 0 */
	__u32 price;
	__u32 qty;          /* reserved in phase 1 (pending until committed) */
	__u32 final;        /* shares the order carries: qty, less after phase 2, 0 if refused */
	__u32 reason;       /* HFT_REJECT_* or NO_REJECT */
	__u32 token;        /* a symbol throttle token was taken */
	__u32 position;     /* after phase 1 (and phase 3), for the event */
	__u32 cost_counted; /* phase 2 added the buy to the engine-wide open cost */
	__u32 room;         /* the frame has room for this message's order */
	__u32 pnl_known;    /* pnl holds the session total this message's change gave */
	__s64 pnl_delta;
	__s64 pnl;
	__u64 released;     /* open cost the committed sale released */
};

/* Why the loop ended before the packet's count. */
#define STOP_NONE       0
#define STOP_MALFORMED  1   /* a block ran past the packet */

/* The packet: set up before the loop, read and moved by every message. */
struct feed_loop {
	__u64 first_seq;
	__u64 now;               /* the coarse clock, once a packet, with the engine-wide view */
	__u64 precise_now;       /* the clock (hft_now), once a packet when a rate or an event needs it; 0: not yet */
	__u64 csum;              /* sum of the 32-bit words of the orders written */
	__u64 claimed;           /* the channel's next sequence as this packet left it */
	__u64 prev_next;         /* ... and as the packet found it: nothing below it is ever given back */
	__u32 pos;               /* offset from data of the next block */
	__u32 end;               /* offset from data of the end of the UDP payload */
	__u32 count;             /* messages to read, <= FEED_MAX_MSGS */
	__u32 skip;              /* leading messages already seen on the channel */
	__u32 i;                 /* the next message's index */
	__u32 stop;              /* STOP_* */
	__u32 frame_len;         /* the frame's length now (grown when orders need room) */
	__u32 orig_len;
	__u32 hdr_out;           /* order frame headers: 42, or 46 with a VLAN tag */
	__u32 n_orders;
	__u32 max_orders;        /* the packet's cap; 0 when it cannot be answered (no_route) */
	__u32 cap_reason;        /* the reject when max_orders is reached: batch_full or no_route */
	__u32 grow_failed;
	__u32 session_tag;
	__u32 no_trade;          /* the XDP action for a packet that sends no order */
	__u32 gateway;           /* orders go to the gateway (else they are reflected) */
	__u32 routable;          /* an order frame can answer this packet */
	__u32 has_vlan;
	__u32 have_view;         /* the engine-wide view (packet_view) was taken for this packet */
	__u32 switch_reason;     /* NO_REJECT or the dead-man switch: every symbol of the packet */
	__u32 global_limits;     /* an engine-wide throttle or notional cap is set */
	__u32 updates;           /* counted here, added to the counters once a packet */
	__u32 unknown;
	__u32 in_transition;
	__u32 malformed_msgs;
};

/*
 * Orders are written here during the loop and copied into the frame once,
 * after it: [0, FRAME_HDR_ROOM) holds the headers (written last, ending at
 * FRAME_HDR_ROOM), the orders follow.
 */
#define FRAME_HDR_ROOM       48   /* Ethernet 14 + VLAN 4 + IPv4 20 + UDP 8 = 46, ending at 48 */
#define FRAME_BUF_LEN        (FRAME_HDR_ROOM + HFT_MAX_ORDERS_CAP * HFT_MSG_LEN + 8)

struct hft_scratch {
	struct hft_global_params g;       /* the engine-wide config, copied under its lock */
	__u64 g_stamp;                    /* its slot's stamp, read before that copy was made */
	struct feed_packet fp;            /* the packet's header, as the decoder read it */
	struct feed_loop loop;
	struct feed_msg u;                /* the message being handled */
	struct decision d;
	__u8 frame[FRAME_BUF_LEN] __attribute__((aligned(8)));
};

#endif /* HFT_SCRATCH_H */
