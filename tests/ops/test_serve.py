"""`ledger serve` runs relay and projector until SIGTERM, then stops cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from ledger.projection.query import query
from ledger.settings import Settings
from ledger.write.application import Ledger
from tests.support.broker import TansuBroker
from tests.support.facts import NOW


def wait_for(condition, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError("timed out waiting")


def published_events(settings: Settings) -> int:
    if not settings.published_path.exists():
        return 0
    return query(settings.published_path, "SELECT count(*) FROM events")[1][0][0]


@pytest.mark.kafka
def environment(settings: Settings) -> dict[str, str]:
    """The environment of a `ledger serve` process on `settings`' store."""
    env = {**os.environ, "LEDGER_DATA_DIR": str(settings.data_dir), "LEDGER_METRICS_PORT": "0"}
    env.pop("LEDGER_KAFKA", None)
    if settings.store:
        env["LEDGER_STORE"] = settings.store.url
    return env


def test_serve_relays_and_projects_what_is_recorded_and_stops_on_sigterm(
    settings: Settings, kafka_broker: TansuBroker, fact
) -> None:
    topic = f"serve-{uuid.uuid4().hex[:8]}"
    settings = settings.with_(kafka=kafka_broker.bootstrap, ledger_topic=topic)
    env = {**environment(settings), "LEDGER_KAFKA": kafka_broker.bootstrap, "LEDGER_LEDGER_TOPIC": topic}
    server = subprocess.Popen([sys.executable, "-m", "ledger.cli", "serve"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ledger = Ledger(settings, clock=lambda: NOW)
        ledger.record_many([fact("ContactLogged", customer_id=f"C{i}") for i in range(30)])
        wait_for(lambda: published_events(settings) == 30)
        ledger.record_many([fact("PurchaseMade", customer_id=f"C{i}", order_id=f"O{i}") for i in range(20)])
        wait_for(lambda: published_events(settings) == 50)
    finally:
        server.send_signal(signal.SIGTERM)
        _, stderr = server.communicate(timeout=30)
    assert server.returncode == 0, stderr
    assert "stopped" in stderr


def test_serve_in_embedded_mode_projects_and_stops_on_sigint(settings: Settings, fact) -> None:
    env = environment(settings)
    Ledger(settings, clock=lambda: NOW).record_many([fact("ContactLogged", customer_id=f"C{i}") for i in range(5)])
    server = subprocess.Popen([sys.executable, "-m", "ledger.cli", "serve"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: published_events(settings) == 5)
    finally:
        server.send_signal(signal.SIGINT)
        _, stderr = server.communicate(timeout=30)
    assert server.returncode == 0, stderr


def test_serve_only_picks_parts_and_names_what_is_wrong(tmp_path: Path) -> None:
    from ledger.errors import SettingsError
    from ledger.ops.serve import parts

    embedded = Settings(data_dir=tmp_path)
    assert [p.name for p in parts(embedded)] == ["projector"]
    assert [p.name for p in parts(embedded.with_(kafka="k:9092"), ["intake"])] == ["intake"]
    with pytest.raises(SettingsError, match="intake need Kafka"):
        parts(embedded, ["intake"])
    with pytest.raises(SettingsError, match="no part named relai"):
        parts(embedded, ["relai"])


def test_a_second_serve_meeting_a_running_relay_is_refused_before_any_part_starts(
    settings: Settings, kafka_broker: TansuBroker, fact, tmp_path: Path
) -> None:
    from ledger.kafka.relay import relay_position

    topic = f"serve-{uuid.uuid4().hex[:8]}"
    settings = settings.with_(kafka=kafka_broker.bootstrap, ledger_topic=topic)
    env = {**environment(settings), "LEDGER_KAFKA": kafka_broker.bootstrap, "LEDGER_LEDGER_TOPIC": topic}
    ledger = Ledger(settings, clock=lambda: NOW)
    ledger.record(fact("ContactLogged"))
    relay = subprocess.Popen([sys.executable, "-m", "ledger.cli", "serve", "--only", "relay"], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: relay_position(ledger, topic) == ledger.head())
        other = tmp_path / "other"
        second = subprocess.run([sys.executable, "-m", "ledger.cli", "serve"], capture_output=True, text=True,
                                env={**env, "LEDGER_DATA_DIR": str(other), "LEDGER_STORE": settings.store_url},
                                timeout=120)
    finally:
        relay.send_signal(signal.SIGTERM)
        _, stderr = relay.communicate(timeout=30)
    assert relay.returncode == 0, stderr
    assert second.returncode == 4, second.stderr
    assert f"the relay of topic {topic!r} is held by another process" in second.stderr
    assert "Traceback" not in second.stderr
    assert not (other / "readmodels.duckdb").exists()  # the projector never started
