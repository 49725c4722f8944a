"""What a run of the simulator sends: the feed format and its options.

    format     hft1 (today's protocol, the default), iex-tops, iex-deep, itch
    batch      messages a packet, at most (the exchange feeds; hft1 is one)
    group      an IPv4 multicast group to send to, with its multicast MAC
    vlan       an 802.1Q VLAN id to tag every frame with
    ab         every packet twice: the A and B lines
    gap_rate   the share of packets not sent (their sequence numbers skipped)
    pcap_out   a capture of every frame sent

hft1 has no packet sequence, so A/B lines and gaps mean nothing to it and
are refused; a batch above one is refused too (an hft1 datagram is one update).
"""

from __future__ import annotations

import importlib
import ipaddress
from dataclasses import dataclass

from ..errors import SimulatorError
from ..wire import MAX_VLAN_ID
from .frame_path import DAY_NS
from .mix import MAX_BATCH, FeedFormat

# format -> (module of this package, class): imported when used, so that hft1
# never depends on the exchange codecs.
FORMATS: dict[str, tuple[str, str]] = {
    "hft1": ("hft1", "FrameFormat"),
    "iex-tops": ("iex", "TopsFormat"),
    "iex-deep": ("iex", "DeepFormat"),
    "itch": ("itch", "ItchFormat"),
}
TS_MODULO = {"itch": DAY_NS}  # ITCH timestamps are nanoseconds since midnight
ENGINE_FEED = {"hft1": "hft1", "iex-tops": "iex", "iex-deep": "iex", "itch": "itch"}  # the engine's [engine] feed
MAX_MESSAGES = {"hft1": 1}  # an hft1 datagram is one update


def feed_format(name: str) -> FeedFormat:
    """A fresh instance of the format ``name`` (its own stream state)."""
    module, cls = FORMATS[name]
    made: FeedFormat = getattr(importlib.import_module(f"{__package__}.{module}"), cls)()
    return made


@dataclass
class FeedOptions:
    format: str = "hft1"
    batch: int = 1
    group: str | None = None
    vlan: int | None = None
    ab: bool = False
    gap_rate: float = 0.0
    pcap_out: str | None = None

    @property
    def plain_hft1(self) -> bool:
        """hft1 with nothing that needs whole frames: the fast path can send it."""
        return self.format == "hft1" and self.group is None and self.vlan is None and self.pcap_out is None

    def validate(self) -> None:
        """One line for the first option that cannot be: SimulatorError."""
        if self.format not in FORMATS:
            raise SimulatorError(f"unknown feed format {self.format!r} (one of {', '.join(FORMATS)})")
        most = MAX_MESSAGES.get(self.format, MAX_BATCH)
        if not 1 <= self.batch <= most:
            raise SimulatorError(f"--batch: {self.format} carries 1..{most} messages a packet, not {self.batch}")
        if self.format == "hft1" and (self.ab or self.gap_rate):
            raise SimulatorError("hft1 has no packet sequence: --ab and --gap-rate need iex-tops, iex-deep or itch")
        if not 0.0 <= self.gap_rate < 1.0:
            raise SimulatorError(f"--gap-rate is a share of packets, 0 <= r < 1, not {self.gap_rate}")
        if self.vlan is not None and not 1 <= self.vlan <= MAX_VLAN_ID:
            raise SimulatorError(f"a VLAN id is 1..{MAX_VLAN_ID}, not {self.vlan}")
        if self.group is not None:
            try:
                multicast = ipaddress.IPv4Address(self.group).is_multicast
            except ValueError:
                multicast = False
            if not multicast:
                raise SimulatorError(f"--group {self.group} is not an IPv4 multicast group (224.0.0.0/4)")
