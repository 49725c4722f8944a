/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Map keys, map values and ring-buffer events shared by the XDP program and
 * the control plane.  hft_tui/layout.py mirrors these with ctypes and
 * tests/test_layout.py compiles this header with gcc to prove that every
 * offset and size agrees.  Fields are ordered so that no implicit padding
 * exists; explicit _pad fields mark the holes.
 *
 * Units: prices are u32 with 4 implied decimals; money (capital, proceeds,
 * notional, PnL) is price units times shares, so 1 unit = $0.0001.
 */
#ifndef HFT_STRUCTS_H
#define HFT_STRUCTS_H

#include <linux/types.h>
#ifdef __KERNEL__
#include <uapi/linux/bpf.h>     /* the program, compiled by BCC against the kernel's headers */
#else
#include <linux/bpf.h>          /* user space (tests/test_layout.py): the installed uapi headers */
#endif
#include "hft_protocol.h"       /* HFT_SYMBOL_LEN */

/*
 * Symbols the engine holds.  The engine and config.py use this value; a build
 * made for a measurement may raise it with -D (the benchmark's copy that
 * measures 1,000 and 10,000 symbols), like the ring sizes below.
 */
#ifndef HFT_MAX_SYMBOLS
#define HFT_MAX_SYMBOLS      256
#endif
/*
 * Ring sizes in pages (powers of two).  The engine always uses these; only
 * programs built for a measurement or a test override them with -D (the
 * benchmark's BPF_PROG_TEST_RUN copy, whose ring must hold every event of
 * a million-iteration run).
 */
#ifndef HFT_RINGBUF_PAGES
#define HFT_RINGBUF_PAGES    1024     /* 4 MiB of orders */
#endif
#ifndef HFT_TAPE_PAGES
#define HFT_TAPE_PAGES       1024     /* 4 MiB of rejects and sampled updates */
#endif
#define HFT_NS_PER_SEC       1000000000
/*
 * Messages of one packet the engine reads (real IEX DEEP packets carry up
 * to 67 in 1,472 bytes); the rest of a longer packet is counted
 * (truncated_packets) and not read.
 */
#define HFT_MAX_MESSAGES     128

/* Kill switch values (map kill_switch).  Non-zero means no order leaves. */
#define HFT_KILL_OFF         0
#define HFT_KILL_OPERATOR    1
#define HFT_KILL_LOSS_LIMIT  2   /* tripped by the kernel, latched */

/* What a valid update that does not trade becomes. */
#define HFT_NO_TRADE_PASS    0
#define HFT_NO_TRADE_DROP    1

/* Reject reasons: counter HFT_CTR_REJECT_BASE + reason, event field reason. */
#define HFT_REJECT_KILL            0
#define HFT_REJECT_DISABLED        1
#define HFT_REJECT_UNKNOWN_SYMBOL  2
#define HFT_REJECT_CROSSED         3
#define HFT_REJECT_POSITION_LIMIT  4
#define HFT_REJECT_MALFORMED       5
#define HFT_REJECT_ZERO_QTY        6
#define HFT_REJECT_NOTIONAL        7
#define HFT_REJECT_THROTTLE        8
#define HFT_REJECT_COLLAR          9
#define HFT_REJECT_STALE           10
#define HFT_REJECT_DEADMAN         11
#define HFT_REJECT_HALTED          12   /* IEX quote flag or trading status, ITCH trading action */
#define HFT_REJECT_PRICE_RANGE     13   /* an IEX i64 price below 0 or above a u32 */
#define HFT_REJECT_BATCH_FULL      14   /* max_orders_per_packet reached (or no room to grow the frame) */
#define HFT_REJECT_NO_ROUTE        15   /* no gateway, and the packet cannot be reflected (multicast, broadcast) */
#define HFT_REJECT_FOREIGN_SOURCE  16   /* a feed packet from outside feed_sources (or feed_source_macs) */
#define HFT_REJECT_SEQ_JUMP        17   /* a sequence more than max_seq_jump ahead */
#define HFT_NUM_REJECTS            18

/* Per-CPU counters (map counters), summed by the control plane. */
#define HFT_CTR_UPDATES        0   /* valid updates on the feed port */
#define HFT_CTR_PASSED         1   /* well-formed packets that are not feed updates */
#define HFT_CTR_ORDERS         2   /* orders sent with XDP_TX */
#define HFT_CTR_RINGBUF_DROPS  3   /* orders the events ring had no room for */
#define HFT_CTR_LOSS_TRIPS     4   /* times the loss limit latched the kill switch */
#define HFT_CTR_TAPE_DROPS     5   /* rejects/updates the tape ring had no room for */
#define HFT_CTR_REJECT_BASE    8
#define HFT_NUM_COUNTERS       26  /* HFT_CTR_REJECT_BASE + HFT_NUM_REJECTS */

