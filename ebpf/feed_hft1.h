/* SPDX-License-Identifier: GPL-2.0 */
/*
 * hft1, the engine's own protocol (hft_protocol.h), as a feed of one
 * message a packet: no packet header, no length prefix (the message is the
 * first HFT_MSG_LEN bytes of the UDP payload), the message carries its own
 * sequence, no channel.  With reflection the order is the update rewritten
 * in place (FEED_KEEPS_LENGTH): today's frame, byte for byte.
 *
 * BPF-only (BCC supplies __always_inline, bpf_htons); the layout is
 * hft_protocol.h's.
 */
#ifndef HFT_FEED_HFT1_H
#define HFT_FEED_HFT1_H

#include "hft_protocol.h"
#include "feed_types.h"

#define FEED_HDR_LEN             0
#define FEED_LEN_PREFIX          0
#define FEED_HAS_CHANNEL         0
#define FEED_MAX_MSGS            1
#define FEED_SKIP_RUN            0    /* the one message is read at once */
#define FEED_WANTS(t)            1
#define FEED_KEEPS_LENGTH        1    /* with reflection: the order is the update rewritten in place */
#define FEED_SYMBOL_OFF          HFT_OFF_SYMBOL   /* the one message's symbol, from the payload's start */

#define HFT1_BE32(p, off) __builtin_bswap32(*(__u32 *)((void *)(p) + (off)))
#define HFT1_BE64(p, off) __builtin_bswap64(*(__u64 *)((void *)(p) + (off)))

static __always_inline __u32 feed_block_len(void *p)
{
	return HFT_MSG_LEN;
}

/* The payload must be one whole update (magic, version, type 'U'); it is its own header. */
static __always_inline int feed_parse_header(struct hdr_cursor *nh, void *data_end,
					     __u32 payload_len, struct feed_packet *fp)
{
	void *m = nh->pos;

	if (payload_len < HFT_MSG_LEN || m + HFT_MSG_LEN > data_end)
		return PARSE_MALFORMED;
	if (*(__u16 *)(m + HFT_OFF_MAGIC) != bpf_htons(HFT_MAGIC) ||
	    *(__u8 *)(m + HFT_OFF_VERSION) != HFT_VERSION ||
	    *(__u8 *)(m + HFT_OFF_TYPE) != HFT_TYPE_UPDATE)
		return PARSE_MALFORMED;
	__builtin_memset(&fp->channel, 0, sizeof(fp->channel));
	fp->first_seq = HFT1_BE64(m, HFT_OFF_SEQ);
	fp->count = 1;
	return PARSE_OK;
}

/* hft1 has no sessions: a symbol's sequence is never reset by one. */
static __always_inline __u32 feed_session_tag(const struct feed_packet *fp)
{
	return 0;
}

static __always_inline int feed_decode(void *m, __u32 len, void *data_end, struct feed_msg *u)
{
	if (m + HFT_MSG_LEN > data_end)
		return FEED_MSG_MALFORMED;
	*(__u64 *)u->key.name = *(__u64 *)(m + HFT_OFF_SYMBOL);
	u->timestamp = HFT1_BE64(m, HFT_OFF_TIMESTAMP);
	u->bid = HFT1_BE32(m, HFT_OFF_BID);
	u->bid_qty = HFT1_BE32(m, HFT_OFF_BID_QTY);
	u->ask = HFT1_BE32(m, HFT_OFF_ASK);
	u->ask_qty = HFT1_BE32(m, HFT_OFF_ASK_QTY);
	u->reason = NO_REJECT;
	return FEED_MSG_QUOTE;
}

#endif /* HFT_FEED_HFT1_H */
