"""Dead letters: what the intake could not record, kept on the DLQ topic for an operator.

A dead letter is the intake record exactly as it arrived (key, value bytes and headers
untouched) plus headers, all UTF-8 text, that say what went wrong and where it came from:

    dlq-reason            what is wrong, for a person ("score: nps score must be 0 to 10, got 11")
    dlq-error-class       the ledger's error class (SchemaError, ValidationError, ...)
    dlq-field             the offending field, when one is known
    dlq-source-topic      where the record was read: topic,
    dlq-source-partition  partition
    dlq-source-offset     and offset
    dlq-source-timestamp  the record's own timestamp (ms since the epoch)
    dlq-failed-at         when the intake refused it (ISO-8601, UTC)

The ``dlq-`` prefix is the ledger's: such headers on an intake record are not carried over.
A dead letter is identified by its source (topic, partition, offset): after a crash the
intake may write one twice (see ledger.intake), and reading the queue shows it once.

Re-driving publishes the original key, value and headers back to the intake topic, with a
``redriven-from`` header naming the dead letter. Every intake fact carries an idempotency
key, so re-driving the same dead letter twice records it once.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord

from ledger.contract.codec import Codec, default_codec
from ledger.contract.sealing import Key, open_bytes, seal_bytes
from ledger.errors import LedgerError
from ledger.kafka.clients import (
    EVENT_TYPE_HEADER,
    Outgoing,
    Producer,
    assigned,
    high_watermarks,
    read_to_end,
)
from ledger.kafka.topics import MissingTopicError
from ledger.settings import Settings
from ledger.write.key_reader import KeyReader

PREFIX = "dlq-"
REASON = "dlq-reason"
ERROR_CLASS = "dlq-error-class"
FIELD = "dlq-field"
SOURCE_TOPIC = "dlq-source-topic"
SOURCE_PARTITION = "dlq-source-partition"
SOURCE_OFFSET = "dlq-source-offset"
SOURCE_TIMESTAMP = "dlq-source-timestamp"
FAILED_AT = "dlq-failed-at"
SEALED_FOR = "dlq-sealed-for"
SHREDDED = "dlq-shredded"
REDRIVEN_FROM = "redriven-from"

_POSITION = re.compile(r"^\s*(\d+)\s*:\s*(\d+)\s*$")
_STALL_S = 30.0


class DeadLetterNotFound(LedgerError):
    """No dead letter at the position an operator named."""


class NoDeadLetterTopic(DeadLetterNotFound):
    """The DLQ topic does not exist: nothing was ever dead-lettered there. Listing shows an
    empty queue (and says why); a named position is still not found."""


class DeadLetterErased(LedgerError):
    """A dead letter whose customer was erased: it cannot be read or re-driven."""


Keys = Callable[[list[str]], dict[str, bytes]]
Sealing = tuple[str, "Key | None"]
"""``(customer_id, data key or None when erased)``."""


@dataclass(frozen=True)
class DeadLetter:
    partition: int
    offset: int
    """Where the dead letter is on the DLQ topic."""
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    """The intake record's own headers, without the ``dlq-`` ones."""
    reason: str
    error_class: str
    field: str | None
    source_topic: str
    source_partition: int
    source_offset: int
    source_timestamp: int | None
    failed_at: str
    sealed_for: str | None = None
    """The customer whose data key seals `value` (the intake record's bytes)."""
    shredded: bool = False
    """The value was not kept: its customer was erased."""

    @property
    def position(self) -> str:
        return f"{self.partition}:{self.offset}"

    @property
    def source(self) -> str:
        """The identity of a dead letter: where the intake read it."""
        return f"{self.source_topic}:{self.source_partition}:{self.source_offset}"

    @property
    def event_type(self) -> str | None:
        return _text(dict(self.headers).get(EVENT_TYPE_HEADER))

    @property
    def redriven_from(self) -> str | None:
        return _text(dict(self.headers).get(REDRIVEN_FROM))

    @classmethod
    def from_record(cls, record: ConsumerRecord) -> DeadLetter:
        ours = {k: v for k, v in record.headers or () if k.startswith(PREFIX)}
        theirs = tuple((k, v) for k, v in record.headers or () if not k.startswith(PREFIX))

        def number(name: str, missing: int | None = -1) -> int | None:
            text = _text(ours.get(name))
            return int(text) if text and text.lstrip("-").isdigit() else missing

        return cls(
            partition=record.partition,
            offset=record.offset,
            key=record.key,
            value=record.value,
            headers=theirs,
            reason=_text(ours.get(REASON)) or "(no reason given)",
            error_class=_text(ours.get(ERROR_CLASS)) or "",
            field=_text(ours.get(FIELD)),
            source_topic=_text(ours.get(SOURCE_TOPIC)) or "?",
            source_partition=number(SOURCE_PARTITION),  # type: ignore[arg-type]
            source_offset=number(SOURCE_OFFSET),  # type: ignore[arg-type]
            source_timestamp=number(SOURCE_TIMESTAMP, None),
            failed_at=_text(ours.get(FAILED_AT)) or "",
            sealed_for=_text(ours.get(SEALED_FOR)),
            shredded=SHREDDED in ours,
        )

    def opened(self, keys: Keys) -> DeadLetter:
        """This dead letter with the intake record's bytes opened, if they are sealed; a
        LedgerError if they cannot be (the customer was erased since)."""
        if self.shredded:
            raise DeadLetterErased(f"dead letter {self.position} was of an erased customer; its value was not kept")
        if self.sealed_for is None or self.value is None:
            return self
        key = keys([self.sealed_for]).get(self.sealed_for)
        if key is None:
            raise DeadLetterErased(f"dead letter {self.position} is sealed for customer {self.sealed_for!r}, who "
                                   "was erased since: it can no longer be read or re-driven")
        return replace(self, value=open_bytes(self.value, key, self.sealed_for), sealed_for=None)

    def summary(self) -> dict[str, Any]:
        """One row of `ledger dlq list`."""
        return {
            "position": self.position,
            "failed_at": self.failed_at,
            "source": self.source,
            "event_type": self.event_type,
            "error_class": self.error_class,
            "field": self.field,
            "reason": self.reason,
            "key": _text(self.key),
            "size": len(self.value or b""),
            "redriven_from": self.redriven_from,
            "sealed_for": self.sealed_for,
            "shredded": self.shredded,
        }

    def describe(self, codec: Codec | None = None, hex_limit: int = 512) -> dict[str, Any]:
        """Everything `ledger dlq show` prints: headers, and the value decoded if it can be."""
        details = self.summary()
        details["headers"] = {
            k: _text(v) if _is_text(v) else (v or b"").hex() for k, v in self.headers
        }
        value = self.value or b""
        details["value_hex"] = value[:hex_limit].hex() + ("..." if len(value) > hex_limit else "")
        try:
            event_type, record = (codec or default_codec()).decode(value)
            details["decoded"] = {"type": event_type, **record}
        except LedgerError as error:
            details["decoded"] = None
            details["decode_error"] = str(error)
        return details


