"""Where things live: the C sources, the bpffs pins and the runtime state."""

from __future__ import annotations

import re
from pathlib import Path

from .errors import PathError

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_DIR = PACKAGE_DIR.parent
EBPF_DIR = REPO_DIR / "ebpf"
STRATEGY_SOURCE = EBPF_DIR / "strategy.c"
DEMO_CONFIG = REPO_DIR / "configs" / "demo.toml"

BPFFS = Path("/sys/fs/bpf")
PIN_ROOT = BPFFS / "hft_tui"
# bpffs holds only BPF objects; everything else the engine keeps goes here.
RUN_DIR = Path("/run/hft-tui")
JOURNAL_DIR = Path("/var/lib/hft-tui")

_IFNAME = re.compile(r"^[A-Za-z0-9_.:-]{1,15}$")


def check_ifname(ifname: str) -> str:
    """Interface names reach paths and netlink, so they are checked first."""
    if not isinstance(ifname, str) or not _IFNAME.fullmatch(ifname) or ifname in (".", ".."):
        raise PathError(f"invalid interface name {ifname!r}: 1-15 of letters, digits, '_', '.', ':', '-'")
    return ifname


def pin_dir(ifname: str) -> Path:
    return PIN_ROOT / check_ifname(ifname)


def state_file(ifname: str) -> Path:
    return RUN_DIR / f"{check_ifname(ifname)}.json"
