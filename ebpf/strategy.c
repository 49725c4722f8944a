/* SPDX-License-Identifier: GPL-2.0 */
/*
 * hft-tui strategy engine: an XDP program that reads market data in place,
 * decides per symbol and per message whether to trade, and sends the orders
 * of a packet in one frame with XDP_TX.
 *
 * The feed's wire format is chosen at compile time (feed.h: -DHFT_FEED_HFT1,
 * the engine's own protocol and the default; -DHFT_FEED_IEX, IEX-TP with TOPS
 * and DEEP; -DHFT_FEED_ITCH, MoldUDP64 with ITCH 5.0).  A packet's way, one
 * function per step, in the order xdp_strategy calls them:
 *  - read the frame (parse_udp_frame): a datagram not to the feed port (one
 *    plain load of feed_port) or not to feed_addr is passed, and one to
 *    another host's unicast MAC too (for_us: not_for_us);
 *  - check the source (source_allowed): the sender must be in feed_sources
 *    (and feed_source_macs) before anything else is read (foreign_source);
 *  - open the packet (feed_parse_header, open_packet): the decoder reads the
 *    packet's header (channel, first sequence, count; a malformed one is
 *    passed); the loop's state is set up in the per-CPU scratch (scratch.h);
 *  - arbitrate the channel (arbitrate_channel, channel lock; IEX and ITCH):
 *    the channel's next expected sequence decides whether the packet is a
 *    duplicate (an A/B copy: dropped whole), has a gap (counted) or overlaps
 *    (its old messages skipped), and is claimed before any message is read,
 *    so the second copy is a duplicate even while the first is being read;
 *    a packet starting more than max_seq_jump ahead is refused (seq_jump);
 *  - plan the route (plan_route): whether an order frame can be sent at all
 *    (reflecting a multicast or broadcast packet cannot: no_route);
 *  - read the messages (read_messages: bpf_loop over message_step, one call
 *    per message of interest, the rest walked past by length); a message of
 *    a symbol goes through trade_message, a function of the message, the
 *    symbol's config and state and what the packet shares:
 *     - the engine-wide view, once a packet and only for a configured
 *       symbol (packet_view): the engine-wide config copied under its spin
 *       lock, the coarse clock (hft_coarse_now), the dead-man switch; the
 *       precise clock is read once a packet too, and only when a throttle
 *       or an event needs it (hft_precise_now);
 *     - the symbol's config: this CPU's copy (symbol_view), read in place
 *       (it was made under the config's spin lock); the switches checked
 *       (check_switches: kill switch, dead-man switch, symbol disabled, what
 *       the message itself says: halted, price range), room in the frame
 *       made (order_room);
 *     - phase 1, decide and reserve (decide_and_reserve, symbol lock): market
 *       data and the sequence rules (record_market_data: stale, seq_jump,
 *       crossed, the mark), the halted state, the decision, and a
 *       reservation (pending_buy/pending_sell/pending_cost, and a throttle
 *       token), so two CPUs can never both fill the last share of
 *       max_position; a decision without room in the frame is released
 *       (batch_full, no_route).  With no engine-wide throttle or notional
 *       cap the fill is committed right there;
 *     - the session PnL moved (add_pnl, which latches the loss limit); a
 *       message that decided no order ends here (report_no_order: its reject,
 *       or a sample, on the tape; nothing at all otherwise);
 *     - phase 2, engine-wide limits (engine_wide_limits, global lock);
 *     - phase 3, commit (commit, symbol lock, only after phase 2), the
 *       engine-wide open cost following it (commit_open_cost);
 *     - the order numbered (number_order: engine-wide, gap-free ids),
 *       appended to the packet's order frame (append_order, order_frame.h)
 *       and its event written straight into the ring's reservation (emit;
 *       every event is, nothing is built elsewhere and copied);
 *  - close the packet (close_packet): the counters added once, a frame grown
 *    for nothing trimmed back;
 *  - send the orders (send_orders): hft1 with reflection rewrites the update
 *    in place as today (write_order); otherwise the frame of every order of
 *    the packet is built (to the gateway, or turned around), resized with
 *    bpf_xdp_adjust_tail and copied in; XDP_TX.
 * A reservation never moves `position`, which only ever holds committed
 * fills: a pending buy takes buy room but cannot be sold, a pending sell
 * frees no buy room, so whatever phase 2 decides for any interleaving of
 * CPUs, position stays within 0..max_position.
 * Nothing holds two locks at once and no helper is called under a lock.
 *
 * Every message of a packet is decided in order, each against the position
 * the earlier ones left.  The loop's state, the message and its decision live
 * in the per-CPU scratch, not on the stack (scratch.h says why).
 *
 * BCC rewrites map calls (map.lookup(), ring.ringbuf_output()) only in this
 * file, so everything that touches a map is here; the headers hold the rest.
 */
#include <uapi/linux/bpf.h>
#include <linux/stringify.h>
#include "hft_protocol.h"
#include "hft_structs.h"
#include "parsing_helpers.h"
#include "feed.h"
#include "scratch.h"
#include "csum.h"
#include "rewrite.h"
#include "order_frame.h"
#include "hft_maps.h"

#define TOKEN          HFT_NS_PER_SEC          /* one order in 1e-9 units */
#define MAX_REFILL_NS  (1000ULL * HFT_NS_PER_SEC)

/* The messages of interest one step may walk past before the one it reads (feed.h). */
#ifndef FEED_SKIP_RUN
#define FEED_SKIP_RUN  16
#endif

/*
 * A callback of bpf_loop: in the program's own section, where
 * hft_tui/bccload.py finds it (BCC 0.26 loads only that section).
 */
#define HFT_SUBPROG __attribute__((section(".bpf.fn.xdp_strategy")))

/* ---- The clock -------------------------------------------------------- */

/*
 * The program's one clock.  Live: CLOCK_MONOTONIC (the controller's
 * heartbeat is the same clock).  The backtest build (-DHFT_BACKTEST) reads
 * the capture time of the frame, set by the harness before each run.
 */
static __always_inline __u64 hft_now(void)
{
#ifdef HFT_BACKTEST
	__u32 zero = 0;
	__u64 *t = backtest_clock.lookup(&zero);

	return t ? *(volatile __u64 *)t : 0;
#else
	return bpf_ktime_get_ns();
#endif
}

/*
 * The same clock at the kernel's tick (CLOCK_MONOTONIC_COARSE: a jiffy, 4 ms
 * at HZ=250, behind at most), for what a deadline of its own allows: the
 * dead-man switch (100 ms at the least, fresh "either way") and the time of
 * a symbol's last update.  It costs a load where the precise clock costs a
 * read of the clock source (about 20 ns measured here), so the precise clock
 * is read only where a time is recorded or a rate is kept: an event's
 * timestamp and the throttles' token buckets (hft_precise_now).
 */
static __always_inline __u64 hft_coarse_now(void)
{
#ifdef HFT_BACKTEST
	return hft_now();
#else
	return bpf_ktime_get_coarse_ns();
#endif
}

/* The precise clock, read once a packet and only when something needs it. */
static __always_inline __u64 hft_precise_now(struct hft_scratch *s)
{
	if (!s->loop.precise_now)
		s->loop.precise_now = hft_now();
	return s->loop.precise_now;
}

/* ---- Counters, rings, token buckets, PnL ------------------------------ */

static __always_inline __u64 min_u64(__u64 a, __u64 b)
{
	return a < b ? a : b;
}

