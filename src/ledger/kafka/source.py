"""The Kafka ledger topic as a projector source.

Partitions are assigned by hand, not by a consumer group: the positions (the next offset of
each partition) live in the read-model file, committed with the data they produced, so a
restarted projector seeks to exactly where its read models end.
"""

from __future__ import annotations

from collections.abc import Mapping

from ledger.kafka.clients import assigned, high_watermarks, poll
from ledger.settings import Settings
from ledger.write.log import SourceBatch


class KafkaSource:
    def __init__(self, settings: Settings, topic: str | None = None, poll_ms: int = 500):
        self.settings = settings
        self.topic = topic or settings.kafka.ledger_topic
        self.name = f"kafka:{self.topic}"
        self.poll_ms = poll_ms
        self.consumer, self.partitions = assigned(settings, self.topic)
        self._expected: dict[str, int] | None = None

    def read(self, positions: Mapping[str, int], limit: int) -> SourceBatch:
        if self._expected != dict(positions):
            for tp in self.partitions:
                self.consumer.seek(tp, positions.get(str(tp.partition), 0))
        fetched = poll(self.consumer, self.topic, self.poll_ms, limit)
        payloads: list[bytes] = []
        advanced = dict(positions)
        for tp, records in fetched.items():
            payloads.extend(r.value for r in records)
            advanced[str(tp.partition)] = records[-1].offset + 1
        self._expected = advanced
        return SourceBatch(payloads, advanced if payloads else {})

    def head(self) -> dict[str, int]:
        """The high watermark of every partition: from this consumer's own fetch responses
        once each partition has had one (a following projector asks every round), else from
        a probe (see `high_watermarks`; ``end_offsets`` come out short on Tansu)."""
        seen = {tp.partition: self.consumer.highwater(tp) for tp in self.partitions}
        if None in seen.values():
            seen = high_watermarks(self.settings, self.partitions)
        return {str(partition): offset for partition, offset in seen.items()}

    def close(self) -> None:
        self.consumer.close()
