/* SPDX-License-Identifier: GPL-2.0 */
/*
 * hft-tui wire protocol: the one definition of every offset and constant.
 *
 * Python reads this file (hft_tui/constants.py parses the #defines), so a
 * value changed here changes the control plane, the simulator and the
 * tests together.  Keep every value a plain integer or character literal.
 */
#ifndef HFT_PROTOCOL_H
#define HFT_PROTOCOL_H

#define HFT_MAGIC            0x4854   /* "HT" */
#define HFT_VERSION          1
#define HFT_MSG_LEN          44       /* bytes read from the UDP payload */
#define HFT_DEFAULT_FEED_PORT 9000

#define HFT_TYPE_UPDATE      'U'
#define HFT_TYPE_BUY         'B'
#define HFT_TYPE_SELL        'S'

/* Payload offsets; every integer is big-endian. */
#define HFT_OFF_MAGIC        0   /* u16 */
#define HFT_OFF_VERSION      2   /* u8 */
#define HFT_OFF_TYPE         3   /* u8 */
#define HFT_OFF_SYMBOL       4   /* 8 ASCII bytes, space padded */
#define HFT_OFF_SEQ          12  /* u64 feed sequence number */
#define HFT_OFF_BID          20  /* u32 bid price   | order price */
#define HFT_OFF_BID_QTY      24  /* u32 bid qty     | order qty */
#define HFT_OFF_ASK          28  /* u32 ask price   | order id */
#define HFT_OFF_ASK_QTY      32  /* u32 ask qty     | 0 */
#define HFT_OFF_TIMESTAMP    36  /* u64 sender ns, echoed */

#define HFT_SYMBOL_LEN       8
#define HFT_PRICE_SCALE      10000    /* 4 implied decimals (ITCH Price(4)) */

/*
 * Largest UDP datagram (header + payload) the engine answers.  The order
 * keeps the packet's length and its UDP checksum is recomputed over the
 * whole datagram in a bounded loop, so the loop needs a bound: a standard
 * 1500-byte MTU minus the minimal IPv4 header.
 */
#define HFT_MAX_UDP_LEN      1480

#endif /* HFT_PROTOCOL_H */