static __always_inline __u64 *counter(__u32 idx)
{
	return counters.lookup(&idx);
}

static __always_inline void count(__u32 idx)
{
	__u64 *c = counter(idx);

	if (c)
		*c += 1;   /* per-CPU slot: no atomic needed */
}

static __always_inline void count_n(__u32 idx, __u64 n)
{
	__u64 *c;

	if (!n)
		return;
	c = counter(idx);
	if (c)
		*c += n;
}

static __always_inline int pass_counted(int parse_rc)
{
	count(parse_rc == PARSE_MALFORMED ? HFT_CTR_REJECT_BASE + HFT_REJECT_MALFORMED
					  : HFT_CTR_PASSED);
	return XDP_PASS;
}

/*
 * An event of the message being handled, written straight into its ring
 * reservation (nothing is built elsewhere and copied): the message, the
 * position after the decision, the session PnL and what happened.  The PnL
 * is the total this message's change gave (add_pnl), or the total as it is
 * when the message changed none.
 */
static __always_inline void fill_event(struct hft_event *ev, const struct hft_scratch *s,
				       const struct hft_totals *tot, __u32 kind, __u32 reason,
				       __u32 side, __u32 price, __u32 qty, __u32 id)
{
	const struct feed_msg *u = &s->u;

	ev->ts_ns = s->loop.precise_now;
	ev->sender_ts = u->timestamp;
	ev->seq = u->seq;
	__builtin_memcpy(ev->symbol, u->key.name, HFT_SYMBOL_LEN);
	ev->kind = kind;
	ev->side = side;
	ev->price = price;
	ev->qty = qty;
	ev->order_id = id;
	ev->reason = reason;
	ev->bid = u->bid;
	ev->bid_qty = u->bid_qty;
	ev->ask = u->ask;
	ev->ask_qty = u->ask_qty;
	ev->position = s->d.position;
	ev->_pad = 0;
	ev->pnl = s->d.pnl_known ? s->d.pnl : *(volatile __s64 *)&tot->pnl;
}

/* Orders and kills: the journal's lossless path; no room is a counted drop. */
static __always_inline void emit(struct hft_scratch *s, const struct hft_totals *tot, __u32 kind,
				 __u32 reason, __u32 side, __u32 price, __u32 qty, __u32 id)
{
	struct hft_event *ev;

	hft_precise_now(s);
	ev = events.ringbuf_reserve(sizeof(struct hft_event));

	if (!ev) {
		count(HFT_CTR_RINGBUF_DROPS);
		return;
	}
	fill_event(ev, s, tot, kind, reason, side, price, qty, id);
	events.ringbuf_submit(ev, 0);
}

/* Rejects and sampled updates: a separate ring, so they never take an order's room. */
static __always_inline void emit_tape(struct hft_scratch *s, const struct hft_totals *tot, __u32 kind,
				      __u32 reason, __u32 side, __u32 price)
{
	struct hft_event *ev;

	hft_precise_now(s);
	ev = tape_events.ringbuf_reserve(sizeof(struct hft_event));

	if (!ev) {
		count(HFT_CTR_TAPE_DROPS);
		return;
	}
	fill_event(ev, s, tot, kind, reason, side, price, 0, 0);
	tape_events.ringbuf_submit(ev, 0);
}

/*
 * Token bucket in 1e-9 orders.  Called under the lock that guards the
 * bucket; rate 0 means unlimited.  Returns 1 when a token was taken.
 */
static __always_inline int take_token(__u64 *tokens, __u64 *last, __u32 rate,
				      __u32 burst, __u64 now)
{
	__u64 cap = (__u64)burst * TOKEN, t = *tokens, elapsed;

	if (!rate)
		return 1;
	if (!*last) {
		t = cap;                      /* a fresh bucket starts full */
	} else {
		elapsed = now > *last ? now - *last : 0;
		if (elapsed > MAX_REFILL_NS)
			elapsed = MAX_REFILL_NS;
		t += elapsed * rate;
		if (t > cap)
			t = cap;
	}
	*last = now;
	if (t < TOKEN) {
		*tokens = t;
		return 0;
	}
	*tokens = t - TOKEN;
	return 1;
}

/* PnL marked to the mark; returns the change since the last call. */
static __always_inline __s64 repnl(struct hft_symbol_state *st)
{
	__u64 held = st->bought - st->sold;
	__s64 pnl = (__s64)st->proceeds - (__s64)st->capital_spent + (__s64)(held * st->mark);
	__s64 delta = pnl - st->pnl;

	st->pnl = pnl;
	return delta;
}

/* open_cost * qty / held without overflowing 64 bits. */
static __always_inline __u64 cost_of_sale(__u64 open_cost, __u64 qty, __u64 held)
{
	if (!held)
		return 0;
	if (qty >= held)
		return open_cost;
	return open_cost / held * qty + (open_cost % held) * qty / held;
}

/*
 * Adds the message's PnL change (s->d.pnl_delta) to the session total, notes
 * the total for the message's events, and latches the kill on a breach.  The
 * limit is a level, not an edge: a total found below it latches the kill even
 * when this message did not move it (the operator resumed, or the limit was
 * set, while the total was below), so an order refused for the loss limit is
 * always refused with the switch latched and a kill event sent.
 */
static __always_inline void add_pnl(struct hft_scratch *s, struct hft_totals *tot)
{
	__u64 loss_limit = s->g.loss_limit;
	struct decision *d = &s->d;
	__u32 zero = 0;
	__u64 *kill;
	__s64 total;

	if (d->pnl_delta) {
		total = __sync_fetch_and_add(&tot->pnl, d->pnl_delta) + d->pnl_delta;
	} else if (loss_limit) {
		total = *(volatile __s64 *)&tot->pnl;
	} else {
		return;
	}
	d->pnl = total;
	d->pnl_known = 1;
	if (!loss_limit || total >= -(__s64)loss_limit)
		return;
	kill = kill_switch.lookup(&zero);
	if (!kill || *kill != HFT_KILL_OFF)
		return;
	if (__sync_val_compare_and_swap(kill, HFT_KILL_OFF, HFT_KILL_LOSS_LIMIT) == HFT_KILL_OFF) {
		count(HFT_CTR_LOSS_TRIPS);
		emit(s, tot, HFT_EVENT_KILL, HFT_KILL_LOSS_LIMIT, 0, 0, 0, 0);
	}
}

/* ---- Check the source ------------------------------------------------- */

/* A feed packet's sender is allowed (feed_sources, feed_source_macs); none set: anyone. */
static __always_inline int source_allowed(const struct hft_feed_filter *ff, const struct ethhdr *eth,
					  const struct iphdr *iph)
{
	int ok = !ff->n_sources, i;

#pragma unroll
	for (i = 0; i < HFT_MAX_FEED_SOURCES; i++)
		if (i < ff->n_sources && (iph->saddr & ff->src_mask[i]) == ff->src_net[i])
			ok = 1;
	if (!ok || !ff->n_macs)
		return ok;
	ok = 0;
#pragma unroll
	for (i = 0; i < HFT_MAX_SOURCE_MACS; i++)
		if (i < ff->n_macs &&
		    *(__u32 *)eth->h_source == *(__u32 *)ff->src_macs[i] &&
		    *(__u16 *)(eth->h_source + 4) == *(__u16 *)(ff->src_macs[i] + 4))
			ok = 1;
	return ok;
}

