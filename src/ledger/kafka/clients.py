"""Kafka clients built from the settings, and the few things every user does with them.

Assigning all of a topic's partitions, reading to the end, sending a list of records and
replacing a broken producer are written once, here; the relay, the projector source, the
intake, the dead letters, the SDK and status all call these.

On the ledger topic a record's key is the customer_id (so one customer's events stay in
order on one partition), its value the Avro single-object bytes exactly as stored, and its
``event-type`` header the event type.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka import errors as client_errors
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import KafkaError as ClientError

from ledger.contract.codec import HEADER_LEN
from ledger.errors import KafkaError, SchemaError
from ledger.kafka.topics import MissingTopicError, require, unreachable
from ledger.settings import Settings

log = logging.getLogger(__name__)

EVENT_TYPE_HEADER = "event-type"

Outgoing = tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]
"""A record to send: key, value, headers."""
Fetched = dict[TopicPartition, list[ConsumerRecord]]

CONTENT_ERRORS: tuple[type[ClientError], ...] = (
    client_errors.MessageSizeTooLargeError,  # Java's RecordTooLargeException; also raised by send()
    client_errors.RecordListTooLargeError,
    client_errors.InvalidRecordError,
    client_errors.CorruptRecordError,
    client_errors.InvalidTimestampError,
)
"""Kafka refusing a record for what it is (its size, its content), not for the state of the
cluster: sending it again can never succeed. Anything else (a broker down, a leader moving,
an expired producer id) is worth retrying with a new producer."""


@dataclass
class Delivery:
    """What became of a list of records sent together."""

    acked: dict[int, int] = field(default_factory=dict)
    """Per partition, the end offset Kafka's acknowledgements prove (last acked offset + 1)."""
    refused: dict[int, str] = field(default_factory=dict)
    """Records Kafka refused for their content, even sent alone: index in the list -> reason."""

    def ack(self, partition: int, offset: int) -> None:
        self.acked[partition] = max(self.acked.get(partition, 0), offset + 1)


def producer(settings: Settings, **overrides: Any) -> KafkaProducer:
    """An idempotent producer (acks=all) that batches: the relay's and the SDK's."""
    options: dict[str, Any] = {
        **settings.kafka.client_options(),
        "acks": "all",
        "enable_idempotence": True,
        "allow_auto_create_topics": False,
        "linger_ms": 20,
        "batch_size": 256 * 1024,
        "max_request_size": 4 * 1024 * 1024,
        **overrides,
    }
    try:
        return KafkaProducer(**options)
    except ClientError as exc:
        raise unreachable(settings, exc, "a producer") from exc


