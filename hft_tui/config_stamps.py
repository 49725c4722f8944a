"""The config_stamps map through its mmap: where every config write is published.

ebpf/hft_structs.h says why: the program keeps per CPU the config it last
copied under the config's lock, with the slot's stamp as it read it before
the copy, and uses that copy without the lock only while the slot still
holds that stamp.  So a config write (maps.py) is complete when a fresh
stamp is at its slot, written here with one aligned 8-byte store, the way
rings.py moves a ring's consumer position.  A slot's stamps only grow.
"""

from __future__ import annotations

import mmap
import time

from . import libbpf
from .constants import SLOT_HASH_MULT
from .errors import MapsError
from .symbol import Symbol

_U64 = (1 << 64) - 1


class ConfigStamps:
    """The config_stamps map through its mmap: one u64 a slot, the symbols' slots
    then the engine-wide config's.  A stamp is published with one aligned 8-byte
    store (the kernel never sees a mix of two), strictly above the slot's last."""

    def __init__(self, fd: int) -> None:
        info = libbpf.map_info(fd)
        if info.value_size != 8 or info.max_entries < 2 or (info.max_entries - 1) & (info.max_entries - 2):
            raise MapsError(
                f"map config_stamps holds {info.max_entries} values of {info.value_size} bytes, this hft-tui "
                "expects a power of two of u64 slots and one more: the running engine is another version"
            )
        self.symbol_slots = info.max_entries - 1
        self._shift = 64 - (self.symbol_slots.bit_length() - 1)
        size = -(-info.max_entries * 8 // mmap.PAGESIZE) * mmap.PAGESIZE
        try:
            self._map = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        except OSError as exc:
            raise MapsError(f"cannot map config_stamps: {exc.strerror}") from None
        self._words = memoryview(self._map)[: info.max_entries * 8].cast("Q")

    def symbol_slot(self, name: Symbol) -> int:
        """The symbol's slot, as the program computes it (scratch.h: config_slot)."""
        key = int.from_bytes(Symbol(name).key, "little")
        return ((key * SLOT_HASH_MULT) & _U64) >> self._shift

    @property
    def global_slot(self) -> int:
        return self.symbol_slots

    def publish(self, slot: int) -> int:
        """A fresh stamp at ``slot``: the write before it is complete.  Returns it."""
        stamp = max(time.monotonic_ns(), self._words[slot] + 1)
        self._words[slot] = stamp  # one store
        return stamp

    def close(self) -> None:
        self._words.release()
        self._map.close()
