/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The throughput sender of hft-tui bench: runs the generator program
 * (generator.c) with BPF_PROG_TEST_RUN in live-frames mode, so that each run
 * of it may send one frame out of the exchange's end of the lab's veth with
 * XDP_TX, from one thread per CPU given, each pinned to its CPU.
 *
 * What to send and at what pace is in the program's per-CPU state, set by
 * the bench before a step; the program drops the runs that are early or
 * after the step's last frame.  Each thread calls the program with RUNS runs
 * per call, again and again until DURATION_NS have passed since the start
 * (0: one call).  It runs inside the lab's network namespace (the kernel
 * looks the ingress device up in the caller's namespace), with the program's
 * fd inherited from the bench.
 *
 * One line of JSON on stdout at the end:
 *   {"elapsed_ns":..,"calls":..,"errors":..,"last_errno":..}
 *
 *   blast --prog-fd FD --ifindex N --frame-len L --runs N --duration-ns D
 *         --cpus C[,C...]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <linux/bpf.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define MAX_THREADS 64
#define MAX_FRAME 2048
#define KERNEL_BATCH 64           /* runs the kernel makes between flushes of the sent frames */

struct xdp_md_in {                /* struct xdp_md as BPF_PROG_TEST_RUN takes it */
	uint32_t data, data_end, data_meta, ingress_ifindex, rx_queue_index, egress_ifindex;
};

struct worker {
	pthread_t thread;
	int cpu;
	uint64_t calls, errors;
	int last_errno;
};

static int prog_fd, ifindex, frame_len;
static uint32_t runs;
static uint64_t start, duration_ns;
static uint8_t frame[MAX_FRAME];

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

/* One BPF_PROG_TEST_RUN of `runs` live frames; 0 or -errno. */
static int run_frames(void)
{
	struct xdp_md_in md = { .data_end = (uint32_t)frame_len, .ingress_ifindex = (uint32_t)ifindex };
	union bpf_attr attr;

	memset(&attr, 0, sizeof(attr));
	attr.test.prog_fd = prog_fd;
	attr.test.data_in = (uint64_t)(uintptr_t)frame;
	attr.test.data_size_in = (uint32_t)frame_len;
	attr.test.ctx_in = (uint64_t)(uintptr_t)&md;
	attr.test.ctx_size_in = sizeof(md);
	attr.test.repeat = runs;
	attr.test.flags = BPF_F_TEST_XDP_LIVE_FRAMES;
	attr.test.batch_size = runs < KERNEL_BATCH ? runs : KERNEL_BATCH;
	if (syscall(__NR_bpf, BPF_PROG_TEST_RUN, &attr, sizeof(attr)) < 0)
		return -errno;
	return 0;
}

static void *work(void *arg)
{
	struct worker *w = arg;
	cpu_set_t set;
	int rc;

	CPU_ZERO(&set);
	CPU_SET(w->cpu, &set);
	if (pthread_setaffinity_np(pthread_self(), sizeof(set), &set)) {
		w->last_errno = EINVAL;
		w->errors++;
		return NULL;
	}
	do {
		w->calls++;
		rc = run_frames();
		if (rc < 0) {
			w->errors++;
			w->last_errno = -rc;
			if (w->errors > 100)
				break;
		}
	} while (now_ns() - start < duration_ns);
	return NULL;
}

static void usage(void)
{
	fprintf(stderr, "usage: blast --prog-fd FD --ifindex N --frame-len L --runs N --duration-ns D "
			"--cpus C[,C...]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "prog-fd", required_argument, NULL, 1 },
		{ "ifindex", required_argument, NULL, 2 },
		{ "frame-len", required_argument, NULL, 3 },
		{ "runs", required_argument, NULL, 4 },
		{ "duration-ns", required_argument, NULL, 5 },
		{ "cpus", required_argument, NULL, 6 },
		{ NULL, 0, NULL, 0 },
	};
	static struct worker w[MAX_THREADS];
	uint64_t calls = 0, errors = 0, r = 0;
	int c, i, n = 0, last_errno = 0;
	char *cpus = NULL, *tok, *save;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 1: prog_fd = atoi(optarg); break;
		case 2: ifindex = atoi(optarg); break;
		case 3: frame_len = atoi(optarg); break;
		case 4: r = strtoull(optarg, NULL, 10); break;
		case 5: duration_ns = strtoull(optarg, NULL, 10); break;
		case 6: cpus = optarg; break;
		default: usage();
		}
	}
	if (prog_fd <= 0 || ifindex <= 0 || frame_len < 14 || frame_len > MAX_FRAME || !r || r > 0x7fffffff ||
	    !cpus)
		usage();
	runs = (uint32_t)r;
	for (tok = strtok_r(cpus, ",", &save); tok && n < MAX_THREADS; tok = strtok_r(NULL, ",", &save))
		w[n++].cpu = atoi(tok);
	if (!n)
		usage();
	start = now_ns();
	for (i = 0; i < n; i++)
		if (pthread_create(&w[i].thread, NULL, work, &w[i])) {
			fprintf(stderr, "blast: cannot start a thread\n");
			return 1;
		}
	for (i = 0; i < n; i++) {
		pthread_join(w[i].thread, NULL);
		calls += w[i].calls;
		errors += w[i].errors;
		if (w[i].last_errno)
			last_errno = w[i].last_errno;
	}
	printf("{\"elapsed_ns\":%llu,\"calls\":%llu,\"errors\":%llu,\"last_errno\":%d}\n",
	       (unsigned long long)(now_ns() - start), (unsigned long long)calls, (unsigned long long)errors,
	       last_errno);
	return 0;
}
