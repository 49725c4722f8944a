/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The feed decoder, chosen at compile time: -DHFT_FEED_IEX (IEX-TP, TOPS
 * and DEEP), -DHFT_FEED_ITCH (MoldUDP64 with ITCH 5.0) or -DHFT_FEED_HFT1
 * (the default: the engine's own protocol).  BCC compiles at attach, so the
 * control plane passes the define the config's `feed` names
 * (hft_tui/program.py); only that decoder is in the program.
 *
 * BPF-only.
 */
#ifndef HFT_FEED_H
#define HFT_FEED_H

#if defined(HFT_FEED_IEX) + defined(HFT_FEED_ITCH) + defined(HFT_FEED_HFT1) > 1
#error "more than one HFT_FEED_* define"
#endif

#if defined(HFT_FEED_IEX)
#include "feed_iex.h"
#elif defined(HFT_FEED_ITCH)
#include "feed_itch.h"
#else
#include "feed_hft1.h"
#endif

#ifndef FEED_KEEPS_LENGTH
#define FEED_KEEPS_LENGTH        0
#endif

#endif /* HFT_FEED_H */