/*
 * Whether the frame is addressed to this host: a unicast destination MAC
 * must be the interface's (the route's src_mac; all zero: not known, any
 * MAC).  A promiscuous NIC, a bridge port or a macvlan parent hands XDP
 * frames meant for other hosts; their packets to the feed port are not the
 * feed, and a reflected order would leave as that host.  Multicast and
 * broadcast destinations pass (feed_addr says which group is the feed).
 */
static __always_inline int for_us(const struct hft_route *rt, const struct ethhdr *eth)
{
	if ((eth->h_dest[0] & 1) || (!*(__u32 *)rt->src_mac && !*(__u16 *)(rt->src_mac + 4)))
		return 1;
	return *(__u32 *)eth->h_dest == *(__u32 *)rt->src_mac &&
	       *(__u16 *)(eth->h_dest + 4) == *(__u16 *)(rt->src_mac + 4);
}

/* ---- Arbitrate the channel -------------------------------------------- */

#define ARB_NEW    0   /* read the packet (its new messages) */
#define ARB_DUP    1   /* every message seen: an A/B copy or a resend */
#define ARB_JUMP   2   /* starts too far ahead: refused, the channel unmoved */
#define ARB_FULL   3   /* no room for a new channel */

/*
 * The channel's next expected sequence, claimed for this packet under the
 * channel lock.  A new channel starts at the packet (a feed joined
 * mid-session has no gap); its first packet sets the sequence whatever it is.
 */
static __always_inline int arbitrate_channel(struct hft_scratch *s, __u64 max_jump)
{
	struct feed_loop *fl = &s->loop;
	struct feed_packet *fp = &s->fp;
	struct hft_channel_state *ch, init = {};
	/*
	 * What the loop reads (fl->count: at most FEED_MAX_MSGS) is what is claimed: the
	 * messages of a longer packet past those are never read, so they are the next
	 * packet's gap (counted), not messages taken from the channel unread.
	 */
	__u64 next, first = fp->first_seq, last = fp->first_seq + fl->count;

	ch = channels.lookup(&fp->channel);
	if (!ch) {
		init.next_seq = first;
		/* BPF_NOEXIST: a CPU that lost the race must not reset the winner's claim. */
		channels.insert(&fp->channel, &init);
		ch = channels.lookup(&fp->channel);
		if (!ch)
			return ARB_FULL;
	}
	bpf_spin_lock(&ch->lock);
	next = ch->next_seq;
	fl->prev_next = next;
	ch->packets++;
	if (fl->count && last <= next) {
		ch->dup_packets++;
		bpf_spin_unlock(&ch->lock);
		return ARB_DUP;
	}
	if (first > next && max_jump && first - next > max_jump) {
		ch->seq_jumps++;
		bpf_spin_unlock(&ch->lock);
		return ARB_JUMP;
	}
	if (first > next) {
		ch->gaps++;
		ch->gap_messages += first - next;
	}
	fl->skip = next > first ? (__u32)(next - first) : 0;
	if (last > next)
		ch->next_seq = last;
	fl->claimed = ch->next_seq;
	ch->messages += last > next ? (first > next ? fl->count : last - next) : 0;
	bpf_spin_unlock(&ch->lock);
	return ARB_NEW;
}

/*
 * A block ran past the packet: the messages from it on were never read, so
 * give them back to the channel (unless a later packet moved it), and the
 * other line's copy reads them.  Never below where the packet found the
 * channel: what lies below was read by an earlier packet (a malformed
 * overlap would otherwise have it read, counted and applied again).
 */
static __always_inline void unclaim_rest(struct hft_scratch *s)
{
	struct feed_loop *fl = &s->loop;
	struct hft_channel_state *ch = channels.lookup(&s->fp.channel);
	__u64 from = s->fp.first_seq + fl->i;

	if (!ch)
		return;
	if (from < fl->prev_next)
		from = fl->prev_next;
	bpf_spin_lock(&ch->lock);
	if (ch->next_seq == fl->claimed && from < fl->claimed) {
		ch->messages -= fl->claimed - from;   /* counted by the claim, never read */
		ch->next_seq = from;
	}
	bpf_spin_unlock(&ch->lock);
}

/* ---- Plan the route --------------------------------------------------- */

static __always_inline int unicast_mac(const __u8 *mac)
{
	return !(mac[0] & 1);
}

static __always_inline int unicast_ip(__be32 a)
{
	__u32 h = bpf_ntohl(a);

	return h && (h >> 28) < 0xe;        /* not 0.0.0.0, multicast, reserved or broadcast */
}

/* Whether an order can answer this packet; the order frame's header length. */
static __always_inline void plan_route(struct hft_scratch *s, const struct hft_route *rt,
				       const struct udp_frame *f)
{
	struct feed_loop *fl = &s->loop;

	fl->has_vlan = proto_is_vlan(f->eth->h_proto);
	fl->hdr_out = sizeof(struct ethhdr) + (fl->has_vlan ? sizeof(struct vlan_hdr) : 0) +
		      sizeof(struct iphdr) + sizeof(struct udphdr);
	fl->gateway = rt->mode == HFT_ROUTE_GATEWAY;
	fl->cap_reason = HFT_REJECT_BATCH_FULL;
	fl->routable = 1;
	if (!fl->gateway &&
	    (!unicast_mac(f->eth->h_dest) || !unicast_mac(f->eth->h_source) ||
	     !unicast_ip(f->iph->daddr) || !unicast_ip(f->iph->saddr))) {
		fl->routable = 0;
		fl->cap_reason = HFT_REJECT_NO_ROUTE;
	}
}

/* ---- Trade a message -------------------------------------------------- */

/*
 * The engine-wide view, once a packet, for its first message of a
 * configured symbol: the engine-wide config (this CPU's copy, made again
 * under the config's lock only when a write was published since), the
 * coarse clock, the dead-man switch and the packet's order cap.
 */
static __always_inline void packet_view(struct hft_scratch *s)
{
	struct feed_loop *fl = &s->loop;
	struct hft_global_config *gcp;
	__u32 zero = 0, cap, slot = GLOBAL_CONFIG_SLOT;
	__u64 *published, stamp;
#ifndef HFT_BACKTEST
	__u64 *hb, beat;
#endif

	fl->have_view = 1;
	fl->switch_reason = NO_REJECT;
	fl->now = hft_coarse_now();
	published = config_stamps.lookup(&slot);
	stamp = published ? *(volatile __u64 *)published : 0;
	if (!stamp || stamp != s->g_stamp) {
		/* Written since this CPU's copy was made (or never published): copy it again. */
		gcp = global_config.lookup(&zero);
		if (!gcp) {
			fl->switch_reason = HFT_REJECT_KILL;   /* never: an array always has its element */
			return;
		}
		bpf_spin_lock(&gcp->lock);
		s->g = gcp->p;
		bpf_spin_unlock(&gcp->lock);
		s->g_stamp = stamp;
	}
	fl->global_limits = s->g.rate_per_sec || s->g.max_notional;
	cap = s->g.max_orders_per_packet;
	if (cap < 1)
		cap = 1;
	if (cap > HFT_MAX_ORDERS_CAP)
		cap = HFT_MAX_ORDERS_CAP;
	if (FEED_KEEPS_LENGTH && !fl->gateway)
		cap = 1;                  /* hft1 reflected: the update becomes the order in place */
	fl->max_orders = fl->routable ? cap : 0;
#ifndef HFT_BACKTEST
	if (s->g.deadman_ms) {
		hb = heartbeat.lookup(&zero);
		/*
		 * Fresh when within the deadline of `now` either way: a heartbeat
		 * a little newer than `now` was written between the clock read and
		 * this map read; one further ahead than the deadline is no beat of
		 * this clock and must not keep the switch open forever.
		 */
		beat = hb ? *(volatile __u64 *)hb : 0;
		if (!hb || (beat < fl->now ? fl->now - beat : beat - fl->now) >
			   (__u64)s->g.deadman_ms * 1000000)
			fl->switch_reason = HFT_REJECT_DEADMAN;
	}
#endif
}

