"""The real session's rules where a step fails, without a kernel: what it
keeps, and what it says (one line).  Each failure is made by replacing the
one step that fails; the same paths succeeding run against the real kernel
in the app's real-engine tests (test_app_pilot.py)."""

from __future__ import annotations

import json
from dataclasses import asdict

import pytest

from hft_tui import paths
from hft_tui.app import session as session_mod
from hft_tui.app.session import EngineSession
from hft_tui.errors import EngineError
from hft_tui.state import EngineRecord

pytestmark = pytest.mark.pure

REFUSED = "/sys/fs/bpf/hft_tui is not root's: refused"


def test_the_kill_key_with_engines_that_cannot_be_listed_says_so(monkeypatch):
    def refused() -> list[str]:
        raise EngineError(REFUSED)

    monkeypatch.setattr(session_mod, "attached_ifaces", refused)
    assert EngineSession().kill_every_engine() == ([], [f"(cannot list the engines: {REFUSED})"])


def test_a_supervisor_that_cannot_start_leaves_nothing_supervised(monkeypatch):
    closed: list[str] = []

    class Handle:
        def __init__(self, iface: str) -> None:
            self.iface = iface

        def close(self) -> None:
            closed.append(self.iface)

    def start(self) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(session_mod, "EngineHandle", Handle)
    monkeypatch.setattr(session_mod.EnginePoller, "start", start)
    s = EngineSession()
    with pytest.raises(OSError, match="No space left"):
        s.take_over("hft0", target=None)
    assert (s.iface, s.handle, s.poller, closed) == (None, None, None, ["hft0"])


GOOD = EngineRecord(
    iface="hft0",
    ifindex=7,
    mode="native",
    prog_id=42,
    program_hash="abc",
    config_path=None,
    deadman_ms=1000,
    attached_at=1.5e9,
)
BAD_RECORDS = [
    ("not JSON", b"{"),
    ("not UTF-8", b"\xff\xfe{}"),
    ("a field it does not know", json.dumps({**asdict(GOOD), "colour": 1}).encode()),
    ("a time that is no number", json.dumps({**asdict(GOOD), "attached_at": "soon"}).encode()),
    ("a program id that is no number", json.dumps({**asdict(GOOD), "prog_id": [1]}).encode()),
    ("a directory", None),
]


@pytest.mark.parametrize("content", [c for _, c in BAD_RECORDS], ids=[n for n, _ in BAD_RECORDS])
def test_a_state_file_that_is_no_record_is_none(monkeypatch, tmp_path, content):
    path = tmp_path / "hft0.json"
    if content is None:
        path.mkdir()
    else:
        path.write_bytes(content)
    monkeypatch.setattr(paths, "state_file", lambda iface: tmp_path / f"{iface}.json")
    assert EngineRecord.load("hft0") is None


def test_a_state_file_that_is_a_record_is_read_back(monkeypatch, tmp_path):
    (tmp_path / "hft0.json").write_text(json.dumps(asdict(GOOD)))
    monkeypatch.setattr(paths, "state_file", lambda iface: tmp_path / f"{iface}.json")
    assert EngineRecord.load("hft0") == GOOD
