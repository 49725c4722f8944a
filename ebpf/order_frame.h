/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The order frame of a feed packet: every order of the packet in one frame,
 * 44 bytes each (hft_protocol.h's order format).
 *
 * During the message loop each order is appended to the per-CPU scratch
 * (append_order) and its words are added to a running payload checksum.
 * After the loop the headers are written in front of the orders in the same
 * buffer (write_headers: the gateway's addresses, or the packet's turned
 * around), the frame is resized to exactly headers + 44 * n with
 * bpf_xdp_adjust_tail and copied in with one bpf_xdp_store_bytes: no packet
 * pointer is used after the resize.  Every checksum is computed whole: a
 * datagram from a local socket on veth carries only a partial UDP checksum.
 *
 * Scratch frame buffer: the headers end at FRAME_HDR_ROOM (they start at 2
 * with a VLAN tag, at 6 without), the orders follow.
 *
 * BPF-only (BCC supplies the helpers and __always_inline).
 */
#ifndef HFT_ORDER_FRAME_H
#define HFT_ORDER_FRAME_H

#include <linux/types.h>
#include <uapi/linux/if_ether.h>
#include <uapi/linux/ip.h>
#include <uapi/linux/udp.h>
#include <uapi/linux/in.h>
#include "hft_protocol.h"
#include "hft_structs.h"
#include "scratch.h"
#include "csum.h"

#define FRAME_ETH_OFF_VLAN   (FRAME_HDR_ROOM - 46)
#define FRAME_ETH_OFF_PLAIN  (FRAME_HDR_ROOM - 42)
#define FRAME_IP_OFF         (FRAME_HDR_ROOM - 28)
#define FRAME_UDP_OFF        (FRAME_HDR_ROOM - 8)
#define ORDER_WORDS          (HFT_MSG_LEN / 4)

_Static_assert(HFT_MSG_LEN % 4 == 0, "an order is whole 32-bit words");

/* Where the order frame goes; filled after the loop (route_orders), only when there are orders. */
struct frame_route {
	__u8 dst_mac[6];
	__u8 src_mac[6];
	__be32 saddr;
	__be32 daddr;
	__be16 sport;
	__be16 dport;
	__be16 vlan_proto;
	__be16 vlan_tci;
};

struct order_words {
	__u32 w[ORDER_WORDS];
};

/*
 * Appends one order (today's format: type B/S, the symbol, seq and timestamp
 * of the triggering message, price, qty, id, 0) and adds its words to the
 * payload checksum.  The caller made sure it fits (order_room).
 */
static __always_inline void append_order(struct hft_scratch *s, __u32 side, __u32 price, __u32 qty, __u32 id)
{
	struct feed_loop *fl = &s->loop;
	struct feed_msg *u = &s->u;
	__u32 n = fl->n_orders & (HFT_MAX_ORDERS_CAP - 1);
	struct order_words *o = (void *)(s->frame + FRAME_HDR_ROOM + n * HFT_MSG_LEN);
	__u64 sum;

	/* magic "HT", version, type: their bytes in wire order, as one 32-bit word in memory */
	o->w[0] = bpf_htons(HFT_MAGIC) | (HFT_VERSION << 16) | (side << 24);
	o->w[1] = *(__u32 *)&u->key.name[0];
	o->w[2] = *(__u32 *)&u->key.name[4];
	o->w[3] = bpf_htonl((__u32)(u->seq >> 32));
	o->w[4] = bpf_htonl((__u32)u->seq);
	o->w[5] = bpf_htonl(price);
	o->w[6] = bpf_htonl(qty);
	o->w[7] = bpf_htonl(id);
	o->w[8] = 0;
	o->w[9] = bpf_htonl((__u32)(u->timestamp >> 32));
	o->w[10] = bpf_htonl((__u32)u->timestamp);
	sum = (__u64)o->w[0] + o->w[1] + o->w[2] + o->w[3] + o->w[4] + o->w[5] +
	      o->w[6] + o->w[7] + o->w[9] + o->w[10];
	fl->csum += sum;
	fl->n_orders = n + 1;
}

static __always_inline __u16 ipv4_csum20(__u16 *w)
{
	__u64 sum = 0;
	int i;

#pragma unroll
	for (i = 0; i < 10; i++)
		sum += w[i];
	return csum_fold(sum);
}

/*
 * Writes Ethernet (the VLAN tag kept), IPv4 (no options, TTL 64) and UDP in
 * front of the orders, both checksums computed whole; returns where the
 * frame starts in the buffer and sets *len.
 */
static __always_inline __u64 write_headers(struct hft_scratch *s, const struct frame_route *r, __u64 *len)
{
	struct feed_loop *fl = &s->loop;
	__u8 *f = s->frame;
	struct iphdr *ip = (void *)(f + FRAME_IP_OFF);
	struct udphdr *udp = (void *)(f + FRAME_UDP_OFF);
	__u64 n = fl->n_orders, start, payload, sum;

	if (n > HFT_MAX_ORDERS_CAP)
		n = HFT_MAX_ORDERS_CAP;
	payload = n * HFT_MSG_LEN;
	if (fl->has_vlan) {
		start = FRAME_ETH_OFF_VLAN;
		__builtin_memcpy(f + FRAME_ETH_OFF_VLAN, r->dst_mac, ETH_ALEN);
		__builtin_memcpy(f + FRAME_ETH_OFF_VLAN + ETH_ALEN, r->src_mac, ETH_ALEN);
		*(__be16 *)(f + FRAME_IP_OFF - 6) = r->vlan_proto;
		*(__be16 *)(f + FRAME_IP_OFF - 4) = r->vlan_tci;
	} else {
		start = FRAME_ETH_OFF_PLAIN;
		__builtin_memcpy(f + FRAME_ETH_OFF_PLAIN, r->dst_mac, ETH_ALEN);
		__builtin_memcpy(f + FRAME_ETH_OFF_PLAIN + ETH_ALEN, r->src_mac, ETH_ALEN);
	}
	*(__be16 *)(f + FRAME_IP_OFF - 2) = bpf_htons(ETH_P_IP);

	ip->version = 4;
	ip->ihl = 5;
	ip->tos = 0;
	ip->tot_len = bpf_htons(sizeof(*ip) + sizeof(*udp) + payload);
	ip->id = 0;
	ip->frag_off = 0;
	ip->ttl = 64;
	ip->protocol = IPPROTO_UDP;
	ip->check = 0;
	ip->saddr = r->saddr;
	ip->daddr = r->daddr;
	ip->check = ipv4_csum20((__u16 *)ip);

	udp->source = r->sport;
	udp->dest = r->dport;
	udp->len = bpf_htons(sizeof(*udp) + payload);
	udp->check = 0;
	/* The pseudo header, the UDP header, and the orders as they were summed when written. */
	sum = (ip->saddr >> 16) + (ip->saddr & 0xffff) + (ip->daddr >> 16) + (ip->daddr & 0xffff) +
	      bpf_htons(IPPROTO_UDP) + udp->len + udp->source + udp->dest + udp->len + fl->csum;
	udp->check = csum_fold(sum);
	if (!udp->check)
		udp->check = 0xffff;     /* RFC 768: a computed zero is sent as all ones */
	*len = FRAME_HDR_ROOM - start + payload;
	return start;
}

/*
 * The frame resized to exactly the orders' and copied in: XDP_TX, or
 * XDP_DROP when the kernel refuses the resize or the copy (counted by the
 * caller as a frame error; the loop only decided orders that fit).
 */
static __always_inline int send_frame(struct xdp_md *ctx, struct hft_scratch *s, const struct frame_route *r)
{
	struct feed_loop *fl = &s->loop;
	__u64 start, len;
	int delta;

	start = write_headers(s, r, &len);
	/* Bounds the verifier can see, opaque to clang so it keeps them. */
	HFT_OPAQUE(len);
	if (len > FRAME_BUF_LEN - FRAME_ETH_OFF_VLAN)
		return XDP_DROP;
	HFT_OPAQUE(start);
	if (start > FRAME_ETH_OFF_PLAIN)
		return XDP_DROP;
	delta = (int)len - (int)fl->frame_len;
	if (delta && bpf_xdp_adjust_tail(ctx, delta))
		return XDP_DROP;
	fl->frame_len = len;
	if (bpf_xdp_store_bytes(ctx, 0, s->frame + start, len))
		return XDP_DROP;
	return XDP_TX;
}

#endif /* HFT_ORDER_FRAME_H */
