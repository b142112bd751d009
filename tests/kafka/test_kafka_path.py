"""The production path on a real broker: store -> relay -> Kafka -> projector -> DuckDB.

Read models built from Kafka must equal those built in embedded mode from the same events,
through crashes of the relay and of the projector.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from kafka import KafkaConsumer, TopicPartition

from ledger.cli.main import app
from ledger.kafka.relay import Relay
from ledger.ops.demo import generate
from ledger.ops.projecting import project
from ledger.projection.readmodels import ReadModels
from ledger.settings import Settings
from ledger.write.application import Ledger
from tests.support.broker import TansuBroker, high_watermarks
from tests.support.cli import StrictRunner
from tests.support.crashes import kill_mid_stream, kill_when

pytestmark = pytest.mark.kafka

AS_OF = datetime(2026, 11, 1, tzinfo=UTC)
BOOKKEEPING = {"projector_positions", "projector_state", "readmodel_migrations", "ledger_position"}


def record_history(settings: Settings, customers: int) -> Ledger:
    ledger = Ledger(settings, clock=lambda: AS_OF)
    facts = list(generate(customers=customers, seed=3, end=AS_OF))
    for start in range(0, len(facts), 2000):
        ledger.record_many(facts[start : start + 2000])
    return ledger


def read_models(path: Path) -> dict[str, list[tuple]]:
    """Every read-model table, rows sorted, without the source-specific bookkeeping."""
    with ReadModels(path) as models:
        tables = [
            name for (name,) in models.con.execute(
                "SELECT table_name FROM duckdb_tables() WHERE NOT temporary ORDER BY 1"
            ).fetchall()
            if name not in BOOKKEEPING
        ]
        return {t: models.con.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall() for t in tables}


@pytest.fixture
def topic(topic_factory) -> str:
    return topic_factory()


def test_read_models_from_kafka_equal_the_embedded_ones(tmp_path: Path, kafka_broker: TansuBroker, topic: str) -> None:
    embedded = Settings(data_dir=tmp_path / "a", kafka=kafka_broker.bootstrap, ledger_topic=topic, batch_size=700)
    ledger = record_history(embedded, customers=250)
    project(embedded.with_(kafka=None), AS_OF, ledger=ledger)
    stats = Relay(embedded, ledger).run_once()
    assert stats.sent == ledger.head() > 2000

    from_kafka = Settings(data_dir=tmp_path / "c", kafka=kafka_broker.bootstrap, ledger_topic=topic, batch_size=900,
                          store=embedded.store_url, master_key_file=embedded.master_key_path)
    project(from_kafka, AS_OF)
    expected = read_models(embedded.readmodel_path)
    assert len(expected["events"]) == ledger.head()
    assert read_models(from_kafka.readmodel_path) == expected


def test_the_cli_relays_and_projects_into_another_data_dir(
    tmp_path: Path, kafka_broker: TansuBroker, topic: str
) -> None:
    runner = StrictRunner()
    a, c = str(tmp_path / "a"), str(tmp_path / "c")
    env = {"LEDGER_LEDGER_TOPIC": topic}
    demo = runner.invoke(app, ["demo", "--customers", "80", "--data-dir", a], env=env)
    assert demo.exit_code == 0, demo.output
    relayed = runner.invoke(app, ["relay", "--once", "--kafka", kafka_broker.bootstrap, "--data-dir", a], env=env)
    assert relayed.exit_code == 0, relayed.output
    elsewhere = str(tmp_path / "blind")
    blind = runner.invoke(app, ["project", "--once", "--kafka", kafka_broker.bootstrap, "--data-dir", elsewhere],
                          env=env)
    assert blind.exit_code != 0 and "give this process the ledger's store" in blind.output
    # The projector reads customers' keys from the ledger's store, with its master key.
    keys = {**env, "LEDGER_STORE": f"sqlite:///{a}/store.sqlite", "LEDGER_MASTER_KEY_FILE": f"{a}/master.key"}
    projected = runner.invoke(app, ["project", "--once", "--kafka", kafka_broker.bootstrap, "--data-dir", c], env=keys)
    assert projected.exit_code == 0, projected.output
    for table in ("events", "customer_profile"):
        sql = f"SELECT * EXCLUDE (customer_id), customer_id FROM {table} ORDER BY ALL"
        rows_a = runner.invoke(app, ["query", sql, "--json", "--data-dir", a]).stdout
        rows_c = runner.invoke(app, ["query", sql, "--json", "--data-dir", c]).stdout
        assert json.loads(rows_a) == json.loads(rows_c) != []
    status = runner.invoke(app, ["status", "--json", "--kafka", kafka_broker.bootstrap, "--data-dir", a], env=env)
    report = json.loads(status.stdout)
    assert report["relay_lag"] == 0
    assert report["relay_position"] == report["store_head"]
    assert set(report["topic_end_offsets"]) == set(report["partition_lag"]) == {"0", "1", "2", "3"}
    assert sum(map(len, topic_event_ids(kafka_broker.bootstrap, topic).values())) == report["store_head"]


def topic_event_ids(bootstrap: str, topic: str) -> dict[int, list[str]]:
    """Every record's event_id on the topic, per partition, in offset order."""
    from ledger.contract.codec import default_codec

    codec = default_codec()
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
    consumer.assign(partitions)
    consumer.seek_to_beginning()
    ends = high_watermarks(bootstrap, topic)
    seen: dict[int, list[str]] = {tp.partition: [] for tp in partitions}
    while any(consumer.position(tp) < ends[tp.partition] for tp in partitions):
        for tp, records in consumer.poll(timeout_ms=500, max_records=10_000).items():
            seen[tp.partition].extend(str(codec.decode(r.value)[1]["event_id"]) for r in records)
    consumer.close()
    return seen


