"""The engine's order frames: a UDP payload of one or more 44-byte orders
(hft_protocol.h's order format), in decision order."""

from __future__ import annotations

from ..constants import MSG_LEN
from ..errors import ProtocolError
from ..protocol import Order, decode_order, encode_order


def decode_orders(payload: bytes) -> list[Order]:
    """Every order of an order frame's payload; a payload that is not whole orders is an error."""
    if not payload or len(payload) % MSG_LEN:
        raise ProtocolError(f"an order frame's payload of {len(payload)} bytes is not whole {MSG_LEN}-byte orders")
    return [decode_order(payload[i : i + MSG_LEN]) for i in range(0, len(payload), MSG_LEN)]


def encode_orders(orders: list[Order]) -> bytes:
    """The payload the engine writes for these orders (for tests and models)."""
    return b"".join(encode_order(o) for o in orders)
