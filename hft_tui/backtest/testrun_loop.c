// SPDX-License-Identifier: GPL-2.0
/*
 * The backtest's inner loop: every frame of a batch through BPF_PROG_TEST_RUN.
 *
 * hft_tui/backtest/runner.py compiles this file with gcc into a private
 * shared object and calls bt_run once per batch of frames (a capture read
 * by capture_reader.py: one buffer, the frames as offsets into it).  For
 * each frame, in order:
 *   - a frame outside the time window is skipped (counted);
 *   - a frame that is not IPv4/UDP (behind at most one VLAN tag) is ignored
 *     (counted): the rule, checked like wire.parse_udp_frame does;
 *   - the program's clock is set to the frame's capture time (the
 *     backtest_clock map, BPF_MAP_UPDATE_ELEM), then the frame is run
 *     (BPF_PROG_TEST_RUN, one run) with its output written straight into the
 *     caller's output buffer; a frame the program sent with XDP_TX stays
 *     there and is listed (index, offset, length), any other output is
 *     overwritten by the next frame.
 * The loop stops early when the output buffer or the list could not hold
 * one more frame; the caller takes what was sent and calls again from there.
 *
 * Nothing is decided here: the program decides, the caller checks.  A
 * Python loop spends several microseconds a frame in ctypes alone; this
 * spends none of the program's budget.  The numbers are the kernel's own
 * (linux/bpf.h, linux/if_ether.h, linux/in.h).
 */
#include <errno.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define VLAN_HLEN 4
#define IPV4_MIN_HLEN 20
#define UDP_HLEN 8
/* Room kept for one frame's output: the frame itself, or an order frame the
 * program grew (46 + 32 * 44 bytes and a VLAN tag), whichever is larger. */
#define OUT_SLACK 2048

/* Indices into the counts the caller hands in. */
enum bt_count {
	BT_OUTSIDE,   /* outside the time window */
	BT_OTHER,     /* not IPv4/UDP */
	BT_FED,       /* run through the program */
	BT_ABORTED,   /* XDP_ABORTED */
	BT_DROP,      /* XDP_DROP */
	BT_PASS,      /* XDP_PASS */
	BT_TX,        /* XDP_TX: an order frame */
	BT_REDIRECT,  /* XDP_REDIRECT, or anything else */
	BT_WINDOW,    /* inside the time window (fed or not) */
	BT_FIRST_TS,  /* capture time of the first frame inside the window */
	BT_LAST_TS,   /* ... of the last */
	BT_COUNTS
};

struct bt_sent {
	uint32_t index;   /* the frame's index in the batch */
	uint32_t offset;  /* where its output is in the output buffer */
	uint32_t length;
	uint32_t in_length;
};

static long sys_bpf(int cmd, union bpf_attr *attr)
{
	return syscall(__NR_bpf, cmd, attr, sizeof(*attr));
}

static int ipv4_udp(const uint8_t *f, uint32_t len)
{
	uint32_t off = ETH_HLEN, ihl;
	uint16_t proto;

	if (len < ETH_HLEN)
		return 0;
	proto = (uint16_t)(f[12] << 8 | f[13]);
	if (proto == ETH_P_8021Q || proto == ETH_P_8021AD) {
		if (len < ETH_HLEN + VLAN_HLEN)
			return 0;
		proto = (uint16_t)(f[16] << 8 | f[17]);
		off += VLAN_HLEN;
	}
	if (proto != ETH_P_IP || len < off + IPV4_MIN_HLEN)
		return 0;
	ihl = (uint32_t)(f[off] & 0x0f) * 4;
	if (f[off] >> 4 != 4 || ihl < IPV4_MIN_HLEN || len < off + ihl + UDP_HLEN)
		return 0;
	return f[off + 9] == IPPROTO_UDP;
}

/*
 * Returns how many frames of the batch were done (n when all were), or
 * -errno when a syscall failed on frame *failed.
 */
int bt_run(int prog_fd, int clock_fd, const uint8_t *data, const uint32_t *offsets,
	   const uint32_t *lengths, const int64_t *stamps, uint32_t n, int64_t from_ns,
	   int64_t to_ns, uint8_t *out, uint32_t out_cap, struct bt_sent *sent,
	   uint32_t sent_cap, uint32_t *sent_n, int64_t *counts, uint32_t *failed)
{
	uint32_t used = 0, i;
	union bpf_attr clock, run;
	uint32_t zero = 0;
	uint64_t now;

	*sent_n = 0;
	memset(&clock, 0, sizeof(clock));
	clock.map_fd = (uint32_t)clock_fd;
	clock.key = (uint64_t)(uintptr_t)&zero;
	clock.value = (uint64_t)(uintptr_t)&now;
	clock.flags = BPF_ANY;
	for (i = 0; i < n; i++) {
		const uint8_t *frame = data + offsets[i];
		uint32_t len = lengths[i];
		int64_t ts = stamps[i];

		if (ts < from_ns || ts > to_ns) {
			counts[BT_OUTSIDE]++;
			continue;
		}
		if (*sent_n == sent_cap || out_cap - used < len + OUT_SLACK)
			return (int)i;
		if (!counts[BT_WINDOW]++)
			counts[BT_FIRST_TS] = ts;
		counts[BT_LAST_TS] = ts;
		if (!ipv4_udp(frame, len)) {
			counts[BT_OTHER]++;
			continue;
		}
		now = (uint64_t)ts;
		if (sys_bpf(BPF_MAP_UPDATE_ELEM, &clock) < 0) {
			*failed = i;
			return -errno;
		}
		memset(&run, 0, sizeof(run));
		run.test.prog_fd = (uint32_t)prog_fd;
		run.test.data_in = (uint64_t)(uintptr_t)frame;
		run.test.data_size_in = len;
		run.test.data_out = (uint64_t)(uintptr_t)(out + used);
		run.test.data_size_out = out_cap - used;
		run.test.repeat = 1;
		if (sys_bpf(BPF_PROG_TEST_RUN, &run) < 0) {
			*failed = i;
			return -errno;
		}
		counts[BT_FED]++;
		switch (run.test.retval) {
		case XDP_ABORTED:
			counts[BT_ABORTED]++;
			break;
		case XDP_DROP:
			counts[BT_DROP]++;
			break;
		case XDP_PASS:
			counts[BT_PASS]++;
			break;
		case XDP_TX:
			counts[BT_TX]++;
			sent[*sent_n].index = i;
			sent[*sent_n].offset = used;
			sent[*sent_n].length = run.test.data_size_out;
			sent[*sent_n].in_length = len;
			(*sent_n)++;
			used += (run.test.data_size_out + 7) & ~7u;
			break;
		default:
			counts[BT_REDIRECT]++;
		}
	}
	return (int)n;
}
