/* SPDX-License-Identifier: GPL-2.0 */
/*
 * BPF_PROG_TEST_RUN harness of hft-tui bench for feed packets of many
 * messages (IEX-TP).  With repeat > 1 the kernel runs the program again and
 * again on one buffer, keeping what it wrote and the length it set: a packet
 * that traded has become an order frame, and a packet seen once is a
 * duplicate the second time.  So every run restores the frame from the
 * template (its length with bpf_xdp_adjust_tail, its bytes with
 * bpf_xdp_store_bytes: too long for a copy the verifier would unroll),
 * writes the next first sequence (little-endian as IEX-TP has it: where the
 * previous packet's messages ended; the bench starts it at 1) and
 * tail-calls the program under test.
 * The trivial program goes through the same harness, so the harness's cost
 * is taken out by subtraction.  The sequence lives in its own map, so it
 * keeps growing when the template changes.
 */
#include <uapi/linux/bpf.h>

#define FEED_HARNESS_MAX_FRAME 1536

struct feed_template {
	__u32 len;
	__u32 seq_off;           /* where the first sequence is, from the frame's start */
	__u32 seq_step;          /* the packet's message count */
	__u32 _pad;
	__u8 bytes[FEED_HARNESS_MAX_FRAME];
};

BPF_PROG_ARRAY(feed_harness_target, 1);
BPF_ARRAY(feed_harness_template, struct feed_template, 1);
BPF_ARRAY(feed_harness_seq, __u64, 1);

int xdp_feed_harness(struct xdp_md *ctx)
{
	struct feed_template *t;
	__u32 zero = 0;
	__u64 *seq, len, cur;   /* 64-bit: with __u32, clang bounds a zero-extended copy the verifier never sees */

	t = feed_harness_template.lookup(&zero);
	seq = feed_harness_seq.lookup(&zero);
	if (!t || !seq)
		return XDP_ABORTED;
	len = t->len;
	/* Two checks with an opaque step between: clang would fold them into one
	 * unsigned compare that bounds nothing the verifier can see. */
	if (len > FEED_HARNESS_MAX_FRAME)
		return XDP_ABORTED;
	asm volatile("" : "+r"(len));
	if (len < 64)
		return XDP_ABORTED;
	cur = ctx->data_end - ctx->data;
	if (cur != len && bpf_xdp_adjust_tail(ctx, (int)len - (int)cur))
		return XDP_ABORTED;
	if (bpf_xdp_store_bytes(ctx, 0, t->bytes, len))
		return XDP_ABORTED;
	if (bpf_xdp_store_bytes(ctx, t->seq_off & 0x7ff, seq, sizeof(*seq)))
		return XDP_ABORTED;
	*seq += t->seq_step;     /* the next packet starts where this one ends, whatever its size */
	feed_harness_target.call(ctx, 0);
	return XDP_ABORTED;   /* the tail call failed */
}