/*
 * Ring-buffer event kinds.  Orders and kills go to the `events` ring, which
 * carries nothing else, so a flood of rejects can never crowd out an order;
 * rejects and sampled updates go to the `tape_events` ring.  Both count
 * their drops exactly.
 */
#define HFT_EVENT_UPDATE     1   /* sampled market data (tape ring) */
#define HFT_EVENT_ORDER      2   /* every order, never sampled (events ring) */
#define HFT_EVENT_REJECT     3   /* every reject of a known symbol (tape ring) */
#define HFT_EVENT_KILL       4   /* the kernel latched the kill switch (events ring) */

struct hft_symbol_key {
	char name[HFT_SYMBOL_LEN];
};

/*
 * A symbol's parameters: everything the strategy decides with.  A new
 * parameter is a field here (and in its ctypes mirror and hft_tui.config's
 * SymbolParams): the program copies the struct whole.
 */
struct hft_symbol_params {
	__u32 enabled;
	__u32 buy_target;        /* price; buy when ask <= buy_target */
	__u32 sell_target;       /* price; 0 = selling off */
	__u32 base_qty;
	__u32 scale_qty;         /* extra shares per tick below buy_target */
	__u32 tick_size;         /* price units, >= 1 */
	__u32 max_order_qty;
	__u32 max_position;
	__u32 collar_bps;        /* max distance from the reference price */
	__u32 reference_price;   /* 0 = the session's own (session_ref) */
	__u32 rate_per_sec;      /* order token bucket; 0 = unlimited */
	__u32 burst;
	__u64 max_notional;      /* cap on open cost; 0 = unlimited */
};

/*
 * Written whole by user space with BPF_F_LOCK; p and seq_epoch are copied out
 * under the lock.  seq_epoch is how user space resets the symbol's sequence
 * without writing the kernel's state: the program compares it with the
 * state's seq_epoch, and a difference makes the next update set the
 * sequence whatever it is (maps.EngineMaps.reset_seq adds 1; a parameter
 * write keeps it).
 */
struct hft_symbol_config {
	struct bpf_spin_lock lock;
	__u32 _pad;              /* p is 8-byte aligned (its __u64) */
	struct hft_symbol_params p;
	__u32 seq_epoch;         /* not a parameter: a new value resets the symbol's sequence */
	__u32 _pad1;
};

/*
 * Config stamps (map config_stamps: one u64 a slot, mmapable).  After a
 * config write has returned, user space (hft_tui/maps.py) publishes a fresh
 * stamp at the config's slot with one aligned 8-byte store through the map's
 * mmap: a write is complete when its stamp is published.  A slot's stamps
 * only grow, and a slot once published is never 0 again.  The program keeps
 * per CPU the config it last copied under the config's lock, tagged with the
 * slot's stamp as it read it before making the copy, and uses that copy
 * without the lock only while the slot still holds that stamp (strategy.c:
 * symbol_view, packet_view): always a whole config, never older than the
 * last completed write.
 *
 * A symbol's slot is a hash of its 8 key bytes read as a little-endian u64:
 * the top HFT_CONFIG_SLOT_BITS bits of key * HFT_SLOT_HASH_MULT.  Symbols may
 * share a slot (the copy carries its key: sharing costs speed, never
 * exactness); the engine-wide config's slot is the last one, after the
 * symbols'.  A symbol slot never published (0) holds no configured symbol: an
 * unknown symbol mostly stops there, before any hash lookup.  User space
 * finds the slot count from the map (its max_entries less one).
 */
#ifndef HFT_CONFIG_SLOT_BITS
#define HFT_CONFIG_SLOT_BITS 10                   /* 1,024 symbol slots: 4 for each of HFT_MAX_SYMBOLS */
#endif
#define HFT_SLOT_HASH_MULT   0x61C8864680B583EB   /* odd; below 2^63, so a plain literal to Python */

/*
 * Written by the kernel under its lock; read by user space with BPF_F_LOCK.
 * position is the committed position (bought - sold).  With engine-wide
 * limits an order is reserved under this lock, asked about under the global
 * lock and committed under this lock again; the pending_* fields hold what
 * is reserved in between, so no CPU ever counts another's reservation as a
 * fill: a pending buy takes buy room and notional room but is never
 * sellable, a pending sell is never sold twice and frees no room.
 */