def dead_letter(
    record: ConsumerRecord, error: LedgerError, failed_at: datetime, sealing: Sealing | None = None
) -> Outgoing:
    """The dead letter of an intake record: its key, its own headers, and the ones that say
    why and where it failed. Its value is kept as it came when its customer is not known
    (bytes that name none); otherwise `sealing` is ``(customer_id, data key)``: the value is
    sealed under that customer's key (so erasing them shreds it), or dropped when they are
    erased already (key None)."""
    headers = [(k, v) for k, v in record.headers or () if not k.startswith(PREFIX)]
    ours = [
        (REASON, str(error)),
        (ERROR_CLASS, type(error).__name__),
        (SOURCE_TOPIC, record.topic),
        (SOURCE_PARTITION, str(record.partition)),
        (SOURCE_OFFSET, str(record.offset)),
        (SOURCE_TIMESTAMP, str(record.timestamp)),
        (FAILED_AT, failed_at.isoformat()),
    ]
    field = getattr(error, "field", None)
    if field:
        ours.insert(2, (FIELD, field))
    value = record.value if record.key is not None or record.value is not None else b""
    if sealing is not None and value:
        customer_id, key = sealing
        if key is None:
            value = b""
            ours.append((SHREDDED, f"the customer {customer_id!r} is erased: the value was not kept"))
        else:
            value = seal_bytes(value, key, customer_id)
            ours.append((SEALED_FOR, customer_id))
    encoded = [(name, text.encode("utf-8", "surrogateescape")) for name, text in ours]
    return record.key, value, headers + encoded


