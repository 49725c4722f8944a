/* SPDX-License-Identifier: GPL-2.0 */
/*
 * IEX-TP, carrying TOPS 1.6 or DEEP 1.0: every integer is little-endian.
 *
 * A segment: a 40-byte header, then `count` blocks of (u16 length, message).
 * A message's sequence is the header's first sequence plus its index; a
 * heartbeat has count 0.  The engine acts on Quote Update 'Q' (TOPS), Price
 * Level Update '8'/'5' (DEEP) and Trading Status 'H'; every other type is
 * walked past by its length.
 *
 * The #defines below are the one definition of the layout: Python parses
 * them (hft_tui/constants.py: IEX) and hft_tui/feeds encodes and decodes
 * with them.  Keep every value a plain integer or character literal.
 *
 * The decoder is BPF-only (BCC supplies __always_inline); user space
 * (gcc, tests/test_layout.py) sees the layout #defines alone.
 */
#ifndef HFT_FEED_IEX_H
#define HFT_FEED_IEX_H

/* Segment header */
#define IEX_SEG_HDR_LEN          40
#define IEX_OFF_VERSION          0    /* u8, 1 */
#define IEX_OFF_RESERVED         1    /* u8 */
#define IEX_OFF_PROTOCOL         2    /* u16 message protocol id */
#define IEX_OFF_CHANNEL          4    /* u32 */
#define IEX_OFF_SESSION          8    /* u32 */
#define IEX_OFF_PAYLOAD_LEN      12   /* u16 bytes after the header */
#define IEX_OFF_COUNT            14   /* u16 messages; 0 = heartbeat */
#define IEX_OFF_STREAM_OFFSET    16   /* u64 */
#define IEX_OFF_FIRST_SEQ        24   /* u64 sequence of the first message */
#define IEX_OFF_SEND_TIME        32   /* i64 ns since the epoch */
#define IEX_VERSION              1
#define IEX_PROTO_TOPS           0x8003
#define IEX_PROTO_DEEP           0x8004
#define IEX_BLOCK_LEN_SIZE       2    /* u16 before every message */

/* Every message: its type, then (for the ones read here) flags and a timestamp */
#define IEX_OFF_TYPE             0
#define IEX_SYMBOL_LEN           8    /* space padded, the engine's symbol key */

/* TOPS Quote Update 'Q' */
#define IEX_MSG_QUOTE            'Q'
#define IEX_QUOTE_LEN            42
#define IEX_Q_OFF_FLAGS          1
#define IEX_Q_OFF_TIMESTAMP      2    /* i64 ns */
#define IEX_Q_OFF_SYMBOL         10
#define IEX_Q_OFF_BID_SIZE       18   /* u32 */
#define IEX_Q_OFF_BID            22   /* i64, 4 implied decimals */
#define IEX_Q_OFF_ASK            30   /* i64 */
#define IEX_Q_OFF_ASK_SIZE       38   /* u32 */
#define IEX_Q_FLAG_HALTED        0x80 /* symbol halted or quote unavailable: no trade */

/* DEEP Price Level Update: '8' buy side, '5' sell side */
#define IEX_MSG_LEVEL_BUY        '8'
#define IEX_MSG_LEVEL_SELL       '5'
#define IEX_LEVEL_LEN            30
#define IEX_L_OFF_FLAGS          1    /* event flags */
#define IEX_L_OFF_TIMESTAMP      2
#define IEX_L_OFF_SYMBOL         10
#define IEX_L_OFF_SIZE           18   /* u32; 0: the level is gone */
#define IEX_L_OFF_PRICE          22   /* i64 */
#define IEX_L_FLAG_COMPLETE      0x01 /* event processing complete: the book is consistent again */

