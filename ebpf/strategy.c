/* SPDX-License-Identifier: GPL-2.0 */
/*
 * hft-tui strategy engine: an XDP program that reads market-data updates in
 * place, decides per symbol whether to trade, and turns the same frame into
 * an order that leaves with XDP_TX.
 *
 * A packet's way, one function per step, in the order xdp_strategy calls them:
 *  - parse the update (parse_udp_frame, parse_update, decode_update): a
 *    datagram not to the feed port is told apart by one plain load of
 *    feed_port and passed; one to the feed port must hold a whole update;
 *  - open the packet (open_packet): the engine-wide config copied under its
 *    spin lock (user space writes it whole with BPF_F_LOCK, so a reader
 *    never sees half of an update) and the engine-wide maps, shared by the
 *    packet's updates;
 *  - trade the update (trade_update), a function of the packet, the decoded
 *    update and the symbol's config and state:
 *     - the symbol's config copied under its spin lock likewise
 *       (read_symbol), the clock read, the switches checked (check_switches:
 *       kill switch, dead-man switch, symbol disabled);
 *     - phase 1, decide and reserve (decide_and_reserve, symbol lock):
 *       market data, duplicate check, the decision, and a reservation
 *       (pending_buy/pending_sell/pending_cost, and a throttle token), so two
 *       CPUs can never both fill the last share of max_position.  With no
 *       engine-wide throttle or notional cap configured the fill is
 *       committed right there;
 *     - the event begun (start_event) and the session PnL moved (add_pnl,
 *       which latches the loss limit); an update that decided no order ends
 *       here (report_no_order);
 *     - phase 2, engine-wide limits (engine_wide_limits, global lock, only
 *       with engine-wide limits): the global throttle and the global
 *       notional cap;
 *     - phase 3, commit (commit, symbol lock, only after phase 2): the fill
 *       is committed with its final quantity and the whole reservation
 *       released; the engine-wide open cost follows (commit_open_cost); an
 *       order refused in phase 2 ends here (report_reject);
 *     - the order numbered (number_order): an engine-wide, gap-free id;
 *  - write the order (write_order): the frame turned around, its payload
 *    rewritten as the order, both checksums recomputed; then the order's
 *    event, and XDP_TX.
 * A reservation never moves `position`, which only ever holds committed
 * fills: a pending buy takes buy room but cannot be sold, a pending sell
 * frees no buy room, so whatever phase 2 decides for any interleaving of
 * CPUs, position stays within 0..max_position.
 * Nothing holds two locks at once and no helper is called under a lock.
 */
#include <uapi/linux/bpf.h>
#include "hft_protocol.h"
#include "hft_structs.h"
#include "parsing_helpers.h"
#include "csum.h"
#include "rewrite.h"
#include "hft_maps.h"

/* The payload as it sits in the packet; offsets checked against the protocol. */
struct hft_msg {
	__be16 magic;
	__u8 version;
	__u8 type;
	char symbol[HFT_SYMBOL_LEN];
	__be64 seq;
	__be32 bid;
	__be32 bid_qty;
	__be32 ask;
	__be32 ask_qty;
	__be64 timestamp;
} __attribute__((packed));

_Static_assert(sizeof(struct hft_msg) == HFT_MSG_LEN, "payload length");
_Static_assert(__builtin_offsetof(struct hft_msg, version) == HFT_OFF_VERSION, "version");
_Static_assert(__builtin_offsetof(struct hft_msg, type) == HFT_OFF_TYPE, "type");
_Static_assert(__builtin_offsetof(struct hft_msg, symbol) == HFT_OFF_SYMBOL, "symbol");
_Static_assert(__builtin_offsetof(struct hft_msg, seq) == HFT_OFF_SEQ, "seq");
_Static_assert(__builtin_offsetof(struct hft_msg, bid) == HFT_OFF_BID, "bid");
_Static_assert(__builtin_offsetof(struct hft_msg, bid_qty) == HFT_OFF_BID_QTY, "bid_qty");
_Static_assert(__builtin_offsetof(struct hft_msg, ask) == HFT_OFF_ASK, "ask");
_Static_assert(__builtin_offsetof(struct hft_msg, ask_qty) == HFT_OFF_ASK_QTY, "ask_qty");
_Static_assert(__builtin_offsetof(struct hft_msg, timestamp) == HFT_OFF_TIMESTAMP, "timestamp");

