/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The feed generator of hft-tui bench's throughput runs: an XDP program run
 * with BPF_PROG_TEST_RUN in live-frames mode (BPF_F_TEST_XDP_LIVE_FRAMES)
 * with the exchange's end of the lab's veth (hftxN) as its ingress device,
 * so that its XDP_TX sends every frame to the engine's end through veth's
 * ndo_xdp_xmit, as a NIC's receive ring would hand it over: no socket, no
 * skb, a few tens of ns a frame, so the sender outruns the engine.
 *
 * Each run that sends restores the whole frame from gen_template (the
 * kernel recycles a frame's page with whatever the engine wrote into it),
 * writes the next seq of this CPU's range and, when a symbol list is set,
 * the next symbol of this CPU's part of it.  gen_cpu (per CPU) is set by the
 * bench before a step: how many frames to send and at what pace.
 *
 * Pacing is done here, not by the caller: a test run is a system call and a
 * page pool set up and torn down, far too slow to start one per burst, so
 * the caller runs the program in long calls and a run that is early (before
 * its frame is due) or late (the step's frames are all sent) drops its
 * frame at once, a few ns.  A sender that falls more than GEN_MAX_LAG frames
 * behind its schedule skips ahead instead of bursting (a burst would
 * overflow veth's 256-frame ring and blame the engine for it), so a sender
 * too slow for its rate shows as a lower rate, never as a loss.
 *
 * GEN_FRAME_LEN, GEN_SEQ_OFF and GEN_SYMBOL_OFF (frame offsets) are given
 * with -D by the bench; the seq is big-endian (hft1) unless GEN_SEQ_LE is
 * defined (IEX-TP's first sequence), and advances by GEN_SEQ_STEP a frame
 * (a packet's message count; 1 by default).
 */
#include <uapi/linux/bpf.h>
#include "hft_protocol.h"

#ifndef GEN_MAX_SYMBOLS
#define GEN_MAX_SYMBOLS 16384
#endif
#define GEN_MAX_LAG 32
#define GEN_SHORT_FRAME 256      /* hft1's frames: copied inline, never shortened by the engine */
#ifndef GEN_SEQ_STEP
#define GEN_SEQ_STEP 1
#endif

struct gen_frame {
	__u8 bytes[GEN_FRAME_LEN];
};

struct gen_symbol {
	char name[HFT_SYMBOL_LEN];
};

struct gen_cpu {
	__u64 next_seq;          /* the seq the next frame carries */
	__u64 limit;             /* frames to send in this step */
	__u64 period_ps;         /* one frame every period_ps picoseconds; 0: every run */
	__u64 due_ps;            /* when the next frame is due (bpf_ktime_get_ns * 1000); 0: now */
	__u64 sent;              /* frames this CPU sent */
	__u64 first_ns;          /* when it sent the first and the last */
	__u64 last_ns;
	__u64 skipped;           /* frames given up to stay within GEN_MAX_LAG of the schedule */
	__u32 sym_first;         /* this CPU's symbols: gen_symbols[sym_first .. +sym_count) */
	__u32 sym_count;         /* 0: the template's symbol */
	__u32 sym_next;          /* index into this CPU's part */
	__u32 _pad;
};

BPF_ARRAY(gen_template, struct gen_frame, 1);
BPF_ARRAY(gen_symbols, struct gen_symbol, GEN_MAX_SYMBOLS);
BPF_PERCPU_ARRAY(gen_cpu, struct gen_cpu, 1);

int xdp_generate(struct xdp_md *ctx)
{
	void *data_end = (void *)(long)ctx->data_end;
	void *data = (void *)(long)ctx->data;
	struct gen_symbol *sym;
	struct gen_frame *t;
	struct gen_cpu *g;
	__u32 zero = 0, idx;
	__u64 be, now = 0, now_ps;

	t = gen_template.lookup(&zero);
	g = gen_cpu.lookup(&zero);
	if (!t || !g)
		return XDP_ABORTED;
	if (g->sent >= g->limit)
		return XDP_DROP;
	if (g->period_ps) {
		now = bpf_ktime_get_ns();
		now_ps = now * 1000;
		if (!g->due_ps)
			g->due_ps = now_ps;
		if (now_ps < g->due_ps)
			return XDP_DROP;
		if (now_ps - g->due_ps > GEN_MAX_LAG * g->period_ps) {
			g->skipped += (now_ps - g->due_ps) / g->period_ps;
			g->due_ps = now_ps;
		}
		g->due_ps += g->period_ps;
	} else if (!g->sent || g->sent + 1 == g->limit) {
		now = bpf_ktime_get_ns();
	}
#if GEN_FRAME_LEN > GEN_SHORT_FRAME
	/*
	 * A frame the engine may shorten (an order frame replaces a feed packet):
	 * the kernel recycles its page with the xdp_frame the engine's XDP_TX
	 * left in it, and a test run refreshes that only when the program moved
	 * the frame's end.  So the caller passes one byte more than the frame
	 * and every run trims it, then the bytes are written with the helper
	 * (too long for a copy clang inlines) and the packet pointers taken again.
	 */
	if (bpf_xdp_adjust_tail(ctx, GEN_FRAME_LEN - (int)(data_end - data)))
		return XDP_ABORTED;
	if (bpf_xdp_store_bytes(ctx, 0, t->bytes, GEN_FRAME_LEN))
		return XDP_ABORTED;
	data_end = (void *)(long)ctx->data_end;
	data = (void *)(long)ctx->data;
	if (data + GEN_FRAME_LEN > data_end)
		return XDP_ABORTED;
#else
	if (data + GEN_FRAME_LEN > data_end)
		return XDP_ABORTED;
	__builtin_memcpy(data, t->bytes, GEN_FRAME_LEN);
#endif
#ifdef GEN_SEQ_LE
	be = g->next_seq;
#else
	be = __builtin_bswap64(g->next_seq);
#endif
	__builtin_memcpy(data + GEN_SEQ_OFF, &be, sizeof(be));
	g->next_seq += GEN_SEQ_STEP;
	if (!g->sent)
		g->first_ns = now;
	g->sent++;
	if (now)
		g->last_ns = now;
	if (g->sym_count) {
		idx = g->sym_first + g->sym_next;
		sym = gen_symbols.lookup(&idx);
		if (sym)
			__builtin_memcpy(data + GEN_SYMBOL_OFF, sym->name, HFT_SYMBOL_LEN);
		if (++g->sym_next >= g->sym_count)
			g->sym_next = 0;
	}
	return XDP_TX;
}
