"""/healthz and /readyz follow the parts' states: not ready until every part runs and the
projector has published once, unhealthy once a part failed; /metrics is the own registry."""

from __future__ import annotations

import json

import pytest

from ledger.errors import SettingsError
from ledger.ops.endpoint import Endpoint
from ledger.ops.metrics import Metrics
from tests.support.serving import get, metric, port_is_closed


def answer(port: int, path: str) -> tuple[int, dict]:
    status, body = get(port, path)
    return status, json.loads(body)


def test_readiness_waits_for_every_part_and_the_first_publish_and_health_ends_with_a_failure() -> None:
    metrics = Metrics(["relay", "projector"])
    endpoint = Endpoint(metrics, "127.0.0.1", 0)
    endpoint.start()
    try:
        port = endpoint.port
        assert answer(port, "/readyz") == (503, {"status": "not ready", "parts": {
            "relay": {"state": "starting"}, "projector": {"state": "starting", "published": False}}})
        assert answer(port, "/healthz")[0] == 200
        metrics.set_state("relay", "running")
        metrics.set_state("projector", "running")
        assert answer(port, "/readyz")[0] == 503  # running, but nothing published yet
        metrics.published(0.01)
        assert answer(port, "/readyz") == (200, {"status": "ready", "parts": {
            "relay": {"state": "running"}, "projector": {"state": "running", "published": True}}})
        metrics.set_state("relay", "failed", "cannot reach Kafka")
        assert answer(port, "/healthz") == (503, {"status": "failed", "parts": {
            "relay": {"state": "failed", "error": "cannot reach Kafka"},
            "projector": {"state": "running", "published": True}}})
        assert answer(port, "/readyz")[0] == 503
        status, body = get(port, "/metrics")
        assert status == 200
        assert metric(body, "ledger_part_up", part="relay") == 0
        assert metric(body, "ledger_part_up", part="projector") == 1
        assert metric(body, "ledger_publish_duration_seconds_count") == 1
        assert "python_gc_objects_collected_total" not in body  # not the process-wide default registry
    finally:
        endpoint.close()
    assert port_is_closed(port)


def test_cumulative_stats_of_a_part_become_counters_that_only_grow() -> None:
    from ledger.intake.consumer import IntakeStats
    from ledger.kafka.relay import RelayStats

    metrics = Metrics(["relay", "intake"])
    metrics.relay_batch(RelayStats(sent=10, parked=1), 0.2, lag=5)
    metrics.relay_batch(RelayStats(sent=25, parked=1), 0.1, lag=0)
    metrics.intake_batch(IntakeStats(recorded=7, dead_letters=2), 0.3)
    text = metrics.exposition().decode()
    assert metric(text, "ledger_relay_events_total") == 25
    assert metric(text, "ledger_events_parked_total", part="relay") == 1
    assert metric(text, "ledger_lag_events", part="relay", partition="log") == 0
    assert metric(text, "ledger_intake_events_recorded_total") == 7
    assert metric(text, "ledger_intake_dead_letters_total") == 2
    assert metric(text, "ledger_batch_duration_seconds_count", part="relay") == 2


def test_a_port_in_use_is_a_settings_error_naming_it() -> None:
    first = Endpoint(Metrics(["projector"]), "127.0.0.1", 0)
    try:
        with pytest.raises(SettingsError, match=f"cannot serve metrics on 127.0.0.1:{first.port}"):
            Endpoint(Metrics(["projector"]), "127.0.0.1", first.port)
    finally:
        first.close()
