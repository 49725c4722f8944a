"""The ctypes mirrors and the parsed constants agree with the C headers.

gcc compiles ebpf/hft_structs.h (after <linux/types.h> and <linux/bpf.h>,
as BCC sees it) into a program that prints sizeof/offsetof of every field
of every mirrored struct and the value of every #define the Python side
parsed.  The C is generated from the ctypes ``_fields_``, so a field added
on one side only is caught too.
"""

from __future__ import annotations

import ctypes
import subprocess

import pytest

from frames import XdpAction
from hft_tui.constants import C, MSG_LEN, OFFSETS
from hft_tui.layout import MIRRORS
from hft_tui.paths import EBPF_DIR

pytestmark = pytest.mark.pure  # gcc only: no root, no kernel


def _c_program() -> str:
    lines = [
        "#include <stdio.h>",
        "#include <stddef.h>",
        "#include <linux/types.h>",
        "#include <linux/bpf.h>",
        '#include "hft_protocol.h"',
        '#include "hft_structs.h"',
        "#define MEMBER_SIZE(t, m) sizeof(((t *)0)->m)",
        "int main(void) {",
    ]
    for cname, mirror in MIRRORS.items():
        t = f"struct {cname}"
        lines.append(f'  printf("size {cname} %zu\\n", sizeof({t}));')
        for fname, _ in mirror._fields_:
            lines.append(
                f'  printf("field {cname}.{fname} %zu %zu\\n", offsetof({t}, {fname}), MEMBER_SIZE({t}, {fname}));'
            )
    for name in C:
        lines.append(f'  printf("define {name} %lld\\n", (long long)({name}));')
    for action in XdpAction:
        lines.append(f'  printf("xdp XDP_{action.name} %d\\n", (int)XDP_{action.name});')
    lines += ["  return 0;", "}"]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def c_facts(tmp_path_factory) -> dict[str, tuple[int, ...]]:
    """What gcc says: 'size NAME' -> (n,), 'field S.F' -> (offset, size), 'define X' -> (v,)."""
    d = tmp_path_factory.mktemp("layout")
    src, exe = d / "layout.c", d / "layout"
    src.write_text(_c_program())
    subprocess.run(["gcc", "-Wall", "-Werror", f"-I{EBPF_DIR}", "-o", str(exe), str(src)], check=True)
    out = subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout
    facts = {}
    for line in out.splitlines():
        kind, name, *numbers = line.split()
        facts[f"{kind} {name}"] = tuple(int(n) for n in numbers)
    return facts


MIRROR_FIELDS = [
    (cname, fname) for cname, mirror in MIRRORS.items() for fname, _ in mirror._fields_
]


@pytest.mark.parametrize("cname", list(MIRRORS))
def test_struct_size_matches_c(c_facts, cname):
    assert c_facts[f"size {cname}"] == (ctypes.sizeof(MIRRORS[cname]),)


@pytest.mark.parametrize("cname,fname", MIRROR_FIELDS, ids=[f"{c}.{f}" for c, f in MIRROR_FIELDS])
def test_field_offset_and_size_match_c(c_facts, cname, fname):
    desc = getattr(MIRRORS[cname], fname)
    assert c_facts[f"field {cname}.{fname}"] == (desc.offset, desc.size)


@pytest.mark.parametrize("cname", list(MIRRORS))
def test_structs_have_no_implicit_padding(cname):
    # With the offsets equal to C's (above), this holds for the C struct too:
    # every field starts where the one before ends (holes are explicit _pad
    # fields) and nothing trails the last one.
    at = 0
    for fname, _ in MIRRORS[cname]._fields_:
        desc = getattr(MIRRORS[cname], fname)
        assert desc.offset == at, f"{cname}.{fname} at {desc.offset}: {desc.offset - at} bytes of implicit padding"
        at += desc.size
    assert ctypes.sizeof(MIRRORS[cname]) == at, f"{cname}: trailing padding"


@pytest.mark.parametrize("name", list(C))
def test_parsed_define_matches_the_preprocessor(c_facts, name):
    assert c_facts[f"define {name}"] == (C[name],)


@pytest.mark.parametrize("action", list(XdpAction), ids=lambda a: a.name)
def test_xdp_action_values_match_linux_bpf_h(c_facts, action):
    assert c_facts[f"xdp XDP_{action.name}"] == (int(action),)


# Field widths of the payload, in order: each field starts where the last ends.
PAYLOAD_FIELDS = [
    ("magic", 2), ("version", 1), ("type", 1), ("symbol", C["HFT_SYMBOL_LEN"]), ("seq", 8),
    ("bid", 4), ("bid_qty", 4), ("ask", 4), ("ask_qty", 4), ("timestamp", 8),
]


def test_every_payload_offset_is_defined():
    assert set(OFFSETS) == {name for name, _ in PAYLOAD_FIELDS}


def test_payload_offsets_are_contiguous_and_total_msg_len():
    at = 0
    for name, width in PAYLOAD_FIELDS:
        assert OFFSETS[name] == at, f"{name} at {OFFSETS[name]}, expected {at}"
        at += width
    assert at == MSG_LEN == 44


def test_counter_slots_hold_every_reject_reason():
    assert C["HFT_NUM_COUNTERS"] == C["HFT_CTR_REJECT_BASE"] + C["HFT_NUM_REJECTS"]
    reasons = [v for k, v in C.items() if k.startswith("HFT_REJECT_")]
    assert sorted(reasons) == list(range(C["HFT_NUM_REJECTS"]))