/*
 * A symbol's config (key: 8 bytes the caller may read): this CPU's copy when
 * its slot still holds the stamp the copy was made for, else a new copy made
 * under the config's lock, tagged with the stamp read before the config was
 * looked up (so the copy is never older than the write that published it).
 * NULL: no config (an unknown symbol; a slot never published is one without
 * any hash lookup, nor any read of the copies).  The message is decided on
 * the copy itself, not a copy of it: only this CPU writes it, and nothing
 * else runs on this CPU until the packet is done.
 */
static __always_inline struct hft_symbol_copy *symbol_view(struct hft_symbol_key *key)
{
	__u64 k = *(__u64 *)key->name, *published, stamp;
	__u32 slot = config_slot(k);
	struct hft_symbol_config *cfg;
	struct hft_symbol_copy *c;

	published = config_stamps.lookup(&slot);
	if (!published)
		return NULL;
	stamp = *(volatile __u64 *)published;
	if (!stamp)
		return NULL;              /* no symbol of this slot was ever configured: no copy read */
	c = symbol_copies.lookup(&slot);
	if (!c)
		return NULL;
	if (c->stamp == stamp && *(__u64 *)c->key.name == k)
		return c;
	cfg = symbol_config.lookup(key);
	if (!cfg)
		return NULL;
	bpf_spin_lock(&cfg->lock);
	c->p = cfg->p;
	c->seq_epoch = cfg->seq_epoch;
	bpf_spin_unlock(&cfg->lock);
	c->stamp = stamp;
	*(__u64 *)c->key.name = k;
	return c;
}

/* Why no order may leave for this symbol whatever the message says, or NO_REJECT. */
static __always_inline __u32 check_switches(const struct hft_scratch *s, const struct hft_symbol_copy *c,
					   const __u64 *kill)
{
	if (*kill != HFT_KILL_OFF)
		return HFT_REJECT_KILL;
	if (s->loop.switch_reason != NO_REJECT)
		return s->loop.switch_reason;
	if (!c->p.enabled)
		return HFT_REJECT_DISABLED;
	return s->u.reason;               /* the message's own: halted flag, price range */
}

/*
 * Room in the frame for one more order: the packet's cap, and when the frame
 * is shorter than headers + 44 * (n + 1) bytes, growing it now, before the
 * decision, so an order decided always fits.  The grow invalidates every
 * packet pointer: the caller holds none.
 */
static __always_inline __u32 order_room(struct xdp_md *ctx, struct feed_loop *fl)
{
	__u32 need;

	if (fl->n_orders >= fl->max_orders)
		return 0;
	if (FEED_KEEPS_LENGTH && !fl->gateway)
		return 1;                 /* hft1 reflected: in place */
	need = fl->hdr_out + (fl->n_orders + 1) * HFT_MSG_LEN;
	if (need <= fl->frame_len)
		return 1;
	if (fl->grow_failed)
		return 0;
	if (bpf_xdp_adjust_tail(ctx, (int)(need - fl->frame_len))) {
		fl->grow_failed = 1;
		return 0;
	}
	fl->frame_len = need;
	return 1;
}

/*
 * The strategy; runs under the symbol lock and reserves what it decides.
 * Other CPUs' reservations count against this decision the safe way: pending
 * buys as if filled (room, notional), pending sells as if refused (nothing
 * to sell twice, no room freed).  On one CPU nothing is pending here.
 */
static __always_inline void decide(const struct hft_symbol_params *p, struct hft_symbol_state *st,
				   const struct feed_msg *u, __u64 now, struct decision *d)
{
	__u32 ref = p->reference_price ? p->reference_price : st->session_ref;
	__u32 tick = p->tick_size ? p->tick_size : 1;
	__u64 qty, headroom, ticks, fits, used;
	__u64 held = (__u64)st->position + st->pending_buy;      /* if every pending buy fills */
	__u32 sellable = st->position > st->pending_sell ? st->position - st->pending_sell : 0;

	if (u->ask && u->ask_qty && u->ask <= p->buy_target) {
		ticks = (p->buy_target - u->ask) / tick;
		qty = min_u64(u->ask_qty, p->max_order_qty);
		qty = min_u64(qty, p->base_qty + (__u64)p->scale_qty * ticks);
		headroom = p->max_position > held ? p->max_position - held : 0;
		if (!headroom) {
			d->reason = HFT_REJECT_POSITION_LIMIT;
			return;
		}
		if (!qty) {
			d->reason = HFT_REJECT_ZERO_QTY;
			return;
		}
		qty = min_u64(qty, headroom);
		if (ref && p->collar_bps &&
		    (__u64)u->ask * 10000 > (__u64)ref * (10000 + p->collar_bps)) {
			d->reason = HFT_REJECT_COLLAR;
			return;
		}
		if (p->max_notional) {
			used = st->open_cost + st->pending_cost;
			fits = used >= p->max_notional ? 0 : (p->max_notional - used) / u->ask;
			if (!fits) {
				d->reason = HFT_REJECT_NOTIONAL;
				return;
			}
			qty = min_u64(qty, fits);
		}
		if (!take_token(&st->tokens, &st->last_refill_ns, p->rate_per_sec, p->burst, now)) {
			d->reason = HFT_REJECT_THROTTLE;
			return;
		}
		d->token = p->rate_per_sec != 0;
		st->pending_buy += qty;
		st->pending_cost += qty * u->ask;
		d->side = HFT_TYPE_BUY;
		d->price = u->ask;
		d->qty = qty;
		return;
	}
	if (p->sell_target && sellable && u->bid && u->bid_qty && u->bid >= p->sell_target) {
		qty = min_u64(u->bid_qty, p->max_order_qty);
		qty = min_u64(qty, sellable);
		if (!qty) {
			d->reason = HFT_REJECT_ZERO_QTY;
			return;
		}
		if (ref && p->collar_bps && p->collar_bps < 10000 &&
		    (__u64)u->bid * 10000 < (__u64)ref * (10000 - p->collar_bps)) {
			d->reason = HFT_REJECT_COLLAR;
			return;
		}
		if (!take_token(&st->tokens, &st->last_refill_ns, p->rate_per_sec, p->burst, now)) {
			d->reason = HFT_REJECT_THROTTLE;
			return;
		}
		d->token = p->rate_per_sec != 0;
		st->pending_sell += qty;
		d->side = HFT_TYPE_SELL;
		d->price = u->bid;
		d->qty = qty;
	}
}

/*
 * Commits a fill of `final` shares (0: nothing filled, final <= d->qty) and
 * releases the whole reservation phase 1 made; runs under the symbol lock.
 * Returns the open cost a sale released, for the engine-wide total.
 */
