"""ctypes mirrors of ebpf/hft_structs.h.

tests/test_layout.py compiles the header with gcc and checks every field's
offset and every struct's size against these classes, so a change on one
side that is not made on the other fails the tests instead of corrupting a
map.
"""

from __future__ import annotations

import ctypes
from ctypes import c_char, c_int64, c_uint8, c_uint16, c_uint32, c_uint64

from .constants import MAX_FEED_SOURCES, MAX_SOURCE_MACS, SESSION_LEN, SYMBOL_LEN
from .symbol import Symbol


class SpinLock(ctypes.Structure):
    """struct bpf_spin_lock: user space never touches it (BPF_F_LOCK does)."""

    _fields_ = [("val", c_uint32)]


class SymbolKey(ctypes.Structure):
    _fields_ = [("name", c_char * SYMBOL_LEN)]


class KernelSymbolParams(ctypes.Structure):
    """struct hft_symbol_params: one symbol's parameters as the kernel holds them
    (the fields of hft_tui.config.SymbolParams, in kernel units)."""

    _fields_ = [
        ("enabled", c_uint32),
        ("buy_target", c_uint32),
        ("sell_target", c_uint32),
        ("base_qty", c_uint32),
        ("scale_qty", c_uint32),
        ("tick_size", c_uint32),
        ("max_order_qty", c_uint32),
        ("max_position", c_uint32),
        ("collar_bps", c_uint32),
        ("reference_price", c_uint32),
        ("rate_per_sec", c_uint32),
        ("burst", c_uint32),
        ("max_notional", c_uint64),
    ]


class SymbolConfig(ctypes.Structure):
    """The symbol_config map value; ``p``'s fields read as the value's own (cfg.buy_target).
    ``seq_epoch`` is not a parameter: a new value resets the symbol's sequence."""

    _anonymous_ = ("p",)
    _fields_ = [
        ("lock", SpinLock),
        ("_pad", c_uint32),
        ("p", KernelSymbolParams),
        ("seq_epoch", c_uint32),
        ("_pad1", c_uint32),
    ]


class SymbolState(ctypes.Structure):
    _fields_ = [
        ("lock", SpinLock),
        ("position", c_uint32),
        ("pending_buy", c_uint32),
        ("pending_sell", c_uint32),
        ("bought", c_uint64),
        ("sold", c_uint64),
        ("capital_spent", c_uint64),
        ("proceeds", c_uint64),
        ("buy_orders", c_uint64),
        ("sell_orders", c_uint64),
        ("updates", c_uint64),
        ("rejects", c_uint64),
        ("last_seq", c_uint64),
        ("last_update_ns", c_uint64),
        ("open_cost", c_uint64),
        ("pending_cost", c_uint64),
        ("pnl", c_int64),
        ("tokens", c_uint64),
        ("last_refill_ns", c_uint64),
        ("last_bid", c_uint32),
        ("last_bid_qty", c_uint32),
        ("last_ask", c_uint32),
        ("last_ask_qty", c_uint32),
        ("mark", c_uint32),
        ("session_ref", c_uint32),
        ("halted", c_uint32),
        ("seq_session", c_uint32),
        ("seq_epoch", c_uint32),
        ("book_session", c_uint32),
        ("status_seq", c_uint64),
        ("status_epoch", c_uint32),
        ("book_bid", c_uint32),
        ("book_ask", c_uint32),
        ("_pad", c_uint32),
    ]


class KernelGlobalParams(ctypes.Structure):
    """struct hft_global_params: the engine-wide parameters as the kernel holds them."""

    _fields_ = [
        ("feed_port", c_uint32),
        ("on_no_trade", c_uint32),
        ("update_sample", c_uint32),
        ("deadman_ms", c_uint32),
        ("rate_per_sec", c_uint32),
        ("burst", c_uint32),
        ("max_notional", c_uint64),
        ("loss_limit", c_uint64),
        ("max_orders_per_packet", c_uint32),
        ("_pad1", c_uint32),
        ("max_seq_jump", c_uint64),
    ]


class GlobalConfig(ctypes.Structure):
    """The global_config map value; ``p``'s fields read as the value's own (g.deadman_ms)."""

    _anonymous_ = ("p",)
    _fields_ = [
        ("lock", SpinLock),
        ("_pad", c_uint32),
        ("p", KernelGlobalParams),
        ("config_version", c_uint64),
    ]


class GlobalState(ctypes.Structure):
    _fields_ = [
        ("lock", SpinLock),
        ("_pad", c_uint32),
        ("tokens", c_uint64),
        ("last_refill_ns", c_uint64),
    ]


