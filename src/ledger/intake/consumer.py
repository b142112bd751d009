"""The intake: records the facts that channel adapters publish on the Kafka intake topic.

Adapters (the SDK in ledger.intake.client, or any language that speaks the schemas/ contract)
publish Avro single-object bytes to the intake topic, keyed by customer_id. For each
record the intake decodes the fact and the ledger decides; whatever cannot be recorded goes
to the dead-letter topic, bytes untouched, the reason in headers (ledger.intake.dead_letters). One bad
record never stops its partition.

Idempotency: a fact is recorded once per ``(source, source_event_id)``; an intake fact sent
without a source_event_id is keyed by its event_id, which the contract requires. So any
intake record, read twice or re-driven twice, is recorded once.

Positions: per partition, two eventsourcing tracking records in the store itself:
``intake:<topic>:<p>``, the next offset whose fact is decided, committed in the same
transaction as the facts; and ``intake-dlq:<topic>:<p>``, the next offset whose dead letters
are safely on the DLQ topic. Kafka's committed offsets are not used.

Commit order for each partition's batch, which is the delivery guarantee:

1. decode every record (undecodable ones are dead letters);
2. record the facts together with Tracking(intake, last offset + 1), one store transaction;
   the ledger rejects what it must (rules, erased customers) inside that transaction;
3. send the batch's dead letters to the DLQ topic and flush (acked by all in-sync replicas);
4. store Tracking(intake-dlq, last offset + 1).

Dead letters cannot go first, because the ledger decides and commits in one step: whether a
fact is refused (an erased customer, a concurrent writer) is only known in step 2. A crash
after step 2 and before step 4 is repaired on restart: reading resumes at the DLQ position,
and records between it and the intake position are decided again without recording (the
ones already recorded come back as duplicates) and their dead letters sent again. A fact is
recorded exactly once, a dead letter is never lost, and the DLQ may hold one twice, which
`ledger dlq list` shows once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from eventsourcing.persistence import IntegrityError, PersistenceError, Tracking
from kafka import ConsumerRebalanceListener, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import KafkaError as ClientError

from ledger.contract.codec import MARKER, Codec
from ledger.errors import KafkaError, LedgerError, SchemaError
from ledger.intake.dead_letters import dead_letter_headers
from ledger.kafka.clients import DEAD_LETTERS, consumer, ensure_topic, high_watermarks, producer
from ledger.settings import Settings
from ledger.write.application import Ledger

log = logging.getLogger(__name__)

_STALL_S = 60.0
_CLOSE_MS = 2000
"""Leaving a group mid-join can wait for the join (about half the session timeout on Tansu)."""


def intake_fact(value: bytes | None, codec: Codec) -> dict[str, Any]:
    """The fact an intake record carries, as `Ledger.record_many` takes it.

    The adapter's ``recorded_at`` is dropped (the ledger sets it when it records); its
    ``event_id`` is kept, and stands in for a missing ``source_event_id``.
    """
    if value is None:
        raise SchemaError("no value: an intake record carries one Avro event")
    try:
        event_type, record = codec.decode(value)
    except SchemaError as error:
        raise SchemaError(_with_hint(str(error), value), error.field) from error
    fact = {"type": event_type, **record}
    del fact["recorded_at"]
    if fact.get("source_event_id") is None:
        fact["source_event_id"] = str(record["event_id"])
    return fact


def _with_hint(reason: str, value: bytes) -> str:
    if reason.startswith("unknown schema fingerprint"):
        return f"{reason}: not a schema version this ledger knows (see `ledger schemas`)"
    if value[:2] != MARKER and value.lstrip()[:1] in (b"{", b"["):
        return f"{reason}; this looks like JSON, but the intake takes Avro single-object encoding"
    if value[:2] != MARKER:
        return f"{reason}; the intake takes Avro single-object encoding (C3 01, fingerprint, body)"
    return reason


@dataclass
class IntakeStats:
    read: int = 0
    recorded: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    rechecked: int = 0
    """Records decided again after a restart because their dead letters were not confirmed."""
    batches: int = 0
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return self.read / self.seconds if self.seconds else 0.0


class Intake:
    """Records the intake topic's facts; dead-letters the rest.

    `run` follows the topic until stopped; `run_once` stops once it has read what the topic
    held when it began (`ledger ingest --from-kafka`). Either way the store's positions are
    the only ones that count: Kafka's committed offsets are neither read nor written.

    Partitions are assigned by hand, every one to this process, as the relay and the Kafka
    projector source do: no group join or rebalance delays start or stop, and `ledger serve`
    runs one relay anyway. To share partitions among several intake processes (a PostgreSQL
    store), set `settings.intake_group`: `run` then joins that consumer group and seeks each
    partition it is given to its stored position. Two processes reading the same partition
    by mistake record nothing twice: the second one's position is refused (IntegrityError)
    and it resumes from the stored one.
    """

    def __init__(
        self,
        settings: Settings,
        ledger: Ledger,
        *,
        poll_ms: int = 500,
        **consumer_options: Any,
    ):
        self.settings = settings
        self.ledger = ledger
        self.topic = settings.intake_topic
        self.dlq_topic = settings.dlq_topic
        self.poll_ms = poll_ms
        self.batch_size = settings.batch_size
        self.consumer_options = consumer_options
        self.stats = IntakeStats()
        self._consumer: KafkaConsumer | None = None
        self._producer: KafkaProducer | None = None
        ensure_topic(settings, self.topic)
        ensure_topic(settings, self.dlq_topic, configs=DEAD_LETTERS)

    # Positions.

    def tracking_names(self, partition: int) -> tuple[str, str]:
        return f"intake:{self.topic}:{partition}", f"intake-dlq:{self.topic}:{partition}"

    def positions(self, partition: int) -> tuple[int, int]:
        """(next offset decided, next offset whose dead letters are on the DLQ topic)."""
        recorded, dead = self.tracking_names(partition)
        recorder = self.ledger.recorder
        return recorder.max_tracking_id(recorded) or 0, recorder.max_tracking_id(dead) or 0

    def resume_at(self, partition: int) -> int:
        return min(self.positions(partition))

    # Running.

    def step(self) -> int:
        """Poll once and handle what came; return how many records were handled."""
        if self._consumer is None:
            if self.settings.intake_group:
                self._subscribe(self.settings.intake_group)
            else:
                self._assign_all()
        return self._poll()

    def run(self, stop: threading.Event, retry_s: float = 1.0) -> IntakeStats:
        """Follow the intake topic until `stop` is set.

        On a failure (broker, store) the batch is dropped, every partition goes back to its
        stored position, and reading resumes after `retry_s`.
        """
        started = time.perf_counter()
        try:
            while not stop.is_set():
                try:
                    self.step()
                except (LedgerError, PersistenceError, ClientError) as error:
                    log.warning(
                        "intake: %s; resuming from the stored positions in %.1fs", error, retry_s
                    )
                    self._discard_producer()
                    self._rewind()
                    stop.wait(retry_s)
        finally:
            self.close()
            self.stats.seconds += time.perf_counter() - started
        return self.stats

    def run_once(self) -> IntakeStats:
        """Read every partition from its stored position to the end offsets seen at the start."""
        started = time.perf_counter()
        try:
            client, partitions = self._assign_all()
            ends = high_watermarks(self.settings, partitions)
            last_progress = time.monotonic()
            while True:
                at = {tp: client.position(tp) for tp in partitions}
                if all(at[tp] >= ends[tp.partition] for tp in partitions):
                    break
                self._poll()
                if any(client.position(tp) != at[tp] for tp in partitions):
                    last_progress = time.monotonic()
                elif time.monotonic() - last_progress > _STALL_S:
                    raise KafkaError(
                        f"reading {self.topic!r} stalled before its end; is the broker up?"
                    )
        finally:
            self.close()
            self.stats.seconds += time.perf_counter() - started
        return self.stats

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close(autocommit=False, timeout_ms=_CLOSE_MS)
            self._consumer = None
        if self._producer is not None:
            self._producer.flush()
            self._producer.close()
            self._producer = None

    # One batch.

    def _poll(self, timeout_ms: int | None = None) -> int:
        assert self._consumer is not None
        try:
            fetched = self._consumer.poll(
                timeout_ms=self.poll_ms if timeout_ms is None else timeout_ms,
                max_records=self.batch_size,
            )
        except ClientError as exc:
            raise KafkaError(f"reading {self.topic!r} failed: {exc!r}") from exc
        return sum(self._handle(tp, records) for tp, records in fetched.items())

    def _handle(self, tp: TopicPartition, records: list[ConsumerRecord]) -> int:
        """Decide one partition's batch, in the commit order the module docstring gives."""
        recorded_name, dead_name = self.tracking_names(tp.partition)
        decided, confirmed = self.positions(tp.partition)
        records = [r for r in records if r.offset >= min(decided, confirmed)]
        if not records:
            return 0
        again = [r for r in records if r.offset < decided]
        fresh = [r for r in records if r.offset >= decided]
        dead: list[tuple[ConsumerRecord, LedgerError]] = []
        try:
            if again:
                self.stats.rechecked += len(again)
                self._decide(again, None, dead, count=False)
            if fresh:
                self._decide(fresh, Tracking(recorded_name, fresh[-1].offset + 1), dead)
        except IntegrityError:
            # Another intake process stored a position for this partition first (a
            # rebalance, a zombie): nothing of this batch was saved; continue from there.
            log.info("intake: %s moved on elsewhere; resuming from the stored position", tp)
            self._seek(tp)
            return 0
        if dead:
            dead.sort(key=lambda item: item[0].offset)
            self._send_dead_letters(dead)
        try:
            self.ledger.recorder.insert_tracking(Tracking(dead_name, records[-1].offset + 1))
        except IntegrityError:
            pass  # another process confirmed at least this far
        self.stats.batches += 1
        return len(records)

    def _decide(
        self,
        records: list[ConsumerRecord],
        tracking: Tracking | None,
        dead: list[tuple[ConsumerRecord, LedgerError]],
        count: bool = True,
    ) -> None:
        facts: list[dict[str, Any]] = []
        origins: list[ConsumerRecord] = []
        for record in records:
            try:
                facts.append(intake_fact(record.value, self.ledger.codec))
                origins.append(record)
            except SchemaError as error:
                dead.append((record, error))
        outcomes = self.ledger.record_many(facts, tracking=tracking)
        for record, outcome in zip(origins, outcomes, strict=True):
            if outcome.error is not None:
                dead.append((record, outcome.error))
            elif count and outcome.status == "duplicate":
                self.stats.duplicates += 1
            elif outcome.status == "recorded":
                self.stats.recorded += 1
        if count:
            self.stats.read += len(records)

    def _send_dead_letters(self, dead: Iterable[tuple[ConsumerRecord, LedgerError]]) -> None:
        client = self._producer_client()
        now = datetime.now(UTC)
        try:
            futures = []
            for record, error in dead:
                value = record.value if record.key is not None or record.value is not None else b""
                futures.append(
                    client.send(
                        self.dlq_topic,
                        key=record.key,
                        value=value,
                        headers=dead_letter_headers(record, error, now),
                    )
                )
            client.flush()
            for future in futures:
                future.get(timeout=0)
        except ClientError as exc:
            self._discard_producer()
            raise KafkaError(f"sending dead letters to {self.dlq_topic!r} failed: {exc!r}") from exc
        self.stats.dead_letters += len(futures)

    # Kafka clients.

    def _subscribe(self, group: str) -> None:
        self._consumer = consumer(self.settings, group_id=group, **self.consumer_options)
        self._consumer.subscribe([self.topic], listener=_SeekToStoredPositions(self))

    def _assign_all(self) -> tuple[KafkaConsumer, list[TopicPartition]]:
        client = consumer(self.settings, group_id=None, **self.consumer_options)
        try:
            found = client.partitions_for_topic(self.topic)
            if not found:
                raise KafkaError(f"topic {self.topic!r} has no partitions")
            partitions = [TopicPartition(self.topic, p) for p in sorted(found)]
            client.assign(partitions)
            self._consumer = client
            for tp in partitions:
                self._seek(tp)
        except BaseException as error:
            self._consumer = None
            client.close(autocommit=False, timeout_ms=_CLOSE_MS)
            if isinstance(error, ClientError):
                raise KafkaError(f"cannot assign {self.topic!r}: {error!r}") from error
            raise
        return client, partitions

    def _seek(self, tp: TopicPartition) -> None:
        assert self._consumer is not None
        self._consumer.seek(tp, self.resume_at(tp.partition))

    def _rewind(self) -> None:
        """Every assigned partition back to its stored position; or, if even that fails, a
        new consumer later (which seeks on assignment)."""
        if self._consumer is None:
            return
        try:
            for tp in self._consumer.assignment():
                self._seek(tp)
        except Exception:  # noqa: BLE001 - the fallback is safe whatever went wrong
            log.warning("intake: cannot rewind; starting a new consumer", exc_info=True)
            try:
                self._consumer.close(autocommit=False, timeout_ms=_CLOSE_MS)
            finally:
                self._consumer = None

    def _producer_client(self) -> KafkaProducer:
        if self._producer is None:
            self._producer = producer(self.settings)
        return self._producer

    def _discard_producer(self) -> None:
        if self._producer is not None:
            try:
                self._producer.close(timeout=0)
            except Exception:  # noqa: BLE001 - it is being thrown away because it is broken
                log.debug("closing a broken producer failed", exc_info=True)
            self._producer = None


class _SeekToStoredPositions(ConsumerRebalanceListener):
    """On assignment, each partition starts where the store says, not at a group offset."""

    def __init__(self, intake: Intake):
        self.intake = intake

    def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        """Nothing to do: each batch is finished (or dropped) before the next poll."""

    def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        for tp in assigned:
            self.intake._seek(tp)
