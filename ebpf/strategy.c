/* SPDX-License-Identifier: GPL-2.0 */
/*
 * hft-tui strategy engine: an XDP program that reads market-data updates in
 * place, decides per symbol whether to trade, and turns the same frame into
 * an order that leaves with XDP_TX.
 *
 * Locking, because XDP runs on every CPU that takes packets at once:
 *  - a symbol's config is copied out under its spin lock (user space writes
 *    it whole with BPF_F_LOCK, so a reader never sees half of an update);
 *    the engine-wide config likewise, but only for packets to the feed port:
 *    every other packet is told apart by one plain load of feed_port;
 *  - phase 1 (symbol lock): market data, duplicate check, the decision, and
 *    a reservation (pending_buy/pending_sell/pending_cost, and a throttle
 *    token), so two CPUs can never both fill the last share of
 *    max_position.  With no engine-wide throttle or notional cap configured
 *    the fill is committed right there;
 *  - phase 2 (global lock, only with engine-wide limits): the global
 *    throttle and the global notional cap;
 *  - phase 3 (symbol lock, only after phase 2): the fill is committed with
 *    its final quantity and the whole reservation released.
 * A reservation never moves `position`, which only ever holds committed
 * fills: a pending buy takes buy room but cannot be sold, a pending sell
 * frees no buy room, so whatever phase 2 decides for any interleaving of
 * CPUs, position stays within 0..max_position.
 * Nothing holds two locks at once and no helper is called under a lock.
 */
#include <uapi/linux/bpf.h>
#include "hft_protocol.h"
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

/* Copies taken under a lock, so the decision works on one consistent value. */
struct global_view {
	__u32 feed_port;
	__u32 on_no_trade;
	__u32 update_sample;
	__u32 deadman_ms;
	__u32 rate_per_sec;
	__u32 burst;
	__u64 max_notional;
	__u64 loss_limit;
};

struct symbol_view {
	__u32 enabled;
	__u32 buy_target;
	__u32 sell_target;
	__u32 base_qty;
	__u32 scale_qty;
	__u32 tick_size;
	__u32 max_order_qty;
	__u32 max_position;
	__u32 collar_bps;
	__u32 reference_price;
	__u32 rate_per_sec;
	__u32 burst;
	__u64 max_notional;
};

struct update {
	__u64 seq;
	__u64 timestamp;
	__u32 bid;
	__u32 bid_qty;
	__u32 ask;
	__u32 ask_qty;
};

struct decision {
	__u32 side;       /* HFT_TYPE_BUY, HFT_TYPE_SELL or 0 */
	__u32 price;
	__u32 qty;        /* reserved in phase 1 (pending until committed) */
	__u32 reason;     /* HFT_REJECT_* or NO_REJECT */
	__u32 token;      /* a symbol throttle token was taken */
	__u32 position;   /* after phase 1, for the event */
	__s64 pnl_delta;
};

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

static __always_inline void read_global(struct hft_global_config *c, struct global_view *g)
{
	bpf_spin_lock(&c->lock);
	g->feed_port = c->feed_port;
	g->on_no_trade = c->on_no_trade;
	g->update_sample = c->update_sample;
	g->deadman_ms = c->deadman_ms;
	g->rate_per_sec = c->rate_per_sec;
	g->burst = c->burst;
	g->max_notional = c->max_notional;
	g->loss_limit = c->loss_limit;
	bpf_spin_unlock(&c->lock);
}

