/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The wire taps of hft-tui bench: two programs on the exchange's end of the
 * lab's veth (hftxN), compiled by BCC, that time tick-to-trade where trading
 * firms time it, at the wire, in the kernel's clock (bpf_ktime_get_ns).
 *
 *  - tap_departure (tc egress, clsact, direct action): every update the
 *    exchange sends to the engine's address on one of the bench's ports is
 *    stamped as it leaves the exchange's stack:
 *    departures[seq % TAP_SLOTS] = {seq, now}.
 *  - tap_arrival (XDP on hftxN, which native XDP on a veth needs anyway: a
 *    frame sent with XDP_TX is dropped unless the peer runs a program): every
 *    answer from the engine's address and those ports (an order, or the bare
 *    reflector's echo of the update) is stamped as it arrives:
 *    arrivals[seq % TAP_SLOTS].  Tick-to-trade on the wire is arrival minus
 *    departure of the same seq.  In counting mode (the throughput runs) each
 *    answer is checked, counted and dropped instead of stamped, so that no
 *    socket limits the rate: every seq and every order id of the window is
 *    marked in a bitmap, and a second mark is a duplicate.
 *
 * A frame may carry several orders (HFT_MSG_LEN bytes each, today's order
 * format): each is stamped or counted.  Maps the bench reads in bulk are
 * mmapable arrays, read and cleared in place without a system call a slot.
 *
 * TAP_SLOTS and TAP_WINDOW_WORDS may be given with -D (powers of two).
 */
#include <uapi/linux/bpf.h>
#include <uapi/linux/pkt_cls.h>
#include "hft_protocol.h"
#include "parsing_helpers.h"

#ifndef TAP_SLOTS
#define TAP_SLOTS         65536        /* stamps kept, by seq modulo */
#endif
#ifndef TAP_WINDOW_WORDS
#define TAP_WINDOW_WORDS  262144       /* 16 Mi bits: seqs and ids a counting step may use */
#endif
#define TAP_WINDOW        (TAP_WINDOW_WORDS * 64ULL)
#define TAP_MAX_ORDERS    32           /* orders one frame may carry */

struct tap_config {
	__be32 engine_ip;        /* updates go to it, answers come from it */
	__u16 port_lo;           /* the bench's ports, host order: feed port .. */
	__u16 port_hi;           /* .. the last bot's port */
	__u32 counting;          /* 1: arrivals are counted and dropped, not stamped */
	__u32 _pad;
	__u64 seq_lo;            /* counting: seqs seq_lo .. seq_lo + TAP_WINDOW - 1 */
	__u64 id_lo;             /* counting: order ids id_lo .. id_lo + TAP_WINDOW - 1 */
};

struct tap_stamp {
	__u64 seq;
	__u64 ns;
};

/* Per CPU; the bench sums them (min/max across CPUs). */
struct tap_counts {
	__u64 departures;        /* updates stamped as they left */
	__u64 unreadable;        /* a bench datagram whose payload was not in the linear data */
	__u64 arrivals;          /* answers stamped (stamping mode) */
	__u64 orders;            /* counting: orders counted (type B or S) */
	__u64 echoes;            /* counting: updates echoed by the bare reflector (type U) */
	__u64 bad;               /* from the engine's ports, but no answer the bench knows */
	__u64 dup_seqs;          /* counting: a seq seen twice */
	__u64 dup_ids;           /* counting: an order id seen twice */
	__u64 outside;           /* counting: a seq or id outside the window */
	__u64 min_id;            /* counting: 0 until the first order */
	__u64 max_id;
};

BPF_F_TABLE("array", __u32, struct tap_config, tap_config, 1, 0);
BPF_F_TABLE("array", __u32, struct tap_stamp, departures, TAP_SLOTS, BPF_F_MMAPABLE);
BPF_F_TABLE("array", __u32, struct tap_stamp, arrivals, TAP_SLOTS, BPF_F_MMAPABLE);
BPF_F_TABLE("array", __u32, __u64, seen_seqs, TAP_WINDOW_WORDS, BPF_F_MMAPABLE);
BPF_F_TABLE("array", __u32, __u64, seen_ids, TAP_WINDOW_WORDS, BPF_F_MMAPABLE);
BPF_PERCPU_ARRAY(tap_counts, struct tap_counts, 1);

static __always_inline __u64 load_be64(const void *p)
{
	__u64 v;

	__builtin_memcpy(&v, p, sizeof(v));
	return __builtin_bswap64(v);
}

static __always_inline __u32 load_be32(const void *p)
{
	__u32 v;

	__builtin_memcpy(&v, p, sizeof(v));
	return bpf_ntohl(v);
}

static __always_inline void stamp(void *map_value_slot, __u64 seq, __u64 now)
{
	struct tap_stamp *s = map_value_slot;

	s->seq = seq;
	s->ns = now;
}