class Totals(ctypes.Structure):
    _fields_ = [
        ("order_seq", c_uint64),
        ("open_cost", c_uint64),
        ("pnl", c_int64),
    ]


class FeedCounters(ctypes.Structure):
    """struct hft_feed_counters: one CPU's feed counters (the map is per-CPU)."""

    _fields_ = [
        ("packets", c_uint64),
        ("messages", c_uint64),
        ("in_transition", c_uint64),
        ("truncated_packets", c_uint64),
        ("dup_packets", c_uint64),
        ("heartbeats", c_uint64),
        ("channels_full", c_uint64),
        ("grow_failed", c_uint64),
        ("frame_errors", c_uint64),
        ("not_for_us", c_uint64),
    ]


class ChannelKey(ctypes.Structure):
    """struct hft_channel_key: IEX session id (u32 LE) + channel id; MoldUDP64 session."""

    _fields_ = [
        ("session", c_uint8 * SESSION_LEN),
        ("_pad", c_uint16),
        ("channel", c_uint32),
    ]


class ChannelState(ctypes.Structure):
    _fields_ = [
        ("lock", SpinLock),
        ("_pad", c_uint32),
        ("next_seq", c_uint64),
        ("packets", c_uint64),
        ("messages", c_uint64),
        ("gaps", c_uint64),
        ("gap_messages", c_uint64),
        ("dup_packets", c_uint64),
        ("seq_jumps", c_uint64),
    ]


class Route(ctypes.Structure):
    """struct hft_route: addresses and ports in network byte order (as bytes in memory)."""

    _fields_ = [
        ("mode", c_uint32),
        ("gw_mac", c_uint8 * 6),
        ("src_mac", c_uint8 * 6),
        ("gw_ip", c_uint32),
        ("src_ip", c_uint32),
        ("gw_port", c_uint16),
        ("src_port", c_uint16),
    ]


class FeedFilter(ctypes.Structure):
    """struct hft_feed_filter: addresses in network byte order, networks already masked."""

    _fields_ = [
        ("feed_addr", c_uint32),
        ("n_sources", c_uint32),
        ("src_net", c_uint32 * MAX_FEED_SOURCES),
        ("src_mask", c_uint32 * MAX_FEED_SOURCES),
        ("n_macs", c_uint32),
        ("src_macs", (c_uint8 * 6) * MAX_SOURCE_MACS),
    ]


class Event(ctypes.Structure):
    _fields_ = [
        ("ts_ns", c_uint64),
        ("sender_ts", c_uint64),
        ("seq", c_uint64),
        ("symbol", c_char * SYMBOL_LEN),
        ("kind", c_uint32),
        ("side", c_uint32),
        ("price", c_uint32),
        ("qty", c_uint32),
        ("order_id", c_uint32),
        ("reason", c_uint32),
        ("bid", c_uint32),
        ("bid_qty", c_uint32),
        ("ask", c_uint32),
        ("ask_qty", c_uint32),
        ("position", c_uint32),
        ("_pad", c_uint32),
        ("pnl", c_int64),
    ]


# C struct name -> mirror, for the layout test.
MIRRORS = {
    "hft_symbol_key": SymbolKey,
    "hft_symbol_params": KernelSymbolParams,
    "hft_symbol_config": SymbolConfig,
    "hft_symbol_state": SymbolState,
    "hft_global_params": KernelGlobalParams,
    "hft_global_config": GlobalConfig,
    "hft_global_state": GlobalState,
    "hft_totals": Totals,
    "hft_feed_counters": FeedCounters,
    "hft_channel_key": ChannelKey,
    "hft_channel_state": ChannelState,
    "hft_route": Route,
    "hft_feed_filter": FeedFilter,
    "hft_event": Event,
}


def symbol_key(name: Symbol) -> SymbolKey:
    """The 8-byte key: ASCII, left-justified, space-padded (as on the wire)."""
    return SymbolKey(Symbol(name).key)


def key_name(raw: bytes) -> str:
    return raw.decode("ascii", "replace").rstrip(" \0")


def as_dict(value: ctypes.Structure) -> dict[str, int | bytes]:
    """Fields of a mirror as a plain dict, without the lock and padding; the
    fields of an anonymous nested struct (a config's params) are its own.
    ctypes reads an integer field as an int and a char array as bytes."""
    out: dict[str, int | bytes] = {}
    anonymous = getattr(type(value), "_anonymous_", ())
    for field in value._fields_:
        name = field[0]  # (name, type) or (name, type, bit width)
        if name == "lock" or name.startswith("_"):
            continue
        if name in anonymous:
            out.update(as_dict(getattr(value, name)))
        else:
            out[name] = getattr(value, name)
    return out
