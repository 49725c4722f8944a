/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The throughput sender of hft-tui bench: sends COUNT updates at RATE per
 * second (0 = as fast as the core allows) with sendmmsg from one thread and
 * counts the orders that come back on another, each pinned to its CPU.
 *
 * Offsets and constants come from ebpf/hft_protocol.h (compile with
 * -I ebpf).  Updates carry seqs SEQ_START .. SEQ_START+COUNT-1; an order
 * is counted when it is a well-formed buy for one of those seqs, once.
 * One line of JSON on stdout at the end:
 *   {"sent":..,"send_errors":..,"elapsed_ns":..,"received":..,"bad":..,
 *    "duplicates":..,"min_id":..,"max_id":..}
 *
 *   blast --src IP --dst IP --port P --count N --rate R --seq-start S
 *         --symbol SYM --bid N --bid-qty N --ask N --ask-qty N
 *         --send-cpu C --recv-cpu C [--idle-ms MS]
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "hft_protocol.h"

#define BATCH 32

struct run {
	int fd;
	uint64_t count, rate, seq_start, idle_ns;
	int send_cpu, recv_cpu;
	uint8_t template[HFT_MSG_LEN];
	/* results */
	uint64_t sent, send_errors, elapsed_ns;
	uint64_t received, bad, duplicates, min_id, max_id;
	uint8_t *seen;
	volatile int send_done;
};

static uint64_t now_ns(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

static void put16(uint8_t *p, uint16_t v) { v = htons(v); memcpy(p, &v, 2); }
static void put32(uint8_t *p, uint32_t v) { v = htonl(v); memcpy(p, &v, 4); }
static void put64(uint8_t *p, uint64_t v) { v = htobe64(v); memcpy(p, &v, 8); }
static uint16_t get16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return ntohs(v); }
static uint32_t get32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return ntohl(v); }
static uint64_t get64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return be64toh(v); }

