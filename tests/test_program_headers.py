"""Every header of the program includes what it uses.

Each header in ebpf/ is compiled alone (included twice: the include guard) as
a BPF program by BCC, the compiler the engine is built with; a header that
leans on another being included first fails here.  The headers user space
compiles too are also compiled alone by gcc (tests/test_layout.py).
"""

from __future__ import annotations

import pytest

from hft_tui.paths import EBPF_DIR

HEADERS = sorted(p.name for p in EBPF_DIR.glob("*.h"))


def test_the_headers_are_found():
    assert {"hft_protocol.h", "hft_structs.h", "hft_maps.h", "parsing_helpers.h", "csum.h", "rewrite.h"} <= set(HEADERS)


@pytest.mark.parametrize("header", HEADERS)
def test_header_compiles_on_its_own_with_bcc(header):
    import bcc

    text = f'#include "{header}"\n#include "{header}"\n'
    b = bcc.BPF(text=text.encode(), cflags=[f"-I{EBPF_DIR}", "-Werror"])
    b.cleanup()
