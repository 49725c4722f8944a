/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The bare reflector: the floor of the XDP path on this machine.
 *
 * Every well-formed UDP datagram to the feed port is sent back where it came
 * from: MACs, IPv4 addresses and UDP ports swapped, both checksums
 * recomputed from scratch (csum.h, as the engine does, because a datagram
 * from a local socket over veth carries only a partial UDP checksum), and
 * XDP_TX.  No maps, no decision: the engine does all of this and more, so
 * the engine's round trip over this one's is the cost of the strategy.
 *
 * REFLECT_PORT is the feed port, given with -DREFLECT_PORT=N by the
 * benchmark; without it, the protocol's default feed port.
 */
#include <uapi/linux/bpf.h>
#include "hft_protocol.h"
#include "parsing_helpers.h"
#include "csum.h"
#include "rewrite.h"

#ifndef REFLECT_PORT
#define REFLECT_PORT HFT_DEFAULT_FEED_PORT
#endif

int xdp_reflector(struct xdp_md *ctx)
{
	void *data_end = (void *)(long)ctx->data_end;
	struct hdr_cursor nh = { .pos = (void *)(long)ctx->data };
	struct udp_frame f;
	__u32 udp_len;

	if (parse_udp_frame(&nh, data_end, &f) != PARSE_OK)
		return XDP_PASS;
	if (f.udp->dest != bpf_htons(REFLECT_PORT))
		return XDP_PASS;
	udp_len = bpf_ntohs(f.udp->len);
	if (udp_len > HFT_MAX_UDP_LEN)
		return XDP_PASS;

	swap_addresses(f.eth, f.iph, f.udp);
	ipv4_csum_recompute(f.iph, data_end);
	udp_csum_recompute(f.iph, f.udp, udp_len, data_end);
	return XDP_TX;
}
