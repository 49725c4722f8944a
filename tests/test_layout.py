"""The ctypes mirrors and the parsed constants agree with the C headers.

gcc compiles ebpf/hft_structs.h into a program that prints sizeof/offsetof
of every field of every mirrored struct (the nested params structs too, and
which struct a nested field is) and the value of every #define the Python
side parsed.  The C is generated from the ctypes ``_fields_``, so a field
added on one side only is caught too.  The headers user space can compile
must each compile on their own (tests/test_program_headers.py compiles every
header alone as a BPF program, with BCC).
"""

from __future__ import annotations

import ctypes
import dataclasses
import subprocess

import pytest
from frames import XdpAction

from hft_tui.config import EngineParams, SymbolParams
from hft_tui.constants import IEX, ITCH, MOLD, MSG_LEN, OFFSETS, C
from hft_tui.layout import MIRRORS, KernelGlobalParams, KernelSymbolParams, SpinLock
from hft_tui.paths import EBPF_DIR

pytestmark = pytest.mark.pure  # gcc only: no root, no kernel

# The headers user space compiles too (the rest are BPF-only; the feed decoders'
# layout #defines are outside their #ifdef __KERNEL__).
USER_SPACE_HEADERS = ("hft_protocol.h", "hft_structs.h", "feed_iex.h", "feed_itch.h")
# Every feed layout #define Python parsed, by name.
FEED_LAYOUT = {**IEX, **MOLD, **ITCH}
MIRROR_NAME = {mirror: cname for cname, mirror in MIRRORS.items()}


def _nested(mirror) -> list[tuple[str, type]]:
    """(field, mirror) of every struct-typed field but the lock."""
    return [(f, t) for f, t in mirror._fields_ if issubclass(t, ctypes.Structure) and t is not SpinLock]


def _c_program() -> str:
    lines = [
        "#include <stdio.h>",
        "#include <stddef.h>",
        '#include "hft_structs.h"',
        '#include "feed_iex.h"',
        '#include "feed_itch.h"',
        "#include <linux/bpf.h>",
        "#define MEMBER_SIZE(t, m) sizeof(((t *)0)->m)",
        "#define MEMBER_IS(t, m, s) __builtin_types_compatible_p(__typeof__(((t *)0)->m), s)",
        "int main(void) {",
    ]
    for cname, mirror in MIRRORS.items():
        t = f"struct {cname}"
        lines.append(f'  printf("size {cname} %zu\\n", sizeof({t}));')
        for fname, _ in mirror._fields_:
            lines.append(
                f'  printf("field {cname}.{fname} %zu %zu\\n", offsetof({t}, {fname}), MEMBER_SIZE({t}, {fname}));'
            )
        for fname, ftype in _nested(mirror):
            if ftype in MIRROR_NAME:
                lines.append(
                    f'  printf("nested {cname}.{fname} %d\\n", MEMBER_IS({t}, {fname}, struct {MIRROR_NAME[ftype]}));'
                )
    for name in [*C, *FEED_LAYOUT]:
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


MIRROR_FIELDS = [(cname, fname) for cname, mirror in MIRRORS.items() for fname, _ in mirror._fields_]


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


NESTED_FIELDS = [(cname, fname) for cname, mirror in MIRRORS.items() for fname, _ in _nested(mirror)]


@pytest.mark.parametrize("cname,fname", NESTED_FIELDS, ids=[f"{c}.{f}" for c, f in NESTED_FIELDS])
def test_nested_struct_is_a_checked_mirror_of_the_same_c_struct(c_facts, cname, fname):
    # Its own fields are then checked by the tests above, like any mirror's.
    ftype = dict(MIRRORS[cname]._fields_)[fname]
    assert ftype in MIRROR_NAME, f"{cname}.{fname}: {ftype.__name__} is not in layout.MIRRORS"
    assert c_facts[f"nested {cname}.{fname}"] == (1,), f"{cname}.{fname} is not a struct {MIRROR_NAME[ftype]} in C"


def test_configs_are_a_lock_then_their_params():
    for cname, params in (("hft_symbol_config", KernelSymbolParams), ("hft_global_config", KernelGlobalParams)):
        names = [f for f, _ in MIRRORS[cname]._fields_]
        assert names[:3] == ["lock", "_pad", "p"] and dict(MIRRORS[cname]._fields_)["p"] is params


def test_symbol_params_mirror_has_the_config_fields():
    # maps.py copies hft_tui.config.SymbolParams into the mirror by field name.
    assert [f for f, _ in KernelSymbolParams._fields_ if not f.startswith("_")] == [
        f.name for f in dataclasses.fields(SymbolParams)
    ]


def test_global_params_mirror_fields_are_engine_params():
    # Every kernel engine-wide parameter is an engine config key of the same name.
    engine_keys = {f.name for f in dataclasses.fields(EngineParams)}
    assert {f for f, _ in KernelGlobalParams._fields_ if not f.startswith("_")} <= engine_keys


@pytest.mark.parametrize("header", USER_SPACE_HEADERS)
def test_user_space_header_compiles_on_its_own(tmp_path, header):
    # Included alone, twice (the include guard), with every warning an error.
    src = tmp_path / "alone.c"
    src.write_text(f'#include "{header}"\n#include "{header}"\nint main(void) {{ return 0; }}\n')
    subprocess.run(
        ["gcc", "-Wall", "-Wextra", "-Werror", f"-I{EBPF_DIR}", "-o", str(tmp_path / "alone"), str(src)], check=True
    )


@pytest.mark.parametrize("name", list(C))
def test_parsed_define_matches_the_preprocessor(c_facts, name):
    assert c_facts[f"define {name}"] == (C[name],)


@pytest.mark.parametrize("name", list(FEED_LAYOUT))
def test_parsed_feed_layout_define_matches_the_preprocessor(c_facts, name):
    assert c_facts[f"define {name}"] == (FEED_LAYOUT[name],)


def test_every_feed_layout_define_is_parsed():
    # A #define of a feed header that the parser missed (say, an expression) fails here.
    import re

    for header, prefixes in (("feed_iex.h", ("IEX_",)), ("feed_itch.h", ("MOLD_", "ITCH_"))):
        text = (EBPF_DIR / header).read_text().split("#ifdef __KERNEL__")[0]
        names = set(re.findall(r"^#define[ \t]+((?:" + "|".join(prefixes) + r")\w+)[ \t]", text, re.MULTILINE))
        assert names and names <= set(FEED_LAYOUT), f"{header}: {sorted(names - set(FEED_LAYOUT))} not parsed"


@pytest.mark.parametrize("action", list(XdpAction), ids=lambda a: a.name)
def test_xdp_action_values_match_linux_bpf_h(c_facts, action):
    assert c_facts[f"xdp XDP_{action.name}"] == (int(action),)


# Field widths of the payload, in order: each field starts where the last ends.
PAYLOAD_FIELDS = [
    ("magic", 2),
    ("version", 1),
    ("type", 1),
    ("symbol", C["HFT_SYMBOL_LEN"]),
    ("seq", 8),
    ("bid", 4),
    ("bid_qty", 4),
    ("ask", 4),
    ("ask_qty", 4),
    ("timestamp", 8),
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
