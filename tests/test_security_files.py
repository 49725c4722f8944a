"""Files root writes where other users can write (issue 14: "Files written
where others can write").  No kernel, but root and a real second user.

Each attack is set up as a user would: ``nobody`` (uid 65534, through
setpriv) plants a symlink or owns a directory, and root then runs the
command an administrator would run.  The canary the symlinks point at is a
file root owns, standing in for /etc/passwd: after every refusal it keeps
its bytes, owner and mode.  This machine has fs.protected_symlinks=0 (the
kernel would not stop the attack): these tests are the only guard.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from hft_tui import paths, safefile
from hft_tui.bench import BenchError
from hft_tui.bench.machine import write_outputs
from hft_tui.bench.options import Options
from hft_tui.errors import JournalError, PathError
from hft_tui.journal import Journal

HFT_TUI = str(Path(sys.executable).with_name("hft-tui"))
NOBODY_UID = 65534
NOBODY = ["setpriv", f"--reuid={NOBODY_UID}", f"--regid={NOBODY_UID}", "--clear-groups", "--inh-caps=-all"]
CANARY_TEXT = "root:x:0:0:canary, not to be touched\n"


def as_nobody(*argv: str) -> None:
    p = subprocess.run([*NOBODY, *argv], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, (argv, p.stderr)


def cli(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([HFT_TUI, *argv], capture_output=True, text=True, timeout=120)


def assert_one_line_error(p: subprocess.CompletedProcess, words: str) -> None:
    assert p.returncode == 1, (p.stdout, p.stderr)
    assert "Traceback" not in p.stderr
    assert p.stderr.startswith("hft-tui: error: ") and p.stderr.count("\n") == 1, p.stderr
    assert words in p.stderr, p.stderr


def identity(path: Path) -> tuple[str, int, int, int]:
    st = os.lstat(path)
    return path.read_text(), st.st_uid, stat.S_IMODE(st.st_mode), st.st_ino


@pytest.fixture
def box():
    """A root-owned 0755 directory nobody can traverse (pytest's tmp_path is 0700), removed afterwards."""
    d = Path(tempfile.mkdtemp(prefix="hft140-files-"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def canary(box):
    """The file an attacker wants root to overwrite: root's, 0644."""
    vault = box / "etc"
    vault.mkdir(mode=0o755)
    c = vault / "passwd"
    c.write_text(CANARY_TEXT)
    c.chmod(0o644)
    before = identity(c)
    yield c
    assert identity(c) == before, "the canary was touched"


@pytest.fixture
def sticky(box):
    """A /tmp of our own: root's, 1777."""
    d = box / "tmp"
    d.mkdir()
    d.chmod(0o1777)
    return d


@pytest.fixture
def users_dir(box):
    """A directory that belongs to nobody (a user's home, say)."""
    d = box / "home-nobody"
    d.mkdir(mode=0o755)
    os.chown(d, NOBODY_UID, NOBODY_UID)
    return d


@pytest.fixture
def journal_file(tmp_path):
    path = tmp_path / "j.journal.sqlite"
    with Journal(path) as j:
        j.record_control("attach", program_hash="h", config_version=1)
    return path


# -- journal export --out --------------------------------------------------------


def test_export_does_not_follow_a_symlink_a_user_planted_in_tmp(journal_file, sticky, canary):
    """The issue's attack: /tmp/o.csv -> /etc/passwd, then `sudo hft-tui journal export --out /tmp/o.csv`."""
    out = sticky / "o.csv"
    as_nobody("ln", "-s", str(canary), str(out))
    p = cli("journal", "export", "--journal", str(journal_file), "--out", str(out))
    assert_one_line_error(p, "already exists")
    assert out.is_symlink() and os.readlink(out) == str(canary)


def test_export_does_not_write_into_a_directory_another_user_owns(journal_file, users_dir, canary):
    out = users_dir / "o.csv"
    as_nobody("ln", "-s", str(canary), str(out))
    p = cli("journal", "export", "--journal", str(journal_file), "--out", str(out))
    assert_one_line_error(p, f"{users_dir} belongs to uid {NOBODY_UID}")


def test_export_does_not_follow_a_users_symlinked_directory(journal_file, sticky, canary):
    """/tmp/d -> /etc (a user's symlink) and --out /tmp/d/passwd: refused at the symlink."""
    link = sticky / "d"
    as_nobody("ln", "-s", str(canary.parent), str(link))
    p = cli("journal", "export", "--journal", str(journal_file), "--out", str(link / canary.name))
    assert_one_line_error(p, f"{link} is a symlink owned by uid {NOBODY_UID}")


def test_export_refuses_a_directory_writable_by_others_that_is_not_sticky(journal_file, box, canary):
    open_dir = box / "world"
    open_dir.mkdir()
    open_dir.chmod(0o777)
    out = open_dir / "o.csv"
    as_nobody("ln", "-s", str(canary), str(out))
    p = cli("journal", "export", "--journal", str(journal_file), "--out", str(out))
    assert_one_line_error(p, "writable by other users (mode 777)")


def test_export_never_replaces_a_symlink_even_in_roots_own_directory(journal_file, tmp_path, canary):
    out = tmp_path / "o.csv"
    out.symlink_to(canary)
    p = cli("journal", "export", "--journal", str(journal_file), "--out", str(out))
    assert_one_line_error(p, "is a symlink: root replaces only a regular file")


def test_export_writes_a_new_file_in_tmp_0600_whatever_the_umask(journal_file, sticky):
    out = sticky / "new.csv"
    old = os.umask(0)
    try:
        p = cli("journal", "export", "--journal", str(journal_file), "--out", str(out))
    finally:
        os.umask(old)
    assert p.returncode == 0, p.stderr
    st = os.lstat(out)
    assert stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == 0
    assert out.read_text().startswith("jseq,kind")
    assert [e.name for e in sticky.iterdir()] == ["new.csv"]  # no temporary file left


def test_an_existing_export_is_replaced_whole_by_a_new_0600_file(journal_file, tmp_path):
    out = tmp_path / "o.csv"
    out.write_text("old contents, world-readable\n")
    out.chmod(0o644)
    old_inode = out.stat().st_ino
    p = cli("journal", "export", "--journal", str(journal_file), "--out", str(out))
    assert p.returncode == 0, p.stderr
    st = out.stat()
    assert stat.S_IMODE(st.st_mode) == 0o600 and st.st_ino != old_inode
    assert out.read_text().startswith("jseq,kind")


def test_a_failed_write_leaves_neither_the_target_nor_a_temporary_file(tmp_path):
    out = tmp_path / "o.csv"
    with pytest.raises(RuntimeError), safefile.replace_file(out) as f:
        f.write("half")
        raise RuntimeError("stopped half way")
    assert list(tmp_path.iterdir()) == []


# -- bench --out and the perf tool's output ---------------------------------------------


def test_bench_out_in_another_users_directory_is_refused_before_the_run(users_dir):
    opts = Options(out_dir=users_dir / "bench")
    with pytest.raises(BenchError, match=f"belongs to uid {NOBODY_UID}"):
        opts.check()


def test_bench_results_never_follow_a_planted_symlink(sticky, canary):
    out_dir = sticky / "bench"
    as_nobody("mkdir", str(out_dir))  # a user made the directory first
    as_nobody("ln", "-s", str(canary), str(out_dir / "results.md"))
    with pytest.raises(BenchError, match=f"belongs to uid {NOBODY_UID}"):
        write_outputs({}, {}, out_dir)


def test_bench_results_land_0600_in_a_directory_it_makes(tmp_path, monkeypatch):
    from hft_tui.bench import report

    monkeypatch.setattr(report, "markdown", lambda result: "# results\n")
    monkeypatch.setattr(report, "svg", lambda result, samples: "<svg/>\n")
    out_dir = tmp_path / "a" / "b"
    files = write_outputs({"x": 1}, {}, out_dir)
    assert sorted(Path(f).name for f in files) == ["latency.svg", "results.json", "results.md"]
    for f in files:
        assert stat.S_IMODE(os.stat(f).st_mode) == 0o600
    assert sorted(e.name for e in out_dir.iterdir()) == ["latency.svg", "results.json", "results.md"]


def test_the_perf_tools_writer_refuses_the_same_attack(sticky, canary):
    """app_perf --out and lab feed --pcap-out write through safefile.write_file / replace_file."""
    out = sticky / "app.json"
    as_nobody("ln", "-s", str(canary), str(out))
    with pytest.raises(PathError, match="already exists"):
        safefile.write_file(out, '{"x": 1}\n')
    with pytest.raises(PathError, match="already exists"), safefile.replace_file(out, text=False) as f:
        f.write(b"pcap")


# -- the journal, written in place ------------------------------------------------------


def test_a_journal_path_that_is_a_symlink_is_refused(tmp_path, canary):
    path = tmp_path / "j.journal.sqlite"
    path.symlink_to(canary)
    with pytest.raises(JournalError, match="is a symlink"):
        Journal(path)


def test_a_journal_planted_by_a_user_in_tmp_is_refused(sticky, canary):
    path = sticky / "j.journal.sqlite"
    as_nobody("ln", "-s", str(canary), str(path))
    with pytest.raises(JournalError, match="already exists"):
        Journal(path)
    as_nobody("rm", str(path))
    as_nobody("touch", str(path))  # a user's own empty file: root must not take it for a journal
    with pytest.raises(JournalError, match="already exists"):
        Journal(path)


def test_a_users_wal_file_planted_before_a_new_journal_is_refused(sticky):
    """The journal does not exist yet, but its -wal does: SQLite would replay the user's pages."""
    path = sticky / "j.journal.sqlite"
    as_nobody("touch", f"{path}-wal")
    with pytest.raises(JournalError, match=f"belongs to uid {NOBODY_UID}"):
        Journal(path)


def test_a_journal_that_is_a_hard_link_to_another_file_is_refused(tmp_path, canary):
    path = tmp_path / "j.journal.sqlite"
    os.link(canary, path)
    with pytest.raises(JournalError, match="2 hard links"):
        Journal(path)


def test_a_journal_in_a_users_directory_is_refused(users_dir):
    with pytest.raises(JournalError, match=f"belongs to uid {NOBODY_UID}"):
        Journal(users_dir / "j.journal.sqlite")
    assert list(users_dir.iterdir()) == []


def test_a_new_journal_in_tmp_is_made_roots_and_0600(sticky):
    path = sticky / "j.journal.sqlite"
    old = os.umask(0)
    try:
        with Journal(path) as j:
            j.record_control("attach", program_hash="h", config_version=1)
    finally:
        os.umask(old)
    for f in sticky.iterdir():
        st = os.lstat(f)
        assert (stat.S_IMODE(st.st_mode), st.st_uid) == (0o600, 0), f


def test_engine_run_refuses_a_symlinked_journal_in_one_line_and_leaves_nothing_attached(make_lab, tmp_path, canary):
    """`sudo hft-tui engine run IFACE --journal PATH` on a planted symlink: one
    line, the engine it attached for the run is detached again.  Lab 140."""
    L = make_lab(140)
    path = tmp_path / "j.journal.sqlite"
    path.symlink_to(canary)
    p = cli("engine", "run", L.engine_iface, "--journal", str(path))
    assert_one_line_error(p, "is a symlink")
    assert not paths.pin_dir(L.engine_iface).exists()
    assert path.is_symlink()


# -- logs --------------------------------------------------------------------------------


def test_a_log_is_0600_and_never_opened_through_a_symlink(tmp_path, canary):
    log = tmp_path / "x.log"
    old = os.umask(0)
    try:
        with safefile.open_private_log(log) as f:
            f.write(b"line\n")
    finally:
        os.umask(old)
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    link = tmp_path / "y.log"
    link.symlink_to(canary)
    with pytest.raises(PathError, match="symlink"):
        safefile.open_private_log(link)
    with pytest.raises(PathError, match="symlink"):
        safefile.open_private_log(link, append=False)


def test_a_long_lived_writer_new_file_refuses_a_users_symlinked_directory_and_commits_or_aborts(sticky, canary):
    """NewFile is what a capture writer builds on: the /tmp/d -> /etc attack is refused at once."""
    link = sticky / "d"
    as_nobody("ln", "-s", str(canary.parent), str(link))
    with pytest.raises(PathError, match=f"{link} is a symlink owned by uid {NOBODY_UID}"):
        safefile.NewFile(link / canary.name)
    kept = safefile.NewFile(sticky / "cap.pcap")
    kept.file.write(b"\xd4\xc3\xb2\xa1")
    assert not (sticky / "cap.pcap").exists()  # nothing at the target until commit
    kept.commit()
    assert (sticky / "cap.pcap").read_bytes() == b"\xd4\xc3\xb2\xa1"
    dropped = safefile.NewFile(sticky / "gone.pcap")
    dropped.file.write(b"half")
    dropped.abort()
    assert sorted(e.name for e in sticky.iterdir()) == ["cap.pcap", "d"]