static __always_inline __u64 commit_fill(struct hft_symbol_state *st, struct decision *d, __u32 final)
{
	__u64 cost = 0;

	if (d->side == HFT_TYPE_BUY) {
		st->pending_buy -= d->qty;
		st->pending_cost -= (__u64)d->qty * d->price;
		if (final) {
			st->position += final;
			st->bought += final;
			st->capital_spent += (__u64)final * d->price;
			st->open_cost += (__u64)final * d->price;
			st->buy_orders++;
		}
	} else {
		st->pending_sell -= d->qty;
		if (final) {
			st->position -= final;
			cost = cost_of_sale(st->open_cost, final, st->bought - st->sold);
			st->open_cost -= cost;
			st->sold += final;
			st->proceeds += (__u64)final * d->price;
			st->sell_orders++;
		}
	}
	if (!final) {
		st->rejects++;
		if (d->token)
			st->tokens += TOKEN;   /* give the unused token back */
	}
	d->position = st->position;
	return cost;
}

/*
 * Whether a bid may move the mark: it has size, and it is one the engine
 * could sell to (not below the sell collar of the reference: the config's
 * reference_price, else the session's).  A zero-size bid, or one far below
 * the market, cannot re-mark the position and collapse the PnL.
 */
static __always_inline int moves_mark(const struct hft_symbol_params *p, const struct hft_symbol_state *st,
				      const struct feed_msg *u)
{
	__u32 ref = p->reference_price ? p->reference_price : st->session_ref;

	if (!u->bid || !u->bid_qty || !ref)
		return 0;
	if (p->collar_bps && p->collar_bps < 10000 &&
	    (__u64)u->bid * 10000 < (__u64)ref * (10000 - p->collar_bps))
		return 0;
	return 1;
}

/*
 * A new feed session, under the symbol lock: the halted state, the order of
 * statuses and the collar reference are the old session's, so they start
 * afresh (the exchange sends each symbol's status again at a session's
 * start).  hft1 has no sessions (its tag is always 0): nothing ever resets.
 */
static __always_inline void enter_book(struct hft_symbol_state *st, __u32 session)
{
	if (st->book_session == session)
		return;
	st->book_session = session;
	st->halted = 0;
	st->status_seq = 0;
	st->session_ref = 0;
	st->book_bid = 0;
	st->book_ask = 0;
}

/*
 * The session's collar reference, taken once, under the symbol lock: the
 * mid of a two-sided view that is not crossed.  hft1: the first update's
 * (its one side when it has one; as ever).  A channel feed's messages are
 * mostly one-sided (a DEEP level, an ITCH add, anywhere in the book), so
 * the view is the session's last bid and last ask, whichever messages
 * brought them, and it is taken only once both are known and lie within
 * the collar of their mid: a resting order deep in the book is no
 * reference.  Until then there is none (reference_price, when set, is the
 * collar's reference from the first message).
 */
static __always_inline void take_reference(const struct hft_symbol_params *p, struct hft_symbol_state *st,
					   const struct feed_msg *u)
{
	__u64 bid = u->bid, ask = u->ask;

	if (FEED_HAS_CHANNEL) {
		if (u->bid)
			st->book_bid = u->bid;
		if (u->ask)
			st->book_ask = u->ask;
		bid = st->book_bid;
		ask = st->book_ask;
		if (!bid || !ask || bid > ask ||
		    (p->collar_bps && (ask - bid) * 10000 > (ask + bid) * p->collar_bps))
			return;
	} else if (bid && ask && bid > ask) {
		return;                   /* crossed: no reference */
	}
	/* The mid in 64 bits: two prices above 214748.3647 sum past 2^32. */
	st->session_ref = bid && ask ? (__u32)((bid + ask) / 2) : (__u32)(bid | ask);
}

/*
 * The market data and the sequence rules, under the symbol lock.  Returns
 * why the message cannot trade (stale, seq_jump, a crossed book) or
 * NO_REJECT.  The first update of a symbol, the first after a reset
 * (user space moved the config's seq_epoch) and the first of another feed
 * session set the sequence whatever it is.  The jump is bounded here only
 * for a feed whose messages carry their own sequence (hft1): on a channel
 * feed a symbol's messages are channel sequence numbers, legitimately far
 * apart, and arbitrate_channel bounds them all.
 */
static __always_inline __u32 record_market_data(struct hft_scratch *s, const struct hft_symbol_copy *c,
						struct hft_symbol_state *st)
{
	const struct feed_msg *u = &s->u;
	int fresh = !st->updates || st->seq_session != s->loop.session_tag || st->seq_epoch != c->seq_epoch;
	int crossed;

	st->updates++;
	if (!fresh) {
		if (u->seq <= st->last_seq)
			return HFT_REJECT_STALE;   /* A/B-line duplicate or a replay: never trade on it */
		if (!FEED_HAS_CHANNEL && s->g.max_seq_jump && u->seq - st->last_seq > s->g.max_seq_jump)
			return HFT_REJECT_SEQ_JUMP;   /* the last sequence stays: one packet cannot lock it out */
	}
	st->seq_session = s->loop.session_tag;
	st->seq_epoch = c->seq_epoch;
	st->last_seq = u->seq;
	st->last_update_ns = s->loop.now;
	st->last_bid = u->bid;
	st->last_bid_qty = u->bid_qty;
	st->last_ask = u->ask;
	st->last_ask_qty = u->ask_qty;
	crossed = u->bid && u->ask && u->bid > u->ask;
	enter_book(st, s->loop.session_tag);
	if (!st->session_ref)
		take_reference(&c->p, st, u);
	if (moves_mark(&c->p, st, u))
		st->mark = u->bid;
	return crossed ? HFT_REJECT_CROSSED : NO_REJECT;
}

/*
 * Phase 1, under the symbol lock: market data, the sequence, the halted
 * state, the decision and its reservation.  d->reason comes in as
 * check_switches' verdict.
 */
static __always_inline void decide_and_reserve(struct hft_scratch *s, const struct hft_symbol_copy *c,
					       struct hft_symbol_state *st, const struct hft_totals *tot)
{
	struct decision *d = &s->d;
	__u32 market;

	bpf_spin_lock(&st->lock);
	market = record_market_data(s, c, st);
	if (d->reason == NO_REJECT)
		d->reason = market;
	if (d->reason == NO_REJECT && st->halted)
		d->reason = HFT_REJECT_HALTED;
	/*
	 * The total, with the new mark, may be below the loss limit: then no
	 * order, even before add_pnl latches the kill (a plain read of the
	 * total is enough for this check; add_pnl decides the latch, and latches
	 * whether or not this message moved the PnL).
	 */
	d->pnl_delta = repnl(st);
	if (d->reason == NO_REJECT)
		decide(&c->p, st, &s->u, s->loop.precise_now, d);
	if (d->reason != NO_REJECT)
		st->rejects++;
	if (d->side && !d->room) {
		commit_fill(st, d, 0);   /* no room in the frame: it changes nothing */
		d->side = 0;
		d->reason = s->loop.cap_reason;
	}
	if (d->side && s->g.loss_limit && tot->pnl + d->pnl_delta < -(__s64)s->g.loss_limit) {
		commit_fill(st, d, 0);   /* releases the reservation, counts the reject */
		d->side = 0;
		d->reason = HFT_REJECT_KILL;
	}
	d->final = d->qty;
	/* Nothing engine-wide to ask: committed under the lock it was reserved under,
	 * so no other CPU ever sees it pending. */
	if (d->side && !s->loop.global_limits)
		d->released = commit_fill(st, d, d->final);
	d->position = st->position;
	d->pnl_delta += repnl(st);
	bpf_spin_unlock(&st->lock);
}

/* Every reject of a known symbol, on the tape; side and price are 0 before phase 2. */
static __always_inline void report_reject(struct hft_scratch *s, const struct hft_totals *tot,
					  __u32 reason, __u32 side, __u32 price)
{
	count(HFT_CTR_REJECT_BASE + (reason & 0x1f));
	emit_tape(s, tot, HFT_EVENT_REJECT, reason, side, price);
}

