"""Kafka clients built from the settings, and the conventions of the ledger topic.

On the ledger topic a record's key is the customer_id (so one customer's events stay in
order on one partition), its value the Avro single-object bytes exactly as stored, and its
``event-type`` header the event type. Topics are created with retention forever.
"""

from __future__ import annotations

import time
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import KafkaError as ClientError
from kafka.errors import TopicAlreadyExistsError

from ledger.contract.codec import HEADER_LEN
from ledger.errors import KafkaError, SchemaError
from ledger.settings import Settings

EVENT_TYPE_HEADER = "event-type"
FOREVER = {"retention.ms": "-1", "retention.bytes": "-1", "cleanup.policy": "delete"}
DEAD_LETTERS = {**FOREVER, "max.message.bytes": str(2 * 1024 * 1024)}
"""A dead letter is an intake record (up to the broker's 1 MB default) plus headers."""


def producer(settings: Settings, **overrides: Any) -> KafkaProducer:
    """An idempotent producer (acks=all) that batches: the relay's and the SDK's."""
    options: dict[str, Any] = {
        **settings.kafka_client_options(),
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": 20,
        "batch_size": 256 * 1024,
        "max_request_size": 4 * 1024 * 1024,
        **overrides,
    }
    try:
        return KafkaProducer(**options)
    except ClientError as exc:
        raise KafkaError(f"cannot connect a producer to {settings.kafka}: {exc}") from exc


def consumer(settings: Settings, **overrides: Any) -> KafkaConsumer:
    """A consumer tuned for throughput: large fetches, many records per poll, no auto-commit."""
    options: dict[str, Any] = {
        **settings.kafka_client_options(),
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "fetch_max_bytes": 64 * 1024 * 1024,
        "max_partition_fetch_bytes": 8 * 1024 * 1024,
        "fetch_min_bytes": 1,
        "max_poll_records": 10_000,
        **overrides,
    }
    try:
        return KafkaConsumer(**options)
    except ClientError as exc:
        raise KafkaError(f"cannot connect a consumer to {settings.kafka}: {exc}") from exc


def high_watermarks(settings: Settings, partitions: list[TopicPartition], timeout_s: float = 15.0) -> dict[int, int]:
    """Each partition's end offset (the offset its next record will get), as Fetch reports it.

    ``KafkaConsumer.end_offsets`` is not enough: Tansu 0.6 answers ListOffsets(latest) with
    the base offset of a partition's last record batch + 1, short by the rest of that batch,
    and a projector trusting it would stop before the last events. Fetch responses carry the
    true high watermark (on Apache Kafka both agree), so a small probe consumer fetches from
    just before the reported end and reads it from there.
    """
    probe = consumer(settings, fetch_max_wait_ms=50, max_partition_fetch_bytes=64 * 1024, max_poll_records=1)
    try:
        probe.assign(partitions)
        for partition, reported in probe.end_offsets(partitions).items():
            probe.seek(partition, max(reported - 1, 0))
        deadline = time.monotonic() + timeout_s
        while any(probe.highwater(p) is None for p in partitions):
            if time.monotonic() > deadline:
                raise KafkaError(f"no fetch response from {settings.kafka} for {partitions}")
            probe.poll(timeout_ms=100)
        return {p.partition: probe.highwater(p) for p in partitions}
    except ClientError as exc:
        raise KafkaError(f"cannot read end offsets from {settings.kafka}: {exc!r}") from exc
    finally:
        probe.close()


def ensure_topic(
    settings: Settings, name: str, partitions: int | None = None, configs: dict[str, str] = FOREVER
) -> None:
    """Create `name` (by default with retention forever) unless it exists already."""
    try:
        admin = KafkaAdminClient(**settings.kafka_client_options())
    except ClientError as exc:
        raise KafkaError(f"cannot reach Kafka at {settings.kafka}: {exc}") from exc
    try:
        if name in admin.list_topics():
            return
        admin.create_topics(
            [
                NewTopic(
                    name,
                    num_partitions=partitions or settings.partitions,
                    replication_factor=settings.replication_factor,
                    topic_configs=configs,
                )
            ]
        )
    except TopicAlreadyExistsError:
        pass
    except ClientError as exc:
        raise KafkaError(f"cannot create topic {name!r}: {exc}") from exc
    finally:
        admin.close()


def customer_key(data: bytes) -> bytes:
    """The customer_id of an encoded event, read straight from the Avro body.

    Every schema starts with the envelope (event_id, customer_id), so the key is the second
    length-prefixed string of the body; no full decode needed on the relay's hot path.
    """
    position = HEADER_LEN
    try:
        length, position = _zigzag(data, position)
        position += length
        length, position = _zigzag(data, position)
    except IndexError:
        raise SchemaError("truncated: cannot read customer_id") from None
    key = data[position : position + length]
    if len(key) != length:
        raise SchemaError("truncated: cannot read customer_id")
    return key


def _zigzag(data: bytes, position: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        byte = data[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return (result >> 1) ^ -(result & 1), position
        shift += 7