/* Trading Status 'H' */
#define IEX_MSG_STATUS           'H'
#define IEX_STATUS_LEN           22
#define IEX_S_OFF_STATUS         1    /* 'H' halted, 'O' order acceptance, 'P' paused, 'T' trading */
#define IEX_S_OFF_TIMESTAMP      2
#define IEX_S_OFF_SYMBOL         10
#define IEX_S_OFF_REASON         18   /* IEX_S_REASON_LEN ASCII bytes */
#define IEX_S_REASON_LEN         4
#define IEX_STATUS_TRADING       'T'

#ifdef __KERNEL__   /* the decoder: the program only (the #defines above are for Python too) */
#include "feed_types.h"

#define FEED_HDR_LEN             IEX_SEG_HDR_LEN
#define FEED_LEN_PREFIX          IEX_BLOCK_LEN_SIZE
#define FEED_HAS_CHANNEL         1
#define FEED_MAX_MSGS            HFT_MAX_MESSAGES
/* The types feed_decode acts on, as bits above a base; every other one is walked past. */
#define FEED_TYPE_BASE           0x30
#define FEED_TYPE_MASK           ((1ULL << (IEX_MSG_QUOTE - FEED_TYPE_BASE)) | \
				  (1ULL << (IEX_MSG_LEVEL_BUY - FEED_TYPE_BASE)) | \
				  (1ULL << (IEX_MSG_LEVEL_SELL - FEED_TYPE_BASE)) | \
				  (1ULL << (IEX_MSG_STATUS - FEED_TYPE_BASE)))
#define FEED_WANTS(t)            ((__u8)((t) - FEED_TYPE_BASE) < 64 && \
				  ((FEED_TYPE_MASK >> (__u8)((t) - FEED_TYPE_BASE)) & 1))

/* Typed loads at a byte offset: clang splits a packed struct's fields into byte loads. */
#define IEX_LE16(p, off) (*(__u16 *)((void *)(p) + (off)))
#define IEX_LE32(p, off) (*(__u32 *)((void *)(p) + (off)))
#define IEX_LE64(p, off) (*(__u64 *)((void *)(p) + (off)))

/* The length of the block at p (the caller checked p + 2 <= data_end). */
static __always_inline __u32 feed_block_len(void *p)
{
	return IEX_LE16(p, 0);
}

/* The segment header: the channel (session and channel id), the first sequence, the count. */
static __always_inline int feed_parse_header(struct hdr_cursor *nh, void *data_end,
					     __u32 payload_len, struct feed_packet *fp)
{
	void *h = nh->pos;
	__u16 proto;

	if (h + IEX_SEG_HDR_LEN > data_end || payload_len < IEX_SEG_HDR_LEN)
		return PARSE_MALFORMED;
	proto = IEX_LE16(h, IEX_OFF_PROTOCOL);
	if (*(__u8 *)(h + IEX_OFF_VERSION) != IEX_VERSION ||
	    (proto != IEX_PROTO_TOPS && proto != IEX_PROTO_DEEP))
		return PARSE_MALFORMED;
	/* The header's payload length and the datagram's must agree (hft_tui/feeds/iex.py says so too). */
	if (IEX_LE16(h, IEX_OFF_PAYLOAD_LEN) != payload_len - IEX_SEG_HDR_LEN)
		return PARSE_MALFORMED;
	__builtin_memset(&fp->channel, 0, sizeof(fp->channel));
	*(__u32 *)fp->channel.session = IEX_LE32(h, IEX_OFF_SESSION);
	fp->channel.channel = IEX_LE32(h, IEX_OFF_CHANNEL);
	fp->first_seq = IEX_LE64(h, IEX_OFF_FIRST_SEQ);
	fp->count = IEX_LE16(h, IEX_OFF_COUNT);
	nh->pos = h + IEX_SEG_HDR_LEN;
	return PARSE_OK;
}

/* The session id itself (a u32). */
static __always_inline __u32 feed_session_tag(const struct feed_packet *fp)
{
	return *(const __u32 *)fp->channel.session;
}

