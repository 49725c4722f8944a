/* SPDX-License-Identifier: GPL-2.0 */
/*
 * BPF_PROG_TEST_RUN harness for the benchmark (hft-tui bench).
 *
 * With repeat > 1 the kernel runs the program again and again on the same
 * buffer: a trading update is turned into an order on the first run, so the
 * second run would see an order, not an update.  This program restores the
 * frame from a template before every run, writes a fresh increasing seq
 * into it (a repeated seq is a duplicate the engine never trades on) and
 * tail-calls the program under test.  Every program measured (the strategy
 * with each frame, and the trivial XDP_PASS program) goes through this same
 * harness, so they are measured the same way.
 *
 * With harness_symbol_count set to N, the i-th run also writes symbol
 * i % N of harness_symbols: the bench's cost against the number of
 * configured symbols (every one trading); 0 keeps the template's symbol.
 *
 * HARNESS_FRAME_LEN and HARNESS_PAYLOAD_OFF are given with -D by the bench.
 */
#include <uapi/linux/bpf.h>
#include "hft_protocol.h"

#define HARNESS_MAX_SYMBOLS 16384

struct frame_template {
	__u8 bytes[HARNESS_FRAME_LEN];
};

struct harness_symbol {
	char name[HFT_SYMBOL_LEN];
};

BPF_PROG_ARRAY(harness_target, 1);
BPF_ARRAY(harness_template, struct frame_template, 1);
BPF_ARRAY(harness_seq, __u64, 1);
BPF_ARRAY(harness_symbol_count, __u32, 1);
BPF_ARRAY(harness_symbols, struct harness_symbol, HARNESS_MAX_SYMBOLS);

int xdp_harness(struct xdp_md *ctx)
{
	void *data_end = (void *)(long)ctx->data_end;
	void *data = (void *)(long)ctx->data;
	struct frame_template *t;
	struct harness_symbol *sym;
	__u32 zero = 0, *nsym, idx;
	__u64 *seq, be;

	t = harness_template.lookup(&zero);
	seq = harness_seq.lookup(&zero);
	nsym = harness_symbol_count.lookup(&zero);
	if (!t || !seq || !nsym)
		return XDP_ABORTED;
	if (data + HARNESS_FRAME_LEN > data_end)
		return XDP_ABORTED;
	__builtin_memcpy(data, t->bytes, HARNESS_FRAME_LEN);
	*seq += 1;
	be = __builtin_bswap64(*seq);
	__builtin_memcpy(data + HARNESS_PAYLOAD_OFF + HFT_OFF_SEQ, &be, sizeof(be));
	if (*nsym) {
		idx = (__u32)(*seq % *nsym);
		sym = harness_symbols.lookup(&idx);
		if (sym)
			__builtin_memcpy(data + HARNESS_PAYLOAD_OFF + HFT_OFF_SYMBOL, sym->name, HFT_SYMBOL_LEN);
	}
	harness_target.call(ctx, 0);
	return XDP_ABORTED;   /* the tail call failed */
}
