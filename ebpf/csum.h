/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Internet checksums computed from scratch.
 *
 * The UDP checksum of an order is never updated incrementally from the
 * update's checksum: a datagram sent from a local socket over veth (or to a
 * NIC with checksum offload) carries only the pseudo-header partial sum in
 * that field, so an incremental update of it is wrong.  The loops are
 * bounded (HFT_MAX_UDP_LEN, 60-byte IPv4 header) and check the packet bounds
 * at every step, which the verifier accepts.
 *
 * BPF-only (BCC supplies bpf_htons and __always_inline).
 */
#ifndef HFT_CSUM_H
#define HFT_CSUM_H

#include <linux/types.h>
#include <uapi/linux/ip.h>
#include <uapi/linux/udp.h>
#include <uapi/linux/in.h>
#include "hft_protocol.h"       /* HFT_MAX_UDP_LEN */

/*
 * An empty asm makes data_end opaque to clang, so it keeps the per-word
 * bounds check inside the loops (which the verifier needs) instead of
 * folding it into a trip count the verifier cannot follow.
 */
#define HFT_OPAQUE(x) asm volatile("" : "+r"(x))

static __always_inline __u16 csum_fold(__u64 sum)
{
	sum = (sum & 0xffffffff) + (sum >> 32);
	sum = (sum & 0xffffffff) + (sum >> 32);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

/* IPv4 header checksum over ihl*4 bytes (the caller checked they exist). */
static __always_inline void ipv4_csum_recompute(struct iphdr *iph, void *data_end)
{
	__u16 *word = (__u16 *)iph;
	__u32 words = iph->ihl * 2;
	__u64 sum = 0;
	int i;

	HFT_OPAQUE(data_end);
	iph->check = 0;
	for (i = 0; i < 30; i++) {          /* 60-byte maximum header */
		if (i >= words)
			break;
		if ((void *)(word + i + 1) > data_end)
			break;
		sum += word[i];
	}
	iph->check = csum_fold(sum);
}

/* UDP checksum over the pseudo header, the UDP header and the payload. */
static __always_inline void udp_csum_recompute(struct iphdr *iph, struct udphdr *udp,
					       __u32 udp_len, void *data_end)
{
	__u16 *word = (__u16 *)udp;
	__u64 sum = 0;
	__u16 csum;
	int i;

	sum += (iph->saddr >> 16) + (iph->saddr & 0xffff);
	sum += (iph->daddr >> 16) + (iph->daddr & 0xffff);
	sum += bpf_htons(IPPROTO_UDP);
	sum += udp->len;

	HFT_OPAQUE(data_end);
	udp->check = 0;
	for (i = 0; i < HFT_MAX_UDP_LEN / 2; i++) {
		if (i >= udp_len / 2)
			break;
		if ((void *)(word + i + 1) > data_end)
			break;
		sum += word[i];
	}
	if (udp_len & 1) {
		/* The odd last byte, padded with a zero byte (network order). */
		__u8 *last = (__u8 *)udp + (udp_len & 0x7ff) /* <= HFT_MAX_UDP_LEN, bounded for the verifier */ - 1;

		if ((void *)(last + 1) <= data_end) {
			__u16 pad = 0;

			*(__u8 *)&pad = *last;
			sum += pad;
		}
	}
	csum = csum_fold(sum);
	/* RFC 768: a computed zero is sent as all ones (zero means "none"). */
	udp->check = csum ? csum : 0xffff;
}

#endif /* HFT_CSUM_H */
