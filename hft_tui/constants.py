"""Constants of the wire protocol and the maps, read from the C headers.

ebpf/hft_protocol.h and ebpf/hft_structs.h are the one source of truth; this
module parses their ``#define HFT_*`` lines so nothing is typed twice.
"""

from __future__ import annotations

import re
from types import MappingProxyType

from .paths import EBPF_DIR

HEADERS = ("hft_protocol.h", "hft_structs.h")
_DEFINE = re.compile(r"^#define[ \t]+(HFT_\w+)[ \t]+(\S+)", re.MULTILINE)


def _value(token: str) -> int:
    if len(token) == 3 and token[0] == token[2] == "'":
        return ord(token[1])
    return int(token, 0)


def parse_defines(text: str) -> dict[str, int]:
    return {name: _value(token) for name, token in _DEFINE.findall(text)}


def _load() -> dict[str, int]:
    values: dict[str, int] = {}
    for header in HEADERS:
        values.update(parse_defines((EBPF_DIR / header).read_text()))
    return values


C = MappingProxyType(_load())

MAGIC = C["HFT_MAGIC"]
VERSION = C["HFT_VERSION"]
MSG_LEN = C["HFT_MSG_LEN"]
DEFAULT_FEED_PORT = C["HFT_DEFAULT_FEED_PORT"]
TYPE_UPDATE = C["HFT_TYPE_UPDATE"]
TYPE_BUY = C["HFT_TYPE_BUY"]
TYPE_SELL = C["HFT_TYPE_SELL"]
SYMBOL_LEN = C["HFT_SYMBOL_LEN"]
PRICE_SCALE = C["HFT_PRICE_SCALE"]
MAX_UDP_LEN = C["HFT_MAX_UDP_LEN"]
MAX_SYMBOLS = C["HFT_MAX_SYMBOLS"]

OFFSETS = MappingProxyType(
    {name[len("HFT_OFF_") :].lower(): value for name, value in C.items() if name.startswith("HFT_OFF_")}
)


def _names(prefix: str, exclude: tuple[str, ...] = ()) -> dict[int, str]:
    return {
        value: name[len(prefix) :].lower()
        for name, value in C.items()
        if name.startswith(prefix) and name not in exclude
    }


# reason number -> name, e.g. 4 -> "position_limit"
REJECT_REASONS = MappingProxyType(_names("HFT_REJECT_"))
KILL_STATES = MappingProxyType(_names("HFT_KILL_"))
EVENT_KINDS = MappingProxyType(_names("HFT_EVENT_"))
NO_TRADE_ACTIONS = MappingProxyType(_names("HFT_NO_TRADE_"))
NUM_REJECTS = C["HFT_NUM_REJECTS"]
NUM_COUNTERS = C["HFT_NUM_COUNTERS"]
CTR_REJECT_BASE = C["HFT_CTR_REJECT_BASE"]
COUNTERS = MappingProxyType(_names("HFT_CTR_", exclude=("HFT_CTR_REJECT_BASE",)))
KILL_OFF = C["HFT_KILL_OFF"]
KILL_OPERATOR = C["HFT_KILL_OPERATOR"]
KILL_LOSS_LIMIT = C["HFT_KILL_LOSS_LIMIT"]
EVENT_UPDATE = C["HFT_EVENT_UPDATE"]
EVENT_ORDER = C["HFT_EVENT_ORDER"]
EVENT_REJECT = C["HFT_EVENT_REJECT"]
EVENT_KILL = C["HFT_EVENT_KILL"]

# XDP attach flags (include/uapi/linux/if_link.h); not in our headers.
XDP_FLAGS_UPDATE_IF_NOEXIST = 1
XDP_FLAGS_SKB_MODE = 2
XDP_FLAGS_DRV_MODE = 4
# BPF map update flags (include/uapi/linux/bpf.h).
BPF_ANY = 0
BPF_NOEXIST = 1
BPF_EXIST = 2
BPF_F_LOCK = 4