struct hft_symbol_state {
	struct bpf_spin_lock lock;
	__u32 position;
	__u32 pending_buy;       /* shares of buys reserved, not yet committed */
	__u32 pending_sell;      /* shares of sells reserved, not yet committed */
	__u64 bought;
	__u64 sold;
	__u64 capital_spent;     /* sum of price * qty bought */
	__u64 proceeds;          /* sum of price * qty sold */
	__u64 buy_orders;
	__u64 sell_orders;
	__u64 updates;
	__u64 rejects;
	__u64 last_seq;
	__u64 last_update_ns;    /* bpf_ktime_get_ns (CLOCK_MONOTONIC) */
	__u64 open_cost;         /* average cost of the open position */
	__u64 pending_cost;      /* price * qty of the pending buys */
	__s64 pnl;               /* proceeds - capital_spent + position * mark */
	__u64 tokens;            /* token bucket, in 1e-9 orders */
	__u64 last_refill_ns;
	__u32 last_bid;
	__u32 last_bid_qty;
	__u32 last_ask;
	__u32 last_ask_qty;
	__u32 mark;              /* PnL is marked to it: the last bid with size > 0 not below the sell collar */
	__u32 session_ref;       /* collar reference: the session's first two-sided view (0: none yet) */
	__u32 halted;            /* last trading status of the feed: 1 halted/paused, 0 trading (or none seen) */
	__u32 seq_session;       /* the feed session last_seq belongs to: another one sets the sequence afresh */
	__u32 seq_epoch;         /* the config's seq_epoch last_seq belongs to: another one sets it afresh */
	/*
	 * The session's book: what a new feed session (book_session differs)
	 * starts afresh, whatever order packets are read in: the halted state,
	 * the collar reference and the sides it is taken from.
	 */
	__u32 book_session;      /* the feed session halted, status_seq, session_ref and book_bid/ask belong to */
	__u64 status_seq;        /* the sequence of the trading status halted holds; an older one is not applied */
	__u32 status_epoch;      /* the config's seq_epoch status_seq belongs to: another one takes any status */
	__u32 book_bid;          /* channel feeds: the session's last bid and ask, whose mid becomes session_ref */
	__u32 book_ask;
	__u32 _pad;
};

/* The engine-wide parameters, copied whole like a symbol's. */
struct hft_global_params {
	__u32 feed_port;         /* host byte order */
	__u32 on_no_trade;       /* HFT_NO_TRADE_* */
	__u32 update_sample;     /* emit 1 in N updates as events; 0 = none */
	__u32 deadman_ms;        /* 0 = dead-man switch unarmed */
	__u32 rate_per_sec;      /* global order token bucket; 0 = unlimited */
	__u32 burst;
	__u64 max_notional;      /* cap on the open cost of all symbols; 0 = off */
	__u64 loss_limit;        /* kill when session PnL < -loss_limit; 0 = off */
	__u32 max_orders_per_packet;  /* orders in one frame, 1..HFT_MAX_ORDERS_CAP */
	__u32 _pad1;             /* not _pad: the config's own, whose fields p's are read as (layout.py) */
	__u64 max_seq_jump;      /* largest sequence step per symbol (hft1) and per channel; 0 = unlimited */
};

/* Written whole by user space with BPF_F_LOCK; p is copied out under the lock. */
struct hft_global_config {
	struct bpf_spin_lock lock;
	__u32 _pad;              /* p is 8-byte aligned (its __u64s) */
	struct hft_global_params p;
	__u64 config_version;    /* counts the control plane's changes; the program never reads it */
};

/* Kernel-only global throttle state. */
struct hft_global_state {
	struct bpf_spin_lock lock;
	__u32 _pad;
	__u64 tokens;
	__u64 last_refill_ns;
};

/* Engine-wide totals, changed only with atomic adds. */
struct hft_totals {
	__u64 order_seq;         /* last order id sent: ids are 1, 2, 3, ... */
	__u64 open_cost;         /* sum of the symbols' open_cost */
	__s64 pnl;               /* session PnL of all symbols, removed ones too */
};

/*
 * Feed counters (map feed_counters, per-CPU, one value: one lookup a
 * packet), summed by the control plane.  Reject reasons, orders and
 * updates stay in `counters`.
 */
