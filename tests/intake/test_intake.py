"""The Kafka intake on a real broker: valid facts recorded once, the rest dead-lettered with
their bytes untouched, through restarts, crashes and SIGKILL."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import datetime

import pytest
from kafka import KafkaConsumer, TopicPartition

from ledger.intake.consumer import Intake
from ledger.intake.dead_letters import DeadLetter, readable
from ledger.settings import Settings
from ledger.write.application import Ledger
from tests.support.broker import TEST_CONSUMER_TIMINGS
from tests.support.crashes import kill_when
from tests.support.facts import NOW, contact, event_id
from tests.support.kafka import avro, dead_letters, expected_values, kept_values, produce, recorded

pytestmark = pytest.mark.kafka

HEADER = [("event-type", b"ContactLogged")]


def erased_customer(ledger: Ledger, customer_id: str = "GONE") -> str:
    return ledger.record({"type": "CustomerErased", "customer_id": customer_id, "source": "crm",
                          "source_event_id": f"erase-{customer_id}",
                          "occurred_at": "2026-04-01T00:00:00Z"}).event_id  # type: ignore[return-value]


def mixed(valid_count: int, every: int = 10) -> tuple[list[dict], list[tuple[bytes, bytes]], list]:
    """Valid ContactLogged facts with a bad record after every `every`th one."""
    bad_values = [
        (b"C1", b"\xc3\x01" + bytes(8) + b"\x02"),  # unknown fingerprint
        (b"C2", random.Random(5).randbytes(40)),  # noise
        (b"C3", avro(contact("C3", 10_001, duration_s=-5))),  # negative duration
        (b"GONE", avro(contact("GONE", 10_002))),  # erased customer
        (b"C4", avro({"type": "FeedbackGiven", "customer_id": "C4", "source": "survey",
                      "source_event_id": "f1", "kind": "nps", "score": 11, "channel": "email",
                      "occurred_at": "2026-05-01T09:30:00Z"})),
        (b"C5", b'{"type": "ContactLogged"}'),  # JSON, not Avro
    ]
    valid, invalid, records = [], [], []
    for i in range(valid_count):
        fact = contact(f"C{i % 13}", i)
        valid.append(fact)
        records.append((fact["customer_id"].encode(), avro(fact), HEADER))
        if i % every == every - 1:
            bad = bad_values[len(invalid) % len(bad_values)]
            invalid.append(bad)
            records.append((bad[0], bad[1], HEADER))
    return valid, invalid, records


def intake_record(settings: Settings, letter: DeadLetter) -> tuple[bytes | None, bytes | None]:
    """The intake record a dead letter says it came from."""
    consumer = KafkaConsumer(bootstrap_servers=str(settings.kafka), enable_auto_commit=False)
    try:
        tp = TopicPartition(letter.source_topic, letter.source_partition)
        consumer.assign([tp])
        consumer.seek(tp, letter.source_offset)
        for _ in range(20):
            records = consumer.poll(timeout_ms=500).get(tp)
            if records:
                return records[0].key, records[0].value
        raise AssertionError(f"nothing at {letter.source}")
    finally:
        consumer.close()


def test_mixed_intake_records_exactly_the_valid_events_and_dead_letters_the_rest(
    store_kafka_settings,
):
    kafka_settings = store_kafka_settings
    ledger = Ledger(kafka_settings, clock=lambda: NOW)
    erasure = erased_customer(ledger)
    valid, invalid, records = mixed(120)
    produce(kafka_settings, records)

    stats = Intake(kafka_settings, ledger).run_once()

    assert recorded(ledger) == Counter([erasure, *(event_id(f) for f in valid)])
    assert (stats.recorded, stats.dead_letters, stats.read) == (120, 12, 132)
    letters = dead_letters(kafka_settings)
    assert kept_values(kafka_settings, letters) == expected_values(invalid)
    for letter in letters:
        assert letter.source_topic == kafka_settings.intake_topic
        kept = None if letter.shredded else readable(kafka_settings, letter).value
        key, value = intake_record(kafka_settings, letter)
        assert key == letter.key and kept in (value, None)
        assert letter.headers == tuple(HEADER)  # the adapter's headers, carried over
        assert letter.error_class in {"SchemaError", "ValidationError", "CustomerErasedError"}
        assert datetime.fromisoformat(letter.failed_at).tzinfo is not None
    reasons = {letter.key: letter.reason for letter in letters}
    assert "unknown schema fingerprint" in reasons[b"C1"]
    assert reasons[b"C3"] == "duration_s: must not be negative, got -5"
    assert reasons[b"GONE"] == "customer_id: customer 'GONE' was erased"
    assert reasons[b"C4"] == "score: nps score must be 0 to 10, got 11"
    assert "looks like JSON" in reasons[b"C5"]
    assert {letter.field for letter in letters if letter.key == b"C3"} == {"duration_s"}


def test_a_restarted_intake_continues_from_the_stored_position(store_kafka_settings):
    kafka_settings = store_kafka_settings
    ledger = Ledger(kafka_settings, clock=lambda: NOW)
    first = [contact("C1", i) for i in range(30)]
    produce(kafka_settings, [(b"C1", avro(f)) for f in first])
    assert Intake(kafka_settings, ledger).run_once().recorded == 30

    again = Intake(kafka_settings, ledger).run_once()
    assert (again.read, again.recorded, again.duplicates) == (0, 0, 0)

    second = [contact("C2", i) for i in range(100, 110)]
    produce(kafka_settings, [(b"C2", avro(f)) for f in [*second, first[0]]])
    stats = Intake(kafka_settings, ledger).run_once()
    assert (stats.read, stats.recorded, stats.duplicates) == (11, 10, 1)
    assert recorded(ledger) == Counter(event_id(f) for f in first + second)


class Crash(Exception):
    pass


class CrashBeforeDeadLetters(Intake):
    """Dies after the facts and position are committed, before any dead letter is sent."""

    def _send_dead_letters(self, dead):
        raise Crash


class CrashBeforeConfirming(Intake):
    """Dies after the dead letters are on the DLQ, before that is stored."""

    def _send_dead_letters(self, dead):
        super()._send_dead_letters(dead)
        raise Crash


@pytest.mark.parametrize("crashing", [CrashBeforeDeadLetters, CrashBeforeConfirming])
def test_no_dead_letter_is_lost_and_no_fact_recorded_twice_across_a_crash(
    store_kafka_settings, topic_factory, crashing
):
    settings = store_kafka_settings.with_(intake_topic=topic_factory(partitions=1))
    ledger = Ledger(settings, clock=lambda: NOW)
    erased_customer(ledger)
    valid, invalid, records = mixed(40, every=8)
    produce(settings, records)

    with pytest.raises(Crash):
        crashing(settings, ledger).run_once()
    intake = Intake(settings, Ledger(settings, clock=lambda: NOW))
    decided, confirmed = intake.positions(0)
    assert confirmed < decided  # the facts were committed, the dead letters not confirmed

    stats = intake.run_once()

    assert stats.rechecked > 0 and stats.recorded == 0
    assert intake.positions(0) == (len(records), len(records))
    assert sum(recorded(ledger).values()) == len(valid) + 1
    assert max(recorded(ledger).values()) == 1
    letters = dead_letters(settings)
    assert kept_values(settings, letters) == expected_values(invalid)


def test_an_intake_killed_mid_batch_and_restarted_records_each_event_once(store_kafka_settings):
    settings = store_kafka_settings.with_(batch_size=200)
    setup = Ledger(settings)
    erasure = erased_customer(setup)
    setup.close()
    valid, invalid, records = mixed(5000, every=50)
    landed = produce(settings, records)
    invalid_at = [where for where, record in zip(landed, records, strict=True)
                  if (record[0], record[1]) in invalid]
    env = {
        **os.environ,
        "LEDGER_INTAKE_TOPIC": settings.intake_topic,
        "LEDGER_DLQ_TOPIC": settings.dlq_topic,
        "LEDGER_BATCH_SIZE": "200",
    }
    command = [sys.executable, "-m", "ledger.cli", "ingest", "--from-kafka",
               "--kafka", str(settings.kafka), "--data-dir", str(settings.data_dir),
               "--store", settings.store_url]
    reader = Ledger(settings)
    end = len(valid) + 1
    killed_at: list[int] = []
    for _ in range(3):
        before = reader.head()
        # Killed as soon as it has committed a batch beyond where it started: mid-stream,
        # wherever that falls in this run's batches, however fast the machine is.
        kill_when(command, env, lambda before=before: reader.head() > before)
        killed_at.append(reader.head())
    assert any(0 < at < end for at in killed_at), killed_at

    # The restart must dead-letter exactly the invalid records whose dead letters no run
    # confirmed; the exit code says whether it dead-lettered any (3) or not (0).
    intake = Intake(settings, reader)
    confirmed = {p: intake.positions(p)[1] for p in {p for p, _ in landed}}
    unconfirmed = [at for at in invalid_at if at[1] >= confirmed[at[0]]]
    finished = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)

    assert finished.returncode == (3 if unconfirmed else 0), finished.stderr
    assert recorded(Ledger(settings)) == Counter([erasure, *(event_id(f) for f in valid)])
    assert kept_values(settings, dead_letters(settings)) == expected_values(invalid)


def test_a_following_intake_records_what_arrives_and_stops_promptly(kafka_settings):
    settings = kafka_settings
    stop = threading.Event()
    intake = Intake(settings, Ledger(settings, clock=lambda: NOW), poll_ms=100)
    thread = threading.Thread(target=intake.run, args=(stop,))
    thread.start()
    reader = Ledger(settings)
    try:
        for round_ in range(2):
            facts = [contact(f"C{i % 3}", 100 * round_ + i) for i in range(20)]
            produce(settings, [(f["customer_id"].encode(), avro(f)) for f in facts])
            deadline = time.monotonic() + 20
            while reader.head() < 20 * (round_ + 1) and time.monotonic() < deadline:
                time.sleep(0.05)
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not thread.is_alive(), "the intake did not stop when asked"
    assert intake.stats.recorded == 40
    assert sum(recorded(reader).values()) == 40


def test_members_of_the_intake_group_share_partitions_and_record_each_event_once(
    kafka_settings, unique_group
):
    settings = kafka_settings.with_(intake_group=unique_group)
    facts = [contact(f"C{i % 31}", i) for i in range(1500)]
    produce(settings, [(f["customer_id"].encode(), avro(f)) for f in facts])
    stop = threading.Event()
    intakes = [
        Intake(settings, Ledger(settings, clock=lambda: NOW), poll_ms=200, **TEST_CONSUMER_TIMINGS)
        for _ in range(2)
    ]
    threads = [threading.Thread(target=intake.run, args=(stop,)) for intake in intakes]
    for thread in threads:
        thread.start()
    reader = Ledger(settings)
    deadline = time.monotonic() + 60
    try:
        while sum(recorded(reader).values()) < len(facts) and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    assert recorded(reader) == Counter(event_id(f) for f in facts)
    assert sum(intake.stats.recorded for intake in intakes) == len(facts)
