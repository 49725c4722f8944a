/* SPDX-License-Identifier: GPL-2.0 */
/*
 * MoldUDP64 carrying Nasdaq TotalView-ITCH 5.0: every integer is big-endian.
 *
 * A packet: a 20-byte MoldUDP64 header, then `count` blocks of (u16
 * length, message); a message's sequence is the header's plus its index.
 * Count 0 is a heartbeat, 0xFFFF the end of the session (no messages).  The
 * engine acts on Add Order 'A', Add Order with MPID 'F' and Stock Trading
 * Action 'H'; every other type (executions, cancels, deletes, replaces,
 * trades, types added later) is walked past by its length.
 *
 * The #defines below are the one definition of the layout: Python parses
 * them (hft_tui/constants.py: ITCH) and hft_tui/feeds encodes and decodes
 * with them.  Keep every value a plain integer or character literal.
 *
 * The decoder is BPF-only (BCC supplies __always_inline); user space
 * (gcc, tests/test_layout.py) sees the layout #defines alone.
 */
#ifndef HFT_FEED_ITCH_H
#define HFT_FEED_ITCH_H

/* MoldUDP64 header */
#define MOLD_HDR_LEN             20
#define MOLD_OFF_SESSION         0    /* 10 ASCII bytes */
#define MOLD_SESSION_LEN         10
#define MOLD_OFF_SEQ             10   /* u64 sequence of the first message */
#define MOLD_OFF_COUNT           18   /* u16 messages */
#define MOLD_COUNT_HEARTBEAT     0
#define MOLD_COUNT_END_OF_SESSION 0xffff
#define MOLD_BLOCK_LEN_SIZE      2    /* u16 before every message */

/* ITCH 5.0: the fields every message starts with */
#define ITCH_OFF_TYPE            0
#define ITCH_OFF_LOCATE          1    /* u16 stock locate */
#define ITCH_OFF_TRACKING        3    /* u16 tracking number */
#define ITCH_OFF_TIMESTAMP       5    /* 6 bytes, ns since midnight */
#define ITCH_TIMESTAMP_LEN       6
#define ITCH_STOCK_LEN           8    /* space padded, the engine's symbol key */

/* Add Order 'A' (36 bytes) and Add Order with MPID attribution 'F' (40 bytes) */
#define ITCH_MSG_ADD             'A'
#define ITCH_ADD_LEN             36
#define ITCH_MSG_ADD_MPID        'F'
#define ITCH_ADD_MPID_LEN        40
#define ITCH_ADD_OFF_REF         11   /* u64 order reference number */
#define ITCH_ADD_OFF_SIDE        19   /* 'B' or 'S' */
#define ITCH_ADD_OFF_SHARES      20   /* u32 */
#define ITCH_ADD_OFF_STOCK       24
#define ITCH_ADD_OFF_PRICE       32   /* u32, 4 implied decimals */
#define ITCH_ADD_OFF_MPID        36   /* ITCH_MPID_LEN ASCII bytes ('F' only) */
#define ITCH_MPID_LEN            4
#define ITCH_SIDE_BUY            'B'
#define ITCH_SIDE_SELL           'S'

/* Stock Trading Action 'H' (25 bytes) */
#define ITCH_MSG_TRADING_ACTION  'H'
#define ITCH_TA_LEN              25
#define ITCH_TA_OFF_STOCK        11
#define ITCH_TA_OFF_STATE        19   /* 'H' halted, 'P' paused, 'Q' quotation only, 'T' trading */
#define ITCH_TA_OFF_RESERVED     20
#define ITCH_TA_OFF_REASON       21   /* ITCH_TA_REASON_LEN ASCII bytes */
#define ITCH_TA_REASON_LEN       4
#define ITCH_STATE_TRADING       'T'

#ifdef __KERNEL__   /* the decoder: the program only (the #defines above are for Python too) */
#include "feed_types.h"

#define FEED_HDR_LEN             MOLD_HDR_LEN
#define FEED_LEN_PREFIX          MOLD_BLOCK_LEN_SIZE
#define FEED_HAS_CHANNEL         1
#define FEED_MAX_MSGS            HFT_MAX_MESSAGES
/* The types feed_decode acts on, as bits above a base; every other one is walked past. */
#define FEED_TYPE_BASE           0x40
#define FEED_TYPE_MASK           ((1ULL << (ITCH_MSG_ADD - FEED_TYPE_BASE)) | \
				  (1ULL << (ITCH_MSG_ADD_MPID - FEED_TYPE_BASE)) | \
				  (1ULL << (ITCH_MSG_TRADING_ACTION - FEED_TYPE_BASE)))
#define FEED_WANTS(t)            ((__u8)((t) - FEED_TYPE_BASE) < 64 && \
				  ((FEED_TYPE_MASK >> (__u8)((t) - FEED_TYPE_BASE)) & 1))

/* Typed loads at a byte offset: clang splits a packed struct's fields into byte loads. */
#define ITCH_BE16(p, off) __builtin_bswap16(*(__u16 *)((void *)(p) + (off)))
#define ITCH_BE32(p, off) __builtin_bswap32(*(__u32 *)((void *)(p) + (off)))
#define ITCH_BE64(p, off) __builtin_bswap64(*(__u64 *)((void *)(p) + (off)))

