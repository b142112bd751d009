"""The projector engine: one loop for every source.

Read a micro-batch from the source, decode it into an Arrow table, apply it to the read
models together with the new source positions in one DuckDB transaction, repeat. Once caught
up, refresh the "as of" models and publish a copy for readers.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa

from ledger.contract.codec import Codec, default_codec
from ledger.errors import SegmentError
from ledger.projection.decode import RawDecoder
from ledger.projection.readmodels import ReadModels
from ledger.settings import Settings
from ledger.write.log import Source, SourceBatch

Progress = Callable[[int, int], None]
"""Called after each batch with (events read so far, lag remaining)."""


@dataclass
class RunStats:
    read: int = 0
    new: int = 0
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
    ):
        self.models = models
        self.source = source
        self.batch_size = batch_size
        self.decoder = RawDecoder(codec or default_codec())
        self.publish_to = publish_to

    def positions(self) -> dict[str, int]:
        return self.models.positions(self.source.name)

    def step(self) -> tuple[int, int]:
        """Apply one batch; return (events read, events new). (0, 0) when nothing came."""
        batch, table = self._fetch(self.positions())
        return len(batch.payloads), self._apply(batch, table)

    def _fetch(self, positions: dict[str, int]) -> tuple[SourceBatch, pa.Table | None]:
        batch = self.source.read(positions, self.batch_size)
        return batch, self.decoder.table(batch.payloads) if batch.payloads else None

    def _apply(self, batch: SourceBatch, table: pa.Table | None) -> int:
        if table is None:  # nothing came (sources give no positions with an empty batch)
            return 0
        return self.models.apply(table, self.source.name, batch.positions)

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
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="fetch") as fetcher:
            pending = fetcher.submit(self._fetch, positions)
            while True:
                batch, table = pending.result()
                read = len(batch.payloads)
                if read:
                    positions = {**positions, **batch.positions}
                remaining = lag(target, positions)
                done = bool(stop and stop.is_set()) or (read == 0 and remaining == 0)
                if not done:
                    if read == 0:
                        time.sleep(0.05)  # a Kafka fetch can come back empty before the target
                    pending = fetcher.submit(self._fetch, positions)
                stats.new += self._apply(batch, table)
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
        segment_errors = self.models.refresh(as_of)
        if self.publish_to is not None:
            self.models.publish(self.publish_to, datetime.now(UTC))
        return segment_errors