/* Marks bit n of a window; 1 when it was already marked (or n is outside). */
static __always_inline int mark_seen(int ids, __u64 n)
{
	__u32 word = (__u32)(n / 64);
	__u64 bit = 1ULL << (n % 64), *w;

	if (n >= TAP_WINDOW)
		return -1;
	w = ids ? seen_ids.lookup(&word) : seen_seqs.lookup(&word);
	if (!w)
		return -1;
	return (__sync_fetch_and_or(w, bit) & bit) ? 1 : 0;
}

/* The datagram's payload when it is between the bench's endpoints in this direction, else NULL. */
static __always_inline void *bench_payload(void *data, void *data_end, const struct tap_config *cfg,
					   int departing, __u32 *len)
{
	struct hdr_cursor nh = { .pos = data };
	struct udp_frame f;
	__u16 port;

	if (parse_udp_frame(&nh, data_end, &f) != PARSE_OK)
		return NULL;
	if ((departing ? f.iph->daddr : f.iph->saddr) != cfg->engine_ip)
		return NULL;
	port = bpf_ntohs(departing ? f.udp->dest : f.udp->source);
	if (port < cfg->port_lo || port > cfg->port_hi)
		return NULL;
	*len = bpf_ntohs(f.udp->len) - sizeof(struct udphdr);
	return nh.pos;
}

int tap_departure(struct __sk_buff *skb)
{
	void *data_end = (void *)(long)skb->data_end;
	void *data = (void *)(long)skb->data;
	struct tap_config *cfg;
	struct tap_counts *c;
	struct tap_stamp *s;
	__u32 zero = 0, len, slot;
	__u8 *msg;
	__u64 seq;

	cfg = tap_config.lookup(&zero);
	c = tap_counts.lookup(&zero);
	if (!cfg || !c)
		return TC_ACT_OK;
	msg = bench_payload(data, data_end, cfg, 1, &len);
	if (!msg)
		return TC_ACT_OK;
	if (len < HFT_MSG_LEN || (void *)(msg + HFT_MSG_LEN) > data_end) {
		c->unreadable++;
		return TC_ACT_OK;
	}
	if (msg[HFT_OFF_TYPE] != HFT_TYPE_UPDATE)
		return TC_ACT_OK;
	seq = load_be64(msg + HFT_OFF_SEQ);
	slot = (__u32)(seq & (TAP_SLOTS - 1));
	s = departures.lookup(&slot);
	if (s) {
		stamp(s, seq, bpf_ktime_get_ns());
		c->departures++;
	}
	return TC_ACT_OK;
}

/* One answer of a frame: stamped, or (counting) checked and counted. */
static __always_inline void take_answer(const __u8 *m, const struct tap_config *cfg,
					struct tap_counts *c, __u64 now)
{
	__u8 type = m[HFT_OFF_TYPE];
	__u64 seq = load_be64(m + HFT_OFF_SEQ), id;
	__u32 slot;
	struct tap_stamp *s;
	int seen;

	if (load_be32(m) >> 16 != HFT_MAGIC ||
	    (type != HFT_TYPE_BUY && type != HFT_TYPE_SELL && type != HFT_TYPE_UPDATE)) {
		c->bad++;
		return;
	}
	if (!cfg->counting) {
		slot = (__u32)(seq & (TAP_SLOTS - 1));
		s = arrivals.lookup(&slot);
		if (s) {
			stamp(s, seq, now);
			c->arrivals++;
		}
		return;
	}
	seen = seq >= cfg->seq_lo ? mark_seen(0, seq - cfg->seq_lo) : -1;
	if (seen < 0)
		c->outside++;
	else if (seen)
		c->dup_seqs++;
	if (type == HFT_TYPE_UPDATE) {
		c->echoes++;
		return;
	}
	c->orders++;
	id = load_be32(m + HFT_OFF_ASK);
	seen = id >= cfg->id_lo ? mark_seen(1, id - cfg->id_lo) : -1;
	if (seen < 0)
		c->outside++;
	else if (seen)
		c->dup_ids++;
	if (!c->min_id || id < c->min_id)
		c->min_id = id;
	if (id > c->max_id)
		c->max_id = id;
}

int tap_arrival(struct xdp_md *ctx)
{
	void *data_end = (void *)(long)ctx->data_end;
	void *data = (void *)(long)ctx->data;
	struct tap_config *cfg;
	struct tap_counts *c;
	__u32 zero = 0, len, i, n;
	__u64 now;
	__u8 *msg;

	cfg = tap_config.lookup(&zero);
	c = tap_counts.lookup(&zero);
	if (!cfg || !c)
		return XDP_PASS;
	msg = bench_payload(data, data_end, cfg, 0, &len);
	if (!msg)
		return XDP_PASS;
	now = bpf_ktime_get_ns();
	n = len / HFT_MSG_LEN;
	if (!n)
		c->bad++;
	for (i = 0; i < TAP_MAX_ORDERS && i < n; i++) {
		/* Masked so the verifier sees a bounded offset. */
		__u8 *m = msg + ((i * HFT_MSG_LEN) & 0x7ff);

		if ((void *)(m + HFT_MSG_LEN) > data_end) {
			c->bad++;
			break;
		}
		take_answer(m, cfg, c, now);
	}
	return cfg->counting ? XDP_DROP : XDP_PASS;
}