def cli(*args: str, env: dict[str, str]) -> list[str]:
    return [sys.executable, "-m", "ledger.cli", *args]


def test_a_relay_killed_mid_stream_resumes_and_never_skips(
    tmp_path: Path, kafka_broker: TansuBroker, topic: str
) -> None:
    settings = Settings(data_dir=tmp_path / "a", kafka=kafka_broker.bootstrap, ledger_topic=topic)
    ledger = record_history(settings, customers=400)
    env = {**os.environ, "LEDGER_DATA_DIR": str(settings.data_dir), "LEDGER_KAFKA": kafka_broker.bootstrap,
           "LEDGER_LEDGER_TOPIC": topic, "LEDGER_BATCH_SIZE": "40"}
    def relayed() -> int:
        return ledger.recorder.max_tracking_id(f"relay:{topic}") or 0

    positions = []
    for _ in range(2):
        before = relayed()
        kill_when(cli("relay", env=env), env, lambda before=before: relayed() > before)
        positions.append(relayed())
    assert any(0 < p < ledger.head() for p in positions), positions
    subprocess.run(cli("relay", "--once", env=env), env=env, check=True, capture_output=True)

    store_order = [str(ledger.codec.decode(n.state)[1]["event_id"]) for n in ledger.notifications(0, 10**6)]
    on_topic = topic_event_ids(kafka_broker.bootstrap, topic)
    everything = [e for ids in on_topic.values() for e in ids]
    assert set(everything) == set(store_order)
    rank = {event_id: i for i, event_id in enumerate(store_order)}
    for ids in on_topic.values():
        first_seen = list(dict.fromkeys(ids))
        assert first_seen == sorted(first_seen, key=rank.__getitem__)  # store order per partition
    # A crash can only re-send the batch it had not yet recorded as sent: at most one per kill.
    assert len(everything) - len(store_order) <= 2 * 40


def test_a_kafka_projector_killed_mid_batch_ends_equal_to_a_clean_replay(
    tmp_path: Path, kafka_broker: TansuBroker, topic: str
) -> None:
    source = Settings(data_dir=tmp_path / "a", kafka=kafka_broker.bootstrap, ledger_topic=topic)
    ledger = record_history(source, customers=500)
    Relay(source, ledger).run_once()
    target = tmp_path / "c"
    env = {**os.environ, "LEDGER_DATA_DIR": str(target), "LEDGER_KAFKA": kafka_broker.bootstrap,
           "LEDGER_LEDGER_TOPIC": topic, "LEDGER_BATCH_SIZE": "150",
           "LEDGER_STORE": source.store_url, "LEDGER_MASTER_KEY_FILE": str(source.master_key_path)}
    command = cli("project", "--once", "--as-of", AS_OF.isoformat(), env=env)

    def position() -> int:
        if not (target / "readmodels.duckdb").exists():
            return 0
        with ReadModels(target / "readmodels.duckdb") as models:
            return sum(models.positions(f"kafka:{topic}").values())

    killed_at = kill_mid_stream(command, env, position, ledger.head(), wal=target / "readmodels.duckdb.wal")
    assert any(0 < p < ledger.head() for p in killed_at), killed_at
    subprocess.run(command, env=env, check=True, capture_output=True)

    clean = source.with_(data_dir=tmp_path / "clean", batch_size=100_000, store=source.store_url,
                         master_key_file=source.master_key_path)
    project(clean, AS_OF)
    assert read_models(target / "readmodels.duckdb") == read_models(clean.readmodel_path)


def test_amendments_on_kafka_give_the_embedded_read_models(
    tmp_path: Path, kafka_broker: TansuBroker, topic: str
) -> None:
    """Corrections, retractions, a merge and a split travel on the ledger topic like any fact,
    and the projector reading them from Kafka builds what the embedded one builds."""
    embedded = Settings(data_dir=tmp_path / "a", kafka=kafka_broker.bootstrap, ledger_topic=topic, batch_size=300)
    ledger = record_history(embedded, customers=60)
    local = embedded.with_(kafka=None)
    project(local, AS_OF, ledger=ledger)
    with ReadModels(embedded.readmodel_path) as models:
        feedback, contact = (models.con.execute(
            f"SELECT event_id FROM events WHERE event_type = '{kind}' ORDER BY event_id LIMIT 1").fetchone()[0]
            for kind in ("FeedbackGiven", "ContactLogged"))
        a, b, c = (row[0] for row in models.con.execute(
            "SELECT customer_id FROM customer_profile WHERE NOT erased ORDER BY customer_id LIMIT 3").fetchall())
    ledger.correct(feedback, {"score": 1}, "wrong button")
    ledger.retract(contact, "logged twice")
    ledger.merge(a, b, "same person")
    ledger.merge(a, c, "same person")
    ledger.split(c, "not the same")
    project(local, AS_OF, ledger=ledger)
    assert Relay(embedded, ledger).run_once().sent == ledger.head()

    from_kafka = Settings(data_dir=tmp_path / "c", kafka=kafka_broker.bootstrap, ledger_topic=topic, batch_size=250,
                          store=embedded.store_url, master_key_file=embedded.master_key_path)
    project(from_kafka, AS_OF)
    expected = read_models(embedded.readmodel_path)
    assert [row[:3] for row in expected["customer_merges"]] == [(b, a, a)]
    assert read_models(from_kafka.readmodel_path) == expected
