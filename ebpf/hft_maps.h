/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The engine's maps (BCC declarations).  The control plane pins each one
 * under /sys/fs/bpf/hft_tui/<ifname>/<map name>; the names here are the
 * pin names.
 *
 * BPF-only (BCC supplies the BPF_* map macros).
 */
#ifndef HFT_MAPS_H
#define HFT_MAPS_H

#include "hft_structs.h"
#include "scratch.h"

BPF_HASH(symbol_config, struct hft_symbol_key, struct hft_symbol_config, HFT_MAX_SYMBOLS);
BPF_HASH(symbol_state, struct hft_symbol_key, struct hft_symbol_state, HFT_MAX_SYMBOLS);
BPF_ARRAY(global_config, struct hft_global_config, 1);
BPF_ARRAY(global_state, struct hft_global_state, 1);
BPF_ARRAY(totals, struct hft_totals, 1);
BPF_ARRAY(kill_switch, __u64, 1);        /* HFT_KILL_*; its own map so no writer clobbers it */
BPF_ARRAY(heartbeat, __u64, 1);          /* controller's CLOCK_MONOTONIC ns */
BPF_PERCPU_ARRAY(counters, __u64, HFT_NUM_COUNTERS);
BPF_PERCPU_ARRAY(feed_counters, struct hft_feed_counters, 1);
BPF_HASH(channels, struct hft_channel_key, struct hft_channel_state, HFT_MAX_CHANNELS);
BPF_ARRAY(route, struct hft_route, 1);           /* written before attach only */
BPF_ARRAY(feed_filter, struct hft_feed_filter, 1); /* written before attach only */
BPF_RINGBUF_OUTPUT(events, HFT_RINGBUF_PAGES);       /* orders and kills only */
BPF_RINGBUF_OUTPUT(tape_events, HFT_TAPE_PAGES);     /* rejects and sampled updates */
/* Per-CPU working state of one packet (scratch.h): the stack is too small and too exact. */
BPF_PERCPU_ARRAY(scratch, struct hft_scratch, 1);
/* Where config writes publish their stamps (hft_structs.h); user space writes it through its mmap. */
BPF_F_TABLE("array", __u32, __u64, config_stamps, CONFIG_SLOTS + 1, BPF_F_MMAPABLE);
/* Per CPU, each symbol slot's last copy of a config (scratch.h). */
BPF_PERCPU_ARRAY(symbol_copies, struct hft_symbol_copy, CONFIG_SLOTS);
#ifdef HFT_BACKTEST
/* The backtest's clock: the capture time of the frame, set by the harness before each run. */
BPF_ARRAY(backtest_clock, __u64, 1);
#endif

#endif /* HFT_MAPS_H */
