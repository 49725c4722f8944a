"""The feed in the app's views: what is fixed at attach and what the kernel counts.

The supervisor reads a feed's setup once (:func:`feed_setup`) and turns each
snapshot's feed counters and channels into a :class:`FeedView`
(:func:`feed_view`), part of the :class:`~.model.EngineView` the screen draws.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ChannelView:
    """One channel of a real feed (IEX: session/channel, ITCH: the MoldUDP64 session)."""

    id: str
    next_seq: int
    packets: int
    messages: int
    gaps: int  # sequence gaps seen
    gap_messages: int  # messages never received
    dup_packets: int  # packets seen before (the B line's copy, a resend)


@dataclass(frozen=True)
class FeedView:
    """The feed the engine reads: fixed at attach (format, address, senders, gateway), and its counters."""

    format: str  # hft1, iex, itch
    port: int
    addr: str | None  # only UDP to this address is the feed; None: any address
    sources: tuple[str, ...] | None  # the networks allowed to send it; None: any sender (an open feed)
    gateway: str | None  # where orders go ("ip:port (mac)"); None: back to the sender
    packets: int = 0
    messages: int = 0
    in_transition: int = 0
    truncated_packets: int = 0
    dup_packets: int = 0
    foreign_source: int = 0  # feed packets from a sender not in sources
    channels: tuple[ChannelView, ...] = ()

    @property
    def open(self) -> bool:
        return self.sources is None

    @property
    def gaps(self) -> int:
        return sum(ch.gaps for ch in self.channels)

    @property
    def gap_messages(self) -> int:
        return sum(ch.gap_messages for ch in self.channels)


@dataclass(frozen=True)
class FeedSetup:
    """What of the feed is fixed at attach, read once by the supervisor (feed_setup)."""

    format: str
    addr: str | None
    sources: tuple[str, ...] | None
    gateway: str | None


def feed_setup(handle) -> FeedSetup | None:
    """The feed's fixed settings from an engine handle; None for an engine that
    predates real feeds (it reads hft1 and checks no sender: nothing to show)."""
    if not hasattr(handle, "feed_params"):
        return None
    params = handle.feed_params()
    gw = handle.gateway() if hasattr(handle, "gateway") else None
    return FeedSetup(
        format=str(params.feed),
        addr=str(params.feed_addr) if params.feed_addr else None,
        sources=tuple(str(n) for n in params.feed_sources) if params.feed_sources else None,
        gateway=f"{gw.ip}:{gw.port} ({gw.mac})" if gw else None,
    )


def feed_view(setup: FeedSetup | None, snap) -> FeedView | None:
    """The feed as the snapshot counts it (the snapshot's ``feed`` and ``channels``, when it has them)."""
    if setup is None:
        return None
    counts = getattr(snap, "feed", None)
    channels = tuple(
        ChannelView(ch.id, ch.next_seq, ch.packets, ch.messages, ch.gaps, ch.gap_messages, ch.dup_packets)
        for ch in getattr(snap, "channels", None) or ()
    )
    return FeedView(
        format=setup.format,
        port=snap.global_config.feed_port,
        addr=setup.addr,
        sources=setup.sources,
        gateway=setup.gateway,
        packets=getattr(counts, "packets", 0),
        messages=getattr(counts, "messages", 0),
        in_transition=getattr(counts, "in_transition", 0),
        truncated_packets=getattr(counts, "truncated_packets", 0),
        dup_packets=getattr(counts, "dup_packets", 0),
        foreign_source=getattr(counts, "foreign_source", 0),
        channels=channels,
    )
