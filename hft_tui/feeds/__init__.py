"""The exchange feeds' wire formats, pure: encoders and decoders of IEX-TP
(TOPS 1.6, DEEP 1.0) segments and messages (iex.py), MoldUDP64 packets
carrying ITCH 5.0 messages (itch.py), and the engine's order frames of
several orders (orders.py).

Every offset, length and code comes from the decoder headers the XDP
program compiles (ebpf/feed_iex.h, ebpf/feed_itch.h, parsed by
hft_tui.constants), so the program, the simulator, the tests and the
backtest read one definition.
"""

from __future__ import annotations

from .orders import decode_orders, encode_orders

__all__ = ["decode_orders", "encode_orders"]