def consumer(settings: Settings, **overrides: Any) -> KafkaConsumer:
    """A consumer tuned for throughput: large fetches, many records per poll, no auto-commit."""
    options: dict[str, Any] = {
        **settings.kafka.client_options(),
        "enable_auto_commit": False,
        "allow_auto_create_topics": False,
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
        raise unreachable(settings, exc, "a consumer") from exc


def partitions_of(client: KafkaConsumer, topic: str, settings: Settings) -> list[TopicPartition]:
    """Every partition of `topic`, asked in a way that never creates it."""
    try:
        found = client.partitions_for_topic(topic)
    except ClientError as exc:
        raise KafkaError(f"cannot read the partitions of {topic!r}: {exc!r}") from exc
    if not found:
        raise MissingTopicError(topic, settings)
    return [TopicPartition(topic, p) for p in sorted(found)]


def assigned(settings: Settings, topic: str, only: int | None = None,
             **overrides: Any) -> tuple[KafkaConsumer, list[TopicPartition]]:
    """A consumer with every partition of `topic` (or partition `only`) assigned by hand: no
    group join or rebalance to wait for, and the caller seeks to the positions it stores itself."""
    client = consumer(settings, group_id=None, **overrides)
    try:
        partitions = [tp for tp in partitions_of(client, topic, settings) if only is None or tp.partition == only]
        client.assign(partitions)
    except BaseException as error:
        client.close(autocommit=False)
        if isinstance(error, ClientError):
            raise KafkaError(f"cannot assign {topic!r}: {error!r}") from error
        raise
    return client, partitions


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


def read_to_end(
    client: KafkaConsumer,
    partitions: list[TopicPartition],
    ends: dict[int, int],
    *,
    poll_ms: int = 500,
    max_records: int | None = None,
    stall_s: float = 60.0,
) -> Iterator[Fetched]:
    """Poll from each partition's position until every one has reached its end in `ends`
    (what the topic held when the caller looked); records at or past the end are left out.

    The caller may seek between batches (back to a stored position): the end still holds.
    A broker that stops answering is an error after `stall_s`, not a hang.
    """
    topic = partitions[0].topic if partitions else "?"
    last_progress = time.monotonic()
    try:
        while True:
            at = {tp: client.position(tp) for tp in partitions}
            if all(at[tp] >= ends[tp.partition] for tp in partitions):
                return
            fetched: Fetched = {}
            for tp, records in poll(client, topic, poll_ms, max_records).items():
                end = ends[tp.partition]
                if records[-1].offset >= end:
                    records = [r for r in records if r.offset < end]
                if records:
                    fetched[tp] = records
            if fetched:
                yield fetched
            if any(client.position(tp) != at[tp] for tp in partitions):
                last_progress = time.monotonic()
            elif time.monotonic() - last_progress > stall_s:
                raise KafkaError(f"reading {topic!r} stalled before its end; is the broker up?")
    except ClientError as exc:
        raise KafkaError(f"reading {topic!r} failed: {exc!r}") from exc


def poll(client: KafkaConsumer, topic: str, poll_ms: int, max_records: int | None = None) -> Fetched:
    try:
        return client.poll(timeout_ms=poll_ms, max_records=max_records)
    except ClientError as exc:
        raise KafkaError(f"reading {topic!r} failed: {exc!r}") from exc


class Producer:
    """A producer for one topic, built when first needed and replaced after a failure.

    After a broker restart (or when Kafka expires its producer state) an idempotent
    kafka-python producer never recovers (UnknownProducerIdError, then InitProducerId
    errors), so a producer that failed once is thrown away and the next send builds a new
    one; the caller resends from its own stored position.
    """

    def __init__(self, settings: Settings, topic: str, **options: Any):
        self.settings = settings
        self.topic = topic
        self.options = options
        self.built = 0
        self._client: KafkaProducer | None = None

    def send_all(self, records: Iterable[Outgoing]) -> int:
        """Send every record and return once all are acknowledged (acks=all); how many.
        Nothing to send connects to nothing."""
        records = list(records)
        if not records:
            return 0
        client = self._connect()
        try:
            futures = [client.send(self.topic, key=k, value=v, headers=h) for k, v, h in records]
            client.flush()
            for future in futures:
                future.get(timeout=0)
        except ClientError as exc:
            self.discard()
            raise KafkaError(f"sending to {self.topic!r} failed: {exc!r}") from exc
        return len(futures)

    def deliver(self, records: list[Outgoing]) -> Delivery:
        """Send every record, return once each is acknowledged or refused for its content.

        Refusals do not stop the others. A record refused by `send` itself (larger than
        ``max_request_size``) is known at once. One refused by the broker may have failed with
        the rest of its record batch, so each such record is sent again alone, on a new
        producer (the broken batch may have left the old one's sequence numbers behind), and
        only what is refused alone counts as refused. Those resent records may land after
        later records of their partition; readers drop repeats by event_id and do not depend
        on that order. Any other failure discards the producer and raises KafkaError: the
        caller sends again from its stored position.
        """
        delivery = Delivery()
        suspects = self._send(records, range(len(records)), delivery, isolate=False)
        if suspects:
            self.discard()
            self._send(records, suspects, delivery, isolate=True)
        return delivery

    def _send(self, records: list[Outgoing], indexes: Iterable[int], delivery: Delivery, *, isolate: bool) -> list[int]:
        """Send `indexes` of `records` (each flushed alone with `isolate`).

        Without `isolate`, when the broker refused some for their content, every record that
        failed is returned (a refused batch can make the next ones of its partition fail with
        sequence errors); isolated, a content refusal is final. Any other failure raises."""
        indexes = list(indexes)
        if not indexes:
            return []
        client = self._connect()
        futures = []
        failures: list[tuple[int, ClientError]] = []
        try:
            for index in indexes:
                key, value, headers = records[index]
                try:
                    futures.append((index, client.send(self.topic, key=key, value=value, headers=headers)))
                except CONTENT_ERRORS as exc:
                    delivery.refused[index] = describe(exc)
                    continue
                if isolate:
                    client.flush()
            client.flush()
            for index, future in futures:
                try:
                    metadata = future.get(timeout=0)
                except ClientError as exc:
                    failures.append((index, exc))
                    continue
                delivery.ack(metadata.partition, metadata.offset)
        except ClientError as exc:
            self.discard()
            raise KafkaError(f"sending to {self.topic!r} failed: {exc!r}") from exc
        refused = [(index, exc) for index, exc in failures if isinstance(exc, CONTENT_ERRORS)]
        if refused and not isolate:
            return [index for index, _ in failures]
        others = [exc for _, exc in failures if not isinstance(exc, CONTENT_ERRORS)]
        if others:
            self.discard()
            raise KafkaError(f"sending to {self.topic!r} failed: {others[0]!r}") from others[0]
        delivery.refused.update((index, describe(exc)) for index, exc in refused)
        return []

    def discard(self) -> None:
        if self._client is not None:
            try:
                self._client.close(timeout=0)
            except Exception:  # noqa: BLE001 - it is being thrown away because it is broken
                log.debug("closing a broken producer failed", exc_info=True)
            self._client = None

    def close(self) -> None:
        """Flush what is pending and close; the client is closed even if the flush fails."""
        client, self._client = self._client, None
        if client is not None:
            try:
                client.flush()
            finally:
                client.close()

    def _connect(self) -> KafkaProducer:
        if self._client is None:
            require(self.settings, self.topic)
            self._client = producer(self.settings, **self.options)
            self.built += 1
        return self._client


def describe(error: ClientError) -> str:
    """A Kafka client error as a person reads it: its name and what it says."""
    return str(error) if error.args else f"{type(error).__name__}: {getattr(error, 'description', '')}".rstrip(": ")


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
