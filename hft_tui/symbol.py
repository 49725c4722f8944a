"""A symbol name, checked once where it enters.

Names come from a config file, the command line, the app's editor and (as
8 bytes) the wire.  Each edge makes a :class:`Symbol`; everything below
takes one and never checks again.  A Symbol is a ``str``, so it prints,
compares and keys a dict as the name it is.
"""

from __future__ import annotations

import re

from .constants import SYMBOL_LEN
from .errors import SymbolError

_SYMBOL = re.compile(rf"^[A-Za-z0-9.\-]{{1,{SYMBOL_LEN}}}$")


class Symbol(str):
    """1..8 of letters, digits, '.', '-' (the engine's key is these bytes, space padded)."""

    __slots__ = ()

    def __new__(cls, name: object) -> Symbol:
        if isinstance(name, Symbol):
            return name
        if not isinstance(name, str) or not _SYMBOL.fullmatch(name):
            raise SymbolError(f"invalid symbol {name!r}: 1 to {SYMBOL_LEN} of letters, digits, '.', '-'")
        return super().__new__(cls, name)

    @property
    def key(self) -> bytes:
        """The 8 bytes the engine keys on and the wire carries: ASCII, left-justified, space-padded."""
        return self.encode("ascii").ljust(SYMBOL_LEN, b" ")
