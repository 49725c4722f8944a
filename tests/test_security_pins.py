"""The pin root on a world-writable bpffs (issue 14: "The pin root").

Every attack runs against a private bpffs mounted for the test, without a
mode (1777, as /sys/fs/bpf is on these machines), with real pins of a
loaded program; the real /sys/fs/bpf/hft_tui is never touched.  A user
(``nobody``) makes what a user can make on bpffs (directories, symlinks);
what only root could have left (a foreign owner, a loose mode) is made by
root for the test.  Each time: refused in one line and nothing removed (the
canary directory and its file stay, pins stay).
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest

from hft_tui import libbpf, pins
from hft_tui.errors import EngineError

NOBODY_UID = 65534
NOBODY = ["setpriv", f"--reuid={NOBODY_UID}", f"--regid={NOBODY_UID}", "--clear-groups", "--inh-caps=-all"]
IFACE = "hft140"


def as_nobody(*argv: str) -> None:
    p = subprocess.run([*NOBODY, *argv], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, (argv, p.stderr)


@pytest.fixture
def bpffs():
    """A bpffs of our own, mounted without a mode (1777), in a directory nobody can traverse."""
    box = Path(tempfile.mkdtemp(prefix="hft140-pins-"))
    box.chmod(0o755)
    mnt = box / "bpf"
    mnt.mkdir(mode=0o755)
    subprocess.run(["mount", "-t", "bpf", "bpf", str(mnt)], check=True)
    try:
        assert stat.S_IMODE(mnt.stat().st_mode) == 0o1777  # what the attack needs: anyone may make entries
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=True)
        shutil.rmtree(box)


@pytest.fixture
def canary(bpffs):
    """What a symlink would lead the removal to: a user's directory with a file, and one named like an engine."""
    home = bpffs.parent / "home"
    (home / IFACE).mkdir(parents=True)
    (home / "canary").write_text("a user's file\n")
    (home / IFACE / "canary").write_text("a user's file\n")
    files = sorted(str(p.relative_to(home)) for p in home.rglob("*"))
    yield home
    assert sorted(str(p.relative_to(home)) for p in home.rglob("*")) == files, "the canary lost files"


@pytest.fixture
def pinned(strategy_program):
    """(map fds, prog fd) of a loaded program: the real things pin_all pins."""
    _, prog_fd, maps = strategy_program
    return {name: maps.fds[name] for name in ("kill_switch", "global_config")}, prog_fd


def pin_names(directory: Path) -> list[str]:
    return sorted(os.listdir(directory))


def assert_refused(call, words: str) -> None:
    with pytest.raises(EngineError) as exc:
        call()
    text = str(exc.value)
    assert "\n" not in text and words in text, text


def test_pins_are_made_root_only_and_removed_whole(bpffs, pinned):
    root = bpffs / "hft_tui"
    fds, prog = pinned
    pins.pin_all(root / IFACE, fds, prog)
    for d in (root, root / IFACE):
        st = os.lstat(d)
        assert (stat.S_IMODE(st.st_mode), st.st_uid) == (0o700, 0)
    assert pins.attached_ifaces(root) == [IFACE]
    assert pin_names(root / IFACE) == ["global_config", "kill_switch", "prog"]
    assert pins.pinned_prog_id(root / IFACE) == libbpf.prog_info(prog).id
    pins.unpin_all(root / IFACE)
    assert pins.attached_ifaces(root) == [] and os.listdir(root) == []


def test_a_users_symlink_as_the_pin_root_is_refused_and_nothing_is_removed(bpffs, canary, pinned):
    """The issue's attack: `ln -s /home /sys/fs/bpf/hft_tui`, then `sudo hft-tui engine detach`."""
    root = bpffs / "hft_tui"
    as_nobody("ln", "-s", str(canary), str(root))
    fds, prog = pinned
    for call in (
        lambda: pins.unpin_all(root / IFACE),
        lambda: pins.attached_ifaces(root),
        lambda: pins.check_pin_dir(root / IFACE),
        lambda: pins.pinned_prog_id(root / IFACE),
        lambda: pins.pin_all(root / IFACE, fds, prog),
    ):
        assert_refused(call, "it is a symlink")
    assert root.is_symlink()


