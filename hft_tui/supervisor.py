"""``hft-tui engine run IFACE``: the foreground supervisor, without the TUI.

It attaches the engine when none is attached on IFACE (else it takes over
the pinned one), then runs a :class:`~hft_tui.controller.Controller` with the
journal: the heartbeat (at least five beats per dead-man deadline, the
deadline read from the kernel every tick, so one shortened live is met at
once), the lossless drain into the journal, and alerts on stderr.

Stopping: SIGINT or SIGTERM drains the rings into the journal and detaches
the engine (trading stops at once).  ``--keep-attached`` leaves it attached
with the switch armed instead: with no heartbeat the kernel stops sending
orders after the deadline, and the next controller to start latches the
kill switch, so trading resumes only when an operator resumes it.
SIGKILL cannot be caught: the kernel's dead-man switch is what stops the
orders then, and the journal loses nothing (see controller.py).
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from collections import defaultdict

from . import engine, paths
from .config import default_config, load_config, parse_deadman_ms
from .controller import Controller
from .events import Alert
from .journal import journal_path, open_journal
from .pins import attached_ifaces
from .preflight import require_root
from .status import OPEN_FEED
from .stopflag import StopFlag
from .supervision import SupervisionLoop

#: one tick waits at most this long for events: 20 ticks a second when idle,
#: more when a fifth of the dead-man deadline is shorter (the tick beats)
TICK_MS = 50
#: reject alerts are summed and printed at most this often (one line per reason)
SUMMARY_S = 1.0


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``engine run`` (the CLI may add them from here)."""
    p.add_argument("iface")
    p.add_argument("--config", help="TOML config, used when the engine must be attached first")
    p.add_argument("--mode", choices=("native", "generic"))
    p.add_argument("--journal", metavar="PATH", help=f"journal file (default {paths.JOURNAL_DIR}/IFACE.journal.sqlite)")
    p.add_argument("--deadman", type=int, metavar="MS", help="dead-man deadline (default: the config's, 500)")
    p.add_argument(
        "--keep-attached",
        action="store_true",
        help="on SIGINT/SIGTERM leave the engine attached and armed instead of detaching it",
    )


def _say(text: str) -> None:
    stamp = time.strftime("%H:%M:%S")
    print(f"{stamp} {text}", file=sys.stderr, flush=True)


class _AlertPrinter:
    """Prints alerts on stderr: urgent ones at once, reject counts once a second."""

    URGENT = ("kill", "engine", "journal", "journal_gap", "journal_size", "ringbuf_drops", "tape_drops", "feed")

    def __init__(self) -> None:
        self._rejects: dict[tuple[str, str], int] = defaultdict(int)
        self._next = time.monotonic() + SUMMARY_S

    def add(self, alerts: list[Alert]) -> None:
        for a in alerts:
            if a.kind in self.URGENT:
                _say(a.text())
            else:
                self._rejects[(a.reason, a.symbol)] += a.count
        if self._rejects and time.monotonic() >= self._next:
            self.flush()

    def flush(self) -> None:
        for (reason, symbol), n in sorted(self._rejects.items()):
            _say(f"rejects {reason}{' ' + symbol if symbol else ''}: {n}")
        self._rejects.clear()
        self._next = time.monotonic() + SUMMARY_S


def _attach_or_take_over(args) -> tuple[engine.EngineHandle, bool]:
    """(handle, attached_here).  A fresh attach when nothing of ours runs on the interface."""
    iface = paths.check_ifname(args.iface)
    if iface in attached_ifaces():
        h = engine.EngineHandle(iface)
        if h.attached():
            if args.config:
                _say(
                    f"an engine already runs on {iface}: taking it over as it is (--config {args.config} "
                    "not applied; change it with 'hft-tui engine set')"
                )
            return h, False
        h.close()  # pins of an engine that is no longer attached: attach cleans them
    config = load_config(args.config) if args.config else default_config()
    engine.attach(iface, config, mode=args.mode, config_path=args.config)
    return engine.EngineHandle(iface), True


