"""No event can stop the relay: one Kafka refuses for what it is is parked in the store, listed,
and the events after it reach the topic."""

from __future__ import annotations

import json
from collections.abc import Callable
from uuid import uuid4

import pytest
from eventsourcing.persistence import StoredEvent
from kafka import KafkaConsumer, TopicPartition

from ledger.cli.main import app
from ledger.contract.codec import default_codec
from ledger.kafka.parking import relay_parked
from ledger.kafka.relay import Relay
from ledger.settings import Settings
from ledger.write.application import Ledger
from tests.support.broker import high_watermarks
from tests.support.cli import StrictRunner
from tests.support.facts import FactFactory

pytestmark = pytest.mark.kafka

LIMIT = 2_000
"""The relay's producer refuses records above this many bytes (kafka-python checks it itself,
whatever the broker would accept)."""


def on_topic(bootstrap: str, topic: str) -> list[str]:
    """Every record's event_id on `topic`, partition by partition, in offset order."""
    codec = default_codec()
    ends = high_watermarks(bootstrap, topic)
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    partitions = [TopicPartition(topic, p) for p in sorted(ends)]
    consumer.assign(partitions)
    consumer.seek_to_beginning()
    seen: list[str] = []
    try:
        while any(consumer.position(tp) < ends[tp.partition] for tp in partitions):
            for records in consumer.poll(timeout_ms=500).values():
                seen.extend(str(codec.decode(r.value)[1]["event_id"]) for r in records)
    finally:
        consumer.close()
    return seen


@pytest.fixture
def relay_settings(store_kafka_settings: Settings, topic_factory: Callable[..., str]) -> Settings:
    return store_kafka_settings.with_(ledger_topic=topic_factory(partitions=2))


def record_three(ledger: Ledger, fact: FactFactory) -> tuple[str, str, str]:
    """A normal event, one too large for the relay's producer, another normal one."""
    small, big, after = (
        ledger.record(fact("ContactLogged", "C1")),
        ledger.record(fact("FeedbackGiven", "C2", comment="x" * (3 * LIMIT))),
        ledger.record(fact("ContactLogged", "C3")),
    )
    sizes = [len(n.state) for n in ledger.notifications(0, 10)]
    assert sizes[1] > LIMIT > 2 * max(sizes[0], sizes[2]), sizes
    return small.event_id, big.event_id, after.event_id


def test_an_event_too_large_for_kafka_is_parked_and_the_next_ones_reach_the_topic(
    relay_settings: Settings, ledger: Ledger, fact: FactFactory
) -> None:
    small, big, after = record_three(ledger, fact)

    stats = Relay(relay_settings, ledger, max_request_size=LIMIT).run_once()

    assert sorted(on_topic(str(relay_settings.kafka), relay_settings.kafka.ledger_topic)) == sorted([small, after])
    assert (stats.sent, stats.parked) == (2, 1)
    assert Relay(relay_settings, ledger).position() == ledger.head() == 3
    (parked,) = relay_parked(relay_settings, ledger)
    assert (parked.notification_id, parked.event_id, parked.event_type, parked.customer_id) == (
        2, big, "FeedbackGiven", "C2"
    )
    assert parked.size_bytes > LIMIT
    assert "MessageSizeTooLargeError" in parked.reason and "max_request_size" in parked.reason


def test_parked_events_survive_a_restart_and_are_listed_once_without_a_ledger(
    relay_settings: Settings, ledger: Ledger, fact: FactFactory
) -> None:
    _, big, _ = record_three(ledger, fact)
    Relay(relay_settings, ledger, max_request_size=LIMIT).run_once()
    Relay(relay_settings, ledger, max_request_size=LIMIT).run_once(from_start=True)  # parks it again

    listed = relay_parked(relay_settings)  # a connection of its own, read-only
    assert [p.event_id for p in listed] == [big]
    assert relay_parked(relay_settings.with_(ledger_topic="another.topic")) == []


def test_dlq_relay_parked_lists_them_for_people_and_scripts(
    relay_settings: Settings, ledger: Ledger, fact: FactFactory
) -> None:
    _, big, _ = record_three(ledger, fact)
    Relay(relay_settings, ledger, max_request_size=LIMIT).run_once()
    args = ["dlq", "relay-parked", "--data-dir", str(relay_settings.data_dir)]
    if relay_settings.store:
        args += ["--store", relay_settings.store_url]
    env = {"LEDGER_LEDGER_TOPIC": relay_settings.kafka.ledger_topic}

    as_json = StrictRunner().invoke(app, [*args, "--json"], env=env)
    table = StrictRunner().invoke(app, args, env={**env, "COLUMNS": "300"})

    assert as_json.exit_code == 0, as_json.output
    (row,) = json.loads(as_json.stdout)
    assert (row["notification_id"], row["event_id"], row["event_type"]) == (2, big, "FeedbackGiven")
    assert "MessageSizeTooLargeError" in row["reason"]
    assert table.exit_code == 0, table.output
    assert "FeedbackGiven" in table.stdout and "MessageSizeTooLargeError" in table.stdout
    assert "1 parked events" in table.stderr


def test_a_parked_event_that_kafka_later_accepts_leaves_the_list(
    relay_settings: Settings, ledger: Ledger, fact: FactFactory
) -> None:
    small, big, after = record_three(ledger, fact)
    Relay(relay_settings, ledger, max_request_size=LIMIT).run_once()

    stats = Relay(relay_settings, ledger).run_once(from_start=True)  # the limit raised

    assert stats.parked == 0 and stats.resets == 1
    assert relay_parked(relay_settings, ledger) == []
    assert sorted(set(on_topic(str(relay_settings.kafka), relay_settings.kafka.ledger_topic))) == sorted(
        [small, big, after]
    )


def test_an_event_whose_bytes_give_no_key_is_parked_and_the_next_one_published(
    relay_settings: Settings, ledger: Ledger, fact: FactFactory
) -> None:
    truncated = StoredEvent(uuid4(), 1, "ledger.events.ContactLogged", b"\xc3\x01" + bytes(8) + b"\x48")
    ledger.recorder.insert_events([truncated])
    after = ledger.record(fact("ContactLogged", "C9")).event_id

    stats = Relay(relay_settings, ledger).run_once()

    assert (stats.sent, stats.parked) == (1, 1)
    assert on_topic(str(relay_settings.kafka), relay_settings.kafka.ledger_topic) == [after]
    (parked,) = relay_parked(relay_settings, ledger)
    assert (parked.notification_id, parked.event_type, parked.event_id) == (1, "ContactLogged", None)
    assert parked.size_bytes == 11
    assert "customer_id" in parked.reason and "truncated" in parked.reason


def test_listing_a_store_that_does_not_exist_creates_nothing(tmp_path) -> None:
    settings = Settings(data_dir=tmp_path / "nothing")
    assert relay_parked(settings) == []
    assert not (tmp_path / "nothing").exists()


def test_status_counts_what_the_relay_parked(relay_settings: Settings, ledger: Ledger, fact: FactFactory) -> None:
    from ledger.ops.status import status

    record_three(ledger, fact)
    Relay(relay_settings, ledger, max_request_size=LIMIT).run_once()
    shown = status(relay_settings, ledger)
    assert (shown["relay_parked"], shown["relay_position"], shown["relay_lag"]) == (1, 3, 0)
    assert "MessageSizeTooLargeError" in shown["newest_relay_parked"][0]
