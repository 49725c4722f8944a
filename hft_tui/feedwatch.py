"""Alerts on the feed's channels: a sequence gap, and duplicates beyond A/B.

Gaps and duplicates are what a desk watches first on a real feed.  The
kernel counts them per channel (maps.FeedChannel); a controller hands each
tick's channels to a :class:`FeedWatch`, which compares them with the last
ones it saw:

 - a gap (a channel's ``gaps`` grew): an alert at once, every tick it grows,
   with the messages missed;
 - duplicates growing unusually: on an A/B feed every packet arrives twice,
   so one duplicate per new packet is the normal case.  Over each window of
   DUP_WINDOW_S, a channel whose duplicates exceed its new packets by more
   than DUP_SLACK (a share of them, plus DUP_MIN) raises one alert: a third
   copy, a resend storm, or someone replaying the feed.

The channels the watch first sees are its baseline (a controller that
starts on a running engine does not alert on old gaps); a channel that
appears later starts from zero.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .events import Alert
from .maps import FeedChannel

#: duplicates are judged over windows of this length
DUP_WINDOW_S = 1.0
#: a window's duplicates may exceed its new packets by this share of them ...
DUP_SLACK = 0.25
#: ... plus this many, before it is unusual
DUP_MIN = 20


@dataclass(frozen=True)
class _Counts:
    packets: int
    gaps: int
    gap_messages: int
    dup_packets: int

    @classmethod
    def of(cls, ch: FeedChannel) -> _Counts:
        return cls(ch.packets, ch.gaps, ch.gap_messages, ch.dup_packets)


ZERO = _Counts(0, 0, 0, 0)


@dataclass(frozen=True)
class FeedAlert:
    """An alert, and what the journal's control row of it holds."""

    alert: Alert
    detail: dict[str, object]


def unusual_duplicates(new_packets: int, duplicates: int) -> bool:
    """More duplicates in a window than one copy of each new packet allows."""
    return duplicates > new_packets * (1 + DUP_SLACK) + DUP_MIN


class FeedWatch:
    def __init__(self) -> None:
        self._seen: dict[str, _Counts] | None = None
        self._window: dict[str, _Counts] = {}
        self._window_start = 0.0

    def check(self, channels: Iterable[FeedChannel], now: float) -> list[FeedAlert]:
        """The alerts of this tick (``now``: a monotonic clock, in seconds)."""
        current = {ch.id: ch for ch in channels}
        counts = {cid: _Counts.of(ch) for cid, ch in current.items()}
        if self._seen is None:  # the baseline
            self._seen, self._window, self._window_start = counts, dict(counts), now
            return []
        alerts = [self._gap(current[cid], c, self._seen.get(cid, ZERO)) for cid, c in counts.items()]
        self._seen = counts
        if now - self._window_start >= DUP_WINDOW_S:
            alerts += [self._duplicates(cid, c, self._window.get(cid, ZERO)) for cid, c in counts.items()]
            self._window, self._window_start = dict(counts), now
        return [a for a in alerts if a is not None]

    @staticmethod
    def _gap(ch: FeedChannel, now: _Counts, before: _Counts) -> FeedAlert | None:
        gaps, missed = now.gaps - before.gaps, now.gap_messages - before.gap_messages
        if gaps <= 0:
            return None
        detail: dict[str, object] = {
            "channel": ch.id,
            "gaps": gaps,
            "gap_messages": missed,
            "next_seq": ch.next_seq,
            "total_gaps": now.gaps,
            "total_gap_messages": now.gap_messages,
        }
        alert = Alert(
            "feed",
            "gap",
            missed,
            message=(
                f"FEED GAP on channel {ch.id}: {gaps} gap{'s' if gaps > 1 else ''}, {missed:,} message(s) "
                f"never received (next seq {ch.next_seq:,}; {now.gaps:,} gaps, {now.gap_messages:,} messages "
                "in all)"
            ),
        )
        return FeedAlert(alert, detail)

    @staticmethod
    def _duplicates(cid: str, now: _Counts, before: _Counts) -> FeedAlert | None:
        dups = now.dup_packets - before.dup_packets
        fresh = (now.packets - before.packets) - dups
        if not unusual_duplicates(fresh, dups):
            return None
        detail: dict[str, object] = {
            "channel": cid,
            "dup_packets": dups,
            "new_packets": fresh,
            "window_s": DUP_WINDOW_S,
            "total_dup_packets": now.dup_packets,
        }
        alert = Alert(
            "feed",
            "duplicates",
            dups,
            message=(
                f"FEED DUPLICATES on channel {cid}: {dups:,} duplicate packets for {fresh:,} new ones "
                "(more than the A/B copy of each)"
            ),
        )
        return FeedAlert(alert, detail)
