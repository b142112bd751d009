"""Helpers shared by the intake, dead-letter, SDK and bad-input tests: raw producing, Avro
bytes as an adapter makes them, and reading back what the store recorded. (Their fixtures
are in tests.intake_fixtures.)"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from kafka import KafkaProducer

from ledger.contract.codec import default_codec
from ledger.contract.facts import event_id_for, to_record
from ledger.intake import dead_letters as dlq
from ledger.settings import Settings
from ledger.write.application import Ledger
from ledger.write.store import TOPIC_PREFIX

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
OCCURRED = datetime(2026, 5, 1, 9, 30, tzinfo=UTC)

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


def contact(customer_id: str, n: int, **fields: Any) -> dict[str, Any]:
    """A valid ContactLogged fact with source_event_id ``k<n>``."""
    return {
        "type": "ContactLogged", "customer_id": customer_id, "occurred_at": OCCURRED,
        "source": "callcentre", "source_event_id": f"k{n}", "contact_id": f"K{n}",
        "channel": "phone", "direction": "inbound", **fields,
    }


def event_id(fact: dict[str, Any]) -> str:
    return str(event_id_for(fact["source"], fact["source_event_id"]))