def run(args) -> int:
    require_root()
    paths.check_ifname(args.iface)
    stop = StopFlag()  # set from the signal handler: takes no lock
    stopped_by: list[str] = []

    def on_signal(signum, _frame):
        stopped_by.append(signal.Signals(signum).name)
        stop.set()

    # Before anything slow: a SIGTERM during the attach still stops cleanly.
    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        return _supervise(args, stop, stopped_by)
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        stop.close()


def _supervise(args, stop: StopFlag, stopped_by: list[str]) -> int:
    deadman = getattr(args, "deadman", None)
    if deadman is not None:
        # The config's range (100..3600000): a taken-over engine is armed with it as given.
        deadman = parse_deadman_ms(deadman)
    jpath = getattr(args, "journal", None) or journal_path(args.iface)
    # The engine first: a failed attach leaves no journal file behind.  Then a
    # journal that cannot open detaches what was attached here.
    handle, attached_here = _attach_or_take_over(args)
    try:
        # Capped and budgeted (the engine's journal_max_mb, journal_reject_rows_per_s, from its
        # state file): a reject flood never fills the disk.
        jp = handle.record.journal_params() if handle.record else None
        journal = (
            open_journal(args.iface, jpath, max_mb=jp.journal_max_mb, reject_rows_per_s=jp.journal_reject_rows_per_s)
            if jp
            else open_journal(args.iface, jpath)
        )
    except BaseException:
        handle.close()
        if attached_here:
            engine.detach(handle.iface)
        raise
    rec = handle.record
    ctl: Controller | None = None
    try:
        ctl = Controller(handle, journal=journal, deadman_ms=deadman)  # opens the rings: may be refused
        if attached_here and rec is not None:
            journal.begin_engine(
                iface=handle.iface, prog_id=rec.prog_id, attached_at=rec.attached_at, program_hash=rec.program_hash
            )
            journal.record_control(
                "attach",
                program_hash=rec.program_hash,
                config_version=handle.maps.read_global().config_version,
                detail=rec.attach_detail(),
            )
        ctl.start()
    except BaseException:
        if ctl is not None:
            ctl.rings.close()
        journal.close()
        handle.close()
        if attached_here:
            engine.detach(handle.iface)
        raise
    mode, prog_id = (rec.mode, rec.prog_id) if rec else ("?", "?")
    _say(
        f"supervising {handle.iface} ({'attached' if attached_here else 'taken over'}, {mode} mode, "
        f"program id {prog_id}, hash {(ctl.program_hash or '-')[:12]}, config v{ctl.config_version}): "
        f"dead-man {ctl.deadline_ms} ms armed, journal {jpath}"
    )
    if rec is not None and rec.open_feed:
        _say(OPEN_FEED)
    if ctl.tripped_on_start:
        _say(
            f"KILL SWITCH LATCHED: the previous controller died (heartbeat expired); trading resumes "
            f"with 'hft-tui engine resume {handle.iface}'"
        )
    printer = _AlertPrinter()
    try:
        ended = SupervisionLoop(ctl, stop, interval_s=TICK_MS / 1000, wake_on_events=True).run(
            lambda tick: printer.add(tick.alerts)
        )
        if ended is not None:
            printer.flush()
            _say(f"supervision of {handle.iface} ended: {ended.ended}")
            return 1
        printer.flush()
        keep = getattr(args, "keep_attached", False)
        why = stopped_by[0] if stopped_by else "stop"
        _say(f"{why}: stopping, {'leaving the engine armed' if keep else 'detaching'}")
        for line in ctl.stop(detach=not keep):
            _say(line)
        v = journal.verify()
        _say(
            f"journal: {v['rows']} order(s), {v['rejects']} reject(s), {v['gaps']} missing order id(s), "
            f"{v['drops']} ring-buffer drop(s)"
        )
        return 0
    finally:
        if not ctl.ended:  # an exception: do not leave the engine unsupervised and trading
            try:
                ctl.stop(detach=False)
            except Exception:
                pass
        journal.close()
        handle.close()
