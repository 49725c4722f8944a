/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The C userspace bot: what a careful engineer without XDP would write.
 *
 * A recvmsg/sendmsg loop on one UDP socket: read an update, decide with the
 * engine's rule, answer the sender with an order in the engine's format.
 * With --busy the socket is polled with MSG_DONTWAIT in a spin loop (the
 * bot never sleeps, so there is no wake-up on the receive side); without it
 * the receive blocks.
 *
 * Offsets and constants come from ebpf/hft_protocol.h (compile with
 * -I ebpf), the same header the XDP program is built from.
 *
 *   cbot --bind IP --port PORT --buy-target N --sell-target N --tick-size N
 *        --base-qty N --scale-qty N --max-order-qty N --max-position N [--busy]
 *
 * Prints "ready" once bound.  State (last seq and position per symbol,
 * order ids 1, 2, 3, ...) is the bot's own.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "hft_protocol.h"

#define MAX_SYMBOLS 1024          /* open addressing, power of two */

struct symbol_state {
	uint64_t key;                 /* the 8 symbol bytes; 0 = empty slot */
	uint64_t last_seq;
	uint64_t position;
};

static struct symbol_state table[MAX_SYMBOLS];

struct params {
	uint64_t buy_target, sell_target, tick_size, base_qty, scale_qty;
	uint64_t max_order_qty, max_position;
};

static uint16_t get16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return ntohs(v); }
static uint32_t get32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return ntohl(v); }
static uint64_t get64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return be64toh(v); }
static void put32(uint8_t *p, uint32_t v) { v = htonl(v); memcpy(p, &v, 4); }

static uint64_t min64(uint64_t a, uint64_t b) { return a < b ? a : b; }

static struct symbol_state *lookup(const uint8_t *symbol)
{
	uint64_t key, h;
	unsigned int i;

	memcpy(&key, symbol, sizeof(key));
	if (!key)
		key = 1;
	h = key * 0x9e3779b97f4a7c15ULL;
	for (i = 0; i < MAX_SYMBOLS; i++) {
		struct symbol_state *s = &table[((h >> 54) + i) & (MAX_SYMBOLS - 1)];

		if (s->key == key)
			return s;
		if (!s->key) {
			s->key = key;
			return s;
		}
	}
	return NULL;
}

/* Turns the update in buf into an order in place; 0 when it does not trade. */
static int decide(uint8_t *buf, ssize_t len, const struct params *p, uint32_t *order_id)
{
	uint64_t seq, bid, bid_qty, ask, ask_qty, qty, ticks, tick;
	struct symbol_state *st;
	uint8_t side;

	if (len < HFT_MSG_LEN || get16(buf + HFT_OFF_MAGIC) != HFT_MAGIC ||
	    buf[HFT_OFF_VERSION] != HFT_VERSION || buf[HFT_OFF_TYPE] != HFT_TYPE_UPDATE)
		return 0;
	st = lookup(buf + HFT_OFF_SYMBOL);
	if (!st)
		return 0;
	seq = get64(buf + HFT_OFF_SEQ);
	if (st->last_seq && seq <= st->last_seq)
		return 0;                     /* duplicate or replay: never trade */
	st->last_seq = seq;
	bid = get32(buf + HFT_OFF_BID);
	bid_qty = get32(buf + HFT_OFF_BID_QTY);
	ask = get32(buf + HFT_OFF_ASK);
	ask_qty = get32(buf + HFT_OFF_ASK_QTY);
	tick = p->tick_size ? p->tick_size : 1;

	if (ask && ask_qty && ask <= p->buy_target) {
		ticks = (p->buy_target - ask) / tick;
		qty = min64(min64(ask_qty, p->max_order_qty), p->base_qty + p->scale_qty * ticks);
		qty = min64(qty, p->max_position > st->position ? p->max_position - st->position : 0);
		if (!qty)
			return 0;
		st->position += qty;
		side = HFT_TYPE_BUY;
		put32(buf + HFT_OFF_BID, (uint32_t)ask);
	} else if (p->sell_target && st->position && bid && bid_qty && bid >= p->sell_target) {
		qty = min64(min64(bid_qty, p->max_order_qty), st->position);
		st->position -= qty;
		side = HFT_TYPE_SELL;
		put32(buf + HFT_OFF_BID, (uint32_t)bid);
	} else {
		return 0;
	}
	buf[HFT_OFF_TYPE] = side;
	put32(buf + HFT_OFF_BID_QTY, (uint32_t)qty);
	put32(buf + HFT_OFF_ASK, ++*order_id);
	put32(buf + HFT_OFF_ASK_QTY, 0);
	return 1;
}

static void usage(void)
{
	fprintf(stderr, "usage: cbot --bind IP --port PORT --buy-target N --sell-target N --tick-size N "
			"--base-qty N --scale-qty N --max-order-qty N --max-position N [--busy]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "bind", required_argument, NULL, 'b' },
		{ "port", required_argument, NULL, 'p' },
		{ "buy-target", required_argument, NULL, 1 },
		{ "sell-target", required_argument, NULL, 2 },
		{ "tick-size", required_argument, NULL, 3 },
		{ "base-qty", required_argument, NULL, 4 },
		{ "scale-qty", required_argument, NULL, 5 },
		{ "max-order-qty", required_argument, NULL, 6 },
		{ "max-position", required_argument, NULL, 7 },
		{ "busy", no_argument, NULL, 'y' },
		{ NULL, 0, NULL, 0 },
	};
	struct params p = { 0 };
	struct sockaddr_in addr = { .sin_family = AF_INET }, peer;
	uint8_t buf[2048];
	struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) };
	struct msghdr msg = { .msg_name = &peer, .msg_iov = &iov, .msg_iovlen = 1 };
	uint32_t order_id = 0;
	int busy = 0, port = 0, fd, c, flags;
	const char *bind_ip = NULL;
	ssize_t n;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'b': bind_ip = optarg; break;
		case 'p': port = atoi(optarg); break;
		case 1: p.buy_target = strtoull(optarg, NULL, 10); break;
		case 2: p.sell_target = strtoull(optarg, NULL, 10); break;
		case 3: p.tick_size = strtoull(optarg, NULL, 10); break;
		case 4: p.base_qty = strtoull(optarg, NULL, 10); break;
		case 5: p.scale_qty = strtoull(optarg, NULL, 10); break;
		case 6: p.max_order_qty = strtoull(optarg, NULL, 10); break;
		case 7: p.max_position = strtoull(optarg, NULL, 10); break;
		case 'y': busy = 1; break;
		default: usage();
		}
	}
	if (!bind_ip || port <= 0 || port > 65535 || inet_pton(AF_INET, bind_ip, &addr.sin_addr) != 1)
		usage();
	addr.sin_port = htons(port);
	fd = socket(AF_INET, SOCK_DGRAM, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		fprintf(stderr, "cbot: bind %s:%d: %s\n", bind_ip, port, strerror(errno));
		return 1;
	}
	printf("ready\n");
	fflush(stdout);

	flags = busy ? MSG_DONTWAIT : 0;
	for (;;) {
		msg.msg_namelen = sizeof(peer);
		iov.iov_len = sizeof(buf);
		n = recvmsg(fd, &msg, flags);
		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
				continue;
			fprintf(stderr, "cbot: recvmsg: %s\n", strerror(errno));
			return 1;
		}
		if (!decide(buf, n, &p, &order_id))
			continue;
		iov.iov_len = n;
		if (sendmsg(fd, &msg, 0) < 0 && errno != EINTR)
			fprintf(stderr, "cbot: sendmsg: %s\n", strerror(errno));
	}
}