#define NO_REJECT      0xff
#define TOKEN          HFT_NS_PER_SEC          /* one order in 1e-9 units */
#define MAX_REFILL_NS  (1000ULL * HFT_NS_PER_SEC)

/* One update, decoded to host byte order. */
struct update {
	struct hft_symbol_key key;
	__u64 seq;
	__u64 timestamp;
	__u32 bid;
	__u32 bid_qty;
	__u32 ask;
	__u32 ask_qty;
};

/* What every update of one packet shares; set up once, by open_packet. */
struct packet {
	struct hft_global_params g;     /* copied under the global config lock */
	struct hft_global_state *gs;
	struct hft_totals *tot;
	struct hft_event *ev;           /* per-CPU scratch: the event being built */
	__u64 *kill;
	__u64 *updates;                 /* this CPU's update counter (NULL: none) */
	int global_limits;              /* an engine-wide throttle or notional cap is set */
	int no_trade;                   /* the XDP action when no order leaves */
};

/* One update's way through the phases. */
struct hft1_decision {
	__u32 side;         /* HFT_TYPE_BUY, HFT_TYPE_SELL or 0 */
	__u32 price;
	__u32 qty;          /* reserved in phase 1 (pending until committed) */
	__u32 final;        /* shares the order carries: qty, less after phase 2, 0 if refused */
	__u32 reason;       /* HFT_REJECT_* or NO_REJECT */
	__u32 token;        /* a symbol throttle token was taken */
	__u32 position;     /* after phase 1 (and phase 3), for the event */
	__u32 cost_counted; /* phase 2 added the buy to the engine-wide open cost */
	__s64 pnl_delta;
	__u64 released;     /* open cost the committed sale released */
	__u64 now;          /* bpf_ktime_get_ns, read when the symbol's config is copied */
};

/* What write_order puts into the frame. */
struct order {
	__u32 side;
	__u32 price;
	__u32 qty;
	__u32 id;         /* engine-wide, gap-free */
};

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

static __always_inline int pass_counted(int parse_rc)
{
	count(parse_rc == PARSE_MALFORMED ? HFT_CTR_REJECT_BASE + HFT_REJECT_MALFORMED
					  : HFT_CTR_PASSED);
	return XDP_PASS;
}

/* Orders and kills: the journal's lossless path. */
static __always_inline void emit(struct hft_event *ev)
{
	if (events.ringbuf_output(ev, sizeof(*ev), 0) < 0)
		count(HFT_CTR_RINGBUF_DROPS);
}

