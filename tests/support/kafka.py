"""Kafka in tests: settings on the session broker with fresh topics (fixtures), and helpers
that produce raw records, make Avro bytes as any adapter would, and read back what the store
recorded and what the dead-letter topic holds."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaProducer

from ledger.contract.codec import default_codec
from ledger.contract.facts import to_record
from ledger.intake import dead_letters as dlq
from ledger.settings import Settings
from ledger.write.application import Ledger
from ledger.write.store import TOPIC_PREFIX
from tests.support.broker import TansuBroker
from tests.support.facts import NOW


@pytest.fixture
def kafka_settings(
    tmp_path: Path, kafka_broker: TansuBroker, topic_factory: Callable[..., str]
) -> Settings:
    """Settings on the session broker with a fresh intake topic (4 partitions) and DLQ."""
    return Settings(
        data_dir=tmp_path / "data",
        kafka=kafka_broker.bootstrap,
        intake_topic=topic_factory(partitions=4),
        dlq_topic=topic_factory(partitions=2),
        batch_size=500,
    )


@pytest.fixture
def one_partition_settings(kafka_settings: Settings, topic_factory: Callable[..., str]) -> Settings:
    """An intake topic of one partition, so records are read in the order they were sent."""
    return kafka_settings.with_(intake_topic=topic_factory(partitions=1))


@pytest.fixture
def store_kafka_settings(
    settings: Settings, kafka_broker: TansuBroker, topic_factory: Callable[..., str]
) -> Settings:
    """Like `kafka_settings`, once per event store (conftest's `settings`: SQLite, PostgreSQL)."""
    return settings.with_(
        kafka=kafka_broker.bootstrap,
        intake_topic=topic_factory(partitions=4),
        dlq_topic=topic_factory(partitions=2),
        batch_size=500,
    )


Raw = tuple[bytes | None, bytes | None] | tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]


def produce(settings: Settings, records: Iterable[Raw], topic: str | None = None) -> list[tuple[int, int]]:
    """Send (key, value[, headers]) records as they are, in order, and wait for the acks;
    return where each landed, (partition, offset)."""
    producer = KafkaProducer(bootstrap_servers=str(settings.kafka), acks="all", linger_ms=5,
                             max_request_size=4 * 1024 * 1024)
    try:
        futures = [
            producer.send(topic or settings.intake_topic, key=r[0], value=r[1],
                          headers=r[2] if len(r) > 2 else None)  # type: ignore[misc]
            for r in records
        ]
        producer.flush(timeout=30)
        landed = [future.get(timeout=10) for future in futures]
        return [(metadata.partition, metadata.offset) for metadata in landed]
    finally:
        producer.close(timeout=5)


def avro(fact: dict[str, Any]) -> bytes:
    """The intake bytes of a fact, as any adapter could encode it: the contract's types,
    the ledger's rules not checked."""
    event_type, record = to_record(fact, NOW)
    return default_codec().encode(event_type, record, checked=True)


def recorded(ledger: Ledger) -> Counter[str]:
    """How often each event_id is in the store."""
    counts: Counter[str] = Counter()
    after = 0
    while batch := ledger.recorder.select_notifications(after, 5000, inclusive_of_start=False):
        for notification in batch:
            if notification.topic.startswith(TOPIC_PREFIX):
                counts[str(ledger.codec.decode(notification.state)[1]["event_id"])] += 1
        after = batch[-1].id
    return counts


def dead_letters(settings: Settings) -> list[dlq.DeadLetter]:
    return list(dlq.read(settings))


def kept_values(settings: Settings, letters: Iterable[dlq.DeadLetter]) -> list[bytes | None]:
    """The intake bytes dead letters keep, opened with their customers' keys; None for one
    whose customer was erased (its bytes were not kept), sorted."""
    return sorted((None if letter.shredded else dlq.readable(settings, letter).value for letter in letters),
                  key=lambda v: (v is not None, v or b""))


def expected_values(invalid: Iterable[tuple[bytes, bytes]], erased: bytes = b"GONE") -> list[bytes | None]:
    """What `kept_values` gives for these (key, value) intake records: None for an erased customer's."""
    return sorted((None if key == erased else value for key, value in invalid),
                  key=lambda v: (v is not None, v or b""))
