"""What hft-tui needs before it can touch the kernel: root and BCC with kernel headers.

Each check is one clear line with its fix, raised before anything is changed.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import EngineError


def require_root() -> None:
    if os.geteuid() != 0:
        raise EngineError("hft-tui needs root for BPF and netlink: run it with sudo")


def require_bcc():
    try:
        import bcc
    except ImportError:
        raise EngineError(
            "BCC's Python module is missing: run 'make install' (apt-get install python3-bpfcc libbpfcc) "
            "and use the venv made from /usr/bin/python3 --system-site-packages"
        ) from None
    build = Path(f"/lib/modules/{os.uname().release}/build")
    if not build.exists():
        raise EngineError(
            f"no kernel headers at {build}: run 'make install' (installs linux-headers-amd64 "
            "and links /lib/modules/$(uname -r) to them)"
        )
    return bcc
