"""The intake: records the facts that channel adapters publish on the Kafka intake topic.

Adapters (the SDK in ledger.intake.client, or any language that speaks the schemas/ contract)
publish Avro single-object bytes to the intake topic, keyed by customer_id. For each
record the intake decodes the fact and the ledger decides; whatever cannot be recorded goes
to the dead-letter topic, bytes untouched, the reason in headers (ledger.intake.dead_letters). One bad
record never stops its partition.

Idempotency: a fact is recorded once per ``(source, source_event_id)``; an intake fact sent
without a source_event_id is keyed by its event_id, which the contract requires. So any
intake record, read twice or re-driven twice, is recorded once.

The work is split by job: ledger.intake.decode reads the bytes into a typed fact, the
ledger records it (`Ledger.record_typed`), ledger.intake.dead_letters makes the dead
letters, ledger.intake.positions keeps the two stored positions per partition (decided, and
dead letters confirmed). This module is the loop, and the order in which those commit.

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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from eventsourcing.persistence import IntegrityError, PersistenceError, Tracking
from kafka import ConsumerRebalanceListener, KafkaConsumer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import KafkaError as ClientError

from ledger.contract.rules import normal_customer_id
from ledger.errors import LedgerError, SchemaError
from ledger.intake.dead_letters import Sealing, dead_letter
from ledger.intake.decode import intake_fact
from ledger.intake.positions import Positions
from ledger.kafka.clients import (
    Fetched,
    Producer,
    assigned,
    consumer,
    high_watermarks,
    partitions_of,
    poll,
    read_to_end,
)
from ledger.settings import Settings
from ledger.write.application import Ledger

log = logging.getLogger(__name__)

_CLOSE_MS = 2000
"""Leaving a group mid-join can wait for the join (about half the session timeout on Tansu)."""

DeadLetters = list[tuple[ConsumerRecord, LedgerError]]


@dataclass
class IntakeStats:
    read: int = 0
    recorded: int = 0
    duplicates: int = 0
    waiting: int = 0
    """Refunds kept until their order arrives (ledger.write.waiting): not dead letters."""
    dead_letters: int = 0
    rechecked: int = 0
    """Records decided again after a restart because their dead letters were not confirmed."""
    batches: int = 0
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return self.read / self.seconds if self.seconds else 0.0


@dataclass
class Decided:
    recorded: int = 0
    duplicates: int = 0
    waiting: int = 0
    dead: DeadLetters = field(default_factory=list)


def decide(ledger: Ledger, records: list[ConsumerRecord], tracking: Tracking | None) -> Decided:
    """Decode `records` and record their facts (with `tracking`, in one store transaction);
    what can be neither decoded nor recorded comes back as dead letters to send."""
    decided = Decided()
    facts, origins = [], []
    for record in records:
        try:
            facts.append(intake_fact(record.value, ledger.codec))
            origins.append(record)
        except SchemaError as error:
            decided.dead.append((record, error))
    for record, outcome in zip(origins, ledger.record_typed(facts, tracking), strict=True):
        if outcome.error is not None:
            decided.dead.append((record, outcome.error))
        elif outcome.status == "duplicate":
            decided.duplicates += 1
        elif outcome.status == "waiting":
            decided.waiting += 1
        else:
            decided.recorded += 1
    return decided


class Intake:
    """Records the intake topic's facts; dead-letters the rest.

    `run` follows the topic until stopped; `run_once` stops once it has read what the topic
    held when it began (`ledger ingest --from-kafka`). Either way the store's positions are
    the only ones that count: Kafka's committed offsets are neither read nor written. The
    intake and dead-letter topics must exist (`ledger topics create`).

    Partitions are assigned by hand, every one to this process, as the Kafka projector
    source does: no group join or rebalance delays start or stop. To share partitions among
    several intake processes (a PostgreSQL store), set `settings.kafka.intake_group`: `run` then
    joins that consumer group and seeks each partition it is given to its stored position.
    Two processes reading the same partition by mistake record nothing twice: the second
    one's position is refused (IntegrityError) and it resumes from the stored one.
    """

    def __init__(
        self, settings: Settings, ledger: Ledger, *, poll_ms: int = 500,
        on_batch: Callable[[IntakeStats, float], None] | None = None, **consumer_options: Any,
    ):
        """`on_batch(stats, seconds)`: called by `run` after each poll that brought records,
        with the running totals (how `ledger serve` counts, in ops, without this room knowing
        of metrics)."""
        self.settings = settings
        self.ledger = ledger
        self.topic = settings.kafka.intake_topic
        self.dlq_topic = settings.kafka.dlq_topic
        self.poll_ms = poll_ms
        self.batch_size = settings.batch_size
        self.consumer_options = consumer_options
        self.stats = IntakeStats()
        self.on_batch = on_batch
        self.stored = Positions(ledger, self.topic)
        self._dead_letters = Producer(settings, self.dlq_topic)
        self._consumer: KafkaConsumer | None = None

    def positions(self, partition: int) -> tuple[int, int]:
        """(next offset decided, next offset whose dead letters are on the DLQ topic)."""
        return self.stored.of(partition)

    def lag(self) -> dict[int, int]:
        """Per partition this process reads, the records after the furthest of its two stored
        positions (a batch of dead letters alone moves only the second), as of the last fetch;
        partitions not fetched yet are left out."""
        if self._consumer is None:
            return {}
        lag: dict[int, int] = {}
        for tp in self._consumer.assignment():
            end = self._consumer.highwater(tp)
            if end is not None:
                lag[tp.partition] = max(0, end - max(self.stored.of(tp.partition)))
        return lag

    def step(self) -> int:
        """Poll once and handle what came; return how many records were handled."""
        client = self._consumer or self._connect(self.settings.kafka.intake_group)[0]
        return self._handle_all(poll(client, self.topic, self.poll_ms, self.batch_size))

    def run(self, stop: threading.Event, retry_s: float = 1.0) -> IntakeStats:
        """Follow the intake topic until `stop` is set.

        On a failure (broker, store) the batch is dropped, every partition goes back to its
        stored position, and reading resumes after `retry_s`.
        """
        with self._running():
            while not stop.is_set():
                try:
                    started = time.perf_counter()
                    if self.step() and self.on_batch is not None:
                        self.on_batch(self.stats, time.perf_counter() - started)
                except (LedgerError, PersistenceError, ClientError) as error:
                    log.warning("intake: %s; resuming from the stored positions in %.1fs", error, retry_s)
                    self._dead_letters.discard()
                    self._rewind()
                    stop.wait(retry_s)
        return self.stats

    def run_once(self) -> IntakeStats:
        """Read every partition from its stored position to the end offsets seen at the start."""
        with self._running():
            client, partitions = self._connect(None)
            ends = high_watermarks(self.settings, partitions)
            for fetched in read_to_end(client, partitions, ends, poll_ms=self.poll_ms, max_records=self.batch_size):
                self._handle_all(fetched)
        return self.stats

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close(autocommit=False, timeout_ms=_CLOSE_MS)
            self._consumer = None
        self._dead_letters.close()

    @contextmanager
    def _running(self) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.close()
            self.stats.seconds += time.perf_counter() - started

    def _handle_all(self, fetched: Fetched) -> int:
        return sum(self._handle(tp, records) for tp, records in fetched.items())

    def _handle(self, tp: TopicPartition, records: list[ConsumerRecord]) -> int:
        """Decide one partition's batch, in the commit order the module docstring gives."""
        decided_at, confirmed_at = self.stored.of(tp.partition)
        records = [r for r in records if r.offset >= min(decided_at, confirmed_at)]
        if not records:
            return 0
        again = [r for r in records if r.offset < decided_at]
        fresh = [r for r in records if r.offset >= decided_at]
        dead: DeadLetters = []
        try:
            if again:  # a batch cut short after step 2: its dead letters are found again
                self.stats.rechecked += len(again)
                rechecked = decide(self.ledger, again, None)
                self.stats.recorded += rechecked.recorded
                dead += rechecked.dead
            if fresh:  # steps 1 and 2: the facts and the decided position in one transaction
                decided = decide(self.ledger, fresh, self.stored.decided(tp.partition, fresh[-1].offset + 1))
                self.stats.read += len(fresh)
                self.stats.recorded += decided.recorded
                self.stats.duplicates += decided.duplicates
                self.stats.waiting += decided.waiting
                dead += decided.dead
        except IntegrityError:
            # Another intake process stored a position for this partition first (a
            # rebalance, a zombie): nothing of this batch was saved; continue from there.
            log.info("intake: %s moved on elsewhere; resuming from the stored position", tp)
            self._seek(tp)
            return 0
        if dead:  # step 3: the dead letters on the DLQ topic, acknowledged
            dead.sort(key=lambda item: item[0].offset)
            self._send_dead_letters(dead)
        self.stored.confirm(tp.partition, records[-1].offset + 1)  # step 4
        self.stats.batches += 1
        return len(records)

    def _send_dead_letters(self, dead: DeadLetters) -> None:
        now = datetime.now(UTC)
        self.stats.dead_letters += self._dead_letters.send_all(
            dead_letter(r, e, now, self._sealing(r)) for r, e in dead)

    def _sealing(self, record: ConsumerRecord) -> Sealing | None:
        """Whose key seals a dead letter: the customer its bytes name, or its key does."""
        try:
            customer_id = normal_customer_id(self.ledger.codec.decode(record.value or b"")[1]["customer_id"])
        except (SchemaError, KeyError, TypeError):
            customer_id = None
        if not customer_id:
            customer_id = normal_customer_id(record.key.decode("utf-8", "replace")) if record.key else None
        if not customer_id:
            return None
        return customer_id, self.ledger.data_key(customer_id, create=True)

    def _connect(self, group: str | None) -> tuple[KafkaConsumer, list[TopicPartition]]:
        """A consumer of the intake topic: a member of `group` (each partition it is given is
        sought on assignment), or with every partition assigned and sought now. Both topics
        must exist first: a dead letter with nowhere to go shows only after its batch commits."""
        if group:
            client, partitions = consumer(self.settings, group_id=group, **self.consumer_options), []
        else:
            client, partitions = assigned(self.settings, self.topic, **self.consumer_options)
        self._consumer = client
        try:
            for topic in (self.topic, self.dlq_topic):
                partitions_of(client, topic, self.settings)
            if group:
                client.subscribe([self.topic], listener=_SeekToStoredPositions(self))
            for tp in partitions:
                self._seek(tp)
        except BaseException:
            self.close()
            raise
        return client, partitions

    def _seek(self, tp: TopicPartition) -> None:
        assert self._consumer is not None
        self._consumer.seek(tp, self.stored.resume_at(tp.partition))

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


class _SeekToStoredPositions(ConsumerRebalanceListener):
    """On assignment, each partition starts where the store says, not at a group offset."""

    def __init__(self, intake: Intake):
        self.intake = intake

    def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        """Nothing to do: each batch is finished (or dropped) before the next poll."""

    def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        for tp in assigned:
            self.intake._seek(tp)
