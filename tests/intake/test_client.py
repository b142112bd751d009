"""The adapters' SDK, embedded and against the real broker: one method per event type, checked
before anything is sent, batched, with the ledger's idempotency keys."""

from __future__ import annotations

import inspect
from datetime import timedelta

import pytest
from kafka import KafkaConsumer, TopicPartition

from ledger.contract.codec import default_codec
from ledger.contract.facts import event_id_for
from ledger.errors import SchemaError, ValidationError
from ledger.intake.client import LedgerClient
from ledger.intake.consumer import Intake
from ledger.write.application import Ledger
from tests.support.facts import NOW
from tests.support.kafka import recorded

WHEN = "2026-05-01T09:30:00Z"
SET_BY_CLIENT_OR_LEDGER = {"event_id", "recorded_at", "source", "sealed"}


def one_of_each(client: LedgerClient) -> list[str]:
    return [
        client.customer_registered(customer_id="C1", occurred_at=WHEN, name="Ada", country="GB",
                                   birth_date="1990-12-10", attributes={"tier": "gold"},
                                   source_event_id="r1"),
        client.profile_updated(customer_id="C1", occurred_at=WHEN, city="London",
                               source_event_id="p1"),
        client.consent_changed(customer_id="C1", occurred_at=WHEN, purpose="marketing_email",
                               granted=True, source_event_id="g1"),
        client.contact_logged(customer_id="C1", occurred_at=WHEN, contact_id="K1",
                              channel="phone", direction="inbound", is_complaint=True,
                              duration_s=120, source_event_id="k1"),
        client.purchase_made(customer_id="C1", occurred_at=WHEN, order_id="O1", channel="web",
                             currency="EUR", total_minor=2000,
                             lines=[{"sku": "A", "quantity": 2, "unit_price_minor": 1000}],
                             source_event_id="o1"),
        client.purchase_refunded(customer_id="C1", occurred_at=WHEN, order_id="O1",
                                 currency="EUR", amount_minor=1000, source_event_id="o1-r"),
        client.feedback_given(customer_id="C1", occurred_at=WHEN, kind="nps", score=9,
                              channel="email", about_contact_id="K1", source_event_id="f1"),
        client.customer_erased(customer_id="C2", occurred_at=WHEN, source_event_id="x1"),
    ]


def test_there_is_a_method_per_event_type_taking_the_schema_fields() -> None:
    codec = default_codec()
    methods = {}
    for event_type in codec.event_types:
        name = "".join(f"_{c.lower()}" if c.isupper() else c for c in event_type).lstrip("_")
        methods[event_type] = getattr(LedgerClient, name)
    for event_type, method in methods.items():
        parameters = set(inspect.signature(method).parameters) - {"self"}
        fields = codec.newest(event_type).field_names - SET_BY_CLIENT_OR_LEDGER
        assert parameters == fields, event_type


def test_embedded_client_records_every_type_with_the_ledgers_event_ids(ledger: Ledger) -> None:
    with LedgerClient.embedded(ledger, source="crm") as client:
        ids = one_of_each(client)
        assert ledger.head() == 0  # buffered until flushed
        delivery = client.flush()

    assert (delivery.recorded, delivery.duplicates, delivery.rejected) == (8, 0, [])
    assert ids[0] == str(event_id_for("crm", "r1"))
    assert recorded(ledger) == dict.fromkeys(ids, 1)


def test_embedded_client_records_a_full_batch_without_waiting_for_flush(ledger: Ledger) -> None:
    client = LedgerClient.embedded(ledger, source="shop", batch_size=3)
    for n in range(7):
        client.contact_logged(customer_id="C1", occurred_at=WHEN, contact_id=f"K{n}",
                              channel="chat", direction="inbound", source_event_id=f"k{n}")
    assert ledger.head() == 6
    assert client.close().recorded == 7


def test_sending_the_same_adapter_id_twice_records_once(ledger: Ledger) -> None:
    client = LedgerClient.embedded(ledger, source="shop")
    first = client.contact_logged(customer_id="C1", occurred_at=WHEN, contact_id="K1",
                                  channel="chat", direction="inbound", source_event_id="same")
    second = client.contact_logged(customer_id="C1", occurred_at=WHEN, contact_id="K1",
                                   channel="chat", direction="inbound", source_event_id="same")
    delivery = client.close()
    assert first == second
    assert (delivery.recorded, delivery.duplicates) == (1, 1)


