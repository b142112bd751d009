"""ContactLogged v3 on the Kafka path: contacts the ledger wrote with v1, v2 and v3 relayed to
a real broker and projected from it read back like the embedded ones; an adapter still on v1,
encoding with plain fastavro, is taken in from the intake topic."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from ledger.intake.consumer import Intake
from ledger.kafka.relay import Relay
from ledger.ops.projecting import project
from ledger.projection.readmodels import ReadModels
from ledger.settings import Settings
from ledger.write.application import Ledger
from tests.support.broker import TansuBroker
from tests.support.facts import CLOCK, NOW
from tests.support.kafka import produce
from tests.support.versions import adapter_bytes, record_with_every_version

pytestmark = pytest.mark.kafka

CONTACTS = "SELECT customer_id, language, sentiment FROM events WHERE event_type = 'ContactLogged' ORDER BY 1"


def contacts(settings: Settings) -> list[tuple]:
    with ReadModels(settings.readmodel_path, settings=settings) as models:
        return models.con.execute(CONTACTS).fetchall()


def test_contacts_of_every_version_relayed_and_projected_from_kafka_read_back_as_embedded(
    tmp_path: Path, kafka_broker: TansuBroker, topic_factory
) -> None:
    embedded = Settings(data_dir=tmp_path / "a", kafka=kafka_broker.bootstrap, ledger_topic=topic_factory())
    record_with_every_version(embedded)
    ledger = Ledger(embedded, clock=lambda: CLOCK)
    try:
        project(embedded.with_(kafka=None), CLOCK, ledger=ledger)
        assert Relay(embedded, ledger).run_once().sent == ledger.head() == 3
    finally:
        ledger.close()

    from_kafka = Settings(data_dir=tmp_path / "b", kafka=kafka_broker.bootstrap, ledger_topic=embedded.ledger_topic,
                          store=embedded.store_url, master_key_file=embedded.master_key_path)
    project(from_kafka, CLOCK)

    expected = [("NEW3", "pt-BR", -0.6), ("OLD1", None, None), ("OLD2", None, None)]
    assert contacts(embedded) == expected
    assert contacts(from_kafka) == expected


def test_an_adapter_still_on_v1_is_taken_in_and_its_contact_reads_without_the_new_fields(kafka_settings) -> None:
    at = int(datetime(2026, 5, 1, tzinfo=UTC).timestamp() * 1_000_000)
    v1 = {"event_id": "6f1c1a52-4d1e-4a8e-9d55-000000000001", "customer_id": "V1", "occurred_at": at,
          "recorded_at": at, "source": "old-desk", "source_event_id": "d-1", "contact_id": "d-1", "channel": "phone",
          "direction": "outbound", "outcome": "resolved", "duration_s": 90}
    v3 = {**v1, "event_id": "6f1c1a52-4d1e-4a8e-9d55-000000000003", "customer_id": "V3", "source_event_id": "d-3",
          "language": "de", "sentiment": 0.5}
    produce(kafka_settings, [(b"V1", adapter_bytes("contact_logged.v1.avsc", v1)),
                             (b"V3", adapter_bytes("contact_logged.v3.avsc", v3))])
    ledger = Ledger(kafka_settings, clock=lambda: NOW)
    try:
        stats = Intake(kafka_settings, ledger).run_once()
        assert (stats.recorded, stats.dead_letters) == (2, 0)
        project(kafka_settings.with_(kafka=None), NOW, ledger=ledger)
    finally:
        ledger.close()
    with ReadModels(kafka_settings.readmodel_path, settings=kafka_settings) as models:
        rows = models.con.execute(
            "SELECT customer_id, source, outcome, duration_s, language, sentiment FROM events ORDER BY 1").fetchall()
    assert rows == [("V1", "old-desk", "resolved", 90, None, None), ("V3", "old-desk", "resolved", 90, "de", 0.5)]
