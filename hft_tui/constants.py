"""Constants of the wire protocols and the maps, read from the C headers.

ebpf/hft_protocol.h and ebpf/hft_structs.h are the one source of truth for
the engine's own protocol and maps, ebpf/feed_iex.h and ebpf/feed_itch.h for
the exchange feeds' layouts; this module parses their ``#define`` lines
(``HFT_*``; ``IEX_*``; ``MOLD_*`` and ``ITCH_*``) so nothing is typed twice.
"""

from __future__ import annotations

import re
from types import MappingProxyType

from .paths import EBPF_DIR

HEADERS = ("hft_protocol.h", "hft_structs.h")
# Exchange feed layouts: header -> the prefixes of its layout #defines.
FEED_HEADERS = {"feed_iex.h": ("IEX_",), "feed_itch.h": ("MOLD_", "ITCH_")}
_DEFINE = re.compile(r"^#define[ \t]+(HFT_\w+)[ \t]+(\S+)", re.MULTILINE)
_LAYOUT_DEFINE = re.compile(r"^#define[ \t]+((?:IEX|MOLD|ITCH)_\w+)[ \t]+(\S+)", re.MULTILINE)


def _value(token: str) -> int:
    if len(token) == 3 and token[0] == token[2] == "'":
        return ord(token[1])
    return int(token, 0)


def parse_defines(text: str, pattern: re.Pattern[str] = _DEFINE) -> dict[str, int]:
    return {name: _value(token) for name, token in pattern.findall(text)}


def _load() -> dict[str, int]:
    values: dict[str, int] = {}
    for header in HEADERS:
        values.update(parse_defines((EBPF_DIR / header).read_text()))
    return values


C = MappingProxyType(_load())


def _load_layout(header: str, prefix: str) -> MappingProxyType[str, int]:
    values = parse_defines((EBPF_DIR / header).read_text(), _LAYOUT_DEFINE)
    return MappingProxyType({name: value for name, value in values.items() if name.startswith(prefix)})


# The feeds' layouts, by #define name: IEX["IEX_Q_OFF_BID"] == 22.
IEX = _load_layout("feed_iex.h", "IEX_")
MOLD = _load_layout("feed_itch.h", "MOLD_")
ITCH = _load_layout("feed_itch.h", "ITCH_")

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
SLOT_HASH_MULT = C["HFT_SLOT_HASH_MULT"]

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
ROUTE_MODES = MappingProxyType(_names("HFT_ROUTE_"))
ROUTE_REFLECT = C["HFT_ROUTE_REFLECT"]
ROUTE_GATEWAY = C["HFT_ROUTE_GATEWAY"]
MAX_MESSAGES = C["HFT_MAX_MESSAGES"]
MAX_ORDERS_CAP = C["HFT_MAX_ORDERS_CAP"]
MAX_FEED_SOURCES = C["HFT_MAX_FEED_SOURCES"]
MAX_SOURCE_MACS = C["HFT_MAX_SOURCE_MACS"]
MAX_CHANNELS = C["HFT_MAX_CHANNELS"]
SESSION_LEN = C["HFT_SESSION_LEN"]

# XDP attach flags (include/uapi/linux/if_link.h); not in our headers.
XDP_FLAGS_UPDATE_IF_NOEXIST = 1
XDP_FLAGS_SKB_MODE = 2
XDP_FLAGS_DRV_MODE = 4
# BPF map update flags (include/uapi/linux/bpf.h).
BPF_ANY = 0
BPF_NOEXIST = 1
BPF_EXIST = 2
BPF_F_LOCK = 4
