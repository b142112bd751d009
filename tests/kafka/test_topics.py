"""Topics are created by `ledger topics create` (and serve, relay) only: commands that read
create nothing, and whatever needs a missing topic says which one and how to create it."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from kafka import KafkaAdminClient, KafkaConsumer

from ledger.cli.main import app
from ledger.intake.client import LedgerClient
from ledger.kafka.topics import MissingTopicError
from ledger.settings import Settings
from ledger.write.application import Ledger
from tests.support.broker import TansuBroker
from tests.support.cli import StrictRunner

pytestmark = pytest.mark.kafka

runner = StrictRunner()


@pytest.fixture
def names() -> dict[str, str]:
    """Topic names no other test uses, none of them created."""
    suffix = uuid.uuid4().hex[:10]
    return {
        "LEDGER_LEDGER_TOPIC": f"events-{suffix}",
        "LEDGER_INTAKE_TOPIC": f"intake-{suffix}",
        "LEDGER_DLQ_TOPIC": f"dlq-{suffix}",
    }


@pytest.fixture
def admin(kafka_broker: TansuBroker):
    client = KafkaAdminClient(bootstrap_servers=kafka_broker.bootstrap, client_id="test-topics")
    yield client
    client.close()


def ledger(tmp_path: Path, kafka_broker: TansuBroker, names: dict[str, str], *args: str):
    result = runner.invoke(
        app, [*args, "--kafka", kafka_broker.bootstrap], env={**names, "LEDGER_DATA_DIR": str(tmp_path)},
        catch_exceptions=False,
    )
    assert "Traceback" not in result.output
    return result


def partitions(bootstrap: str, topic: str) -> set[int]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, allow_auto_create_topics=False)
    try:
        return consumer.partitions_for_topic(topic)
    finally:
        consumer.close()


def test_status_and_dlq_read_and_create_no_topic(tmp_path, kafka_broker, names, admin) -> None:
    before = set(admin.list_topics())

    status = ledger(tmp_path, kafka_broker, names, "status", "--json")
    listed = ledger(tmp_path, kafka_broker, names, "dlq", "list")
    shown = ledger(tmp_path, kafka_broker, names, "dlq", "show", "0:0")

    assert set(admin.list_topics()) == before
    assert status.exit_code == 0, status.output
    report = json.loads(status.stdout)
    assert report["topics"] == dict.fromkeys(names.values(), "missing")
    assert names["LEDGER_LEDGER_TOPIC"] in report["lag"] and "ledger topics create" in report["lag"]
    for result in (listed, shown):
        assert f"no dead-letter topic {names['LEDGER_DLQ_TOPIC']!r}" in result.stderr
    assert (listed.exit_code, shown.exit_code) == (0, 1)  # nothing to list; nothing at 0:0


def test_topics_create_creates_each_topic_once_and_says_so(tmp_path, kafka_broker, names, admin) -> None:
    first = ledger(tmp_path, kafka_broker, names, "topics", "create", "--partitions", "2", "--json")
    again = ledger(tmp_path, kafka_broker, names, "topics", "create", "--json")

    assert first.exit_code == again.exit_code == 0, first.output + again.output
    assert {r["topic"]: r["state"] for r in json.loads(first.stdout)} == dict.fromkeys(names.values(), "created")
    assert {r["topic"]: r["state"] for r in json.loads(again.stdout)} == dict.fromkeys(names.values(), "exists")
    assert set(names.values()) <= set(admin.list_topics())
    for topic in names.values():
        assert partitions(kafka_broker.bootstrap, topic) == {0, 1}
    status = json.loads(ledger(tmp_path, kafka_broker, names, "status", "--json").stdout)
    assert status["topics"] == dict.fromkeys(names.values(), "present")
    assert status["topic_end_offsets"] == {"0": 0, "1": 0}


def test_the_sdk_refuses_an_intake_topic_that_does_not_exist(tmp_path, kafka_broker, names, admin) -> None:
    settings = Settings(data_dir=tmp_path, kafka=kafka_broker.bootstrap, intake_topic=names["LEDGER_INTAKE_TOPIC"])
    with pytest.raises(MissingTopicError, match="ledger topics create") as raised:
        LedgerClient.kafka(settings, source="shop")
    assert names["LEDGER_INTAKE_TOPIC"] in str(raised.value)
    assert names["LEDGER_INTAKE_TOPIC"] not in admin.list_topics()


def test_reading_a_missing_topic_names_it_and_the_command_that_creates_it(
    tmp_path, kafka_broker, names, admin
) -> None:
    Ledger(Settings(data_dir=tmp_path)).close()
    before = set(admin.list_topics())

    ingest = ledger(tmp_path, kafka_broker, names, "ingest", "--from-kafka")
    project = ledger(tmp_path, kafka_broker, names, "project", "--once")

    assert set(admin.list_topics()) == before
    assert ingest.exit_code == project.exit_code == 1
    assert f"no topic {names['LEDGER_INTAKE_TOPIC']!r}" in ingest.stderr
    assert f"no topic {names['LEDGER_LEDGER_TOPIC']!r}" in project.stderr
    assert "ledger topics create" in ingest.stderr and "ledger topics create" in project.stderr


def test_relay_creates_the_topics_it_needs(tmp_path, kafka_broker, names, admin) -> None:
    relayed = ledger(tmp_path, kafka_broker, names, "relay", "--once")
    assert relayed.exit_code == 0, relayed.output
    assert set(names.values()) <= set(admin.list_topics())
