"""The engine's controller in a process of its own, feeding the app views.

Draining the rings into the journal is steady Python work (at 100k updates
a second, about 5% of a core).  In the app's process it would hold the
interpreter lock against the UI thread, and a key press would wait behind
it; in its own process it cannot delay the UI, and the kill key (a map
write done by the UI process itself) stays fast whatever the feed does.

    python -m hft_tui.app.supervisor_process IFACE [--poll-hz 10] [--app-pid PID] [--deterministic]

The controller runs in the supervision loop (supervision.py) at the poll
rate: it ticks (drain, journal, alerts), at once whenever a ring holds a
tick's batch, and it beats the heartbeat between ticks at least five times
per dead-man deadline.  A view goes to the app at most every VIEW_EVERY_S
(the screen redraws at 2 Hz), at once when an alert, the kill switch or the
link asks for it; the ticks in between are noted into it.

Protocol: stdout carries length-prefixed pickles of (kind, payload) tuples:
("started", (tripped_on_start, journal_error)), ("view", EngineView) as said
above, and last ("ended", (error, stop_lines)).  stdin carries one JSON
object a line: {"change": [what, detail]} journals an operator's change,
{"stop": {"detach": bool}} ends supervision.  If the app dies this process
gets SIGTERM (PR_SET_PDEATHSIG): it sets the kill switch and stops, leaving
the engine attached and killed; if the app died before the PDEATHSIG could
be asked for, it sets the kill switch too before it exits.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import pickle
import queue
import signal
import socket
import struct
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

from .. import engine
from ..constants import KILL_OFF, KILL_OPERATOR
from ..controller import Controller
from ..engine import EngineHandle
from ..stopflag import StopFlag
from ..supervision import SupervisionLoop
from .feed_model import feed_setup
from .model import LinkState, ViewBuilder

FRAME = struct.Struct("!I")
# The interface's presence and operational state (sysfs) are read this often.
# Its XDP state (netlink) is read once: the controller reads it every second
# and ends supervision when the engine is no longer the one attached.
LINK_CHECK_S = 1.0
# Events decoded per tick for the screen (the journal gets all of them): the
# tape shows a dozen lines a view, the rest would be decoded for nothing.
EVENTS_FOR_THE_SCREEN = 64
# A view goes to the app at most this often (the screen redraws at 2 Hz), and at
# once when it must: an alert, the kill switch changed, the link changed, the end.
# Ticks in between are noted (tape, alerts, counts), never lost.
VIEW_EVERY_S = 0.25
PR_SET_PDEATHSIG = 1


def open_journal(handle: EngineHandle):
    """The one place the app creates the order journal of the engine it supervises:
    capped and budgeted as the engine was attached for (its state file)."""
    from ..journal import open_journal as open_iface_journal

    if handle.record is None:
        return open_iface_journal(handle.iface)
    jp = handle.record.journal_params()
    return open_iface_journal(handle.iface, max_mb=jp.journal_max_mb, reject_rows_per_s=jp.journal_reject_rows_per_s)


class Supervisor:
    def __init__(self, iface: str, poll_hz: float, deterministic: bool, out) -> None:
        self.iface = iface
        self.interval = 1.0 / poll_hz
        self.deterministic = deterministic
        self.out = out
        self.commands: queue.SimpleQueue = queue.SimpleQueue()
        self.stop = StopFlag()  # set by the SIGTERM handler too
        self.detach = False
        self.kill_on_stop = False

    def send(self, kind: str, payload) -> None:
        data = pickle.dumps((kind, payload), protocol=pickle.HIGHEST_PROTOCOL)
        self.out.write(FRAME.pack(len(data)) + data)
        self.out.flush()

    def read_commands(self, stream) -> None:
        """stdin, on its own thread: changes to journal, and the stop."""
        for line in stream:
            try:
                cmd = json.loads(line)
            except ValueError:
                continue
            if "stop" in cmd:
                self.detach = bool(cmd["stop"].get("detach"))
                self.stop.set()
                return
            if "change" in cmd:
                self.commands.put(tuple(cmd["change"]))
        # stdin closed: the app is gone without a word.
        self.kill_on_stop = True
        self.stop.set()

    @staticmethod
    def link(handle: EngineHandle) -> LinkState:
        xdp = handle.xdp()
        if xdp is None:
            return LinkState(present=False)
        ours = handle.attached_as(xdp)
        return LinkState(
            present=True,
            attached=ours,
            mode=xdp.mode if ours else None,
            prog_id=xdp.prog_id if ours else None,
            operstate=operstate(handle.iface),
        )

    @staticmethod
    def recheck(handle: EngineHandle, link: LinkState) -> LinkState:
        """The link again, cheaply: is the interface there, and its operational state (sysfs)."""
        try:
            socket.if_nametoindex(handle.iface)
        except OSError:
            return LinkState(present=False)
        if not link.present:
            return Supervisor.link(handle)  # back: its XDP state again
        return replace(link, operstate=operstate(handle.iface))

    def open_journal(self, handle: EngineHandle):
        """The journal, or (None, why): orders that cannot be journaled may not be sent."""
        try:
            return open_journal(handle), None
        except Exception as exc:
            if handle.maps.kill() == KILL_OFF:
                handle.maps.set_kill(KILL_OPERATOR)
            return None, (
                f"JOURNAL UNAVAILABLE ({exc}): kill switch latched; supervising without a journal "
                "(orders stay in the ring buffer for the next journal)"
            )

    def run(self) -> None:
        error, lines = None, []
        controller = handle = journal = None
        try:
            handle = EngineHandle(self.iface)
            journal, journal_error = self.open_journal(handle)
            controller = Controller(handle, journal=journal)
            controller.MAX_EVENTS_PER_TICK = EVENTS_FOR_THE_SCREEN
            controller.start()
            self.send("started", (controller.tripped_on_start, journal_error))
            builder = ViewBuilder(
                self.iface,
                handle.record,
                deterministic=self.deterministic,
                events_kept=4 * EVENTS_FOR_THE_SCREEN,
                feed=feed_setup(handle),
            )
            link = self.link(handle)
            next_link_check = time.monotonic() + LINK_CHECK_S
            next_view = 0.0

            def journal_changes() -> None:
                while not self.commands.empty():
                    controller.record_change(*self.commands.get_nowait())

            def send_view(tick) -> None:
                nonlocal link, next_link_check, next_view
                builder.note(tick)
                now = time.monotonic()
                if now >= next_link_check:
                    link, next_link_check = self.recheck(handle, link), now + LINK_CHECK_S
                if now >= next_view or builder.urgent(tick, link):
                    self.send("view", builder.build(tick, link))
                    next_view = now + VIEW_EVERY_S

            ended = SupervisionLoop(controller, self.stop, interval_s=self.interval).run(send_view, journal_changes)
            if ended is not None:
                # The interface went away or the engine was detached under us;
                # the controller journaled it and cleaned the pins.
                error = "; ".join(a.text() for a in ended.alerts if a.kind == "engine") or ended.ended
        except Exception as exc:  # one line for the app; never a traceback
            error = f"supervision of {self.iface} failed: {exc}"
        finally:
            if self.kill_on_stop and handle is not None:
                try:
                    handle.kill()
                    lines.append(f"{self.iface}: the app went away: kill switch set")
                except Exception:
                    pass
            if controller is not None and not controller.ended:
                try:
                    lines.extend(controller.stop(detach=self.detach))
                except Exception as exc:
                    error = error or f"stopping supervision of {self.iface}: {exc}"
            if journal is not None:
                journal.close()
            if handle is not None:
                handle.close()
            try:
                self.send("ended", (error, lines))
            except (BrokenPipeError, OSError):
                pass


def operstate(iface: str) -> str | None:
    """The interface's operational state as the kernel reports it (up, down,
    lowerlayerdown, unknown, ...); None when it cannot be read."""
    try:
        return Path(f"/sys/class/net/{iface}/operstate").read_text().strip()
    except OSError:
        return None


def kill_orphaned(iface: str) -> None:
    """The app is gone before supervision began: stop the engine from trading unsupervised."""
    try:
        engine.kill_pinned(iface)
        print(f"{iface}: the app went away before supervision began: kill switch set", file=sys.stderr)
    except Exception as exc:
        print(f"{iface}: the app went away and the kill switch could not be set: {exc}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m hft_tui.app.supervisor_process")
    p.add_argument("iface")
    p.add_argument("--poll-hz", type=float, default=10.0)
    p.add_argument("--app-pid", type=int, help="the app's pid: any other parent means the app is gone")
    p.add_argument("--deterministic", action="store_true")
    args = p.parse_args(argv)
    out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    sys.stdout = sys.stderr  # nothing else may write to the frame stream
    sup = Supervisor(args.iface, args.poll_hz, args.deterministic, out)

    def on_term(signum, frame):
        sup.kill_on_stop = True  # the app died (PDEATHSIG) or someone stops us
        sup.stop.set()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, on_term)  # the app's terminal went away
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    parent = os.getppid()
    if parent != (args.app_pid or parent) or parent == 1:
        # The app died before the prctl (we were reparented): no SIGTERM will
        # come, and an engine left trading would be unsupervised.
        kill_orphaned(args.iface)
        return 1
    threading.Thread(target=sup.read_commands, args=(sys.stdin,), daemon=True).start()
    sup.run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
