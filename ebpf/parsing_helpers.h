/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Header parsing in the style of xdp-tutorial's parsing_helpers.h: a cursor
 * that walks the frame, one small parse_* function per header, and every
 * bounds check right next to the access it protects.
 *
 * Return values: the parse functions return PARSE_OK, PARSE_OTHER (a
 * well-formed packet that is not ours: pass it, count it as passed) or
 * PARSE_MALFORMED (truncated or inconsistent: pass it, count it as malformed).
 *
 * BPF-only (BCC supplies bpf_htons/bpf_ntohs and __always_inline).
 */
#ifndef HFT_PARSING_HELPERS_H
#define HFT_PARSING_HELPERS_H

#include <linux/types.h>
#include <uapi/linux/if_ether.h>
#include <uapi/linux/ip.h>
#include <uapi/linux/udp.h>
#include <uapi/linux/in.h>

#define PARSE_OK         0
#define PARSE_OTHER      1
#define PARSE_MALFORMED  2

#define IP_MF            0x2000
#define IP_OFFSET        0x1fff

struct hdr_cursor {
	void *pos;
};

/* 802.1Q / 802.1ad tag; not in the uapi headers. */
struct vlan_hdr {
	__be16 h_vlan_TCI;
	__be16 h_vlan_encapsulated_proto;
};

static __always_inline int proto_is_vlan(__u16 h_proto)
{
	return h_proto == bpf_htons(ETH_P_8021Q) || h_proto == bpf_htons(ETH_P_8021AD);
}

/* Ethernet plus at most one VLAN tag; *proto is the inner EtherType. */
static __always_inline int parse_ethhdr(struct hdr_cursor *nh, void *data_end,
					struct ethhdr **ethhdr, __be16 *proto)
{
	struct ethhdr *eth = nh->pos;
	struct vlan_hdr *vlh;

	if ((void *)(eth + 1) > data_end)
		return PARSE_MALFORMED;
	nh->pos = eth + 1;
	*ethhdr = eth;
	*proto = eth->h_proto;

	if (proto_is_vlan(*proto)) {
		vlh = nh->pos;
		if ((void *)(vlh + 1) > data_end)
			return PARSE_MALFORMED;
		nh->pos = vlh + 1;
		*proto = vlh->h_vlan_encapsulated_proto;
		/* A second tag (QinQ) is not a feed we answer. */
		if (proto_is_vlan(*proto))
			return PARSE_OTHER;
	}
	return PARSE_OK;
}

/* IPv4 with options; fragments are someone else's business. */
static __always_inline int parse_iphdr(struct hdr_cursor *nh, void *data_end,
				       struct iphdr **iphdr)
{
	struct iphdr *iph = nh->pos;
	__u32 hdrsize;

	if ((void *)(iph + 1) > data_end)
		return PARSE_MALFORMED;
	if (iph->version != 4 || iph->ihl < 5)
		return PARSE_MALFORMED;
	hdrsize = iph->ihl * 4;             /* 20..60: ihl is 4 bits */
	if (nh->pos + hdrsize > data_end)
		return PARSE_MALFORMED;
	if (bpf_ntohs(iph->tot_len) < hdrsize ||
	    (void *)iph + bpf_ntohs(iph->tot_len) > data_end)
		return PARSE_MALFORMED;
	nh->pos += hdrsize;
	*iphdr = iph;

	if (iph->protocol != IPPROTO_UDP)
		return PARSE_OTHER;
	if (iph->frag_off & bpf_htons(IP_MF | IP_OFFSET))
		return PARSE_OTHER;
	return PARSE_OK;
}

/* UDP whose length field agrees with the IPv4 total length. */
static __always_inline int parse_udphdr(struct hdr_cursor *nh, void *data_end,
					struct iphdr *iph, struct udphdr **udphdr)
{
	struct udphdr *udp = nh->pos;
	__u32 udp_len, ip_payload;

	if ((void *)(udp + 1) > data_end)
		return PARSE_MALFORMED;
	udp_len = bpf_ntohs(udp->len);
	ip_payload = bpf_ntohs(iph->tot_len) - iph->ihl * 4;
	if (udp_len < sizeof(*udp) || udp_len > ip_payload)
		return PARSE_MALFORMED;
	nh->pos = udp + 1;
	*udphdr = udp;
	return PARSE_OK;
}

/*
 * The prologue every program here shares: Ethernet (one VLAN tag at most),
 * IPv4 and UDP, each checked by its parse_* above.  On PARSE_OK the cursor
 * is at the UDP payload (udp->len was checked against the IPv4 total length).
 */
struct udp_frame {
	struct ethhdr *eth;
	struct iphdr *iph;
	struct udphdr *udp;
};

static __always_inline int parse_udp_frame(struct hdr_cursor *nh, void *data_end,
					   struct udp_frame *f)
{
	__be16 proto;
	int rc;

	rc = parse_ethhdr(nh, data_end, &f->eth, &proto);
	if (rc != PARSE_OK)
		return rc;
	if (proto != bpf_htons(ETH_P_IP))
		return PARSE_OTHER;
	rc = parse_iphdr(nh, data_end, &f->iph);
	if (rc != PARSE_OK)
		return rc;
	return parse_udphdr(nh, data_end, f->iph, &f->udp);
}

#endif /* HFT_PARSING_HELPERS_H */
