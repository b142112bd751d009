"""A running `ledger serve` counts what it does on /metrics, says on /healthz and /readyz how
its parts are, logs JSON lines when asked, and closes its port when it stops."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import uuid

import pytest

from ledger.projection.query import query
from ledger.settings import Settings
from ledger.write.application import Ledger
from tests.support.broker import TansuBroker
from tests.support.facts import NOW
from tests.support.kafka import avro, produce
from tests.support.serving import Served, get, metric, port_is_closed, serve_environment, wait_for


def published_events(settings: Settings) -> int:
    if not settings.published_path.exists():
        return 0
    return query(settings.published_path, "SELECT count(*) FROM events")[1][0][0]


def scraped(port: int, name: str, **labels: str) -> float | None:
    status, body = get(port, "/metrics")
    assert status == 200
    return metric(body, name, **labels)


def test_serve_counts_the_events_it_projects_and_reports_health_and_readiness(settings: Settings, fact) -> None:
    ledger = Ledger(settings, clock=lambda: NOW)
    ledger.record_many([fact("ContactLogged", customer_id=f"C{i}") for i in range(40)])
    served = Served(["--metrics-port", "0", "--log-format", "json"], serve_environment(settings))
    try:
        port = served.port()
        wait_for(lambda: get(port, "/readyz")[0] == 200, what="/readyz to answer 200")
        assert scraped(port, "ledger_projector_events_total") == 40 == published_events(settings)
        assert scraped(port, "ledger_lag_events", part="projector", partition="log") == 0
        assert scraped(port, "ledger_info", version="0.1.0") == 1
        assert scraped(port, "ledger_part_up", part="projector") == 1
        assert scraped(port, "ledger_events_parked_total", part="projector") == 0
        assert scraped(port, "ledger_batch_duration_seconds_count", part="projector") >= 1

        ledger.record_many([fact("PurchaseMade", customer_id=f"C{i}", order_id=f"O{i}") for i in range(10)])
        wait_for(lambda: scraped(port, "ledger_projector_events_total") == 50, what="50 events projected")
        wait_for(lambda: published_events(settings) == 50, what="50 events published")

        status, body = get(port, "/healthz")
        assert (status, json.loads(body)) == (200, {"status": "ok", "parts": {
            "projector": {"state": "running", "published": True}}})
        status, body = get(port, "/readyz")
        assert (status, json.loads(body)["status"]) == (200, "ready")
        assert get(port, "/nothing")[0] == 404
    finally:
        code = served.stop()
    assert code == 0, "\n".join(served.lines)
    assert port_is_closed(port)
    records = served.records  # every line of stderr is one JSON object
    assert all({"time", "level", "logger", "message"} <= set(r) for r in records)
    assert all(r["time"].endswith("+00:00") for r in records)
    messages = [r["message"] for r in records]
    assert "projector started" in messages and "projector stopped" in messages and messages[-1] == "stopped"
    rounds = [r for r in records if r.get("part") == "projector" and "events" in r and "batches" in r]
    assert sum(r["new"] for r in rounds) == 50  # one line per round, never one per event
    assert len(rounds) <= 50


def test_serve_logs_text_at_the_chosen_level_and_its_endpoint_can_be_switched_off(tmp_path, fact) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    Ledger(settings, clock=lambda: NOW).record_many([fact("ContactLogged", customer_id=f"C{i}") for i in range(3)])
    env = serve_environment(settings, LEDGER_LOG_LEVEL="warning", LEDGER_METRICS_PORT="off")
    quiet = Served([], env)
    wait_for(lambda: published_events(settings) == 3, what="3 events published")
    assert quiet.stop() == 0
    assert quiet.lines == []  # nothing at warning when all is well

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:  # would stop a serve that listened
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = serve_environment(settings, LEDGER_METRICS_PORT=str(port))
        loud = Served(["--log-level", "debug", "--metrics-port", "off"], env)
        wait_for(lambda: any("projector started" in line for line in loud.lines), what="the projector started")
    wait_for(lambda: any("refreshed and published the read models" in line for line in loud.lines),
             what="a publish logged")
    assert loud.stop() == 0
    assert any(" info ledger.ops.serve: projector started" in line for line in loud.lines)
    assert not any(line.startswith("{") for line in loud.lines)
    assert not any("metrics and health on" in line for line in loud.lines)  # --metrics-port off won


def test_a_metrics_port_already_taken_stops_serve_at_once_with_exit_2(tmp_path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run([sys.executable, "-m", "ledger.cli", "serve", "--metrics-port", str(port)],
                                env=serve_environment(settings), capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert f"cannot serve metrics on 127.0.0.1:{port}" in result.stderr
    assert "--metrics-port" in result.stderr
    assert "Traceback" not in result.stderr
    assert not settings.readmodel_path.exists()  # no part started


def test_a_metrics_port_that_is_no_port_is_a_usage_error(tmp_path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    result = subprocess.run([sys.executable, "-m", "ledger.cli", "serve", "--metrics-port", "soon"],
                            env=serve_environment(settings), capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert "--metrics-port must be a port number" in result.stderr


@pytest.mark.kafka
def test_serve_with_kafka_counts_relayed_and_projected_events_and_the_lag_per_partition(
    settings: Settings, kafka_broker: TansuBroker, fact
) -> None:
    topic = f"metrics-{uuid.uuid4().hex[:8]}"
    settings = settings.with_(kafka=kafka_broker.bootstrap, ledger_topic=topic,
                              intake_topic=f"{topic}-in", dlq_topic=f"{topic}-dlq")
    ledger = Ledger(settings, clock=lambda: NOW)
    ledger.record_many([fact("ContactLogged", customer_id=f"C{i}") for i in range(30)])
    env = serve_environment(settings, LEDGER_KAFKA=kafka_broker.bootstrap, LEDGER_LEDGER_TOPIC=topic,
                            LEDGER_INTAKE_TOPIC=f"{topic}-in", LEDGER_DLQ_TOPIC=f"{topic}-dlq")
    served = Served(["--metrics-port", "0", "--log-format", "json"], env)
    try:
        port = served.port()
        wait_for(lambda: get(port, "/readyz")[0] == 200, what="/readyz to answer 200")
        wait_for(lambda: scraped(port, "ledger_projector_events_total") == 30, what="30 events projected")
        assert scraped(port, "ledger_relay_events_total") == 30
        ledger.record_many([fact("PurchaseMade", customer_id=f"C{i}", order_id=f"O{i}") for i in range(20)])
        wait_for(lambda: scraped(port, "ledger_projector_events_total") == 50, what="50 events projected")
        assert scraped(port, "ledger_relay_events_total") == 50
        wait_for(lambda: all(scraped(port, "ledger_lag_events", part="projector", partition=str(p)) == 0
                             for p in range(4)), what="no lag on any of the 4 partitions")
        assert scraped(port, "ledger_intake_events_recorded_total") == 0
        # Through the intake topic: 5 facts and 2 records no schema reads, after the topics exist.
        produce(settings, [(f"K{i}".encode(), avro(fact("ContactLogged", customer_id=f"K{i}"))) for i in range(5)]
                + [(b"bad", b"not avro"), (b"bad", b"\xc3\x01 nope")])
        wait_for(lambda: scraped(port, "ledger_intake_events_recorded_total") == 5, what="5 facts recorded")
        wait_for(lambda: scraped(port, "ledger_intake_dead_letters_total") == 2, what="2 dead letters")
        wait_for(lambda: scraped(port, "ledger_projector_events_total") == 55, what="55 events projected")
        assert scraped(port, "ledger_relay_events_total") == 55
        _, body = get(port, "/metrics")
        intake_lag = [line for line in body.splitlines() if line.startswith('ledger_lag_events{part="intake"')]
        assert intake_lag and all(line.endswith(" 0.0") for line in intake_lag)
        _, body = get(port, "/healthz")
        assert {name: part["state"] for name, part in json.loads(body)["parts"].items()} == {
            "relay": "running", "intake": "running", "projector": "running"}
    finally:
        code = served.stop()
    assert code == 0, "\n".join(served.lines)
    assert port_is_closed(port)
    created = {r["topic"] for r in served.records if r.get("topic_state") == "created"}
    assert created == {topic, f"{topic}-in", f"{topic}-dlq"}
    assert {r["message"] for r in served.records} >= {"relay started", "intake started", "projector started",
                                                       "relay stopped", "intake stopped", "projector stopped"}
