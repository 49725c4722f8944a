"""Missing order ids, found online while the journal is written."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class GapTracker:
    """Finds missing order ids online, tolerating the small reordering two
    CPUs cause (an id is fetched before its event is written, so id 6 may
    reach the ring just before id 5, even across two reads).

    :meth:`end_batch` runs once a tick: an id below the highest id seen at
    the *previous* tick that has still not come is declared missing, so every
    id gets at least one whole tick of grace.
    """

    contig: int = 0  # every id <= contig was seen (or declared missing)
    horizon: int = 0  # highest id seen before the current batch
    ahead: set[int] = field(default_factory=set)  # ids seen above contig

    def see(self, order_id: int) -> None:
        if order_id <= self.contig or order_id in self.ahead:
            return  # read again after a restart: already journaled
        if order_id == self.contig + 1:
            self.contig = order_id
            while self.contig + 1 in self.ahead:
                self.contig += 1
                self.ahead.discard(self.contig)
        else:
            self.ahead.add(order_id)

    def end_batch(self) -> list[tuple[int, int]]:
        """Missing ranges older than the previous batch; then a new horizon."""
        missing = []
        while self.ahead and self.contig < self.horizon:
            nxt = min(self.ahead)
            end = min(nxt - 1, self.horizon)
            if end > self.contig:
                missing.append((self.contig + 1, end))
                self.contig = end
            while self.contig + 1 in self.ahead:
                self.contig += 1
                self.ahead.discard(self.contig)
        self.horizon = max([self.contig, *self.ahead])
        return missing
