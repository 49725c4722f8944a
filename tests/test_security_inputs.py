"""The smaller items of issue 14's "Local user -> root": what root reads and prints.

- `journal tail` (and `export`) never send a crafted journal's control
  characters to the terminal (escape sequences that retitle, rewrite or hide
  lines), and a malformed journal is one line, not a traceback;
- `load_config` reads only a regular file of at most 1 MiB: a FIFO (a read
  that waits forever), /dev/zero (one that never ends), a directory, a 2 MiB
  file are each one line;
- the bench's lock is a root-owned file in /run/hft-tui: a user cannot take
  it first (the abstract socket it replaces could be bound by anyone);
- logs in /run/hft-tui are 0600, whatever they were.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from hft_tui import lab, paths
from hft_tui.bench import BenchError
from hft_tui.bench.machine import exclusive, lock_path
from hft_tui.config import MAX_CONFIG_BYTES, load_config
from hft_tui.constants import EVENT_REJECT
from hft_tui.errors import ConfigError
from hft_tui.journal import Journal
from hft_tui.journal.records import ring_record
from hft_tui.rings import EVENT_FIELDS
from hft_tui.safefile import open_private_log

HFT_TUI = str(Path(sys.executable).with_name("hft-tui"))
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all"]
# What a crafted journal would carry: retitle the terminal, clear it, move the
# cursor up over earlier lines, an 8-bit CSI, a bidi override, a bell.
HOSTILE = "\x1b]0;owned\x07\x1b[2J\x1b[1A\x9b31m\u202eevil\x00"
CONTROLS = set("\x1b\x07\x9b\u202e\x00")


def cli(*argv: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([HFT_TUI, *argv], capture_output=True, text=True, timeout=timeout)


def assert_one_line_error(p: subprocess.CompletedProcess, words: str) -> None:
    assert p.returncode == 1, (p.stdout, p.stderr)
    assert "Traceback" not in p.stderr
    assert p.stderr.startswith("hft-tui: error: ") and p.stderr.count("\n") == 1, p.stderr
    assert words in p.stderr, p.stderr


def reject_tuple(symbol: bytes) -> tuple:
    values = {"kind": EVENT_REJECT, "symbol": symbol, "reason": 3, "ts_ns": 1, "seq": 7}
    return tuple(values.get(name, 0) for name in EVENT_FIELDS)


@pytest.fixture
def crafted(tmp_path) -> Path:
    """A journal whose text columns and reject records carry terminal escapes."""
    path = tmp_path / "crafted.journal.sqlite"
    with Journal(path) as j:
        j.begin_engine(iface="hft140", prog_id=1, attached_at=1.0, program_hash=HOSTILE)
        j.record_control(HOSTILE, program_hash=HOSTILE, config_version=1, detail={"note": "x"})
    db = sqlite3.connect(path)
    with db:
        db.execute(
            "INSERT INTO orders (jseq, engine, order_id, ts_ns, sender_ts, seq, symbol, side, price, qty, position,"
            " pnl, bid, bid_qty, ask, ask_qty) VALUES (100, 1, 1, 1, 0, 1, ?, ?, 10000, 1, 1, 0, 0, 0, 0, 0)",
            (HOSTILE, HOSTILE),
        )
        db.execute(
            "INSERT INTO reject_blocks (jseq, engine, ring_pos, ring_end, count, records)"
            " VALUES (101, 1, 0, 104, 1, ?)",
            (ring_record(reject_tuple(b"\x1b[2J\x07A")),),
        )
        db.execute(
            "UPDATE control SET detail=? WHERE kind=?", ('{"note": "' + HOSTILE + '"}', HOSTILE)
        )  # raw, as a crafted file has it (json.dumps would have escaped it)
    db.close()
    return path


def test_tail_shows_a_crafted_journals_control_characters_as_escapes(crafted):
    p = cli("journal", "tail", "--journal", str(crafted), "-n", "10")
    assert p.returncode == 0, p.stderr
    assert not CONTROLS & set(p.stdout), repr(p.stdout)
    assert "\\x1b]0;owned\\x07" in p.stdout and "\\u202eevil" in p.stdout and "\\x1b[2J\\x07A" in p.stdout
    assert len(p.stdout.splitlines()) == 3  # no line was split or joined by what it carried


def test_export_to_the_terminal_carries_no_control_characters_either(crafted):
    p = cli("journal", "export", "--journal", str(crafted))
    assert p.returncode == 0, p.stderr
    assert not CONTROLS & set(p.stdout), repr(p.stdout)


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE reject_blocks SET records = x'0102030405'",  # not whole records
        "UPDATE reject_blocks SET records = 'text, not a blob'",
        "UPDATE orders SET price = 'not a number'",
        "UPDATE control SET wall_ns = 'yesterday'",
    ],
)
def test_a_malformed_journal_is_one_line_not_a_traceback(crafted, sql):
    db = sqlite3.connect(crafted)
    with db:
        db.execute(sql)
    db.close()
    for verb in ("tail", "export"):
        assert_one_line_error(cli("journal", verb, "--journal", str(crafted)), "is malformed")


# -- load_config ---------------------------------------------------------------------


def test_a_config_that_is_a_fifo_is_refused_at_once_not_waited_on(tmp_path):
    fifo = tmp_path / "config.toml"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match="is a FIFO, not a regular file"):
        load_config(fifo)
    assert_one_line_error(cli("engine", "attach", "hft149", "--config", str(fifo), timeout=20), "is a FIFO")


@pytest.mark.parametrize(
    "make, words",
    [
        (lambda d: Path("/dev/zero"), "/dev/zero is a character device, not a regular file"),
        (lambda d: d, "is a directory, not a regular file"),
        (lambda d: d / "missing.toml", "not found"),
    ],
)
def test_a_config_that_is_not_a_regular_file_is_one_line(tmp_path, make, words):
    with pytest.raises(ConfigError, match=words) as exc:
        load_config(make(tmp_path))
    assert "\n" not in str(exc.value)


def test_a_config_over_one_mebibyte_is_refused_unread(tmp_path):
    big = tmp_path / "big.toml"
    big.write_text("# padding\n" * (2 * MAX_CONFIG_BYTES // 10))
    assert big.stat().st_size == 2 * MAX_CONFIG_BYTES - 2 * MAX_CONFIG_BYTES % 10
    with pytest.raises(ConfigError, match="more than the 1,048,576 allowed"):
        load_config(big)
    assert_one_line_error(cli("engine", "attach", "hft149", "--config", str(big)), "more than the 1,048,576")
    fits = tmp_path / "fits.toml"
    tail = "[engine]\nfeed_port = 9001\n"
    fits.write_text("#" * (MAX_CONFIG_BYTES - len(tail) - 1) + "\n" + tail)
    assert fits.stat().st_size == MAX_CONFIG_BYTES
    assert load_config(fits).engine.feed_port == 9001


# -- the bench's lock and the logs --------------------------------------------------------------


def test_the_bench_lock_is_roots_and_a_user_cannot_take_it_first():
    the_lab = lab.Lab.numbered(149)
    # What a user could do before: bind the abstract socket name the lock used to be.
    squatter = subprocess.Popen(
        [*NOBODY, sys.executable, "-I", "-c",
         "import socket, sys, time; s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); "
         f"s.bind('\\0hft-tui-bench-{the_lab.namespace}'); print('bound', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert squatter.stdout.readline().strip() == "bound"
        held = exclusive(the_lab)
        try:
            st = os.stat(lock_path(the_lab))
            assert (stat.S_IMODE(st.st_mode), st.st_uid) == (0o600, 0)
            with pytest.raises(BenchError, match="another bench is running on lab"):
                exclusive(the_lab)
            # The lock file is out of a user's reach: /run/hft-tui is 0700.
            p = subprocess.run([*NOBODY, "cat", str(lock_path(the_lab))], capture_output=True, text=True)
            assert p.returncode != 0 and "Permission denied" in p.stderr
        finally:
            held.close()
        exclusive(the_lab).close()  # free again once the holder let go
    finally:
        squatter.kill()
        squatter.wait()
        lock_path(the_lab).unlink(missing_ok=True)


def test_a_log_found_world_readable_is_made_0600(tmp_path):
    log = tmp_path / "app-supervisor.log"
    log.write_text("earlier line\n")
    log.chmod(0o644)
    with open_private_log(log) as f:
        f.write(b"new line\n")
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    assert log.read_text() == "earlier line\nnew line\n"
    assert stat.S_IMODE(paths.RUN_DIR.stat().st_mode) == 0o700
