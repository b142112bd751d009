"""Record facts from files (JSON Lines, CSV): every valid row recorded, every bad row reported.

Rows are recorded in chunks of `CHUNK`, or of ``batch_size`` if smaller (one store
transaction each), so memory stays bounded whatever the file's size: the chunk in hand, the
counts, and the first `KEEP_REJECTIONS` rejections (every one is also passed to
`on_rejection` as it happens, in file order). A
chunk also ends after `CHUNK_BYTES` of a file: a few thousand lines of megabytes each (to
be refused as too large, most likely) would otherwise be held at once, some ten times their
size as Python objects.

Reading a row into a record is total: whatever a line holds, it becomes a record or a
rejection with a reason, never an exception that would cost the other lines of its chunk.
What fails after that is the store itself (it cannot be reached, a disk is full): such an
error stops the ingest and propagates, since going on would only report every later line
as lost.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ledger.contract.facts import to_record
from ledger.errors import LedgerError
from ledger.intake.files import FactFile, read_csv, read_json_lines
from ledger.text import printable
from ledger.write.application import Ledger, TypedFact

__all__ = [
    "CHUNK",
    "FactFile",
    "IngestReport",
    "Rejection",
    "ingest",
    "read_csv",
    "read_json_lines",
]

CHUNK = 10_000
CHUNK_BYTES = 16 * 1024 * 1024
KEEP_REJECTIONS = 10_000
MAX_REASON = 1000
"""Characters of a reason kept: a reason quotes some of the input, never all of it."""


@dataclass(frozen=True)
class Rejection:
    line: int
    reason: str


@dataclass
class IngestReport:
    recorded: int = 0
    duplicates: int = 0
    waiting: int = 0
    """Refunds kept until their order arrives (ledger.write.waiting): accepted, not recorded yet."""
    rejected_count: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    """The first `KEEP_REJECTIONS` rejections, in file order; `rejected_count` counts all."""

    @property
    def accepted(self) -> int:
        return self.recorded

    @property
    def lines(self) -> int:
        return self.recorded + self.duplicates + self.waiting + self.rejected_count

    def summary(self) -> str:
        waiting = f"{self.waiting} waiting for their order, " if self.waiting else ""
        return f"{self.recorded} recorded, {self.duplicates} duplicates, {waiting}{self.rejected_count} rejected"


Line = tuple[int, dict[str, Any] | LedgerError]


def ingest(
    ledger: Ledger,
    lines: Iterable[Line],
    progress: Callable[[IngestReport], None] | None = None,
    on_rejection: Callable[[Rejection], None] | None = None,
) -> IngestReport:
    """Record every valid fact in chunks of `CHUNK` rows (one store transaction each).

    If reading `lines` fails part way (the file cannot be read on), the rows read so far
    are recorded before the error propagates.
    """
    report = IngestReport()
    size = min(CHUNK, ledger.settings.batch_size)  # a smaller LEDGER_BATCH_SIZE asks for smaller transactions
    chunk: list[tuple[int, TypedFact | str]] = []
    facts = 0
    position = lines.position if isinstance(lines, FactFile) else None
    chunk_start = 0

    def reject(number: int, reason: str) -> None:
        rejection = Rejection(number, _shortened(reason))
        report.rejected_count += 1
        if len(report.rejected) < KEEP_REJECTIONS:
            report.rejected.append(rejection)
        if on_rejection:
            on_rejection(rejection)

    def flush() -> None:
        typed = [item for _, item in chunk if not isinstance(item, str)]
        outcomes = iter(ledger.record_typed(typed))
        for number, item in chunk:
            if isinstance(item, str):
                reject(number, item)
                continue
            outcome = next(outcomes)
            if outcome.status == "recorded":
                report.recorded += 1
            elif outcome.status == "duplicate":
                report.duplicates += 1
            elif outcome.status == "waiting":
                report.waiting += 1
            else:
                reject(number, str(outcome.error) if outcome.error else "rejected")
        chunk.clear()
        if progress:
            progress(report)

    rows = iter(lines)
    while True:
        try:
            number, item = next(rows)
        except StopIteration:
            break
        except Exception:  # the file, not a line: keep what was read, then say so
            if chunk:
                flush()
            raise
        converted = _typed(ledger, item)
        chunk.append((number, converted))
        if not isinstance(converted, str):
            facts += 1
        if facts >= size or len(chunk) >= 4 * size or (position and position() - chunk_start > CHUNK_BYTES):
            flush()
            facts = 0
            chunk_start = position() if position else 0
    if chunk:
        flush()
    return report


def _typed(ledger: Ledger, item: dict[str, Any] | LedgerError) -> TypedFact | str:
    """The fact as a record of its type, checked against the contract, or why it is not one."""
    if isinstance(item, LedgerError):
        return str(item) or type(item).__name__
    try:
        event_type, record = to_record(item, ledger.clock())
        ledger.codec.check(event_type, record)
    except LedgerError as error:
        return str(error) or type(error).__name__
    except Exception as exc:  # whatever a line holds, it costs only that line
        return f"cannot read this event ({type(exc).__name__}: {exc})"
    return event_type, record


def _shortened(reason: str) -> str:
    """A reason safe to print and to encode as UTF-8 (it may quote input that is not)."""
    text = printable(reason)
    return text if len(text) <= MAX_REASON else text[: MAX_REASON - 3] + "..."
