"""The Python SDK for channel adapters: one method per event type, checked before sending.

    with LedgerClient.kafka(settings, source="shop") as ledger:
        ledger.purchase_made(
            customer_id="C1", occurred_at="2026-05-01T09:30:00Z", order_id="O1",
            channel="web", currency="EUR", total_minor=1999, source_event_id="order-O1",
        )

Each method checks the fact locally, against the Avro contract and the ledger's rules, and
raises the typed LedgerError (SchemaError, ValidationError) before anything is sent; it
returns the fact's event_id. What the ledger alone can know (an erased customer) is decided
there: on Kafka such a fact goes to the dead-letter topic (`ledger dlq`); embedded,
`flush()` and `close()` return it in `Delivery.rejected`, and leaving the `with` block
raises FactsRefusedError listing every fact refused since the last flush, so that no fact
vanishes without a word. (When the block ends with an error of its own, that error goes on,
with the refusals added to it as a note.)

Facts are batched. On Kafka the producer batches (linger, batch size) and `flush()` waits
until every fact sent so far is acknowledged by the intake topic; embedded, facts are
buffered and recorded `batch_size` at a time in one store transaction each, and `flush()`
records the rest. `close()` (or leaving the `with` block) flushes.

Idempotency: the event_id is derived from ``(source, source_event_id)`` as the ledger
derives it, and a source_event_id is made up when none is given, so a resend of the same
record (a producer retry, a re-driven dead letter) is recorded once. Pass your system's own
id as `source_event_id` so that calling twice for the same thing is recognised too.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from uuid import uuid4

from kafka.errors import KafkaError as ClientError

from ledger.contract.codec import Codec, default_codec
from ledger.contract.facts import check_text, event_id_for, to_record
from ledger.contract.rules import check_rules
from ledger.errors import KafkaError, LedgerError
from ledger.kafka.clients import EVENT_TYPE_HEADER, producer
from ledger.kafka.topics import require
from ledger.settings import Settings
from ledger.write.application import Ledger, TypedFact, utc_now

Timestamp = datetime | str
"""An aware datetime, or ISO-8601 text ("2026-05-01T09:30:00Z"; without an offset, UTC)."""


@dataclass
class Delivery:
    """What became of the facts handed over since the last flush."""

    sent: int = 0
    """Kafka: acknowledged by the intake topic (the ledger decides later)."""
    recorded: int = 0
    duplicates: int = 0
    waiting: list[tuple[str, str]] = field(default_factory=list)
    """Embedded: (event_id, order_id) of each refund kept until its order arrives."""
    rejected: list[tuple[str, LedgerError]] = field(default_factory=list)
    """Embedded: (event_id, error) of each fact the ledger refused."""


class FactsRefusedError(LedgerError):
    """The ledger refused facts handed to a client; the others were recorded.

    `delivery` says what became of every fact since the last flush; `rejected` holds the
    refused ones, each as ``(event_id, error)``.
    """

    SHOWN = 20

    def __init__(self, delivery: Delivery):
        self.delivery = delivery
        self.rejected = delivery.rejected
        lines = [f"{event_id}: {error}" for event_id, error in self.rejected[: self.SHOWN]]
        if len(self.rejected) > self.SHOWN:
            lines.append(f"... and {len(self.rejected) - self.SHOWN} more (see .rejected)")
        super().__init__(
            f"the ledger refused {len(self.rejected)} facts ({delivery.recorded} recorded, "
            f"{delivery.duplicates} duplicates):\n  " + "\n  ".join(lines)
        )


class LedgerClient:
    def __init__(
        self,
        sink: _Sink,
        *,
        source: str,
        max_future: timedelta,
        codec: Codec | None = None,
        clock: Callable[[], datetime] = utc_now,
    ):
        if not source or not source.strip():
            raise ValueError("source (the adapter's name) must not be empty")
        check_text({"source": source})
        self.source = source
        self.codec = codec or default_codec()
        self.clock = clock
        self.max_future = max_future
        self._sink = sink

    @classmethod
    def kafka(
        cls,
        settings: Settings,
        *,
        source: str,
        clock: Callable[[], datetime] = utc_now,
        **producer_options: Any,
    ) -> LedgerClient:
        """A client that publishes to the intake topic of `settings`, which must exist
        (`ledger topics create`): a client that created it would get none of its settings."""
        return cls(
            _KafkaSink(settings, producer_options),
            source=source,
            max_future=timedelta(seconds=settings.intake.max_future_s),
            clock=clock,
        )

    @classmethod
    def embedded(
        cls, ledger: Ledger, *, source: str, batch_size: int | None = None
    ) -> LedgerClient:
        """A client that records straight into an in-process ledger."""
        return cls(
            _EmbeddedSink(ledger, batch_size or ledger.settings.batch_size),
            source=source,
            max_future=timedelta(seconds=ledger.settings.intake.max_future_s),
            codec=ledger.codec,
            clock=ledger.clock,
        )

    # One method per event type; keyword arguments are the schema's fields.

    def customer_registered(
        self, *, customer_id: str, occurred_at: Timestamp, name: str | None = None,
        email: str | None = None, phone: str | None = None, country: str | None = None,
        city: str | None = None, birth_date: date | str | None = None,
        attributes: Mapping[str, str] | None = None, source_event_id: str | None = None,
    ) -> str:
        return self._send("CustomerRegistered", locals())

    def profile_updated(
        self, *, customer_id: str, occurred_at: Timestamp, name: str | None = None,
        email: str | None = None, phone: str | None = None, country: str | None = None,
        city: str | None = None, birth_date: date | str | None = None,
        attributes: Mapping[str, str] | None = None, source_event_id: str | None = None,
    ) -> str:
        return self._send("ProfileUpdated", locals())

    def consent_changed(
        self, *, customer_id: str, occurred_at: Timestamp, purpose: str, granted: bool,
        source_event_id: str | None = None,
    ) -> str:
        return self._send("ConsentChanged", locals())

    def contact_logged(
        self, *, customer_id: str, occurred_at: Timestamp, contact_id: str, channel: str,
        direction: str, reason: str | None = None, outcome: str | None = None,
        is_complaint: bool = False, agent_id: str | None = None, duration_s: int | None = None,
        language: str | None = None, sentiment: float | None = None, source_event_id: str | None = None,
    ) -> str:
        return self._send("ContactLogged", locals())

    def purchase_made(
        self, *, customer_id: str, occurred_at: Timestamp, order_id: str, channel: str,
        currency: str, total_minor: int, lines: list[Mapping[str, Any]] | None = None,
        source_event_id: str | None = None,
    ) -> str:
        return self._send("PurchaseMade", locals())

    def purchase_refunded(
        self, *, customer_id: str, occurred_at: Timestamp, order_id: str, currency: str,
        amount_minor: int, reason: str | None = None, source_event_id: str | None = None,
    ) -> str:
        return self._send("PurchaseRefunded", locals())

    def feedback_given(
        self, *, customer_id: str, occurred_at: Timestamp, kind: str, score: int, channel: str,
        comment: str | None = None, about_contact_id: str | None = None,
        about_order_id: str | None = None, source_event_id: str | None = None,
    ) -> str:
        return self._send("FeedbackGiven", locals())

    def customer_erased(
        self, *, customer_id: str, occurred_at: Timestamp, reason: str | None = None,
        source_event_id: str | None = None,
    ) -> str:
        return self._send("CustomerErased", locals())

    # Amendments: an adapter correcting or withdrawing its own earlier facts, or an identity
    # service merging ids. `changes` maps each field to its new value as JSON text.

    def fact_corrected(
        self, *, customer_id: str, occurred_at: Timestamp, target_event_id: str, target_type: str,
        changes: Mapping[str, str], reason: str | None = None, actor: str | None = None,
        source_event_id: str | None = None,
    ) -> str:
        return self._send("FactCorrected", locals())

    def fact_retracted(
        self, *, customer_id: str, occurred_at: Timestamp, target_event_id: str, target_type: str,
        reason: str | None = None, actor: str | None = None, source_event_id: str | None = None,
    ) -> str:
        return self._send("FactRetracted", locals())

    def customers_merged(
        self, *, customer_id: str, occurred_at: Timestamp, survivor_id: str, reason: str | None = None,
        actor: str | None = None, source_event_id: str | None = None,
    ) -> str:
        return self._send("CustomersMerged", locals())

    def customer_split(
        self, *, customer_id: str, occurred_at: Timestamp, survivor_id: str, target_event_id: str,
        reason: str | None = None, actor: str | None = None, source_event_id: str | None = None,
    ) -> str:
        return self._send("CustomerSplit", locals())

    def send(self, event_type: str, /, **fields: Any) -> str:
        """Any event type by name, fields as keyword arguments; checked like the methods."""
        return self._send(event_type, fields)

    def flush(self) -> Delivery:
        """Wait until every fact handed over is on the intake topic (Kafka) or decided
        (embedded); raise KafkaError if Kafka refused any."""
        return self._sink.flush()

    def close(self) -> Delivery:
        try:
            return self.flush()
        finally:
            self._sink.close()

    def __enter__(self) -> LedgerClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> None:
        if exc is None:
            delivery = self.close()
            if delivery.rejected:
                raise FactsRefusedError(delivery)
            return
        try:
            delivery = self.close()
        except LedgerError as error:
            exc.add_note(f"closing the ledger client failed too: {error}")
            return
        if delivery.rejected:
            exc.add_note(str(FactsRefusedError(delivery)))

    def _send(self, event_type: str, given: Mapping[str, Any]) -> str:
        # Copies of the caller's lists and maps: what is checked now is what will be recorded,
        # whatever the caller does with its own objects after this call.
        fact: dict[str, Any] = {
            k: copy.deepcopy(v) if isinstance(v, list | tuple | Mapping) else v
            for k, v in given.items() if k != "self" and v is not None
        }
        if "source" in fact:
            raise LedgerError("source is the client's: give it to LedgerClient, not per fact")
        fact["source"] = self.source
        fact.setdefault("source_event_id", uuid4().hex)
        if isinstance(fact["source_event_id"], str):
            fact["event_id"] = str(event_id_for(self.source, fact["source_event_id"]))
        fact["type"] = event_type
        now = self.clock()
        checked_type, record = to_record(fact, now)
        self.codec.check(checked_type, record)
        check_rules(checked_type, record, now, self.max_future)
        self._sink.put(checked_type, record, self.codec)
        return record["event_id"]


class _Sink:
    def put(self, event_type: str, record: dict[str, Any], codec: Codec) -> None:
        raise NotImplementedError

    def flush(self) -> Delivery:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class _KafkaSink(_Sink):
    """Key customer_id, value the Avro single-object bytes, header the event type."""

    def __init__(self, settings: Settings, producer_options: Mapping[str, Any]):
        self.topic = settings.kafka.intake_topic
        require(settings, self.topic)
        self.producer = producer(settings, **producer_options)
        self._acked = 0
        self._errors: list[BaseException] = []

    def put(self, event_type: str, record: dict[str, Any], codec: Codec) -> None:
        try:
            future = self.producer.send(
                self.topic,
                key=record["customer_id"].encode("utf-8"),
                value=codec.encode(event_type, record, checked=True),
                headers=[(EVENT_TYPE_HEADER, event_type.encode())],
            )
        except ClientError as exc:
            raise KafkaError(f"cannot send to {self.topic!r}: {exc!r}") from exc
        future.add_callback(self._on_ack)
        future.add_errback(self._errors.append)

    def _on_ack(self, _metadata: object) -> None:
        self._acked += 1

    def flush(self) -> Delivery:
        try:
            self.producer.flush()
        except ClientError as exc:
            raise KafkaError(f"sending to {self.topic!r} failed: {exc!r}") from exc
        delivery, self._acked = Delivery(sent=self._acked), 0
        if self._errors:
            errors, self._errors = self._errors, []
            raise KafkaError(
                f"{len(errors)} facts were not accepted by {self.topic!r}: {errors[0]!r}"
            )
        return delivery

    def close(self) -> None:
        self.producer.close()


class _EmbeddedSink(_Sink):
    def __init__(self, ledger: Ledger, batch_size: int):
        self.ledger = ledger
        self.batch_size = batch_size
        self._buffer: list[TypedFact] = []
        self._delivery = Delivery()

    def put(self, event_type: str, record: dict[str, Any], codec: Codec) -> None:
        self._buffer.append((event_type, record))
        if len(self._buffer) >= self.batch_size:
            self._record()

    def _record(self) -> None:
        facts, self._buffer = self._buffer, []
        try:
            outcomes = self.ledger.record_typed(facts)
        except BaseException:
            self._buffer = facts + self._buffer  # kept for the next flush, not dropped
            raise
        for (_, record), outcome in zip(facts, outcomes, strict=True):
            if outcome.status == "recorded":
                self._delivery.recorded += 1
            elif outcome.status == "duplicate":
                self._delivery.duplicates += 1
            elif outcome.status == "waiting":
                self._delivery.waiting.append((record["event_id"], outcome.waits_for or ""))
            else:
                assert outcome.error is not None
                self._delivery.rejected.append((record["event_id"], outcome.error))

    def flush(self) -> Delivery:
        if self._buffer:
            self._record()
        delivery, self._delivery = self._delivery, Delivery()
        return delivery

    def close(self) -> None:
        self._buffer.clear()
