/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What every feed decoder (feed_hft1.h, feed_iex.h, feed_itch.h) gives the
 * engine: the packet's header (its channel, first sequence and message
 * count) and each message decoded into one shape, whatever the wire format.
 *
 * A decoder header provides, besides its layout #defines:
 *   FEED_HDR_LEN        bytes of the packet header before the first block
 *   FEED_LEN_PREFIX     bytes of the length before every message (0: fixed-size messages)
 *   FEED_HAS_CHANNEL    1 when the packet header carries a channel and a sequence
 *   FEED_MAX_MSGS       messages a packet the engine reads (<= HFT_MAX_MESSAGES)
 *   FEED_WANTS(type)    whether feed_decode acts on a message type (the rest are skipped by length)
 *   feed_parse_header() the packet header into a struct feed_packet
 *   feed_session_tag()  the packet's feed session as 32 bits, the scope of the symbols'
 *                       sequences (0: none)
 *   feed_block_len()    the length of the block at a pointer
 *   feed_decode()       one message into a struct feed_msg, returning FEED_MSG_*
 *
 * BPF-only (BCC supplies __always_inline).
 */
#ifndef HFT_FEED_TYPES_H
#define HFT_FEED_TYPES_H

#include <linux/types.h>
#include "hft_structs.h"
#include "parsing_helpers.h"

/* No reject reason (yet): every HFT_REJECT_* is below it. */
#define NO_REJECT               0xff

/* What feed_decode() made of a message. */
#define FEED_MSG_SKIP           0   /* a type the engine does not act on */
#define FEED_MSG_QUOTE          1   /* bid/ask for a symbol: the strategy runs */
#define FEED_MSG_STATUS         2   /* trading status of a symbol (halted or trading) */
#define FEED_MSG_IN_TRANSITION  3   /* an IEX DEEP level while the book is in transition */
#define FEED_MSG_NO_TRADE       4   /* a valid message that can never trade (a level of size 0) */
#define FEED_MSG_MALFORMED      5   /* a known type shorter than its layout */

/* Block offsets are masked with this (>= any 1500-MTU frame): the verifier needs a bound. */
#define FEED_OFF_MASK           0x7ff

struct feed_packet {
	struct hft_channel_key channel;
	__u64 first_seq;         /* the first message's sequence (hft1: the update's own) */
	__u32 count;             /* messages in the packet; 0 = heartbeat */
};

struct feed_msg {
	struct hft_symbol_key key;  /* the 8 symbol bytes, as on the wire */
	__u64 seq;
	__u64 timestamp;
	__u32 bid;
	__u32 bid_qty;
	__u32 ask;
	__u32 ask_qty;
	__u32 reason;            /* NO_REJECT, or what the message itself says (halted flag, price range) */
	__u32 halted;            /* FEED_MSG_STATUS: 1 = no trading */
};

#endif /* HFT_FEED_TYPES_H */