/* Rejects and sampled updates: a separate ring, so they never take an order's room. */
static __always_inline void emit_tape(struct hft_event *ev)
{
	if (tape_events.ringbuf_output(ev, sizeof(*ev), 0) < 0)
		count(HFT_CTR_TAPE_DROPS);
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

/* PnL marked to the last bid; returns the change since the last call. */
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
 * Adds a PnL change to the session total and latches the kill on a breach.
 * The limit is a level, not an edge: a total found below it latches the kill
 * even when this update did not move it (the operator resumed, or the limit
 * was set, while the total was below), so an order refused for the loss
 * limit is always refused with the switch latched and a kill event sent.
 */
static __always_inline void add_pnl(struct hft_totals *tot, __s64 delta, __u64 loss_limit,
				    struct hft_event *ev)
{
	__u32 zero = 0;
	__u64 *kill;
	__s64 total;

	if (delta) {
		total = __sync_fetch_and_add(&tot->pnl, delta) + delta;
		ev->pnl = total;
	} else if (loss_limit) {
		total = *(volatile __s64 *)&tot->pnl;
	} else {
		return;
	}
	if (!loss_limit || total >= -(__s64)loss_limit)
		return;
	kill = kill_switch.lookup(&zero);
	if (!kill || *kill != HFT_KILL_OFF)
		return;
	if (__sync_val_compare_and_swap(kill, HFT_KILL_OFF, HFT_KILL_LOSS_LIMIT) == HFT_KILL_OFF) {
		/* ev is filled in again by the caller before its own event. */
		count(HFT_CTR_LOSS_TRIPS);
		ev->kind = HFT_EVENT_KILL;
		ev->reason = HFT_KILL_LOSS_LIMIT;
		emit(ev);
		ev->kind = 0;
		ev->reason = 0;
	}
}

/* ---- Parse the update ------------------------------------------------- */

/* The feed datagram's payload: one whole hft1 update. */
static __always_inline int parse_update(struct hdr_cursor *nh, void *data_end,
					const struct udp_frame *f, struct hft_msg **msgp)
{
	struct hft_msg *msg = nh->pos;
	__u32 udp_len = bpf_ntohs(f->udp->len);

	if (udp_len < sizeof(struct udphdr) + HFT_MSG_LEN || udp_len > HFT_MAX_UDP_LEN)
		return PARSE_MALFORMED;
	if ((void *)(msg + 1) > data_end)
		return PARSE_MALFORMED;
	if (msg->magic != bpf_htons(HFT_MAGIC) || msg->version != HFT_VERSION ||
	    msg->type != HFT_TYPE_UPDATE)
		return PARSE_MALFORMED;
	nh->pos = msg + 1;
	*msgp = msg;
	return PARSE_OK;
}

static __always_inline void decode_update(const struct hft_msg *msg, struct update *u)
{
	__builtin_memcpy(u->key.name, msg->symbol, HFT_SYMBOL_LEN);
	u->seq = __builtin_bswap64(msg->seq);
	u->timestamp = __builtin_bswap64(msg->timestamp);
	u->bid = bpf_ntohl(msg->bid);
	u->bid_qty = bpf_ntohl(msg->bid_qty);
	u->ask = bpf_ntohl(msg->ask);
	u->ask_qty = bpf_ntohl(msg->ask_qty);
}

/* ---- Open the packet -------------------------------------------------- */

/* Returns 0 when an engine-wide map is missing (never, for arrays). */
static __always_inline int open_packet(struct hft_global_config *gcp, struct packet *pk)
{
	struct hft_scratch *sc;
	__u32 zero = 0;

	bpf_spin_lock(&gcp->lock);
	pk->g = gcp->p;
	bpf_spin_unlock(&gcp->lock);
	pk->global_limits = pk->g.rate_per_sec || pk->g.max_notional;
	pk->no_trade = pk->g.on_no_trade == HFT_NO_TRADE_DROP ? XDP_DROP : XDP_PASS;
	pk->updates = counter(HFT_CTR_UPDATES);
	pk->gs = global_state.lookup(&zero);
	pk->tot = totals.lookup(&zero);
	pk->kill = kill_switch.lookup(&zero);
	sc = scratch.lookup(&zero);
	pk->ev = sc ? &sc->ev : NULL;
	if (!pk->gs || !pk->tot || !pk->kill || !pk->ev)
		return 0;
	return 1;
}

/* ---- Trade the update ------------------------------------------------- */

static __always_inline void read_symbol(struct hft_symbol_config *c, struct hft_symbol_params *p)
{
	bpf_spin_lock(&c->lock);
	*p = c->p;
	bpf_spin_unlock(&c->lock);
}

/* Why no order may leave for this symbol whatever the update says, or NO_REJECT. */
static __always_inline __u32 check_switches(const struct packet *pk,
					    const struct hft_symbol_params *p, __u64 now)
{
	__u32 zero = 0;
	__u64 *hb, beat;

	if (*pk->kill != HFT_KILL_OFF)
		return HFT_REJECT_KILL;
	if (pk->g.deadman_ms) {
		hb = heartbeat.lookup(&zero);
		/*
		 * Fresh when within the deadline of `now` either way: a heartbeat
		 * a little newer than `now` was written between the clock read and
		 * this map read; one further ahead than the deadline is no beat of
		 * this clock and must not keep the switch open forever.
		 */
		beat = hb ? *(volatile __u64 *)hb : 0;
		if (!hb || (beat < now ? now - beat : beat - now) > (__u64)pk->g.deadman_ms * 1000000)
			return HFT_REJECT_DEADMAN;
	}
	if (!p->enabled)
		return HFT_REJECT_DISABLED;
	return NO_REJECT;
}

/*
 * The strategy; runs under the symbol lock and reserves what it decides.
 * Other CPUs' reservations count against this decision the safe way: pending
 * buys as if filled (room, notional), pending sells as if refused (nothing
 * to sell twice, no room freed).  On one CPU nothing is pending here.
 */
static __always_inline void decide(const struct hft_symbol_params *p, struct hft_symbol_state *st,
				   const struct update *u, __u64 now, struct hft1_decision *d)
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
static __always_inline __u64 commit_fill(struct hft_symbol_state *st, struct hft1_decision *d, __u32 final)
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
 * The market data and the duplicate check, under the symbol lock.  Returns
 * why the update cannot trade (a duplicate, a crossed book) or NO_REJECT.
 */
static __always_inline __u32 record_market_data(struct hft_symbol_state *st, const struct update *u,
						__u64 now)
{
	st->updates++;
	/* updates > 1: some earlier update set last_seq (even if it was 0). */
	if (st->updates > 1 && u->seq <= st->last_seq)
		return HFT_REJECT_STALE;   /* A/B-line duplicate or a replay: never trade on it */
	st->last_seq = u->seq;
	st->last_update_ns = now;
	st->last_bid = u->bid;
	st->last_bid_qty = u->bid_qty;
	st->last_ask = u->ask;
	st->last_ask_qty = u->ask_qty;
	if (u->bid)
		st->mark = u->bid;
	if (u->bid && u->ask && u->bid > u->ask)
		return HFT_REJECT_CROSSED;
	if (!st->session_ref) {
		/* The mid in 64 bits: two prices above 214748.3647 sum past 2^32. */
		st->session_ref = u->bid && u->ask ? (__u32)(((__u64)u->bid + u->ask) / 2) : (u->bid | u->ask);
	}
	return NO_REJECT;
}

/*
 * Phase 1, under the symbol lock: market data, duplicates, the decision and
 * its reservation.  d->reason comes in as check_switches' verdict.
 */
static __always_inline void decide_and_reserve(const struct hft_symbol_params *p,
					       struct hft_symbol_state *st, const struct update *u,
					       const struct packet *pk, struct hft1_decision *d)
{
	__u32 market;

	bpf_spin_lock(&st->lock);
	market = record_market_data(st, u, d->now);
	if (d->reason == NO_REJECT)
		d->reason = market;
	/*
	 * The total, with the new mark, may be below the loss limit: then no
	 * order, even before add_pnl latches the kill (a plain read of the
	 * total is enough for this check; add_pnl decides the latch, and latches
	 * whether or not this update moved the PnL).
	 */
	d->pnl_delta = repnl(st);
	if (d->reason == NO_REJECT)
		decide(p, st, u, d->now, d);
	if (d->reason != NO_REJECT)
		st->rejects++;
	if (d->side && pk->g.loss_limit && pk->tot->pnl + d->pnl_delta < -(__s64)pk->g.loss_limit) {
		commit_fill(st, d, 0);   /* releases the reservation, counts the reject */
		d->side = 0;
		d->reason = HFT_REJECT_KILL;
	}
	d->final = d->qty;
	/* Nothing engine-wide to ask: committed under the lock it was reserved under,
	 * so no other CPU ever sees it pending. */
	if (d->side && !pk->global_limits)
		d->released = commit_fill(st, d, d->final);
	d->position = st->position;
	d->pnl_delta += repnl(st);
	bpf_spin_unlock(&st->lock);
}

/* The scratch slot holds the previous packet's event: set every field. */
static __always_inline void start_event(const struct packet *pk, const struct update *u,
					const struct hft1_decision *d)
{
	struct hft_event *ev = pk->ev;

	ev->ts_ns = d->now;
	ev->kind = 0;
	ev->side = 0;
	ev->price = 0;
	ev->qty = 0;
	ev->order_id = 0;
	ev->reason = 0;
	ev->_pad = 0;
	ev->sender_ts = u->timestamp;
	ev->seq = u->seq;
	__builtin_memcpy(ev->symbol, u->key.name, HFT_SYMBOL_LEN);
	ev->bid = u->bid;
	ev->bid_qty = u->bid_qty;
	ev->ask = u->ask;
	ev->ask_qty = u->ask_qty;
	ev->position = d->position;
	ev->pnl = pk->tot->pnl;
}

/* Every reject of a known symbol, on the tape; side and price are 0 before phase 2. */
static __always_inline void report_reject(const struct packet *pk, __u32 reason, __u32 side,
					  __u32 price)
{
	struct hft_event *ev = pk->ev;

	count(HFT_CTR_REJECT_BASE + (reason & 0x1f));
	ev->kind = HFT_EVENT_REJECT;
	ev->reason = reason;
	ev->side = side;
	ev->price = price;
	emit_tape(ev);
}

/* An update that decided no order: its reject, or 1 in update_sample of the rest. */
static __always_inline void report_no_order(const struct packet *pk, const struct hft1_decision *d)
{
	if (d->reason != NO_REJECT) {
		report_reject(pk, d->reason, 0, 0);
	} else if (pk->g.update_sample && pk->updates && *pk->updates % pk->g.update_sample == 0) {
		pk->ev->kind = HFT_EVENT_UPDATE;
		emit_tape(pk->ev);
	}
}

/*
 * Phase 2, under the global lock: the engine-wide throttle and notional cap
 * cut d->final (to 0 with d->reason set when they refuse the order).
 */
static __always_inline void engine_wide_limits(const struct packet *pk, struct hft1_decision *d)
{
	struct hft_global_state *gs = pk->gs;
	const struct hft_global_params *g = &pk->g;
	__u64 cost;

	bpf_spin_lock(&gs->lock);
	if (*pk->kill != HFT_KILL_OFF) {
		/* Killed while this update was decided (operator or loss limit). */
		d->final = 0;
		d->reason = HFT_REJECT_KILL;
	} else if (!take_token(&gs->tokens, &gs->last_refill_ns, g->rate_per_sec, g->burst, d->now)) {
		d->final = 0;
		d->reason = HFT_REJECT_THROTTLE;
	} else if (d->side == HFT_TYPE_BUY && g->max_notional) {
		cost = pk->tot->open_cost;
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
		__sync_fetch_and_add(&pk->tot->open_cost, (__u64)d->final * d->price);
		d->cost_counted = 1;
	}
	bpf_spin_unlock(&gs->lock);
}

/* Phase 3, under the symbol lock: commit the fill, release the reservation. */
static __always_inline void commit(struct hft_symbol_state *st, const struct packet *pk,
				   struct hft1_decision *d)
{
	bpf_spin_lock(&st->lock);
	d->released = commit_fill(st, d, d->final);
	d->pnl_delta = repnl(st);
	bpf_spin_unlock(&st->lock);
	pk->ev->position = d->position;
	add_pnl(pk->tot, d->pnl_delta, pk->g.loss_limit, pk->ev);
}

/* The engine-wide open cost follows the committed fill (unless phase 2 counted the buy). */
static __always_inline void commit_open_cost(const struct packet *pk, const struct hft1_decision *d)
{
	if (d->released)
		__sync_fetch_and_sub(&pk->tot->open_cost, d->released);
	if (d->final && d->side == HFT_TYPE_BUY && !d->cost_counted)
		__sync_fetch_and_add(&pk->tot->open_cost, (__u64)d->final * d->price);
}

/*
 * The order: ids are engine-wide and gap-free.  Its event is completed here
 * and emitted once the order is written into the frame (xdp_strategy).
 */
static __always_inline void number_order(const struct packet *pk, const struct hft1_decision *d,
					 struct order *o)
{
	struct hft_event *ev = pk->ev;

	o->id = (__u32)(__sync_fetch_and_add(&pk->tot->order_seq, 1) + 1);
	o->side = d->side;
	o->price = d->price;
	o->qty = d->final;
	count(HFT_CTR_ORDERS);

	ev->kind = HFT_EVENT_ORDER;
	ev->order_id = o->id;
	ev->side = o->side;
	ev->price = o->price;
	ev->qty = o->qty;
}

/*
 * One update through the phases, against the symbol's config and state and
 * what the packet shares.  Returns 1 with *o set when it makes an order.
 */
static __always_inline int trade_update(const struct packet *pk, struct update *u, struct order *o)
{
	struct hft_symbol_config *cfgp;
	struct hft_symbol_state *st;
	struct hft_symbol_params p;
	struct hft1_decision d = { .reason = NO_REJECT };

	if (pk->updates)
		*pk->updates += 1;   /* per-CPU slot: no atomic needed */
	cfgp = symbol_config.lookup(&u->key);
	st = symbol_state.lookup(&u->key);
	if (!cfgp || !st) {
		count(HFT_CTR_REJECT_BASE + HFT_REJECT_UNKNOWN_SYMBOL);
		return 0;
	}
	read_symbol(cfgp, &p);
	/*
	 * The clock, per update and after the config copy: read once per packet
	 * before the symbol lookups, the bench's test run measured ~8 ns more per
	 * decision.
	 */
	d.now = bpf_ktime_get_ns();
	d.reason = check_switches(pk, &p, d.now);

	decide_and_reserve(&p, st, u, pk, &d);          /* phase 1 */
	start_event(pk, u, &d);
	add_pnl(pk->tot, d.pnl_delta, pk->g.loss_limit, pk->ev);
	if (!d.side) {
		report_no_order(pk, &d);
		return 0;
	}
	if (pk->global_limits) {
		engine_wide_limits(pk, &d);             /* phase 2 */
		commit(st, pk, &d);                     /* phase 3 */
	}
	commit_open_cost(pk, &d);
	if (!d.final) {
		report_reject(pk, d.reason, d.side, d.price);
		return 0;
	}
	number_order(pk, &d, o);
	return 1;
}

/* ---- Write the order -------------------------------------------------- */

/* The update's frame, turned around, carries the order back to the exchange. */
static __always_inline void write_order(struct udp_frame *f, struct hft_msg *msg, void *data_end,
					const struct order *o)
{
	swap_addresses(f->eth, f->iph, f->udp);
	msg->type = o->side;
	msg->bid = bpf_htonl(o->price);
	msg->bid_qty = bpf_htonl(o->qty);
	msg->ask = bpf_htonl(o->id);
	msg->ask_qty = 0;
	ipv4_csum_recompute(f->iph, data_end);
	udp_csum_recompute(f->iph, f->udp, bpf_ntohs(f->udp->len), data_end);
}

int xdp_strategy(struct xdp_md *ctx)
{
	void *data_end = (void *)(long)ctx->data_end;
	void *data = (void *)(long)ctx->data;
	struct hdr_cursor nh = { .pos = data };
	struct hft_global_config *gcp;
	struct udp_frame f;
	struct hft_msg *msg;
	struct packet pk;
	struct update u;
	struct order o;
	__u32 zero = 0, feed_port;
	int rc;

	rc = parse_udp_frame(&nh, data_end, &f);
	if (rc != PARSE_OK)
		return pass_counted(rc);
	gcp = global_config.lookup(&zero);
	if (!gcp)
		return XDP_PASS;
	/* One aligned 32-bit load: whole without the lock, enough to pass others' packets. */
	feed_port = *(volatile __u32 *)&gcp->p.feed_port;
	if (!feed_port || f.udp->dest != bpf_htons((__u16)feed_port))
		return pass_counted(PARSE_OTHER);
	/* From here on the packet is addressed to the feed: it must be an update. */
	rc = parse_update(&nh, data_end, &f, &msg);
	if (rc != PARSE_OK)
		return pass_counted(rc);
	decode_update(msg, &u);

	if (!open_packet(gcp, &pk))
		return XDP_PASS;
	if (!trade_update(&pk, &u, &o))
		return pk.no_trade;

	write_order(&f, msg, data_end, &o);
	/* The order's event, after the frame: emitted before it, the bench's
	 * test run measured ~6 ns more per trade. */
	emit(pk.ev);
	return XDP_TX;
}