struct hft_feed_counters {
	__u64 packets;           /* feed packets whose header decoded */
	__u64 messages;          /* messages walked, every type */
	__u64 in_transition;     /* IEX DEEP price levels without the event-complete flag */
	__u64 truncated_packets; /* packets with more than HFT_MAX_MESSAGES messages (the rest unread) */
	__u64 dup_packets;       /* packets whose messages were all seen on their channel (A/B copies) */
	__u64 heartbeats;        /* packets without messages */
	__u64 channels_full;     /* packets of a channel the channels map had no room for (not traded) */
	__u64 grow_failed;       /* the frame could not grow for one more order (batch_full) */
	__u64 frame_errors;      /* an order frame that could not be written (never expected) */
	__u64 not_for_us;        /* feed packets to another host's unicast MAC (a promiscuous NIC): passed */
};

/*
 * A feed channel: the scope of one sequence.  IEX-TP: session id and
 * channel id; MoldUDP64: the 10-byte session.  hft1 has none.
 */
#define HFT_MAX_CHANNELS     256
#define HFT_SESSION_LEN      10   /* MoldUDP64 session: 10 ASCII bytes */

struct hft_channel_key {
	__u8 session[HFT_SESSION_LEN];  /* IEX: the session id (u32, little-endian) then zeros */
	__u16 _pad;
	__u32 channel;           /* IEX: the channel id; MoldUDP64: 0 */
};

/* Written by the kernel under its lock; read by user space with BPF_F_LOCK. */
struct hft_channel_state {
	struct bpf_spin_lock lock;
	__u32 _pad;
	__u64 next_seq;          /* the next expected message sequence */
	__u64 packets;
	__u64 messages;          /* new messages (those of duplicates and overlaps not counted) */
	__u64 gaps;              /* packets that started beyond next_seq */
	__u64 gap_messages;      /* messages never seen because of them */
	__u64 dup_packets;       /* packets whose messages were all seen (A/B copies, resends) */
	__u64 seq_jumps;         /* packets refused: they started more than max_seq_jump beyond next_seq */
};

/*
 * Where orders go (map route), written whole before attach and never while
 * attached (a change is a re-attach), so the program reads it without a
 * lock.  Addresses and ports in network byte order.
 */
#define HFT_ROUTE_REFLECT    0   /* back to the sender, as the update came (no gateway) */
#define HFT_ROUTE_GATEWAY    1   /* from the interface to the gateway */
#define HFT_MAX_ORDERS_CAP   32  /* max_orders_per_packet is 1..32 */

struct hft_route {
	__u32 mode;              /* HFT_ROUTE_* */
	__u8 gw_mac[6];
	__u8 src_mac[6];         /* the interface's MAC (a multicast destination MAC is not ours), in either
				  * mode: a unicast feed frame must be addressed to it (all zero: any) */
	__u32 gw_ip;             /* network byte order */
	__u32 src_ip;
	__u16 gw_port;           /* network byte order */
	__u16 src_port;
};

/*
 * Which packets are the feed, and who may send it (map feed_filter),
 * written whole before attach like the route.  Checked before anything
 * else of a packet to the feed port.
 */
#define HFT_MAX_FEED_SOURCES 8
#define HFT_MAX_SOURCE_MACS  4

struct hft_feed_filter {
	__u32 feed_addr;         /* network byte order; 0 = any destination address */
	__u32 n_sources;         /* 0 = any sender (an open feed) */
	__u32 src_net[HFT_MAX_FEED_SOURCES];   /* network byte order, already masked */
	__u32 src_mask[HFT_MAX_FEED_SOURCES];
	__u32 n_macs;            /* 0 = any source MAC */
	__u8 src_macs[HFT_MAX_SOURCE_MACS][6];
};

struct hft_event {
	__u64 ts_ns;             /* bpf_ktime_get_ns */
	__u64 sender_ts;         /* timestamp field of the update */
	__u64 seq;
	char symbol[HFT_SYMBOL_LEN];
	__u32 kind;              /* HFT_EVENT_* */
	__u32 side;              /* 'B', 'S' or 0 */
	__u32 price;
	__u32 qty;
	__u32 order_id;
	__u32 reason;            /* HFT_REJECT_* for rejects, HFT_KILL_* for kills */
	__u32 bid;
	__u32 bid_qty;
	__u32 ask;
	__u32 ask_qty;
	__u32 position;
	__u32 _pad;
	__s64 pnl;               /* session PnL after this event */
};

#endif /* HFT_STRUCTS_H */
