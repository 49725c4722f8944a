"""The one supervision loop: a controller run until it is told to stop or its engine ends.

Both supervisors run it: ``hft-tui engine run`` (alerts on stderr) and the
app's supervisor process (a view to the app each tick).  Each pass:

 - ticks the controller (heartbeat, drain into the journal, alerts) when a
   tick is due (every ``interval_s``), at once when a ring holds a tick's
   batch (a slow tick rate must never let a ring fill and drop orders), and,
   with ``wake_on_events``, whenever records wait;
 - between two ticks, beats the heartbeat at least five times per dead-man
   deadline, the deadline read from the kernel at every pass, so a deadline
   shortened live (in the app or with ``engine set-engine``) is met at once;
 - waits for the next of these, or for the stop flag (a signal handler or
   another thread sets it; setting it takes no lock).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from .controller import Controller, Tick
from .stopflag import StopFlag


class SupervisionLoop:
    def __init__(
        self, controller: Controller, stop: StopFlag, *, interval_s: float, wake_on_events: bool = False
    ) -> None:
        self.controller = controller
        self.stop = stop
        self.interval_s = interval_s
        self.wake_on_events = wake_on_events

    def run(self, on_tick: Callable[[Tick], None], before_tick: Callable[[], None] | None = None) -> Tick | None:
        """Runs until the stop flag is set (returns None) or the engine ends
        (returns the tick that says so, after ``on_tick`` saw it).
        ``before_tick`` runs first on every pass (e.g. journaling an
        operator's changes, so they land before the next tick's alerts)."""
        ctl = self.controller
        next_tick = time.monotonic()
        while not self.stop.is_set():
            if before_tick is not None:
                before_tick()
            now = time.monotonic()
            due = now >= next_tick
            waiting = self.wake_on_events and ctl.rings.pending()
            if due or waiting or ctl.rings.behind(ctl.MAX_BATCH):
                tick = ctl.tick(0)
                on_tick(tick)
                if tick.ended:
                    return tick
                if due:
                    # A slow tick does not make the next ones come faster to catch up.
                    next_tick = max(next_tick + self.interval_s, time.monotonic())
            else:
                ctl.beat()  # nothing to drain: the heartbeat only
            wait_s = max(0.0, min(next_tick - time.monotonic(), ctl.beat_interval_s()))
            if self.wake_on_events:
                ctl.rings.wait(math.ceil(wait_s * 1000), wake_fd=self.stop.fileno())
            else:
                self.stop.wait(wait_s)
        return None
