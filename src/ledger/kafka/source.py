"""The Kafka ledger topic as a projector source.

Partitions are assigned by hand, not by a consumer group: the positions (the next offset of
each partition) live in the read-model file, committed with the data they produced, so a
restarted projector seeks to exactly where its read models end.

Positions are only worth something while the topic is the one they were taken on. A topic
emptied, recreated or lost with its broker leaves them past a partition's end (or pointing
at other records), and a source that said nothing would sit there with lag 0 forever. So a
read raises TopicResetError, naming the partitions, positions and end offsets, when:

- Kafka answers that a position is out of range (the consumer never resets it silently:
  ``auto_offset_reset="none"``);
- a position is past the partition's high watermark, still so `confirm_s` later (a fetch
  that brings nothing is normal; a position beyond the end is not);
- the topic is gone from the cluster's metadata, or came back under another topic id.

What to do then (rebuild the read models from the topic once the relay republished it) is
the projector's decision, not the source's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kafka.errors import KafkaError as ClientError
from kafka.errors import OffsetOutOfRangeError

from ledger.errors import KafkaError, TopicResetError
from ledger.kafka.clients import Fetched, assigned, high_watermarks
from ledger.kafka.resets import confirmed, reset_error
from ledger.settings import Settings
from ledger.write.log import SourceBatch


class KafkaSource:
    def __init__(self, settings: Settings, topic: str | None = None, poll_ms: int = 500, confirm_s: float = 1.0,
                 partition: int | None = None):
        self.settings = settings
        self.topic = topic or settings.kafka.ledger_topic
        self.name = f"kafka:{self.topic}"
        self.poll_ms = poll_ms
        self.confirm_s = confirm_s
        self.consumer, self.partitions = assigned(settings, self.topic, partition, auto_offset_reset="none")
        """Every partition, or only `partition` (a group's replay rebuilds each on its own)."""
        self.topic_id = self._topic_id()
        """The topic's id when this source opened it (None if the broker gives none)."""
        self.identity = None if self.topic_id is None else str(self.topic_id)
        self._expected: dict[str, int] | None = None

    def read(self, positions: Mapping[str, int], limit: int) -> SourceBatch:
        if self._expected != dict(positions):
            for tp in self.partitions:
                at = positions.get(str(tp.partition), 0)
                if at > 0:
                    self.consumer.seek(tp, at)
                else:
                    self.consumer.seek_to_beginning(tp)  # the earliest offset, whatever retention left
        fetched = self._poll(positions, limit)
        self._check(positions)
        payloads: list[bytes] = []
        where: list[tuple[str, int]] = []
        advanced = dict(positions)
        for tp, records in fetched.items():
            payloads.extend(r.value for r in records)
            where.extend((str(tp.partition), r.offset) for r in records)
            advanced[str(tp.partition)] = records[-1].offset + 1
        self._expected = advanced
        return SourceBatch(payloads, advanced if payloads else {}, where)

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

    def _poll(self, positions: Mapping[str, int], limit: int) -> Fetched:
        try:
            return self.consumer.poll(timeout_ms=self.poll_ms, max_records=limit)
        except OffsetOutOfRangeError as exc:
            asked = exc.args[0] if exc.args and isinstance(exc.args[0], dict) else {}
            out = {tp.partition: offset for tp, offset in asked.items()} or {
                int(p): at for p, at in positions.items()
            }
            raise self._reset("Kafka says the positions are out of range", out, self._ends()) from exc
        except ClientError as exc:
            raise KafkaError(f"reading {self.topic!r} failed: {exc!r}") from exc

    def _check(self, positions: Mapping[str, int]) -> None:
        found = self._metadata_reason()
        if found is not None:
            raise self._reset(found, {int(p): at for p, at in positions.items()}, {})
        seen = {tp.partition: self.consumer.highwater(tp) for tp in self.partitions}
        if not _past(positions, seen):
            return
        ends: dict[int, int] = {}

        def still() -> str | None:
            ends.clear()
            ends.update(self._ends())
            return "positions past the end of the topic" if _past(positions, ends) else None

        if confirmed(still, self.confirm_s) is not None:
            raise self._reset("positions past the end of the topic", _past(positions, ends), ends)

    def _metadata_reason(self) -> str | None:
        try:
            present = self.consumer.partitions_for_topic(self.topic)
        except ClientError as exc:
            raise KafkaError(f"reading the metadata of {self.topic!r} failed: {exc!r}") from exc
        if not present:
            return "the topic does not exist any more"
        gone = sorted(tp.partition for tp in self.partitions if tp.partition not in present)
        if gone:
            return f"partitions {', '.join(map(str, gone))} do not exist any more"
        now = self._topic_id()
        if self.topic_id is not None and now is not None and now != self.topic_id:
            return f"the topic was recreated (its id was {self.topic_id}, now {now})"
        return None

    def _ends(self) -> dict[int, int]:
        try:
            return high_watermarks(self.settings, self.partitions)
        except KafkaError:
            return {}

    def _topic_id(self) -> Any:
        """kafka-python keeps topic ids in its cluster metadata only (no public accessor)."""
        cluster = getattr(self.consumer, "_cluster", None)
        topic_id = getattr(cluster, "topic_id", None)
        return topic_id(self.topic) if callable(topic_id) else None

    def _reset(self, why: str, positions: Mapping[int, int], ends: Mapping[int, int]) -> TopicResetError:
        shown = ", ".join(
            f"partition {p} at {at}" + (f" (end offset {ends[p]})" if p in ends else "")
            for p, at in sorted(positions.items())
        )
        return reset_error(
            self.topic,
            f"topic {self.topic!r} was reset ({why}): {shown or 'no positions'}; the read models built "
            "from it must be rebuilt once the relay has republished it",
            positions=dict(positions), ends=dict(ends),
        )


def _past(positions: Mapping[str, int], ends: Mapping[int, int | None]) -> dict[int, int]:
    """The positions beyond their partition's end, where the end is known."""
    past: dict[int, int] = {}
    for key, at in positions.items():
        end = ends.get(int(key))
        if end is not None and at > end:
            past[int(key)] = at
    return past

