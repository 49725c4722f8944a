/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Turning a received frame around: the reply goes back to its sender from
 * the address it was sent to.  Shared by the strategy and the bare reflector
 * so the benchmark compares the same rewrite.
 *
 * BPF-only (BCC supplies __always_inline).
 */
#ifndef HFT_REWRITE_H
#define HFT_REWRITE_H

#include <linux/types.h>
#include <uapi/linux/if_ether.h>
#include <uapi/linux/ip.h>
#include <uapi/linux/udp.h>

static __always_inline void swap_addresses(struct ethhdr *eth, struct iphdr *iph,
					   struct udphdr *udp)
{
	__u8 mac[ETH_ALEN];
	__be32 addr;
	__be16 port;

	__builtin_memcpy(mac, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, eth->h_source, ETH_ALEN);
	__builtin_memcpy(eth->h_source, mac, ETH_ALEN);
	addr = iph->saddr;
	iph->saddr = iph->daddr;
	iph->daddr = addr;
	port = udp->source;
	udp->source = udp->dest;
	udp->dest = port;
}

#endif /* HFT_REWRITE_H */
