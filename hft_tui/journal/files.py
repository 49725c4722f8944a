"""The journal's files: where they live, how they are made, and its parts.

One journal per interface, /var/lib/hft-tui/IFACE.journal.sqlite (directory
0700, files 0600, root's).  Before SQLite opens a file by name, the name is
checked not to lead anywhere else (safefile.py: a symlink, another user's
file, a hard link, a directory others can write).

A journal comes in parts: IFACE.journal.sqlite, then IFACE.journal.sqlite.1, .2, ...

A part is closed for good once it reaches ``journal_max_mb`` and the
journal continues in the next number (rotation).  A part is never
renamed once it has its name: a reader (``journal tail --follow``) may
have one open, and SQLite's -wal and -shm files are found by the name a
file was opened with, so a renamed file and a new one under its old name
would share them.  The first part keeps the journal's name; the newest part (the
highest number) is the one written.  ``journal verify``, ``tail`` and
``export`` read every part, in order, as one journal.

A new part is made whole under a name no reader lists
(IFACE.journal.sqlite.N.making), then linked to its own name (never over
one that exists) and its making name removed: nobody ever opens a part
half made.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
from pathlib import Path

from .. import paths
from ..errors import JournalError, PathError
from ..safefile import make_directories, prepare_private_file

SUFFIX = ".journal.sqlite"
#: files SQLite makes beside the journal; each must be ours too when it exists
SIDECARS = ("-wal", "-shm", "-journal")
#: the suffix of a part being made (see the module's docstring)
MAKING = ".making"


def journal_path(iface: str) -> Path:
    return paths.JOURNAL_DIR / f"{paths.check_ifname(iface)}{SUFFIX}"


def journal_ifaces(directory: Path = paths.JOURNAL_DIR) -> list[str]:
    with contextlib.suppress(OSError):
        return sorted(p.name[: -len(SUFFIX)] for p in directory.glob(f"*{SUFFIX}"))
    return []


def ensure_private_dir(directory: Path) -> None:
    """The journal holds trading data: its directory is root's alone.

    Only our own directory is forced to 0700; the parent of a path given
    with --journal keeps its mode (it may be /tmp), but must be one no other
    user can write (safefile.py; a sticky one only for a new journal).
    """
    if os.path.abspath(directory) == str(paths.JOURNAL_DIR):
        try:
            make_directories(directory, mode=0o700)
        except PathError as exc:
            raise JournalError(f"journal directory: {exc}") from None
        st = os.lstat(directory)
        if stat.S_ISDIR(st.st_mode) and st.st_mode & 0o077:
            os.chmod(directory, 0o700)
    elif not directory.is_dir():
        raise JournalError(f"journal directory {directory} does not exist")


def create_private_file(path: Path) -> None:
    """Made 0600 if new, after the checks above; refused in one line otherwise."""
    try:
        prepare_private_file(path, sidecars=SIDECARS)
    except PathError as exc:
        raise JournalError(f"journal {path}: {exc}") from None


def part_path(base: Path, number: int) -> Path:
    """The path of part ``number`` (0: the journal's own name)."""
    return base if number == 0 else base.with_name(f"{base.name}.{number}")


def making_path(part: Path) -> Path:
    """Where part ``part`` is made before it is linked into place (never a part's name)."""
    return part.with_name(part.name + MAKING)


def remove_making(part: Path) -> None:
    """What a writer left under ``part``'s making name (nothing reads it): all of it when it
    died making the part, the part's second link when it died once the part was in place."""
    making = making_path(part)
    for name in (making, *(making.with_name(making.name + s) for s in SIDECARS)):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)


def part_numbers(base: Path) -> list[int]:
    """The numbers of the parts that exist, in order (0 is the first part)."""
    pattern = re.compile(rf"{re.escape(base.name)}\.([1-9][0-9]{{0,8}})")
    try:
        names = os.listdir(base.parent)
    except FileNotFoundError:
        return []
    numbers = sorted(int(m.group(1)) for n in names if (m := pattern.fullmatch(n)))
    return ([0] if base.name in names else []) + numbers


def parts(base: Path) -> list[Path]:
    """The journal's parts that exist, oldest first."""
    return [part_path(base, n) for n in part_numbers(base)]


def newest_part(base: Path) -> tuple[Path, int]:
    """The part a writer writes: the highest-numbered that exists (the first part when none does)."""
    numbers = part_numbers(base)
    number = numbers[-1] if numbers else 0
    return part_path(base, number), number
