"""Where a projector reads events from.

A source hands out micro-batches of Avro payloads together with the positions that follow
them. Positions are a mapping of key to integer (the store's log has one key, a Kafka topic
one per partition) and are stored by the projector with the read models, never by the
source, so restarting from the stored positions resumes exactly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from ledger.write.application import Ledger


@dataclass(frozen=True)
class SourceBatch:
    payloads: list[bytes]
    positions: dict[str, int] = field(default_factory=dict)
    payload_positions: list[tuple[str, int]] = field(default_factory=list)
    """Where each payload is (key and position, in payload order), for a projector to say
    which event it parked; empty when the source does not tell."""


class Source(Protocol):
    name: str
    """Identifies the source in the stored positions (``store`` or ``kafka:<topic>``)."""
    identity: str | None
    """What the positions are positions in (a Kafka topic's id), stored with them: positions
    taken in a topic since recreated must not be read as positions in the new one. None when
    the source cannot tell."""

    def read(self, positions: Mapping[str, int], limit: int) -> SourceBatch:
        """Up to `limit` payloads after `positions`; an empty batch when there is nothing new."""
        ...

    def head(self) -> dict[str, int]:
        """The positions the source has reached now (for lag and for ``--once``)."""
        ...

    def close(self) -> None: ...


class NotificationLogSource:
    """The event store's notification log; position ``log`` is the last notification id read."""

    name = "store"
    identity = None

    def __init__(self, ledger: Ledger):
        self.ledger = ledger

    def read(self, positions: Mapping[str, int], limit: int) -> SourceBatch:
        after = positions.get("log", 0)
        entries = self.ledger.log(after, limit)
        if not entries:
            return SourceBatch([], {})
        return SourceBatch([e.state for e in entries], {"log": entries[-1].id}, [("log", e.id) for e in entries])

    def head(self) -> dict[str, int]:
        return {"log": self.ledger.head()}

    def close(self) -> None:
        pass
