"""Record facts from files (JSON Lines, CSV): every valid row recorded, every bad row reported.

Rows are recorded in chunks of `CHUNK` (one store transaction each), so memory stays bounded
whatever the file's size: the chunk in hand, the counts, and the first `KEEP_REJECTIONS`
rejections (every one is also passed to `on_rejection` as it happens, in file order).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ledger.errors import LedgerError
from ledger.intake.files import FactFile, read_csv, read_json_lines
from ledger.write.application import Ledger

__all__ = [
    "CHUNK",
    "FactFile",
    "IngestReport",
    "Rejection",
    "ingest",
    "read_csv",
    "read_json_lines",
]

CHUNK = 2000
KEEP_REJECTIONS = 10_000


@dataclass(frozen=True)
class Rejection:
    line: int
    reason: str


@dataclass
class IngestReport:
    recorded: int = 0
    duplicates: int = 0
    rejected_count: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    """The first `KEEP_REJECTIONS` rejections, in file order; `rejected_count` counts all."""

    @property
    def accepted(self) -> int:
        return self.recorded

    @property
    def lines(self) -> int:
        return self.recorded + self.duplicates + self.rejected_count

    def summary(self) -> str:
        return (
            f"{self.recorded} recorded, {self.duplicates} duplicates, "
            f"{self.rejected_count} rejected"
        )


def ingest(
    ledger: Ledger,
    lines: Iterable[tuple[int, dict[str, Any] | LedgerError]],
    progress: Callable[[IngestReport], None] | None = None,
    on_rejection: Callable[[Rejection], None] | None = None,
) -> IngestReport:
    """Record every valid fact in chunks of `CHUNK` rows (one store transaction each)."""
    report = IngestReport()
    chunk: list[tuple[int, dict[str, Any] | LedgerError]] = []
    facts = 0

    def reject(number: int, reason: str) -> None:
        rejection = Rejection(number, reason)
        report.rejected_count += 1
        if len(report.rejected) < KEEP_REJECTIONS:
            report.rejected.append(rejection)
        if on_rejection:
            on_rejection(rejection)

    def flush() -> None:
        outcomes = iter(ledger.record_many(item for _, item in chunk if isinstance(item, dict)))
        for number, item in chunk:
            if isinstance(item, LedgerError):
                reject(number, str(item))
                continue
            outcome = next(outcomes)
            if outcome.status == "recorded":
                report.recorded += 1
            elif outcome.status == "duplicate":
                report.duplicates += 1
            else:
                reject(number, str(outcome.error) if outcome.error else "rejected")
        chunk.clear()
        if progress:
            progress(report)

    for number, item in lines:
        chunk.append((number, item))
        if isinstance(item, dict):
            facts += 1
        if facts >= CHUNK or len(chunk) >= 4 * CHUNK:
            flush()
            facts = 0
    if chunk:
        flush()
    return report