static __always_inline __u32 feed_block_len(void *p)
{
	return ITCH_BE16(p, 0);
}

/* The 6-byte timestamp (ns since midnight). */
static __always_inline __u64 itch_timestamp(void *m)
{
	return ((__u64)ITCH_BE16(m, ITCH_OFF_TIMESTAMP) << 32) | ITCH_BE32(m, ITCH_OFF_TIMESTAMP + 2);
}

/*
 * The symbols' sequence scope: the 10-byte session hashed to 32 bits (splitmix64's
 * finalizer).  Not a fold of its words: sessions are digits and letters in place, and a
 * XOR of aligned words cancels them ("0000000001" and "0100000000" were one session to
 * the symbols, so the new one's halt was older than the old one's last status).
 */
static __always_inline __u32 feed_session_tag(const struct feed_packet *fp)
{
	__u64 lo = *(const __u64 *)fp->channel.session;
	__u16 hi = *(const __u16 *)(fp->channel.session + 8);
	__u64 x = lo ^ ((__u64)hi * 0x9E3779B97F4A7C15ULL);

	x ^= x >> 30;
	x *= 0xBF58476D1CE4E5B9ULL;
	x ^= x >> 27;
	x *= 0x94D049BB133111EBULL;
	x ^= x >> 31;
	return (__u32)x;
}

/* The MoldUDP64 header: the channel (the session), the first sequence, the count. */
static __always_inline int feed_parse_header(struct hdr_cursor *nh, void *data_end,
					     __u32 payload_len, struct feed_packet *fp)
{
	void *h = nh->pos;
	__u64 lo;
	__u16 hi;

	if (h + MOLD_HDR_LEN > data_end || payload_len < MOLD_HDR_LEN)
		return PARSE_MALFORMED;
	lo = *(__u64 *)(h + MOLD_OFF_SESSION);
	hi = *(__u16 *)(h + MOLD_OFF_SESSION + 8);
	__builtin_memset(&fp->channel, 0, sizeof(fp->channel));
	*(__u64 *)fp->channel.session = lo;
	*(__u16 *)(fp->channel.session + 8) = hi;
	fp->first_seq = ITCH_BE64(h, MOLD_OFF_SEQ);
	fp->count = ITCH_BE16(h, MOLD_OFF_COUNT);
	if (fp->count == MOLD_COUNT_END_OF_SESSION)
		fp->count = 0;
	nh->pos = h + MOLD_HDR_LEN;
	return PARSE_OK;
}

static __always_inline int feed_decode(void *m, __u32 len, void *data_end, struct feed_msg *u)
{
	__u32 shares, price;
	__u8 type, side;

	if (m + 1 > data_end)
		return FEED_MSG_MALFORMED;
	type = *(__u8 *)(m + ITCH_OFF_TYPE);
	if (type == ITCH_MSG_ADD || type == ITCH_MSG_ADD_MPID) {
		/* Its whole layout ('F' carries the MPID), and a side that is one (as hft_tui/feeds/itch.py). */
		if (len < (type == ITCH_MSG_ADD_MPID ? ITCH_ADD_MPID_LEN : ITCH_ADD_LEN) ||
		    m + ITCH_ADD_LEN > data_end)
			return FEED_MSG_MALFORMED;
		side = *(__u8 *)(m + ITCH_ADD_OFF_SIDE);
		if (side != ITCH_SIDE_BUY && side != ITCH_SIDE_SELL)
			return FEED_MSG_MALFORMED;
		shares = ITCH_BE32(m, ITCH_ADD_OFF_SHARES);
		price = ITCH_BE32(m, ITCH_ADD_OFF_PRICE);
		*(__u64 *)u->key.name = *(__u64 *)(m + ITCH_ADD_OFF_STOCK);
		u->timestamp = itch_timestamp(m);
		u->reason = NO_REJECT;
		if (side == ITCH_SIDE_SELL) {                             /* an offer: the buy rule */
			u->ask = price;
			u->ask_qty = shares;
			u->bid = 0;
			u->bid_qty = 0;
		} else {                                                  /* a bid: the sell rule */
			u->bid = price;
			u->bid_qty = shares;
			u->ask = 0;
			u->ask_qty = 0;
		}
		return FEED_MSG_QUOTE;
	}
	if (type == ITCH_MSG_TRADING_ACTION) {
		if (len < ITCH_TA_LEN || m + ITCH_TA_LEN > data_end)
			return FEED_MSG_MALFORMED;
		*(__u64 *)u->key.name = *(__u64 *)(m + ITCH_TA_OFF_STOCK);
		u->timestamp = itch_timestamp(m);
		u->halted = *(__u8 *)(m + ITCH_TA_OFF_STATE) != ITCH_STATE_TRADING;
		return FEED_MSG_STATUS;
	}
	return FEED_MSG_SKIP;
}

#endif /* __KERNEL__ */
#endif /* HFT_FEED_ITCH_H */
