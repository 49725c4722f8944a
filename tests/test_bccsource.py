"""The maps a program's sources declare, in order, as the loader reads them (no kernel needed).

BCC numbers its map placeholders in declaration order; hft_tui/bccload.py
replaces those BCC leaves past its view by the order read here.  Each rule
of the preprocessor it follows is shown on a small source; what it cannot
tell is refused in one line (tests/test_program_verifier.py shows the
loader's own check against BCC's tables on real copies of the program).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hft_tui.bccsource import NAME_ARG, declared_maps
from hft_tui.errors import EngineError
from hft_tui.maps import MAP_VALUES
from hft_tui.paths import EBPF_DIR, STRATEGY_SOURCE

pytestmark = pytest.mark.pure


def maps_of(tmp_path: Path, source: str, defines=(), **headers: str) -> list[str]:
    for name, text in headers.items():
        (tmp_path / f"{name}.h").write_text(text)
    (tmp_path / "prog.c").write_text(source)
    return declared_maps(tmp_path / "prog.c", [], set(defines))


def test_the_engines_maps_in_declaration_order():
    assert declared_maps(STRATEGY_SOURCE, [EBPF_DIR], {"HFT_FEED_IEX"}) == list(MAP_VALUES)


# The map macros of BCC 0.26 (its helpers.h), each with the argument that names the map.
MACROS = [
    ("BPF_HASH(a, u32, u64, 4);", "a"),
    ("BPF_ARRAY(a, u64, 1);", "a"),
    ("BPF_PERCPU_ARRAY(a, u64, 1);", "a"),
    ("BPF_PERF_OUTPUT(a);", "a"),
    ("BPF_RINGBUF_OUTPUT(a, 8);", "a"),
    ("BPF_DEVMAP(a, 4);", "a"),
    ("BPF_CPUMAP(a, 4);", "a"),
    ("BPF_XSKMAP(a, 4);", "a"),
    ("BPF_LPM_TRIE(a, struct k, u64, 16);", "a"),
    ("BPF_QUEUE(a, u64, 8);", "a"),
    ("BPF_STACK(a, u64, 8);", "a"),
    ('BPF_HASH_OF_MAPS(a, u32, "inner", 4);', "a"),
    ('BPF_ARRAY_OF_MAPS(a, "inner", 4);', "a"),
    ("BPF_SK_STORAGE(a, u64);", "a"),
    ('BPF_TABLE("lru_hash", u32, struct v, a, 16);', "a"),
    ('BPF_TABLE_PINNED("hash", u32, u64, a, 16, "/sys/fs/bpf/x");', "a"),
    ('BPF_F_TABLE("hash", u32, u64, a, 16, BPF_F_NO_PREALLOC);', "a"),
    ('BPF_QUEUESTACK("queue", a, u64, 8, 0);', "a"),
    ('BPF_XDP_REDIRECT_MAP("devmap", int, a, 4);', "a"),
]


@pytest.mark.parametrize("decl,name", MACROS, ids=[d.split("(")[0] for d, _ in MACROS])
def test_every_map_macro_bcc_offers_is_found_by_its_name(tmp_path, decl, name):
    src = f"BPF_ARRAY(first, u64, 1);\n{decl}\nBPF_ARRAY(last, u64, 1);\n"
    assert maps_of(tmp_path, src) == ["first", name, "last"]


def test_the_table_of_macros_names_one_argument_each():
    assert all(isinstance(i, int) and 0 <= i <= 3 for i in NAME_ARG.values())


def test_a_declaration_over_several_lines_and_comments_around_it(tmp_path):
    src = "/* BPF_HASH(in_a_comment, u32, u64, 1); */\n// BPF_ARRAY(neither, u64, 1);\n"
    src += "BPF_HASH(\n  spread,\n  u32, u64, 4);\n"
    assert maps_of(tmp_path, src) == ["spread"]


def test_includes_are_followed_where_they_are(tmp_path):
    src = 'BPF_ARRAY(a, u64, 1);\n#include "more.h"\nBPF_ARRAY(c, u64, 1);\n#include <linux/bpf.h>\n'
    assert maps_of(tmp_path, src, more="#ifndef MORE_H\n#define MORE_H\nBPF_ARRAY(b, u64, 1);\n#endif\n") == [
        "a",
        "b",
        "c",
    ]


def test_an_include_guard_includes_once(tmp_path):
    more = "#ifndef MORE_H\n#define MORE_H\nBPF_ARRAY(b, u64, 1);\n#endif\n"
    assert maps_of(tmp_path, '#include "more.h"\n#include "more.h"\n', more=more) == ["b"]


CONDITIONALS = [
    ("#ifdef X\nBPF_ARRAY(m, u64, 1);\n#endif\n", (), []),
    ("#ifdef X\nBPF_ARRAY(m, u64, 1);\n#endif\n", ("X",), ["m"]),
    ("#ifndef X\nBPF_ARRAY(m, u64, 1);\n#endif\n", ("X",), []),
    ("#ifndef X\nBPF_ARRAY(m, u64, 1);\n#else\nBPF_ARRAY(n, u64, 1);\n#endif\n", ("X",), ["n"]),
    ("#ifdef X\nBPF_ARRAY(m, u64, 1);\n#else\nBPF_ARRAY(n, u64, 1);\n#endif\n", ("X",), ["m"]),
    ("#if defined(X) && !defined(Y)\nBPF_ARRAY(m, u64, 1);\n#endif\n", ("X",), ["m"]),
    ("#if defined(X) && !defined(Y)\nBPF_ARRAY(m, u64, 1);\n#endif\n", ("X", "Y"), []),
    ("#if defined(Y)\nBPF_ARRAY(m, u64, 1);\n#elif defined(X)\nBPF_ARRAY(n, u64, 1);\n#endif\n", ("X",), ["n"]),
    ("#if 0\nBPF_ARRAY(m, u64, 1);\n#else\nBPF_ARRAY(n, u64, 1);\n#endif\n", (), ["n"]),
    ("#define N 2\n#if N > 1\nBPF_ARRAY(m, u64, 1);\n#endif\n", (), ["m"]),
    ("#define X\n#ifdef X\nBPF_ARRAY(m, u64, 1);\n#endif\n#undef X\n#ifdef X\nBPF_ARRAY(n, u8, 1);\n#endif", (), ["m"]),
    ("#ifdef __KERNEL__\nBPF_ARRAY(m, u64, 1);\n#endif\n", (), ["m"]),  # BCC's compiler defines it
    ("#if 1\n#ifdef X\nBPF_ARRAY(m, u64, 1);\n#endif\n#else\nBPF_ARRAY(n, u64, 1);\n#endif\n", (), []),
]


@pytest.mark.parametrize("src,defines,expected", CONDITIONALS)
def test_conditionals_are_evaluated_as_the_preprocessor_does(tmp_path, src, defines, expected):
    assert maps_of(tmp_path, src, defines) == expected


def test_a_build_flag_with_a_value_counts(tmp_path):
    (tmp_path / "prog.c").write_text("#if PAGES > 1024\nBPF_ARRAY(big, u64, 1);\n#endif\n")
    assert declared_maps(tmp_path / "prog.c", [], {"PAGES": "16384"}) == ["big"]
    assert declared_maps(tmp_path / "prog.c", [], {"PAGES": "16"}) == []


REFUSED = [
    ("BPF_FOO_MAP(m, 4);\n", "BPF_FOO_MAP.*no map macro the loader knows"),
    ("#ifdef __x86_64__\nBPF_ARRAY(m, u64, 1);\n#endif\n", "cannot tell whether map m is compiled in"),
    ("#if SOME_FUNCTION(3)\nBPF_ARRAY(m, u64, 1);\n#endif\n", "cannot tell whether map m is compiled in"),
    ("#define N (1 << 3)\n#if N > 1\nBPF_ARRAY(m, u64, 1);\n#endif\n", "cannot tell whether map m is compiled in"),
    ('BPF_TABLE("extern", u32, u64, m, 4);\n', "map m is another program's"),
    ("BPF_HASH(4, u32);\n", "no map name"),
    ("#ifdef X\nBPF_ARRAY(m, u64, 1);\n", "without its #endif"),
    ("#endif\n", "#endif without an #if"),
]


@pytest.mark.parametrize("src,message", REFUSED, ids=[m.split(".*")[0][:40] for _, m in REFUSED])
def test_what_the_loader_cannot_tell_is_refused_in_one_line(tmp_path, src, message):
    with pytest.raises(EngineError, match=message) as e:
        maps_of(tmp_path, src)
    assert "\n" not in str(e.value) and str(e.value).startswith("prog.c")


def test_the_programs_own_macros_are_no_maps(tmp_path):
    assert maps_of(tmp_path, "BPF_PROG(handler, int x)\n{\n}\nBPF_ARRAY(m, u64, 1);\n") == ["m"]
