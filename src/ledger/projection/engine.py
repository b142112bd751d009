"""The projector engine: one loop for every source.

Read a micro-batch from the source, decode it into an Arrow table, apply it to the read
models together with the new source positions in one DuckDB transaction, repeat. Once caught
up, refresh the "as of" models and publish a copy for readers.

No event can stop the loop: one that cannot be decoded or applied is parked (parked.py) in
the transaction that applies the rest of its batch, and the positions move past it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from ledger.contract.codec import Codec, default_codec
from ledger.errors import SegmentError, TopicResetError
from ledger.projection.decode import DecodedBatch, Keys, RawDecoder
from ledger.projection.parked import ParkedEvent, is_content_error, rows_of, split_unappliable
from ledger.projection.readmodels import ReadModels
from ledger.settings import Settings
from ledger.write.log import Source, SourceBatch

Progress = Callable[[int, int], None]
"""Called after each batch with (events read so far, lag remaining)."""


@dataclass
class RunStats:
    read: int = 0
    new: int = 0
    parked: int = 0
    """Events set aside (decode or apply failed on their content); see ``parked_events``."""
    batches: int = 0
    seconds: float = 0.0
    segment_errors: list[SegmentError] = field(default_factory=list)
    """Segment rule files that failed at the final refresh (the rest was refreshed)."""

    @property
    def rate(self) -> float:
        return self.read / self.seconds if self.seconds else 0.0


def lag(head: dict[str, int], positions: dict[str, int]) -> int:
    return sum(max(0, end - positions.get(key, 0)) for key, end in head.items())


class Projector:
    def __init__(
        self,
        models: ReadModels,
        source: Source,
        *,
        batch_size: int = Settings.batch_size,
        codec: Codec | None = None,
        publish_to: Path | None = None,
        keys: Keys | None = None,
        catch_up_batch_size: int | None = None,
        before_refresh: Callable[[ReadModels], None] | None = None,
    ):
        self.models = models
        self.before_refresh = before_refresh
        """Run by `finish` before the refresh: the insight runs (ops), so that segment rules
        reading their tables see them at once."""
        self.source = source
        self.batch_size = batch_size
        self.catch_up_batch_size = max(batch_size, catch_up_batch_size or batch_size)
        """The batch while at least that many events remain (ProjectionSettings)."""
        self.decoder = RawDecoder(codec or default_codec(), keys)
        self.publish_to = publish_to

    def positions(self) -> dict[str, int]:
        """Where the read models are in the source; TopicResetError if they were taken in
        another incarnation of it (a topic recreated while no projector was running: its new
        records would sit below the old positions, skipped, with lag 0)."""
        positions = self.models.positions(self.source.name)
        stored, now = self.models.identity(self.source.name), self.source.identity
        if positions and stored is not None and now is not None and stored != now:
            raise TopicResetError(
                f"{self.source.name} was reset (recreated: the read models' positions were taken when its id "
                f"was {stored}, it is {now} now); the read models built from it must be rebuilt"
            )
        return positions

    def step(self, as_of: datetime | None = None) -> tuple[int, int]:
        """Apply one batch; return (events read, events new). (0, 0) when nothing came.
        An event parked is stamped `as_of` (default: now)."""
        batch, decoded = self._fetch(self.positions())
        new, _ = self._apply(batch, decoded, as_of or datetime.now(UTC))
        return len(batch.payloads), new

    def apply_batch(self, batch: SourceBatch, as_of: datetime) -> tuple[int, int]:
        """Decode and apply a batch read by someone else (a group member's consumer, which
        reads for several partitions): (events new, events parked)."""
        return self._apply(batch, self.decoder.batch(batch.payloads) if batch.payloads else None, as_of)

    def _fetch(self, positions: dict[str, int], size: int | None = None) -> tuple[SourceBatch, DecodedBatch | None]:
        batch = self.source.read(positions, size or self.batch_size)
        return batch, self.decoder.batch(batch.payloads) if batch.payloads else None

    def _apply(self, batch: SourceBatch, decoded: DecodedBatch | None, as_of: datetime) -> tuple[int, int]:
        """Apply a batch, parking what cannot be applied; return (events new, events parked).

        A batch whose SQL fails for its content is rolled back and split (parked.py) into the
        events that apply and those that do not; then one transaction applies the former,
        parks the latter and stores the positions. Whatever else fails is raised.
        """
        if decoded is None:  # nothing came (sources give no positions with an empty batch)
            return 0, 0
        parked = {
            u.index: self._parked(batch, u.index, u.reason, "decode", u.event_id, u.event_type, u.customer_id)
            for u in decoded.undecodable
        }
        table = decoded.table
        try:
            new = self.models.apply(
                table, self.source.name, batch.positions, parked=list(parked.values()), parked_at=as_of,
                identity=self.source.identity,
            )
            return new, len(parked)
        except Exception as exc:
            if not is_content_error(exc):
                raise
            failed = exc
        good, bad = split_unappliable(table, self.models.attempt, failed)
        for row, reason in bad:
            envelope = (table.column(n)[row].as_py() for n in ("event_id", "event_type", "customer_id"))
            parked[decoded.indexes[row]] = self._parked(batch, decoded.indexes[row], reason, "apply", *envelope)
        in_order = [parked[index] for index in sorted(parked)]
        new = self.models.apply(
            rows_of(table, good), self.source.name, batch.positions, parked=in_order, parked_at=as_of,
            identity=self.source.identity,
        )
        return new, len(parked)

    @staticmethod
    def _parked(
        batch: SourceBatch, index: int, reason: str, stage: str,
        event_id: str | None, event_type: str | None, customer_id: str | None,
    ) -> ParkedEvent:
        key, position = (
            batch.payload_positions[index]
            if len(batch.payload_positions) == len(batch.payloads) else (None, None)
        )
        return ParkedEvent(
            batch.payloads[index], reason, stage, key, position,
            event_id=event_id, event_type=event_type, customer_id=customer_id,
        )

    def catch_up(
        self,
        as_of: datetime,
        *,
        progress: Progress | None = None,
        stop: threading.Event | None = None,
        finish: bool = True,
    ) -> RunStats:
        """Apply batches until the source's head as seen at the start is reached and a read
        brings nothing more, then (with `finish`) refresh and publish.

        Reading and decoding the next batch (Python, holding the GIL) overlaps with applying
        this one (DuckDB, which releases it), so both cores work. The fetcher thread alone
        touches the source; positions still advance only through the DuckDB transactions.
        """
        stats = RunStats()
        started = time.perf_counter()
        target = self.source.head()
        positions = self.positions()

        far_behind = lag(target, positions) >= self.catch_up_batch_size

        def size(remaining: int) -> int:
            """The catch-up batch while far behind; a catch-up does the rest of its way in one
            batch (300,000 behind: 250,000 then 50,000, not then three of 20,000)."""
            if remaining >= self.catch_up_batch_size:
                return self.catch_up_batch_size
            return max(self.batch_size, remaining) if far_behind else self.batch_size

        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="fetch") as fetcher:
            pending = fetcher.submit(self._fetch, positions, size(lag(target, positions)))
            while True:
                batch, decoded = pending.result()
                read = len(batch.payloads)
                if read:
                    positions = {**positions, **batch.positions}
                remaining = lag(target, positions)
                done = bool(stop and stop.is_set()) or (read == 0 and remaining == 0)
                if not done:
                    if read == 0:
                        time.sleep(0.05)  # a Kafka fetch can come back empty before the target
                    pending = fetcher.submit(self._fetch, positions, size(remaining))
                new, parked = self._apply(batch, decoded, as_of)
                stats.new += new
                stats.parked += parked
                stats.read += read
                stats.batches += 1 if read else 0
                if progress:
                    progress(stats.read, remaining)
                if done:
                    break
        if finish:
            stats.segment_errors = self.finish(as_of)
        stats.seconds = time.perf_counter() - started
        return stats

    def finish(self, as_of: datetime) -> list[SegmentError]:
        """Refresh the time-dependent models and publish a copy for readers.

        A broken segment rule does not stop publishing: its error is returned for the caller
        to report, and recorded in the read models (``segments.last_error``).
        """
        if self.before_refresh is not None:
            self.before_refresh(self.models)
        segment_errors = self.models.refresh(as_of)
        if self.publish_to is not None:
            self.models.publish(self.publish_to, datetime.now(UTC))
        return segment_errors