static int pin(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	return pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

static void *receiver(void *arg)
{
	struct run *r = arg;
	uint8_t bufs[BATCH][256];
	struct iovec iov[BATCH];
	struct mmsghdr msgs[BATCH];
	uint64_t last_rx = now_ns(CLOCK_MONOTONIC);
	int i, n;

	if (pin(r->recv_cpu))
		fprintf(stderr, "blast: cannot pin the receiver to CPU %d\n", r->recv_cpu);
	for (i = 0; i < BATCH; i++) {
		iov[i].iov_base = bufs[i];
		iov[i].iov_len = sizeof(bufs[i]);
		memset(&msgs[i], 0, sizeof(msgs[i]));
		msgs[i].msg_hdr.msg_iov = &iov[i];
		msgs[i].msg_hdr.msg_iovlen = 1;
	}
	while (r->received < r->count) {
		/* Busy poll: a receiver that never sleeps needs no wake-up per order. */
		n = recvmmsg(r->fd, msgs, BATCH, MSG_DONTWAIT, NULL);
		if (n <= 0) {
			if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
				break;
			if (r->send_done && now_ns(CLOCK_MONOTONIC) - last_rx > r->idle_ns)
				break;
			continue;
		}
		last_rx = now_ns(CLOCK_MONOTONIC);
		for (i = 0; i < n; i++) {
			const uint8_t *b = bufs[i];
			uint64_t seq, idx;
			uint32_t id;

			if (msgs[i].msg_len < HFT_MSG_LEN || get16(b + HFT_OFF_MAGIC) != HFT_MAGIC ||
			    b[HFT_OFF_VERSION] != HFT_VERSION || b[HFT_OFF_TYPE] != HFT_TYPE_BUY ||
			    memcmp(b + HFT_OFF_SYMBOL, r->template + HFT_OFF_SYMBOL, HFT_SYMBOL_LEN)) {
				r->bad++;
				continue;
			}
			seq = get64(b + HFT_OFF_SEQ);
			if (seq < r->seq_start || seq >= r->seq_start + r->count) {
				r->bad++;
				continue;
			}
			idx = seq - r->seq_start;
			if (r->seen[idx]) {
				r->duplicates++;
				continue;
			}
			r->seen[idx] = 1;
			id = get32(b + HFT_OFF_ASK);
			if (!r->received || id < r->min_id)
				r->min_id = id;
			if (id > r->max_id)
				r->max_id = id;
			r->received++;
		}
	}
	return NULL;
}

static void sender(struct run *r)
{
	static uint8_t bufs[BATCH][HFT_MSG_LEN];
	struct iovec iov[BATCH];
	struct mmsghdr msgs[BATCH];
	uint64_t start, target, now, batch = BATCH;
	int i, n, want;

	if (pin(r->send_cpu))
		fprintf(stderr, "blast: cannot pin the sender to CPU %d\n", r->send_cpu);
	if (r->rate) {                          /* small bursts at low rates */
		batch = r->rate / 10000;
		batch = batch < 1 ? 1 : batch > BATCH ? BATCH : batch;
	}
	for (i = 0; i < BATCH; i++) {
		memcpy(bufs[i], r->template, HFT_MSG_LEN);
		iov[i].iov_base = bufs[i];
		iov[i].iov_len = HFT_MSG_LEN;
		memset(&msgs[i], 0, sizeof(msgs[i]));
		msgs[i].msg_hdr.msg_iov = &iov[i];
		msgs[i].msg_hdr.msg_iovlen = 1;
	}
	start = now_ns(CLOCK_MONOTONIC);
	while (r->sent < r->count) {
		if (r->rate) {
			target = start + r->sent * 1000000000ULL / r->rate;
			while ((now = now_ns(CLOCK_MONOTONIC)) < target) {
				if (target - now > 200000) {
					struct timespec ts = { 0, (long)(target - now - 100000) };

					nanosleep(&ts, NULL);
				}
			}
		}
		want = (int)(r->count - r->sent < batch ? r->count - r->sent : batch);
		now = now_ns(CLOCK_REALTIME);
		for (i = 0; i < want; i++) {
			put64(bufs[i] + HFT_OFF_SEQ, r->seq_start + r->sent + i);
			put64(bufs[i] + HFT_OFF_TIMESTAMP, now);
		}
		n = sendmmsg(r->fd, msgs, want, 0);
		if (n < 0) {
			r->send_errors++;
			if (r->send_errors > 1000000)
				break;
			continue;
		}
		/* Unsent messages are sent again with the same seqs next turn. */
		r->sent += n;
	}
	r->elapsed_ns = now_ns(CLOCK_MONOTONIC) - start;
	r->send_done = 1;
}

static void usage(void)
{
	fprintf(stderr, "usage: blast --src IP --dst IP --port P --count N --rate R --seq-start S --symbol SYM "
			"--bid N --bid-qty N --ask N --ask-qty N --send-cpu C --recv-cpu C [--idle-ms MS]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "src", required_argument, NULL, 1 },
		{ "dst", required_argument, NULL, 2 },
		{ "port", required_argument, NULL, 3 },
		{ "count", required_argument, NULL, 4 },
		{ "rate", required_argument, NULL, 5 },
		{ "seq-start", required_argument, NULL, 6 },
		{ "symbol", required_argument, NULL, 7 },
		{ "bid", required_argument, NULL, 8 },
		{ "bid-qty", required_argument, NULL, 9 },
		{ "ask", required_argument, NULL, 10 },
		{ "ask-qty", required_argument, NULL, 11 },
		{ "send-cpu", required_argument, NULL, 12 },
		{ "recv-cpu", required_argument, NULL, 13 },
		{ "idle-ms", required_argument, NULL, 14 },
		{ NULL, 0, NULL, 0 },
	};
	struct sockaddr_in src = { .sin_family = AF_INET }, dst = { .sin_family = AF_INET };
	struct timeval tv = { 0, 20000 };
	const char *src_ip = NULL, *dst_ip = NULL, *symbol = NULL;
	static struct run r;
	int c, port = 0, bufsize = 32 << 20;
	uint32_t bid = 0, bid_qty = 0, ask = 0, ask_qty = 0;
	pthread_t rx;
	size_t len;

	r.send_cpu = r.recv_cpu = -1;
	r.idle_ns = 300000000ULL;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 1: src_ip = optarg; break;
		case 2: dst_ip = optarg; break;
		case 3: port = atoi(optarg); break;
		case 4: r.count = strtoull(optarg, NULL, 10); break;
		case 5: r.rate = strtoull(optarg, NULL, 10); break;
		case 6: r.seq_start = strtoull(optarg, NULL, 10); break;
		case 7: symbol = optarg; break;
		case 8: bid = strtoul(optarg, NULL, 10); break;
		case 9: bid_qty = strtoul(optarg, NULL, 10); break;
		case 10: ask = strtoul(optarg, NULL, 10); break;
		case 11: ask_qty = strtoul(optarg, NULL, 10); break;
		case 12: r.send_cpu = atoi(optarg); break;
		case 13: r.recv_cpu = atoi(optarg); break;
		case 14: r.idle_ns = strtoull(optarg, NULL, 10) * 1000000ULL; break;
		default: usage();
		}
	}
	if (!src_ip || !dst_ip || !symbol || port <= 0 || port > 65535 || !r.count || !r.seq_start ||
	    r.send_cpu < 0 || r.recv_cpu < 0 ||
	    inet_pton(AF_INET, src_ip, &src.sin_addr) != 1 || inet_pton(AF_INET, dst_ip, &dst.sin_addr) != 1)
		usage();
	len = strlen(symbol);
	if (len < 1 || len > HFT_SYMBOL_LEN)
		usage();
	r.seen = calloc(r.count, 1);
	if (!r.seen) {
		fprintf(stderr, "blast: out of memory\n");
		return 1;
	}
	memset(r.template, 0, sizeof(r.template));
	put16(r.template + HFT_OFF_MAGIC, HFT_MAGIC);
	r.template[HFT_OFF_VERSION] = HFT_VERSION;
	r.template[HFT_OFF_TYPE] = HFT_TYPE_UPDATE;
	memset(r.template + HFT_OFF_SYMBOL, ' ', HFT_SYMBOL_LEN);
	memcpy(r.template + HFT_OFF_SYMBOL, symbol, len);
	put32(r.template + HFT_OFF_BID, bid);
	put32(r.template + HFT_OFF_BID_QTY, bid_qty);
	put32(r.template + HFT_OFF_ASK, ask);
	put32(r.template + HFT_OFF_ASK_QTY, ask_qty);

	dst.sin_port = htons(port);
	r.fd = socket(AF_INET, SOCK_DGRAM, 0);
	if (r.fd < 0 || bind(r.fd, (struct sockaddr *)&src, sizeof(src)) < 0 ||
	    connect(r.fd, (struct sockaddr *)&dst, sizeof(dst)) < 0) {
		fprintf(stderr, "blast: socket %s -> %s:%d: %s\n", src_ip, dst_ip, port, strerror(errno));
		return 1;
	}
	/* Room for every order even if the receiver falls behind for a while. */
	if (setsockopt(r.fd, SOL_SOCKET, SO_RCVBUFFORCE, &bufsize, sizeof(bufsize)) < 0)
		setsockopt(r.fd, SOL_SOCKET, SO_RCVBUF, &bufsize, sizeof(bufsize));
	setsockopt(r.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));

	if (pthread_create(&rx, NULL, receiver, &r)) {
		fprintf(stderr, "blast: cannot start the receiver\n");
		return 1;
	}
	sender(&r);
	pthread_join(rx, NULL);
	printf("{\"sent\":%llu,\"send_errors\":%llu,\"elapsed_ns\":%llu,\"received\":%llu,\"bad\":%llu,"
	       "\"duplicates\":%llu,\"min_id\":%llu,\"max_id\":%llu}\n",
	       (unsigned long long)r.sent, (unsigned long long)r.send_errors,
	       (unsigned long long)r.elapsed_ns, (unsigned long long)r.received,
	       (unsigned long long)r.bad, (unsigned long long)r.duplicates,
	       (unsigned long long)r.min_id, (unsigned long long)r.max_id);
	return 0;
}