/*
 * A message that decided no order: its reject, or 1 in update_sample of the
 * rest, by this CPU's count of updates (the counter, plus this packet's so
 * far, which close_packet adds to it).
 */
static __always_inline void report_no_order(struct hft_scratch *s, const struct hft_totals *tot)
{
	__u64 *updates;

	if (s->d.reason != NO_REJECT) {
		report_reject(s, tot, s->d.reason, 0, 0);
	} else if (s->g.update_sample) {
		updates = counter(HFT_CTR_UPDATES);
		if (updates && (*updates + s->loop.updates) % s->g.update_sample == 0)
			emit_tape(s, tot, HFT_EVENT_UPDATE, 0, 0, 0);
	}
}

/*
 * Phase 2, under the global lock: the engine-wide throttle and notional cap
 * cut d->final (to 0 with d->reason set when they refuse the order).
 */
static __always_inline void engine_wide_limits(struct hft_scratch *s, struct hft_global_state *gs,
					       struct hft_totals *tot, const __u64 *kill)
{
	const struct hft_global_params *g = &s->g;
	struct decision *d = &s->d;
	__u64 cost;

	bpf_spin_lock(&gs->lock);
	if (*kill != HFT_KILL_OFF) {
		/* Killed while this message was decided (operator or loss limit). */
		d->final = 0;
		d->reason = HFT_REJECT_KILL;
	} else if (!take_token(&gs->tokens, &gs->last_refill_ns, g->rate_per_sec, g->burst, s->loop.precise_now)) {
		d->final = 0;
		d->reason = HFT_REJECT_THROTTLE;
	} else if (d->side == HFT_TYPE_BUY && g->max_notional) {
		cost = tot->open_cost;
		d->final = min_u64(d->final, cost >= g->max_notional ? 0 :
					     (g->max_notional - cost) / d->price);
		if (!d->final) {
			d->reason = HFT_REJECT_NOTIONAL;
			if (g->rate_per_sec)
				gs->tokens += TOKEN;   /* give the unused token back */
		}
	}
	if (d->final && d->side == HFT_TYPE_BUY && g->max_notional) {
		/* Under the lock, so two buys cannot both fit the last room. */
		__sync_fetch_and_add(&tot->open_cost, (__u64)d->final * d->price);
		d->cost_counted = 1;
	}
	bpf_spin_unlock(&gs->lock);
}

/* Phase 3, under the symbol lock: commit the fill, release the reservation. */
static __always_inline void commit(struct hft_scratch *s, struct hft_symbol_state *st, struct hft_totals *tot)
{
	struct decision *d = &s->d;

	bpf_spin_lock(&st->lock);
	d->released = commit_fill(st, d, d->final);
	d->pnl_delta = repnl(st);
	bpf_spin_unlock(&st->lock);
	add_pnl(s, tot);
}

/* The engine-wide open cost follows the committed fill (unless phase 2 counted the buy). */
static __always_inline void commit_open_cost(const struct decision *d, struct hft_totals *tot)
{
	if (d->released)
		__sync_fetch_and_sub(&tot->open_cost, d->released);
	if (d->final && d->side == HFT_TYPE_BUY && !d->cost_counted)
		__sync_fetch_and_add(&tot->open_cost, (__u64)d->final * d->price);
}

/* The order: ids are engine-wide and gap-free. */
static __always_inline __u32 number_order(struct hft_totals *tot)
{
	count(HFT_CTR_ORDERS);
	return (__u32)(__sync_fetch_and_add(&tot->order_seq, 1) + 1);
}

/*
 * A trading status message: the symbol halts (H, O, P; ITCH H, P, Q) or
 * trades (T), by sequence, not by the order packets are read in: two
 * packets claimed on two CPUs may be read in either order, so a status
 * older than the one the symbol holds changes nothing (a T read after the
 * H that followed it cannot leave the symbol trading during the halt).  A
 * new session, or an operator's reset-seq (the config's seq_epoch), takes
 * the next status whatever its sequence.
 */
static __always_inline void record_status(struct hft_scratch *s)
{
	struct hft_symbol_config *c = symbol_config.lookup(&s->u.key);
	struct hft_symbol_state *st = symbol_state.lookup(&s->u.key);
	__u32 epoch;

	if (!st || !c)
		return;                   /* not a symbol the engine trades */
	bpf_spin_lock(&c->lock);
	epoch = c->seq_epoch;
	bpf_spin_unlock(&c->lock);
	bpf_spin_lock(&st->lock);
	enter_book(st, s->loop.session_tag);
	if (!st->status_seq || st->status_epoch != epoch || s->u.seq > st->status_seq) {
		st->halted = s->u.halted;
		st->status_seq = s->u.seq;
		st->status_epoch = epoch;
	}
	bpf_spin_unlock(&st->lock);
}

/*
 * One message of a symbol through the phases.  Every packet pointer is
 * dead here (the frame may have grown): the message is in the scratch.
 */
static __always_inline void trade_message(struct xdp_md *ctx, struct hft_scratch *s,
					  struct hft_symbol_copy *cfgp)
{
	struct feed_loop *fl = &s->loop;
	struct decision *d = &s->d;
	struct hft_symbol_state *st;
	struct hft_global_state *gs;
	struct hft_totals *tot;
	__u32 zero = 0, id;
	__u64 *kill;

	fl->updates++;                     /* added to the counter once a packet (close_packet) */
	if (!cfgp)
		cfgp = symbol_view(&s->u.key);
	if (!cfgp) {
		fl->unknown++;
		return;
	}
	st = symbol_state.lookup(&s->u.key);
	if (!st) {
		fl->unknown++;
		return;
	}
	tot = totals.lookup(&zero);
	kill = kill_switch.lookup(&zero);
	gs = global_state.lookup(&zero);
	if (!tot || !kill || !gs)
		return;
	if (!fl->have_view)
		packet_view(s);

	d->side = 0;
	d->price = 0;
	d->qty = 0;
	d->final = 0;
	d->token = 0;
	d->position = 0;
	d->cost_counted = 0;
	d->room = 0;
	d->pnl_delta = 0;
	d->pnl_known = 0;
	d->released = 0;
	d->reason = check_switches(s, cfgp, kill);
	if (d->reason == NO_REJECT)
		d->room = order_room(ctx, fl);
	if (cfgp->p.rate_per_sec || s->g.rate_per_sec)
		hft_precise_now(s);                     /* a rate is kept: read before the locks */

	decide_and_reserve(s, cfgp, st, tot);           /* phase 1 */
	add_pnl(s, tot);
	if (!d->side) {
		report_no_order(s, tot);
		return;
	}
	if (fl->global_limits) {
		engine_wide_limits(s, gs, tot, kill);   /* phase 2 */
		commit(s, st, tot);                     /* phase 3 */
	}
	commit_open_cost(d, tot);
	if (!d->final) {
		report_reject(s, tot, d->reason, d->side, d->price);
		return;
	}
	id = number_order(tot);
	append_order(s, d->side, d->price, d->final, id);
	emit(s, tot, HFT_EVENT_ORDER, 0, d->side, d->price, d->final, id);
}

/* ---- Read the messages ------------------------------------------------ */