/* An i64 price that fits the engine's u32 prices; else 0 and price_range. */
static __always_inline __u32 iex_price(__u64 raw, __u32 *reason)
{
	if (raw > 0xffffffffULL) {          /* negative (as an i64) or too large */
		*reason = HFT_REJECT_PRICE_RANGE;
		return 0;
	}
	return (__u32)raw;
}

/*
 * One message (m at its type byte, len bytes long) into *u; returns
 * FEED_MSG_*.  Checks its own bounds against data_end, next to each read.
 */
static __always_inline int feed_decode(void *m, __u32 len, void *data_end, struct feed_msg *u)
{
	__u32 size;
	__u8 type;

	if (m + 1 > data_end)
		return FEED_MSG_MALFORMED;
	type = *(__u8 *)(m + IEX_OFF_TYPE);
	if (type == IEX_MSG_LEVEL_SELL || type == IEX_MSG_LEVEL_BUY) {
		if (len < IEX_LEVEL_LEN || m + IEX_LEVEL_LEN > data_end)
			return FEED_MSG_MALFORMED;
		if (!(*(__u8 *)(m + IEX_L_OFF_FLAGS) & IEX_L_FLAG_COMPLETE))
			return FEED_MSG_IN_TRANSITION;
		size = IEX_LE32(m, IEX_L_OFF_SIZE);
		if (!size)
			return FEED_MSG_NO_TRADE;      /* the level is gone */
		*(__u64 *)u->key.name = IEX_LE64(m, IEX_L_OFF_SYMBOL);
		u->timestamp = IEX_LE64(m, IEX_L_OFF_TIMESTAMP);
		u->reason = NO_REJECT;
		if (type == IEX_MSG_LEVEL_SELL) {  /* an offer: the buy rule */
			u->ask = iex_price(IEX_LE64(m, IEX_L_OFF_PRICE), &u->reason);
			u->ask_qty = size;
			u->bid = 0;
			u->bid_qty = 0;
		} else {                           /* a bid: the sell rule */
			u->bid = iex_price(IEX_LE64(m, IEX_L_OFF_PRICE), &u->reason);
			u->bid_qty = size;
			u->ask = 0;
			u->ask_qty = 0;
		}
		return FEED_MSG_QUOTE;
	}
	if (type == IEX_MSG_QUOTE) {
		if (len < IEX_QUOTE_LEN || m + IEX_QUOTE_LEN > data_end)
			return FEED_MSG_MALFORMED;
		*(__u64 *)u->key.name = IEX_LE64(m, IEX_Q_OFF_SYMBOL);
		u->timestamp = IEX_LE64(m, IEX_Q_OFF_TIMESTAMP);
		u->reason = NO_REJECT;
		u->bid = iex_price(IEX_LE64(m, IEX_Q_OFF_BID), &u->reason);
		u->ask = iex_price(IEX_LE64(m, IEX_Q_OFF_ASK), &u->reason);
		u->bid_qty = IEX_LE32(m, IEX_Q_OFF_BID_SIZE);
		u->ask_qty = IEX_LE32(m, IEX_Q_OFF_ASK_SIZE);
		if (*(__u8 *)(m + IEX_Q_OFF_FLAGS) & IEX_Q_FLAG_HALTED)
			u->reason = HFT_REJECT_HALTED;
		return FEED_MSG_QUOTE;
	}
	if (type == IEX_MSG_STATUS) {
		if (len < IEX_STATUS_LEN || m + IEX_STATUS_LEN > data_end)
			return FEED_MSG_MALFORMED;
		*(__u64 *)u->key.name = IEX_LE64(m, IEX_S_OFF_SYMBOL);
		u->timestamp = IEX_LE64(m, IEX_S_OFF_TIMESTAMP);
		u->halted = *(__u8 *)(m + IEX_S_OFF_STATUS) != IEX_STATUS_TRADING;
		return FEED_MSG_STATUS;
	}
	return FEED_MSG_SKIP;                      /* every other type: skipped by its length */
}

#endif /* __KERNEL__ */
#endif /* HFT_FEED_IEX_H */
