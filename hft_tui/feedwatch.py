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
appears later starts from zero.  Also:

 - packets refused beyond max_seq_jump (a channel's ``seq_jumps`` grew): the
   channel does not move until an operator says it was an outage
   (``hft-tui engine reset-channel``), so every one is news;
 - a channel reset (it vanished from the map, or its counters went back:
   ``engine reset-channel``), journaled as the operator's act it is;
 - the channels map full (the feed counter ``channels_full`` grew): a new
   channel's packets are not traded.
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
    seq_jumps: int = 0
    next_seq: int = 0

    @classmethod
    def of(cls, ch: FeedChannel) -> _Counts:
        return cls(ch.packets, ch.gaps, ch.gap_messages, ch.dup_packets, ch.seq_jumps, ch.next_seq)

    def went_back(self, before: _Counts) -> bool:
        """A channel's packet count only grows while it lives: a lower one means it was reset
        (deleted from the map) and made again by its next packet."""
        return self.packets < before.packets


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
        self._channels_full: int | None = None

    def check(self, channels: Iterable[FeedChannel], now: float, channels_full: int = 0) -> list[FeedAlert]:
        """The alerts of this tick (``now``: a monotonic clock, in seconds; ``channels_full``:
        the feed counter of packets whose channel found the map full)."""
        current = {ch.id: ch for ch in channels}
        counts = {cid: _Counts.of(ch) for cid, ch in current.items()}
        if self._seen is None:  # the baseline
            self._seen, self._window, self._window_start = counts, dict(counts), now
            self._channels_full = channels_full
            return []
        alerts: list[FeedAlert | None] = []
        for cid, before in self._seen.items():
            if cid not in counts or counts[cid].went_back(before):
                alerts.append(self._reset(cid, before))
                self._window.pop(cid, None)
        seen = {cid: (ZERO if cid in counts and counts[cid].went_back(b) else b) for cid, b in self._seen.items()}
        alerts += [self._gap(current[cid], c, seen.get(cid, ZERO)) for cid, c in counts.items()]
        alerts += [self._seq_jump(current[cid], c, seen.get(cid, ZERO)) for cid, c in counts.items()]
        alerts.append(self._full(channels_full))
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
    def _seq_jump(ch: FeedChannel, now: _Counts, before: _Counts) -> FeedAlert | None:
        refused = now.seq_jumps - before.seq_jumps
        if refused <= 0:
            return None
        detail: dict[str, object] = {"channel": ch.id, "seq_jumps": refused, "total_seq_jumps": now.seq_jumps,
                                     "next_seq": ch.next_seq}  # fmt: skip
        alert = Alert(
            "feed",
            "seq_jump",
            refused,
            message=(
                f"FEED SEQUENCE JUMP on channel {ch.id}: {refused:,} packet(s) refused beyond max_seq_jump "
                f"(next seq {ch.next_seq:,}); nothing on it trades: an outage? hft-tui engine reset-channel "
                f"--channel {ch.id}"
            ),
        )
        return FeedAlert(alert, detail)

    @staticmethod
    def _reset(cid: str, before: _Counts) -> FeedAlert:
        detail: dict[str, object] = {"channel": cid, "next_seq_before": before.next_seq}
        alert = Alert(
            "feed", "channel_reset", 1, message=f"feed channel {cid} reset: its next packet sets its sequence"
        )
        return FeedAlert(alert, detail)

    def _full(self, channels_full: int) -> FeedAlert | None:
        grew = channels_full - (self._channels_full or 0)
        self._channels_full = channels_full
        if grew <= 0:
            return None
        alert = Alert(
            "feed",
            "channels_full",
            grew,
            message=(
                f"FEED CHANNELS FULL: {grew:,} packet(s) of a new channel not traded (the engine holds 256 "
                "channels; hft-tui engine reset-channel --channel ID frees one)"
            ),
        )
        return FeedAlert(alert, {"packets": grew, "total": channels_full})

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