/*
 * The next message of interest (fl->i, fl->pos): walked to, decoded, acted
 * on.  Returns 1 to end the loop.  Packet pointers are derived here from
 * ctx: after an order_room grow in an earlier message none would be valid.
 * A step first walks past up to FEED_SKIP_RUN messages nobody acts on (types
 * the decoder skips, messages already seen on the channel) with the position
 * in a register; every step reads at least one message, so as many steps as
 * messages always suffice.
 */
static __always_inline int message_step(struct xdp_md *ctx, struct hft_scratch *s,
					struct hft_symbol_copy *cfgp)
{
	void *data_end = (void *)(long)ctx->data_end;
	void *data = (void *)(long)ctx->data;
	struct feed_loop *fl = &s->loop;
	__u32 pos = fl->pos, i = fl->i, count = fl->count, end = fl->end, skip = fl->skip, len = 0;
	void *p = data;
	int kind, k;

	for (k = 0; k <= FEED_SKIP_RUN; k++) {
		if (i >= count)
			goto done;
		/* A bound the verifier can see, opaque to clang so it is not folded away. */
		asm volatile("%0 &= " __stringify(FEED_OFF_MASK) : "+r"(pos));
		p = data + pos;
		if (p + FEED_LEN_PREFIX > data_end)
			goto malformed;
		len = feed_block_len(p);
		if (pos + FEED_LEN_PREFIX + len > end)
			goto malformed;
		if (i >= skip && len) {
			if (p + FEED_LEN_PREFIX + 1 > data_end)
				goto malformed;
			if (FEED_WANTS(*(__u8 *)(p + FEED_LEN_PREFIX)))
				break;
		} else if (i >= skip) {
			fl->malformed_msgs++;     /* an empty block: no message (hft_tui/feeds too), walked past */
		}
		pos += FEED_LEN_PREFIX + len;
		i++;
	}
	if (k > FEED_SKIP_RUN) {
		fl->i = i;
		fl->pos = pos;
		return 0;                 /* a long run of skipped messages: on in the next step */
	}
	fl->i = i + 1;
	fl->pos = pos + FEED_LEN_PREFIX + len;
	kind = feed_decode(p + FEED_LEN_PREFIX, len, data_end, &s->u);
	s->u.seq = fl->first_seq + i;
	if (kind == FEED_MSG_QUOTE)
		trade_message(ctx, s, cfgp);
	else if (kind == FEED_MSG_STATUS)
		record_status(s);
	else if (kind == FEED_MSG_IN_TRANSITION)
		fl->in_transition++;
	else if (kind == FEED_MSG_MALFORMED)
		fl->malformed_msgs++;
	return fl->i >= fl->count;
malformed:
	fl->stop = STOP_MALFORMED;
done:
	fl->i = i;
	fl->pos = pos;
	return 1;
}

#if FEED_MAX_MSGS > 1
/* What bpf_loop hands each step: the packet and the scratch. */
struct loop_ctx {
	struct xdp_md *ctx;
	struct hft_scratch *s;
};

HFT_SUBPROG static long message_step_cb(__u32 index, void *arg)
{
	struct loop_ctx *lc = arg;

	return message_step(lc->ctx, lc->s, NULL);
}
#endif

/*
 * Every message of the packet, in order.  bpf_loop: its callback is
 * verified until its states converge, whatever the count (a plain loop of
 * 128 is walked 128 times by the verifier).  One message (hft1): a call.
 */
static __always_inline void read_messages(struct xdp_md *ctx, struct hft_scratch *s,
					  struct hft_symbol_copy *cfgp)
{
#if FEED_MAX_MSGS > 1
	struct loop_ctx lc = { .ctx = ctx, .s = s };

	bpf_loop(s->loop.count, message_step_cb, &lc, 0);
#else
	message_step(ctx, s, cfgp);
#endif
}

/* ---- Send the orders -------------------------------------------------- */

/*
 * hft1 reflected: today's frame.  The update's frame, turned around, carries
 * the order back (the order written over the update, the rest of the
 * datagram kept), both checksums computed whole.  A datagram that is just
 * the order (the feed's own) has its UDP checksum made from the order's words
 * as append_order summed them, the pseudo header and the UDP header: the
 * payload is new, so nothing of the update's needs reading again.  Anything
 * longer is summed over the whole datagram.
 */
static __always_inline int write_order(struct xdp_md *ctx, struct hft_scratch *s)
{
	void *data_end = (void *)(long)ctx->data_end;
	struct hdr_cursor nh = { .pos = (void *)(long)ctx->data };
	struct udp_frame f;
	__u64 sum;
	__u16 csum;

	if (parse_udp_frame(&nh, data_end, &f) != PARSE_OK || nh.pos + HFT_MSG_LEN > data_end)
		return XDP_DROP;
	swap_addresses(f.eth, f.iph, f.udp);
	__builtin_memcpy(nh.pos, s->frame + FRAME_HDR_ROOM, HFT_MSG_LEN);
	ipv4_csum_recompute(f.iph, data_end);
	if (f.udp->len != bpf_htons(sizeof(struct udphdr) + HFT_MSG_LEN)) {
		udp_csum_recompute(f.iph, f.udp, bpf_ntohs(f.udp->len), data_end);
		return XDP_TX;
	}
	sum = (f.iph->saddr >> 16) + (f.iph->saddr & 0xffff) + (f.iph->daddr >> 16) + (f.iph->daddr & 0xffff) +
	      bpf_htons(IPPROTO_UDP) + f.udp->len + f.udp->source + f.udp->dest + f.udp->len + s->loop.csum;
	csum = csum_fold(sum);
	f.udp->check = csum ? csum : 0xffff;     /* RFC 768: a computed zero is sent as all ones */
	return XDP_TX;
}

/* The order frame's addresses: the gateway's, or the packet's turned around. */
static __always_inline int route_orders(struct xdp_md *ctx, const struct hft_route *rt, struct frame_route *r)
{
	void *data_end = (void *)(long)ctx->data_end;
	struct hdr_cursor nh = { .pos = (void *)(long)ctx->data };
	struct udp_frame f;
	struct vlan_hdr *vlh;

	/* The loop left the headers where they were: a grow only appends. */
	if (parse_udp_frame(&nh, data_end, &f) != PARSE_OK)
		return -1;
	r->vlan_proto = f.eth->h_proto;
	vlh = (void *)(f.eth + 1);
	if ((void *)(vlh + 1) > data_end)
		return -1;
	r->vlan_tci = vlh->h_vlan_TCI;   /* used only when the frame has a tag */
	if (rt->mode == HFT_ROUTE_GATEWAY) {
		__builtin_memcpy(r->dst_mac, rt->gw_mac, ETH_ALEN);
		__builtin_memcpy(r->src_mac, rt->src_mac, ETH_ALEN);
		r->saddr = rt->src_ip;
		r->daddr = rt->gw_ip;
		r->sport = rt->src_port;
		r->dport = rt->gw_port;
	} else {
		__builtin_memcpy(r->dst_mac, f.eth->h_source, ETH_ALEN);
		__builtin_memcpy(r->src_mac, f.eth->h_dest, ETH_ALEN);
		r->saddr = f.iph->daddr;
		r->daddr = f.iph->saddr;
		r->sport = f.udp->dest;
		r->dport = f.udp->source;
	}
	return 0;
}

static __always_inline int send_orders(struct xdp_md *ctx, struct hft_scratch *s, const struct hft_route *rt,
				       struct hft_feed_counters *fc)
{
	struct frame_route r;
	int action;

