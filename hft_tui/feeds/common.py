"""What the feed codecs share: symbols as the wire holds them, blocks of (length, message), the skipped messages."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from ..errors import ProtocolError


@dataclass(frozen=True)
class OtherMessage:
    """A message of a type the engine skips by its length (IEX trade reports and
    security directory, ITCH executions, cancels, deletes, ...): its bytes as sent."""

    raw: bytes

    @property
    def type(self) -> int:
        return self.raw[0]


def symbol_bytes(symbol: str, length: int) -> bytes:
    """A symbol as the feeds carry it: ASCII, left-justified, space padded (the engine's key)."""
    try:
        raw = symbol.encode("ascii")
    except UnicodeEncodeError:
        raise ProtocolError(f"symbol {symbol!r} is not ASCII") from None
    if not 1 <= len(raw) <= length:
        raise ProtocolError(f"symbol {symbol!r}: 1 to {length} characters")
    return raw.ljust(length, b" ")


def symbol_text(raw: bytes) -> str:
    """A symbol field as the engine keys it: its space padding taken off, nothing else
    (a NUL-padded field is another key than the space-padded one, unknown to the engine)."""
    return raw.decode("ascii", "replace").rstrip(" ")


def ascii_text(raw: bytes) -> str:
    return raw.decode("ascii", "replace")


def join_blocks(messages: tuple[bytes, ...] | list[bytes], length_format: str) -> bytes:
    """Messages as blocks: each a length (``length_format``: "<H" or ">H") then the bytes."""
    fmt = struct.Struct(length_format)
    out = bytearray()
    for m in messages:
        if len(m) > 0xFFFF:
            raise ProtocolError(f"a message of {len(m)} bytes does not fit a block")
        out += fmt.pack(len(m)) + m
    return bytes(out)


def split_blocks(body: bytes, count: int, length_format: str, what: str, *, partial: bool = False) -> tuple[bytes, ...]:
    """``count`` blocks from ``body``; a block running past the end is an error, or with
    ``partial`` where they stop: the blocks before it, as the engine reads such a packet
    (the messages before the bad block are decided, the rest are not read)."""
    fmt = struct.Struct(length_format)
    pos, out = 0, []
    for i in range(count):
        if pos + fmt.size > len(body):
            if partial:
                break
            raise ProtocolError(f"{what}: block {i} of {count} starts past the end ({len(body)} bytes)")
        (n,) = fmt.unpack_from(body, pos)
        pos += fmt.size
        if pos + n > len(body):
            if partial:
                break
            raise ProtocolError(f"{what}: block {i} of {count} ({n} bytes) runs past the end")
        out.append(body[pos : pos + n])
        pos += n
    return tuple(out)
