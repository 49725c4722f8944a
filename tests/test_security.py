"""Security: who may read and write what, and what reaches a shell.  Lab 48.

- the pinned maps and program, the runtime state and the journal are
  root's alone (modes read back from the files);
- the CLI refuses to run without the privileges it needs, in one line;
- interface names and symbols are validated before they reach a path, a
  netlink request or a map, and no string reaches a shell (the package
  never starts one: checked on its source).
"""

from __future__ import annotations

import ast
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from hft_tui import engine, journal, paths
from hft_tui.config import load_config
from hft_tui.controller import Controller
from hft_tui.errors import ProtocolError
from hft_tui.paths import PathError, check_ifname
from hft_tui.symbol import Symbol

HFT_TUI = str(Path(sys.executable).with_name("hft-tui"))
DEMO = paths.DEMO_CONFIG
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all"]
# What a user may type where an interface name goes.
HOSTILE_IFNAMES = [
    "eth0; rm -rf /",
    "../../etc",
    "hft48/../../x",
    "$(reboot)",
    "`id`",
    "a b",
    "hft48\n",
    "x" * 16,
    ".",
    "..",
    "hft\u00e948",
]


def cli(*argv: str, prefix: list[str] | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "HOME": "/nonexistent"}
    return subprocess.run([*(prefix or []), HFT_TUI, *argv], capture_output=True, text=True, timeout=120, env=env)


def assert_one_line_error(p: subprocess.CompletedProcess, words: str) -> None:
    assert p.returncode == 1, (p.stdout, p.stderr)
    assert "Traceback" not in p.stderr
    assert p.stderr.startswith("hft-tui: error: ") and p.stderr.count("\n") == 1, p.stderr
    assert words in p.stderr, p.stderr


def mode(path: Path) -> tuple[int, int]:
    st_ = path.stat()
    return stat.S_IMODE(st_.st_mode), st_.st_uid


# -- files are root's alone ------------------------------------------------------


def test_pinned_maps_program_runtime_state_and_journal_are_root_only(make_lab):
    L = make_lab(48)
    iface = L.engine_iface
    jpath = journal.journal_path(iface)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{jpath}{suffix}").unlink(missing_ok=True)
    engine.attach(iface, load_config(DEMO))
    with engine.open_engine(iface) as h, journal.open_journal(iface) as j:
        ctl = Controller(h, journal=j)
        ctl.start()
        ctl.tick(0)
        pins = sorted(paths.pin_dir(iface).iterdir())
        assert {p.name for p in pins} >= {"prog", "events", "tape_events", "global_config", "heartbeat"}
        files = [
            *pins,
            paths.state_file(iface),
            paths.RUN_DIR / f"{iface}.controller",
            jpath,
            Path(f"{jpath}-wal"),
            Path(f"{jpath}-shm"),
        ]
        dirs = [paths.PIN_ROOT, paths.pin_dir(iface), paths.RUN_DIR, paths.JOURNAL_DIR]
        got = {str(p): mode(p) for p in files + dirs}
        ctl.stop(detach=True)
    want = {str(p): (0o600, 0) for p in files} | {str(d): (0o700, 0) for d in dirs}
    assert got == want


# -- privileges ------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["engine", "status"],
        ["engine", "attach", "hft48", "--config", str(DEMO)],
        ["engine", "kill", "hft48"],
        ["engine", "run", "hft48"],
        ["engine", "detach", "hft48"],
        ["lab", "up"],
        ["journal", "verify", "--iface", "hft48"],
        ["journal", "tail", "--iface", "hft48"],
    ],
)
def test_the_cli_refuses_to_run_without_root_in_one_line(argv):
    p = cli(*argv, prefix=NOBODY)
    assert_one_line_error(p, "root")
    assert "run it with sudo" in p.stderr or "run as root" in p.stderr


# -- validation: nothing hostile reaches a path, netlink or a shell ------------------


@pytest.mark.parametrize("name", HOSTILE_IFNAMES)
@pytest.mark.parametrize(
    "verb",
    [
        ["engine", "attach", "{}"],
        ["engine", "status", "{}"],
        ["engine", "run", "{}"],
        ["engine", "detach", "{}"],
        ["journal", "tail", "--iface", "{}"],
    ],
)
def test_a_hostile_interface_name_is_refused_before_use(verb, name):
    p = cli(*[a.format(name) for a in verb])
    assert_one_line_error(p, "invalid interface name")
    # Refused before any use: nothing was made under its name.
    for d in (paths.RUN_DIR, paths.JOURNAL_DIR, paths.PIN_ROOT):
        assert not [e for e in d.iterdir() if e.name == name or e.name.startswith(f"{name}.")], d


@given(st.text(max_size=20))
@example("hft48\n")  # Python's "$" also matches before a final newline
@example("eth0\r")
def test_an_accepted_interface_name_stays_inside_our_directories(name):
    try:
        check_ifname(name)
    except PathError:
        return
    assert name.isascii() and not any(c.isspace() or c in "/$`;&|<>()'\"\\*?!" for c in name)
    assert name not in (".", "..") and 1 <= len(name) <= 15
    assert paths.pin_dir(name).parent == paths.PIN_ROOT
    assert paths.state_file(name).parent == paths.RUN_DIR
    assert journal.journal_path(name).parent == paths.JOURNAL_DIR


@given(st.text(max_size=12))
@example("AAPL\n")
def test_an_accepted_symbol_is_eight_plain_ascii_characters_at_most(name):
    try:
        Symbol(name)
    except ProtocolError:
        return
    assert name.isascii() and 1 <= len(name) <= 8
    assert all(c.isalnum() or c in ".-" for c in name)


def _shell_uses(tree: ast.AST, filename: str) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = ast.unparse(node.func)
        where = f"{filename}:{node.lineno}: {name}"
        if name in ("os.system", "os.popen", "asyncio.create_subprocess_shell", "commands.getoutput"):
            found.append(where)
        if any(
            k.arg == "shell" and not (isinstance(k.value, ast.Constant) and k.value.value is False)
            for k in node.keywords
        ):
            found.append(where + " with shell=")
        if (
            name.startswith("subprocess.")
            and node.args
            and isinstance(node.args[0], (ast.Constant, ast.JoinedStr, ast.BinOp))
        ):
            found.append(where + " with a command string")
    return found


def test_no_user_string_reaches_a_shell_the_package_never_starts_one():
    found = []
    files = sorted(paths.PACKAGE_DIR.rglob("*.py"))
    assert len(files) > 10
    for f in files:
        found += _shell_uses(ast.parse(f.read_text(), str(f)), str(f.relative_to(paths.REPO_DIR)))
    assert found == []
    # The check itself finds what it looks for.
    assert (
        len(
            _shell_uses(
                ast.parse(
                    "import os, subprocess\nos.system('x')\nsubprocess.run('ls', shell=True)\n"
                    "subprocess.Popen(f'ls {x}')\n"
                ),
                "probe",
            )
        )
        == 4
    )


def test_a_journal_export_never_lands_in_a_world_readable_file(tmp_path):
    """The export holds trading data: the file is made 0600 whatever the umask."""
    path = tmp_path / "j.sqlite"
    with journal.Journal(path) as j:
        j.record_control("attach", program_hash="h", config_version=1)
    out = tmp_path / "out.csv"
    old = os.umask(0)
    try:
        p = cli("journal", "export", "--journal", str(path), "--out", str(out))
    finally:
        os.umask(old)
    assert p.returncode == 0, p.stderr
    assert mode(out) == (0o600, 0) and mode(path) == (0o600, 0)