	if (FEED_KEEPS_LENGTH && !s->loop.gateway) {
		action = write_order(ctx, s);
	} else if (route_orders(ctx, rt, &r)) {
		action = XDP_DROP;
	} else {
		action = send_frame(ctx, s, &r);
	}
	if (action != XDP_TX)
		fc->frame_errors++;
	return action;
}

/* ---- The program ------------------------------------------------------ */

/* The loop's state for this packet (the scratch holds the previous packet's). */
static __always_inline void open_packet(struct xdp_md *ctx, struct hft_scratch *s, struct hdr_cursor *nh,
					const struct udp_frame *f, __u32 no_trade)
{
	void *data = (void *)(long)ctx->data;
	struct feed_loop *fl = &s->loop;

	fl->first_seq = s->fp.first_seq;
	/* Here, from the scratch: made in the header's parse, ITCH's hash cost the verifier 3x the states. */
	fl->session_tag = feed_session_tag(&s->fp);
	fl->count = s->fp.count > FEED_MAX_MSGS ? FEED_MAX_MSGS : s->fp.count;
	fl->pos = nh->pos - data;
	fl->end = (void *)f->udp + bpf_ntohs(f->udp->len) - data;
	fl->frame_len = (void *)(long)ctx->data_end - data;
	fl->orig_len = fl->frame_len;
	fl->no_trade = no_trade;
	fl->csum = 0;
	fl->skip = 0;
	fl->i = 0;
	fl->stop = STOP_NONE;
	fl->n_orders = 0;
	fl->max_orders = 0;
	fl->grow_failed = 0;
	fl->have_view = 0;
	fl->precise_now = 0;
	fl->switch_reason = NO_REJECT;
	fl->global_limits = 0;
	fl->updates = 0;
	fl->unknown = 0;
	fl->in_transition = 0;
	fl->malformed_msgs = 0;
	fl->claimed = 0;
}

/* What the packet counted, added to the maps once; a frame grown for nothing trimmed. */
static __always_inline void close_packet(struct xdp_md *ctx, struct hft_scratch *s, struct hft_feed_counters *fc)
{
	struct feed_loop *fl = &s->loop;

	fc->messages += fl->i > fl->skip ? fl->i - fl->skip : 0;
	fc->in_transition += fl->in_transition;
	fc->grow_failed += fl->grow_failed;
	count_n(HFT_CTR_UPDATES, fl->updates);
	count_n(HFT_CTR_REJECT_BASE + HFT_REJECT_UNKNOWN_SYMBOL, fl->unknown);
	if (fl->stop == STOP_MALFORMED || fl->malformed_msgs)
		count(HFT_CTR_REJECT_BASE + HFT_REJECT_MALFORMED);
	if (FEED_HAS_CHANNEL && fl->stop == STOP_MALFORMED)
		unclaim_rest(s);
	if (!fl->n_orders && fl->frame_len != fl->orig_len)
		bpf_xdp_adjust_tail(ctx, (int)fl->orig_len - (int)fl->frame_len);
}

int xdp_strategy(struct xdp_md *ctx)
{
	void *data_end = (void *)(long)ctx->data_end;
	void *data = (void *)(long)ctx->data;
	struct hdr_cursor nh = { .pos = data };
	struct hft_symbol_copy *cfgp = NULL;     /* the one message's, when the feed has one a packet */
	struct hft_global_config *gcp;
	struct hft_feed_counters *fc;
	struct hft_feed_filter *ff;
	struct hft_scratch *s;
	struct hft_route *rt;
	struct udp_frame f;
	__u32 zero = 0, feed_port, udp_len, no_trade;
	int rc;

	rc = parse_udp_frame(&nh, data_end, &f);
	if (rc != PARSE_OK)
		return pass_counted(rc);
	gcp = global_config.lookup(&zero);
	if (!gcp)
		return XDP_PASS;
	/* One aligned 32-bit load: whole without the lock, enough to pass others' packets
	 * before anything else is looked up. */
	feed_port = *(volatile __u32 *)&gcp->p.feed_port;
	if (!feed_port || f.udp->dest != bpf_htons((__u16)feed_port))
		return pass_counted(PARSE_OTHER);
	ff = feed_filter.lookup(&zero);
	rt = route.lookup(&zero);
	s = scratch.lookup(&zero);
	fc = feed_counters.lookup(&zero);
	if (!ff || !rt || !s || !fc)
		return XDP_PASS;
	if (ff->feed_addr && f.iph->daddr != ff->feed_addr)
		return pass_counted(PARSE_OTHER);
	if (!for_us(rt, f.eth)) {
		fc->not_for_us++;
		return XDP_PASS;
	}
	/* From here on the packet is addressed to the feed: its sender first. */
	if (!source_allowed(ff, f.eth, f.iph)) {
		count(HFT_CTR_REJECT_BASE + HFT_REJECT_FOREIGN_SOURCE);
		return XDP_PASS;
	}
	udp_len = bpf_ntohs(f.udp->len);
	if (udp_len > HFT_MAX_UDP_LEN)
		return pass_counted(PARSE_MALFORMED);
	rc = feed_parse_header(&nh, data_end, udp_len - sizeof(struct udphdr), &s->fp);
	if (rc != PARSE_OK)
		return pass_counted(rc);
	/* A channel's sequences past 2^64 - 1: no range to claim (it would wrap and lock the channel). */
	if (FEED_HAS_CHANNEL && s->fp.first_seq + s->fp.count < s->fp.first_seq)
		return pass_counted(PARSE_MALFORMED);
	fc->packets++;
	/* Whole without the lock, like feed_port; the locked view waits for a symbol that needs it. */
	no_trade = *(volatile __u32 *)&gcp->p.on_no_trade == HFT_NO_TRADE_DROP ? XDP_DROP : XDP_PASS;
#if FEED_MAX_MSGS == 1
	/*
	 * One message a packet (hft1): its symbol is looked up here, once: one
	 * nobody configured is counted as the loop would count it (a message
	 * read, an update, an unknown symbol) before any of the loop's state is
	 * set up, and a configured one's config goes to trade_message.
	 */
	if (nh.pos + FEED_SYMBOL_OFF + sizeof(struct hft_symbol_key) > data_end)
		return pass_counted(PARSE_MALFORMED);
	cfgp = symbol_view(nh.pos + FEED_SYMBOL_OFF);
	if (!cfgp) {
		fc->messages++;
		count(HFT_CTR_UPDATES);
		count(HFT_CTR_REJECT_BASE + HFT_REJECT_UNKNOWN_SYMBOL);
		return no_trade;
	}
#endif
	open_packet(ctx, s, &nh, &f, no_trade);
	if (s->fp.count > FEED_MAX_MSGS)
		fc->truncated_packets++;

#if FEED_HAS_CHANNEL
	rc = arbitrate_channel(s, *(volatile __u64 *)&gcp->p.max_seq_jump);
	if (rc == ARB_DUP) {
		fc->dup_packets++;
		return no_trade;
	}
	if (rc == ARB_JUMP) {
		count(HFT_CTR_REJECT_BASE + HFT_REJECT_SEQ_JUMP);
		return no_trade;
	}
	if (rc == ARB_FULL) {
		fc->channels_full++;
		return no_trade;
	}
#endif
	if (!s->loop.count) {
		fc->heartbeats++;
		return no_trade;
	}
	plan_route(s, rt, &f);

	read_messages(ctx, s, cfgp);     /* every packet pointer above is dead from here */

	close_packet(ctx, s, fc);
	if (!s->loop.n_orders)
		return s->loop.no_trade;
	return send_orders(ctx, s, rt, fc);
}