def parse_position(text: str) -> tuple[int, int]:
    """``"PARTITION:OFFSET"`` as ``(partition, offset)``."""
    match = _POSITION.match(text)
    if not match:
        raise DeadLetterNotFound(f"{text!r} is not a position: give PARTITION:OFFSET, e.g. 0:42")
    return int(match[1]), int(match[2])


def read(settings: Settings) -> Iterator[DeadLetter]:
    """Every dead letter from the start of the DLQ topic to its end when reading began, each
    once (by source), in DLQ order per partition."""
    seen: set[str] = set()
    with _reader(settings) as (client, partitions):
        ends = high_watermarks(settings, partitions)
        client.seek_to_beginning(*partitions)
        for fetched in read_to_end(client, partitions, ends, stall_s=_STALL_S):
            for records in fetched.values():
                for record in records:
                    letter = DeadLetter.from_record(record)
                    if letter.source not in seen:
                        seen.add(letter.source)
                        yield letter


def get(settings: Settings, positions: Iterable[tuple[int, int]]) -> list[DeadLetter]:
    """The dead letters at these DLQ positions; DeadLetterNotFound names one that is not there."""
    letters = []
    with _reader(settings) as (client, partitions):
        ends = high_watermarks(settings, partitions)
        for partition, offset in positions:
            if partition not in ends:
                raise DeadLetterNotFound(
                    f"{settings.kafka.dlq_topic!r} has no partition {partition} (it has {len(ends)})"
                )
            letters.append(_read_one(client, TopicPartition(settings.kafka.dlq_topic, partition), offset, ends))
    return letters


def readable(settings: Settings, letter: DeadLetter) -> DeadLetter:
    """`letter` opened if it is sealed and its customer's key still exists; else as it is."""
    keys = KeyReader(settings)
    try:
        return letter.opened(keys)
    except DeadLetterErased:
        return letter
    finally:
        keys.close()


def redrive(
    settings: Settings,
    positions: Iterable[tuple[int, int]] | None = None,
    reason_contains: str | None = None,
) -> list[DeadLetter]:
    """Publish dead letters back to the intake topic, original bytes and headers unchanged.

    With `positions`, those dead letters; otherwise every one whose reason contains
    `reason_contains` (case-insensitive; all if None). Returns what was sent, once every
    record is acknowledged.
    """
    if positions is not None:
        chosen: Iterable[DeadLetter] = get(settings, positions)
    else:
        chosen = read(settings)
    needle = reason_contains.lower() if reason_contains else None
    keys = KeyReader(settings)
    try:
        letters = [letter.opened(keys) for letter in chosen if needle is None or needle in letter.reason.lower()]
    finally:
        keys.close()
    producer = Producer(settings, settings.kafka.intake_topic)
    try:
        producer.send_all(_redriven(settings, letter) for letter in letters)
    finally:
        producer.close()
    return [replace(letter, value=None) for letter in letters]  # what was sent, not the bytes again


def _redriven(settings: Settings, letter: DeadLetter) -> Outgoing:
    headers = [(k, v) for k, v in letter.headers if k != REDRIVEN_FROM]
    headers.append((REDRIVEN_FROM, f"{settings.kafka.dlq_topic}:{letter.position}".encode()))
    return letter.key, letter.value, headers


@contextmanager
def _reader(settings: Settings) -> Iterator[tuple[KafkaConsumer, list[TopicPartition]]]:
    try:
        client, partitions = assigned(settings, settings.kafka.dlq_topic)
    except MissingTopicError:
        raise NoDeadLetterTopic(
            f"no dead-letter topic {settings.kafka.dlq_topic!r} on {settings.kafka}: nothing was "
            "ever dead-lettered there (`ledger topics create` creates it)"
        ) from None
    try:
        yield client, partitions
    finally:
        client.close()


def _read_one(client: KafkaConsumer, tp: TopicPartition, offset: int, ends: dict[int, int]) -> DeadLetter:
    if offset < ends[tp.partition]:
        client.assign([tp])
        client.seek(tp, offset)
        for fetched in read_to_end(client, [tp], {tp.partition: offset + 1}, stall_s=_STALL_S):
            if fetched[tp][0].offset == offset:
                return DeadLetter.from_record(fetched[tp][0])
    raise DeadLetterNotFound(f"no dead letter at {tp.partition}:{offset} on {tp.topic!r}")


def _text(data: bytes | None) -> str | None:
    if data is None:
        return None
    return data.decode("utf-8", errors="replace")


def _is_text(data: bytes | None) -> bool:
    if data is None:
        return True
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
