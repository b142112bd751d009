"""Where the intake is on each partition: two eventsourcing tracking records in the store.

``intake:<topic>:<p>`` is the next offset whose fact is decided; it commits in the same
transaction as the facts. ``intake-dlq:<topic>:<p>`` is the next offset whose dead letters
are safely on the DLQ topic; it is stored after they are acknowledged. Reading resumes at the
lower of the two. Kafka's committed offsets are neither read nor written.
"""

from __future__ import annotations

from eventsourcing.persistence import IntegrityError, Tracking

from ledger.write.application import Ledger


class Positions:
    def __init__(self, ledger: Ledger, topic: str):
        self.recorder = ledger.recorder
        self.topic = topic

    def names(self, partition: int) -> tuple[str, str]:
        return f"intake:{self.topic}:{partition}", f"intake-dlq:{self.topic}:{partition}"

    def of(self, partition: int) -> tuple[int, int]:
        """(next offset decided, next offset whose dead letters are on the DLQ topic)."""
        decided, confirmed = self.names(partition)
        return self.recorder.max_tracking_id(decided) or 0, self.recorder.max_tracking_id(confirmed) or 0

    def resume_at(self, partition: int) -> int:
        return min(self.of(partition))

    def decided(self, partition: int, next_offset: int) -> Tracking:
        """The position to commit with the facts up to `next_offset`."""
        return Tracking(self.names(partition)[0], next_offset)

    def confirm(self, partition: int, next_offset: int) -> None:
        """Every dead letter before `next_offset` is on the DLQ topic."""
        try:
            self.recorder.insert_tracking(Tracking(self.names(partition)[1], next_offset))
        except IntegrityError:
            pass  # another process confirmed at least this far
