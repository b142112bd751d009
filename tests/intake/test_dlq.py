"""Dead letters on a real broker: listed, shown and re-driven, through the CLI and the library.

The story: an adapter starts sending a schema version the ledger does not know yet; its
records are dead-lettered; the new version is deployed; an operator re-drives them, twice
by mistake; each fact is recorded once.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from ledger.cli.main import app
from ledger.contract.codec import Codec, default_codec, load_schema_version
from ledger.contract.facts import to_record
from ledger.intake import dead_letters as dlq
from ledger.intake.consumer import Intake
from ledger.settings import Settings
from ledger.write.application import Ledger
from tests.support.cli import StrictRunner
from tests.support.facts import NOW, contact, event_id
from tests.support.kafka import avro, dead_letters, produce, recorded

pytestmark = pytest.mark.kafka

runner = StrictRunner()


def cli(settings: Settings, *args: str):
    return runner.invoke(
        app,
        [*args, "--kafka", str(settings.kafka), "--dlq-topic", settings.dlq_topic,
         *(("--store", settings.store_url, "--data-dir", str(settings.data_dir))
           if args[1] in ("show", "redrive") else ())],
        catch_exceptions=False,
    )


def codec_with_contact_v2() -> Codec:
    """The contract plus a newer ContactLogged, which adds an optional `mood`."""
    v1 = default_codec().newest("ContactLogged").schema
    v2 = {**v1, "fields": [*v1["fields"],
                           {"name": "mood", "type": ["null", "string"], "default": None}]}
    return Codec([*default_codec().versions,
                  load_schema_version("contact_logged.v9.avsc", json.dumps(v2))])


def test_dead_letters_are_listed_shown_and_redriven_once_the_schema_is_deployed(store_kafka_settings):
    settings = store_kafka_settings
    v2 = codec_with_contact_v2()
    new_facts = [contact("C7", n, mood="happy") for n in range(3)]
    produce(settings, [(b"C7", v2.encode(*to_record(f, NOW)), [("event-type", b"ContactLogged")])
                       for f in new_facts])
    old_ledger = Ledger(settings, clock=lambda: NOW)
    assert Intake(settings, old_ledger).run_once().dead_letters == 3

    listed = cli(settings, "dlq", "list", "--json")
    assert listed.exit_code == 0, listed.output
    rows = json.loads(listed.stdout)
    assert len(rows) == 3
    assert all("unknown schema fingerprint" in row["reason"] for row in rows)
    assert {row["event_type"] for row in rows} == {"ContactLogged"}
    assert {row["source"].rsplit(":", 2)[0] for row in rows} == {settings.intake_topic}
    table = cli(settings, "dlq", "list")
    assert "unknown schema" in table.stdout and rows[0]["position"] in table.stdout
    assert "3 dead letters" in table.stderr

    position = rows[0]["position"]
    shown_out = cli(settings, "dlq", "show", position, "--json")
    assert shown_out.exit_code == 0, shown_out.output
    shown = json.loads(shown_out.stdout)
    assert shown["position"] == position
    assert shown["value_hex"].startswith("c301")
    assert shown["decoded"] is None and "unknown schema fingerprint" in shown["decode_error"]
    assert shown["headers"] == {"event-type": "ContactLogged"}
    assert "dlq-source-offset" not in shown["headers"]

    # The new version is deployed; re-drive everything, then (by mistake) once more.
    new_ledger = Ledger(settings, clock=lambda: NOW, codec=v2)
    first = cli(settings, "dlq", "redrive", *(row["position"] for row in rows),
                "--intake-topic", settings.intake_topic)
    assert first.exit_code == 0, first.output
    assert "re-drove 3 dead letters" in first.stderr
    assert Intake(settings, new_ledger).run_once().recorded == 3
    again = cli(settings, "dlq", "redrive", "--all", "--intake-topic", settings.intake_topic)
    assert "re-drove 3 dead letters" in again.stderr
    stats = Intake(settings, new_ledger).run_once()

    assert (stats.recorded, stats.duplicates, stats.dead_letters) == (0, 3, 0)
    assert recorded(new_ledger) == {event_id(f): 1 for f in new_facts}
    _, record = v2.decode(new_ledger.notifications(0, 1)[0].state)
    assert record["mood"] == "happy"
    assert len(dead_letters(settings)) == 3  # re-driving succeeded: nothing new refused


def test_redrive_all_can_choose_by_reason_and_records_nothing_twice(store_kafka_settings):
    settings = store_kafka_settings
    early = contact("C1", 1, occurred_at=NOW + timedelta(days=3))  # the adapter's clock ran ahead
    produce(settings, [
        (b"C1", avro(early)),
        (b"C2", avro(contact("C2", 2, duration_s=-1))),
        (b"C3", b"\x00not avro"),
    ])
    assert Intake(settings, Ledger(settings, clock=lambda: NOW)).run_once().dead_letters == 3

    later = Ledger(settings, clock=lambda: NOW + timedelta(days=4))
    for _ in range(2):
        sent = dlq.redrive(settings, reason_contains="IN THE FUTURE")
        assert [letter.key for letter in sent] == [b"C1"]
        assert sent[0].reason.startswith("occurred_at:")
        Intake(settings, later).run_once()

    assert recorded(later) == {event_id(early): 1}
    letters = dead_letters(settings)
    assert sorted(letter.key for letter in letters) == [b"C1", b"C2", b"C3"]


def test_a_dead_letter_written_twice_is_listed_once(store_kafka_settings):
    settings = store_kafka_settings
    produce(settings, [(b"C1", b"junk")])
    Intake(settings, Ledger(settings, clock=lambda: NOW)).run_once()
    (letter,) = dead_letters(settings)
    # What the intake would write again after a crash before it stored that it had.
    ours = [(name, value) for name, value in _raw_headers(settings) if name.startswith("dlq-")]
    headers = [*letter.headers, *ours]
    produce(settings, [(letter.key, letter.value, headers)], topic=settings.dlq_topic)

    assert len(dead_letters(settings)) == 1
    result = cli(settings, "dlq", "list")
    assert "1 dead letters" in result.stderr


def _raw_headers(settings: Settings) -> list[tuple[str, bytes]]:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=str(settings.kafka), enable_auto_commit=False)
    try:
        partitions = [TopicPartition(settings.dlq_topic, p)
                      for p in consumer.partitions_for_topic(settings.dlq_topic)]
        consumer.assign(partitions)
        consumer.seek_to_beginning()
        for _ in range(20):
            for records in consumer.poll(timeout_ms=500).values():
                return list(records[0].headers)
        raise AssertionError("no dead letter")
    finally:
        consumer.close()


def test_list_limit_shows_the_most_recent(kafka_settings):
    settings = kafka_settings
    produce(settings, [(f"C{n}".encode(), b"junk") for n in range(5)])
    Intake(settings, Ledger(settings, clock=lambda: NOW)).run_once()

    rows = json.loads(cli(settings, "dlq", "list", "--json", "--limit", "2").stdout)
    assert len(rows) == 2
    table = cli(settings, "dlq", "list", "--limit", "2")
    assert "showing 2 of 5 dead letters" in table.stderr


def test_dlq_commands_say_what_is_wrong(kafka_settings):
    settings = kafka_settings
    produce(settings, [(b"C1", b"junk")])
    Intake(settings, Ledger(settings, clock=lambda: NOW)).run_once()

    missing = cli(settings, "dlq", "show", "0:999")
    assert missing.exit_code == 1
    assert f"no dead letter at 0:999 on {settings.dlq_topic!r}" in missing.stderr
    assert "not a position" in cli(settings, "dlq", "show", "zero").stderr
    assert "has no partition 9" in cli(settings, "dlq", "show", "9:0").stderr
    neither = cli(settings, "dlq", "redrive")
    assert neither.exit_code == 2
    assert "positions or --all" in neither.output
    no_kafka = runner.invoke(app, ["dlq", "list"])
    assert no_kafka.exit_code == 2
    assert "no Kafka bootstrap servers" in no_kafka.stderr
    assert "Traceback" not in missing.output + no_kafka.output


def test_an_empty_dead_letter_queue_is_listed_as_empty_with_exit_0(kafka_settings):
    settings = kafka_settings  # its DLQ topic exists, and nothing was dead-lettered

    table = cli(settings, "dlq", "list")
    assert table.exit_code == 0, table.output
    assert table.stdout == f"No dead letters on {settings.dlq_topic}.\n"
    scripted = cli(settings, "dlq", "list", "--json")
    assert (scripted.exit_code, json.loads(scripted.stdout)) == (0, [])


def test_a_dead_letter_topic_never_created_is_an_empty_queue_and_the_note_says_so(kafka_settings):
    settings = kafka_settings.with_(dlq_topic=f"{kafka_settings.dlq_topic}-never-created")

    table = cli(settings, "dlq", "list")
    assert table.exit_code == 0, table.output
    assert table.stdout == f"No dead letters on {settings.dlq_topic}.\n"
    assert f"note: no dead-letter topic {settings.dlq_topic!r}" in table.stderr
    scripted = cli(settings, "dlq", "list", "--json", "--limit", "3")
    assert (scripted.exit_code, json.loads(scripted.stdout)) == (0, [])
    shown = cli(settings, "dlq", "show", "0:0")  # a position named is still not there
    assert shown.exit_code == 1 and "no dead-letter topic" in shown.stderr