@pytest.mark.parametrize(
    ("call", "error", "reason"),
    [
        (lambda c: c.feedback_given(customer_id="C1", occurred_at=WHEN, kind="nps", score=11,
                                    channel="email"),
         ValidationError, "score: nps score must be 0 to 10, got 11"),
        (lambda c: c.purchase_made(customer_id="C1", occurred_at=WHEN, order_id="O1",
                                   channel="web", currency="eur", total_minor=5),
         ValidationError, "currency: 'eur' is not an ISO 4217 code (codes are upper case)"),
        (lambda c: c.contact_logged(customer_id="", occurred_at=WHEN, contact_id="K1",
                                    channel="phone", direction="inbound"),
         ValidationError, "customer_id: must not be empty"),
        (lambda c: c.contact_logged(customer_id="C1", occurred_at=NOW + timedelta(days=2),
                                    contact_id="K1", channel="phone", direction="inbound"),
         ValidationError, "occurred_at:"),
        (lambda c: c.contact_logged(customer_id="C1", occurred_at=WHEN, contact_id="K1",
                                    channel="pigeon", direction="inbound"),
         SchemaError, "channel: str 'pigeon' does not fit one of phone"),
        (lambda c: c.send("ContactLogged", customer_id="C1", occurred_at=WHEN, contact_id="K1",
                          channel="phone"),
         SchemaError, "direction: required field missing"),
        (lambda c: c.send("ContactLogged", customer_id="C1", occurred_at=WHEN, contact_id="K1",
                          channel="phone", direction="inbound", chanel="x"),
         SchemaError, "ContactLogged has no field 'chanel'"),
        (lambda c: c.send("Contact", customer_id="C1", occurred_at=WHEN),
         SchemaError, "unknown event type 'Contact'"),
        (lambda c: c.purchase_made(customer_id="C1", occurred_at="last week", order_id="O1",
                                   channel="web", currency="EUR", total_minor=5),
         SchemaError, "occurred_at: 'last week' is not an ISO-8601 timestamp"),
    ],
)
def test_a_bad_fact_raises_its_typed_error_before_anything_is_sent(ledger, call, error, reason):
    client = LedgerClient.embedded(ledger, source="shop")
    with pytest.raises(error) as raised:
        call(client)
    assert reason in str(raised.value)
    assert client.close().recorded == 0
    assert ledger.head() == 0


def test_what_only_the_ledger_knows_is_reported_at_flush(ledger: Ledger) -> None:
    client = LedgerClient.embedded(ledger, source="crm")
    client.customer_erased(customer_id="C9", occurred_at=WHEN)
    late = client.contact_logged(customer_id="C9", occurred_at=WHEN, contact_id="K1",
                                 channel="phone", direction="inbound")
    delivery = client.close()
    assert delivery.recorded == 1
    ((event_id, problem),) = delivery.rejected
    assert event_id == late and "customer 'C9' was erased" in str(problem)


@pytest.mark.kafka
def test_kafka_client_publishes_keyed_avro_that_the_intake_records_once(kafka_settings) -> None:
    settings = kafka_settings
    with LedgerClient.kafka(settings, source="crm", clock=lambda: NOW) as client:
        ids = one_of_each(client)
        with pytest.raises(ValidationError):
            client.feedback_given(customer_id="C1", occurred_at=WHEN, kind="csat", score=0,
                                  channel="email")
        assert client.flush().sent == 8
        ids.append(client.contact_logged(customer_id="C1", occurred_at=WHEN, contact_id="K1",
                                         channel="phone", direction="inbound", is_complaint=True,
                                         duration_s=120, source_event_id="k1"))  # a resend
    assert ids[-1] == ids[3]

    consumer = KafkaConsumer(bootstrap_servers=str(settings.kafka), enable_auto_commit=False)
    try:
        partitions = [TopicPartition(settings.intake_topic, p) for p in range(4)]
        consumer.assign(partitions)
        consumer.seek_to_beginning()
        records = []
        for _ in range(20):
            for batch in consumer.poll(timeout_ms=300).values():
                records += batch
            if len(records) >= 9:
                break
    finally:
        consumer.close()
    assert len(records) == 9  # the invalid one never left the client
    for record in records:
        event_type, body = default_codec().decode(record.value)
        assert record.key == body["customer_id"].encode()
        assert dict(record.headers) == {"event-type": event_type.encode()}

    ledger = Ledger(settings, clock=lambda: NOW)
    stats = Intake(settings, ledger).run_once()
    assert (stats.recorded, stats.duplicates, stats.dead_letters) == (8, 1, 0)
    assert recorded(ledger) == dict.fromkeys(ids, 1)