def test_a_pin_root_a_user_made_is_refused(bpffs, pinned):
    root = bpffs / "hft_tui"
    as_nobody("mkdir", "-m", "0700", str(root))
    as_nobody("mkdir", str(root / IFACE))
    as_nobody("mkdir", str(root / IFACE / "kept"))
    fds, prog = pinned
    assert_refused(lambda: pins.unpin_all(root / IFACE), f"belongs to uid {NOBODY_UID}")
    assert_refused(lambda: pins.attached_ifaces(root), f"belongs to uid {NOBODY_UID}")
    assert_refused(lambda: pins.pin_all(root / "hft141", fds, prog), f"belongs to uid {NOBODY_UID}")
    assert pin_names(root / IFACE) == ["kept"] and not (root / "hft141").exists()


@pytest.mark.parametrize("mode", [0o770, 0o707, 0o1777])
def test_a_pin_root_others_can_write_is_refused_and_its_pins_stay(bpffs, pinned, mode):
    root = bpffs / "hft_tui"
    fds, prog = pinned
    pins.pin_all(root / IFACE, fds, prog)
    root.chmod(mode)
    assert_refused(lambda: pins.unpin_all(root / IFACE), f"(mode {mode:o})")
    assert_refused(lambda: pins.attached_ifaces(root), f"(mode {mode:o})")
    assert pin_names(root / IFACE) == ["global_config", "kill_switch", "prog"]
    root.chmod(0o700)
    pins.unpin_all(root / IFACE)


def test_a_pin_directory_owned_by_a_user_or_writable_by_others_is_refused(bpffs, pinned):
    root = bpffs / "hft_tui"
    fds, prog = pinned
    pins.pin_all(root / IFACE, fds, prog)
    os.chown(root / IFACE, NOBODY_UID, NOBODY_UID)
    assert_refused(lambda: pins.unpin_all(root / IFACE), f"belongs to uid {NOBODY_UID}")
    assert_refused(lambda: pins.attached_ifaces(root), f"belongs to uid {NOBODY_UID}")
    assert_refused(lambda: pins.pinned_prog_id(root / IFACE), f"belongs to uid {NOBODY_UID}")
    os.chown(root / IFACE, 0, 0)
    (root / IFACE).chmod(0o722)
    assert_refused(lambda: pins.unpin_all(root / IFACE), "(mode 722)")
    assert pin_names(root / IFACE) == ["global_config", "kill_switch", "prog"]
    (root / IFACE).chmod(0o700)
    pins.unpin_all(root / IFACE)


def test_a_symlinked_pin_directory_is_refused_and_its_target_kept(bpffs, canary):
    root = bpffs / "hft_tui"
    root.mkdir(mode=0o700)
    (root / IFACE).symlink_to(canary / IFACE)
    assert_refused(lambda: pins.unpin_all(root / IFACE), "it is a symlink")
    assert_refused(lambda: pins.attached_ifaces(root), "it is a symlink")
    assert (root / IFACE).is_symlink()


def test_an_entry_whose_name_is_not_an_interface_is_refused(bpffs):
    root = bpffs / "hft_tui"
    root.mkdir(mode=0o700)
    (root / "a b").mkdir(mode=0o700)
    assert_refused(lambda: pins.attached_ifaces(root), "its name is not an interface name")


def test_a_pin_directory_holding_a_directory_is_refused_whole(bpffs, pinned):
    root = bpffs / "hft_tui"
    fds, prog = pinned
    pins.pin_all(root / IFACE, fds, prog)
    (root / IFACE / "nested").mkdir()
    assert_refused(lambda: pins.unpin_all(root / IFACE), "holds only pins")
    assert pin_names(root / IFACE) == ["global_config", "kill_switch", "nested", "prog"]
    (root / IFACE / "nested").rmdir()
    pins.unpin_all(root / IFACE)


def test_a_bpffs_writable_by_others_without_the_sticky_bit_is_refused(bpffs, pinned):
    """In a 0777 directory anyone could rename root's pin root away and put their own in its place."""
    fds, prog = pinned
    bpffs.chmod(0o777)
    try:
        assert_refused(lambda: pins.pin_all(bpffs / "hft_tui" / IFACE, fds, prog), "not sticky")
    finally:
        bpffs.chmod(0o1777)


def test_pin_all_refuses_a_pin_directory_that_already_exists(bpffs, pinned):
    root = bpffs / "hft_tui"
    root.mkdir(mode=0o700)
    (root / IFACE).mkdir(mode=0o700)
    fds, prog = pinned
    assert_refused(lambda: pins.pin_all(root / IFACE, fds, prog), "it already exists")
    assert pin_names(root / IFACE) == []