static __always_inline void read_symbol(struct hft_symbol_config *c, struct symbol_view *v)
{
	bpf_spin_lock(&c->lock);
	v->enabled = c->enabled;
	v->buy_target = c->buy_target;
	v->sell_target = c->sell_target;
	v->base_qty = c->base_qty;
	v->scale_qty = c->scale_qty;
	v->tick_size = c->tick_size;
	v->max_order_qty = c->max_order_qty;
	v->max_position = c->max_position;
	v->collar_bps = c->collar_bps;
	v->reference_price = c->reference_price;
	v->rate_per_sec = c->rate_per_sec;
	v->burst = c->burst;
	v->max_notional = c->max_notional;
	bpf_spin_unlock(&c->lock);
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
 * The strategy; runs under the symbol lock and reserves what it decides.
 * Other CPUs' reservations count against this decision the safe way: pending
 * buys as if filled (room, notional), pending sells as if refused (nothing
 * to sell twice, no room freed).  On one CPU nothing is pending here.
 */
static __always_inline void decide(struct symbol_view *c, struct hft_symbol_state *st,
				   struct update *u, __u64 now, struct decision *d)
{
	__u32 ref = c->reference_price ? c->reference_price : st->session_ref;
	__u32 tick = c->tick_size ? c->tick_size : 1;
	__u64 qty, headroom, ticks, fits, used;
	__u64 held = (__u64)st->position + st->pending_buy;      /* if every pending buy fills */
	__u32 sellable = st->position > st->pending_sell ? st->position - st->pending_sell : 0;

	if (u->ask && u->ask_qty && u->ask <= c->buy_target) {
		ticks = (c->buy_target - u->ask) / tick;
		qty = min_u64(u->ask_qty, c->max_order_qty);
		qty = min_u64(qty, c->base_qty + (__u64)c->scale_qty * ticks);
		headroom = c->max_position > held ? c->max_position - held : 0;
		if (!headroom) {
			d->reason = HFT_REJECT_POSITION_LIMIT;
			return;
		}
		if (!qty) {
			d->reason = HFT_REJECT_ZERO_QTY;
			return;
		}
		qty = min_u64(qty, headroom);
		if (ref && c->collar_bps &&
		    (__u64)u->ask * 10000 > (__u64)ref * (10000 + c->collar_bps)) {
			d->reason = HFT_REJECT_COLLAR;
			return;
		}
		if (c->max_notional) {
			used = st->open_cost + st->pending_cost;
			fits = used >= c->max_notional ? 0 : (c->max_notional - used) / u->ask;
			if (!fits) {
				d->reason = HFT_REJECT_NOTIONAL;
				return;
			}
			qty = min_u64(qty, fits);
		}
		if (!take_token(&st->tokens, &st->last_refill_ns, c->rate_per_sec, c->burst, now)) {
			d->reason = HFT_REJECT_THROTTLE;
			return;
		}
		d->token = c->rate_per_sec != 0;
		st->pending_buy += qty;
		st->pending_cost += qty * u->ask;
		d->side = HFT_TYPE_BUY;
		d->price = u->ask;
		d->qty = qty;
		return;
	}
	if (c->sell_target && sellable && u->bid && u->bid_qty && u->bid >= c->sell_target) {
		qty = min_u64(u->bid_qty, c->max_order_qty);
		qty = min_u64(qty, sellable);
		if (!qty) {
			d->reason = HFT_REJECT_ZERO_QTY;
			return;
		}
		if (ref && c->collar_bps && c->collar_bps < 10000 &&
		    (__u64)u->bid * 10000 < (__u64)ref * (10000 - c->collar_bps)) {
			d->reason = HFT_REJECT_COLLAR;
			return;
		}
		if (!take_token(&st->tokens, &st->last_refill_ns, c->rate_per_sec, c->burst, now)) {
			d->reason = HFT_REJECT_THROTTLE;
			return;
		}
		d->token = c->rate_per_sec != 0;
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

int xdp_strategy(struct xdp_md *ctx)
{
	void *data_end = (void *)(long)ctx->data_end;
	void *data = (void *)(long)ctx->data;
	struct hdr_cursor nh = { .pos = data };
	struct hft_global_config *gcp;
	struct hft_symbol_config *cfgp;
	struct hft_symbol_state *st;
	struct hft_global_state *gs;
	struct hft_totals *tot;
	struct hft_event *ev;
	struct hft_symbol_key key;
	struct global_view g = {};
	struct symbol_view c = {};
	struct decision d = { .reason = NO_REJECT };
	struct update u;
	struct ethhdr *eth;
	struct iphdr *iph;
	struct udphdr *udp;
	struct hft_msg *msg;
	__u32 zero = 0, udp_len, final, feed_port, reason = NO_REJECT;
	__u64 now, *hb, beat, *updates, cost, released = 0, *kill;
	__be16 proto;
	int rc, no_trade, global_limits, cost_counted = 0;

	gcp = global_config.lookup(&zero);
	if (!gcp)
		return XDP_PASS;
	/* One aligned 32-bit load: whole without the lock, enough to pass others' packets. */
	feed_port = *(volatile __u32 *)&gcp->feed_port;

	rc = parse_ethhdr(&nh, data_end, &eth, &proto);
	if (rc != PARSE_OK)
		return pass_counted(rc);
	if (proto != bpf_htons(ETH_P_IP))
		return pass_counted(PARSE_OTHER);
	rc = parse_iphdr(&nh, data_end, &iph);
	if (rc != PARSE_OK)
		return pass_counted(rc);
	rc = parse_udphdr(&nh, data_end, iph, &udp);
	if (rc != PARSE_OK)
		return pass_counted(rc);
	if (!feed_port || udp->dest != bpf_htons((__u16)feed_port))
		return pass_counted(PARSE_OTHER);

	/* From here on the packet is addressed to the feed: it must be an update. */
	udp_len = bpf_ntohs(udp->len);
	if (udp_len < sizeof(*udp) + HFT_MSG_LEN || udp_len > HFT_MAX_UDP_LEN)
		return pass_counted(PARSE_MALFORMED);
	msg = nh.pos;
	if ((void *)(msg + 1) > data_end)
		return pass_counted(PARSE_MALFORMED);
	if (msg->magic != bpf_htons(HFT_MAGIC) || msg->version != HFT_VERSION ||
	    msg->type != HFT_TYPE_UPDATE)
		return pass_counted(PARSE_MALFORMED);

	read_global(gcp, &g);
	global_limits = g.rate_per_sec || g.max_notional;
	no_trade = g.on_no_trade == HFT_NO_TRADE_DROP ? XDP_DROP : XDP_PASS;
	updates = counter(HFT_CTR_UPDATES);
	if (updates)
		*updates += 1;

	__builtin_memcpy(key.name, msg->symbol, HFT_SYMBOL_LEN);
	u.seq = __builtin_bswap64(msg->seq);
	u.timestamp = __builtin_bswap64(msg->timestamp);
	u.bid = bpf_ntohl(msg->bid);
	u.bid_qty = bpf_ntohl(msg->bid_qty);
	u.ask = bpf_ntohl(msg->ask);
	u.ask_qty = bpf_ntohl(msg->ask_qty);

	cfgp = symbol_config.lookup(&key);
	st = symbol_state.lookup(&key);
	gs = global_state.lookup(&zero);
	tot = totals.lookup(&zero);
	kill = kill_switch.lookup(&zero);
	ev = scratch_event.lookup(&zero);
	if (!gs || !tot || !kill || !ev)
		return XDP_PASS;
	if (!cfgp || !st) {
		count(HFT_CTR_REJECT_BASE + HFT_REJECT_UNKNOWN_SYMBOL);
		return no_trade;
	}
	read_symbol(cfgp, &c);

	now = bpf_ktime_get_ns();
	if (*kill != HFT_KILL_OFF) {
		reason = HFT_REJECT_KILL;
	} else if (g.deadman_ms) {
		hb = heartbeat.lookup(&zero);
		/*
		 * Fresh when within the deadline of `now` either way: a heartbeat
		 * a little newer than `now` was written between the clock read and
		 * this map read; one further ahead than the deadline is no beat of
		 * this clock and must not keep the switch open forever.
		 */
		beat = hb ? *(volatile __u64 *)hb : 0;
		if (!hb || (beat < now ? now - beat : beat - now) > (__u64)g.deadman_ms * 1000000)
			reason = HFT_REJECT_DEADMAN;
	}
	if (reason == NO_REJECT && !c.enabled)
		reason = HFT_REJECT_DISABLED;

	/* Phase 1: market data, duplicates, decision and reservation. */
	bpf_spin_lock(&st->lock);
	st->updates++;
	/* updates > 1: some earlier update set last_seq (even if it was 0). */
	if (st->updates > 1 && u.seq <= st->last_seq) {
		/* A/B-line duplicate or a replay: never trade on it. */
		if (reason == NO_REJECT)
			reason = HFT_REJECT_STALE;
	} else {
		st->last_seq = u.seq;
		st->last_update_ns = now;
		st->last_bid = u.bid;
		st->last_bid_qty = u.bid_qty;
		st->last_ask = u.ask;
		st->last_ask_qty = u.ask_qty;
		if (u.bid)
			st->mark = u.bid;
		if (u.bid && u.ask && u.bid > u.ask) {
			if (reason == NO_REJECT)
				reason = HFT_REJECT_CROSSED;
		} else if (!st->session_ref) {
			/* The mid in 64 bits: two prices above 214748.3647 sum past 2^32. */
			st->session_ref = u.bid && u.ask ? (__u32)(((__u64)u.bid + u.ask) / 2) : (u.bid | u.ask);
		}
	}
	/*
	 * The total, with the new mark, may be below the loss limit: then no
	 * order, even before add_pnl below latches the kill (a plain read of the
	 * total is enough for this check; add_pnl decides the latch, and latches
	 * whether or not this update moved the PnL).
	 */
	d.pnl_delta = repnl(st);
	if (reason == NO_REJECT)
		decide(&c, st, &u, now, &d);
	else
		d.reason = reason;
	if (d.reason != NO_REJECT)
		st->rejects++;
	if (d.side && g.loss_limit && tot->pnl + d.pnl_delta < -(__s64)g.loss_limit) {
		commit_fill(st, &d, 0);   /* releases the reservation, counts the reject */
		d.side = 0;
		d.reason = HFT_REJECT_KILL;
	}
	final = d.qty;
	/* Nothing engine-wide to ask: committed under the lock it was reserved under,
	 * so no other CPU ever sees it pending. */
	if (d.side && !global_limits)
		released = commit_fill(st, &d, final);
	d.position = st->position;
	d.pnl_delta += repnl(st);
	bpf_spin_unlock(&st->lock);

	/* The scratch slot holds the previous packet's event: set every field. */
	ev->ts_ns = now;
	ev->kind = 0;
	ev->side = 0;
	ev->price = 0;
	ev->qty = 0;
	ev->order_id = 0;
	ev->reason = 0;
	ev->_pad = 0;
	ev->sender_ts = u.timestamp;
	ev->seq = u.seq;
	__builtin_memcpy(ev->symbol, key.name, HFT_SYMBOL_LEN);
	ev->bid = u.bid;
	ev->bid_qty = u.bid_qty;
	ev->ask = u.ask;
	ev->ask_qty = u.ask_qty;
	ev->position = d.position;
	ev->pnl = tot->pnl;
	add_pnl(tot, d.pnl_delta, g.loss_limit, ev);

	if (!d.side) {
		if (d.reason != NO_REJECT) {
			count(HFT_CTR_REJECT_BASE + (d.reason & 0xf));
			ev->kind = HFT_EVENT_REJECT;
			ev->reason = d.reason;
			emit_tape(ev);
		} else if (g.update_sample && updates && *updates % g.update_sample == 0) {
			ev->kind = HFT_EVENT_UPDATE;
			emit_tape(ev);
		}
		return no_trade;
	}

	if (global_limits) {
		/* Phase 2: engine-wide throttle and notional cap. */
		bpf_spin_lock(&gs->lock);
		if (*kill != HFT_KILL_OFF) {
			/* Killed while this update was decided (operator or loss limit). */
			final = 0;
			reason = HFT_REJECT_KILL;
		} else if (!take_token(&gs->tokens, &gs->last_refill_ns, g.rate_per_sec, g.burst, now)) {
			final = 0;
			reason = HFT_REJECT_THROTTLE;
		} else if (d.side == HFT_TYPE_BUY && g.max_notional) {
			cost = tot->open_cost;
			final = min_u64(final, cost >= g.max_notional ? 0 :
					       (g.max_notional - cost) / d.price);
			if (!final) {
				reason = HFT_REJECT_NOTIONAL;
				if (g.rate_per_sec)
					gs->tokens += TOKEN;   /* give the unused token back */
			}
		}
		if (final && d.side == HFT_TYPE_BUY && g.max_notional) {
			/* Under the lock, so two buys cannot both fit the last room. */
			__sync_fetch_and_add(&tot->open_cost, (__u64)final * d.price);
			cost_counted = 1;
		}
		bpf_spin_unlock(&gs->lock);

		/* Phase 3: commit the fill, release the reservation. */
		bpf_spin_lock(&st->lock);
		released = commit_fill(st, &d, final);
		d.pnl_delta = repnl(st);
		bpf_spin_unlock(&st->lock);
		ev->position = d.position;
		add_pnl(tot, d.pnl_delta, g.loss_limit, ev);
	}
	if (released)
		__sync_fetch_and_sub(&tot->open_cost, released);
	if (final && d.side == HFT_TYPE_BUY && !cost_counted)
		__sync_fetch_and_add(&tot->open_cost, (__u64)final * d.price);

	if (!final) {
		count(HFT_CTR_REJECT_BASE + (reason & 0xf));
		ev->kind = HFT_EVENT_REJECT;
		ev->reason = reason;
		ev->side = d.side;
		ev->price = d.price;
		emit_tape(ev);
		return no_trade;
	}

	/* The order: ids are engine-wide and gap-free. */
	ev->order_id = (__u32)(__sync_fetch_and_add(&tot->order_seq, 1) + 1);
	count(HFT_CTR_ORDERS);

	swap_addresses(eth, iph, udp);
	msg->type = d.side;
	msg->bid = bpf_htonl(d.price);
	msg->bid_qty = bpf_htonl(final);
	msg->ask = bpf_htonl(ev->order_id);
	msg->ask_qty = 0;
	ipv4_csum_recompute(iph, data_end);
	udp_csum_recompute(iph, udp, udp_len, data_end);

	ev->kind = HFT_EVENT_ORDER;
	ev->side = d.side;
	ev->price = d.price;
	ev->qty = final;
	emit(ev);
	return XDP_TX;
}
