"""A topic that goes backwards or disappears is noticed: the relay republishes it from the
store, a projector reading it raises TopicResetError instead of sitting past its end.

Tansu keeps everything in memory, so restarting it is a real topic reset: these tests run a
broker of their own and restart it."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from ledger.cli.main import app
from ledger.errors import TopicResetError
from ledger.kafka import topics
from ledger.kafka.relay import Relay, relay_generation, relay_position
from ledger.kafka.resets import reset_reason
from ledger.kafka.source import KafkaSource
from ledger.settings import Settings
from ledger.write.application import Ledger
from tests.kafka.test_relay_parking import on_topic
from tests.support.broker import TansuBroker
from tests.support.cli import StrictRunner
from tests.support.crashes import kill_when
from tests.support.facts import NOW, FactFactory

pytestmark = pytest.mark.kafka


def wait_for(condition: Callable[[], bool], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.05)


def recorded_ids(ledger: Ledger, fact: FactFactory, count: int) -> list[str]:
    outcomes = ledger.record_many([fact("ContactLogged", f"C{i % 7}") for i in range(count)])
    return [str(o.event_id) for o in outcomes]


def present(bootstrap: str, topic: str) -> list[str]:
    """What `topic` holds, or nothing while it does not exist."""
    try:
        return on_topic(bootstrap, topic)
    except ValueError:
        return []


def read_to_end(source: KafkaSource, total: int) -> dict[str, int]:
    positions: dict[str, int] = {}
    deadline = time.monotonic() + 30
    while sum(positions.values()) < total:
        assert time.monotonic() < deadline, positions
        positions = {**positions, **source.read(positions, 1000).positions}
    return positions


def read_until_reset(source: KafkaSource, positions: dict[str, int], timeout_s: float = 30.0) -> None:
    """Read at `positions` until the source raises (the first reads after a broker restart may
    come back empty before the consumer has heard from the new broker)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        batch = source.read(positions, 1000)
        assert batch.payloads == []
    raise AssertionError("no TopicResetError")


@pytest.fixture
def broker() -> TansuBroker:
    with TansuBroker() as own:
        yield own


@pytest.fixture
def own_settings(tmp_path: Path, broker: TansuBroker) -> Settings:
    settings = Settings(data_dir=tmp_path / "data", kafka=broker.bootstrap, batch_size=7)
    topics.create(settings)
    return settings


def test_a_broker_that_lost_the_topic_makes_the_projector_raise_and_the_relay_republish(
    own_settings: Settings, broker: TansuBroker, fact: FactFactory
) -> None:
    ledger = Ledger(own_settings, clock=lambda: NOW)
    ids = recorded_ids(ledger, fact, 30)
    assert Relay(own_settings, ledger, confirm_s=0.2).run_once().sent == 30
    source = KafkaSource(own_settings, poll_ms=200, confirm_s=0.2)
    positions = read_to_end(source, 30)
    assert source.read(positions, 1000).payloads == []  # at the end, nothing new: no reset
    assert source.read(positions, 1000).payloads == []

    broker.restart()

    with pytest.raises(TopicResetError) as raised:
        read_until_reset(source, positions)
    source.close()
    assert "was reset" in str(raised.value)
    assert raised.value.positions == {int(p): at for p, at in positions.items()}
    restarted = KafkaSource(own_settings, poll_ms=200, confirm_s=0.2)  # a projector started afresh
    with pytest.raises(TopicResetError) as past_the_end:
        read_until_reset(restarted, positions)
    restarted.close()
    assert "past the end" in str(past_the_end.value)
    assert past_the_end.value.positions == {int(p): at for p, at in positions.items() if at}
    assert past_the_end.value.ends == dict.fromkeys(past_the_end.value.positions, 0)

    stats = Relay(own_settings, ledger, confirm_s=0.2).run_once()  # restarted after the reset

    assert (stats.resets, stats.sent) == (1, 30)
    assert sorted(on_topic(broker.bootstrap, own_settings.kafka.ledger_topic)) == sorted(ids)
    topic = own_settings.kafka.ledger_topic
    assert (relay_generation(ledger, topic), relay_position(ledger, topic)) == (2, ledger.head())
    reopened = KafkaSource(own_settings, poll_ms=200)
    assert sum(read_to_end(reopened, 30).values()) == 30  # readable from the start again
    reopened.close()


def test_a_running_relay_notices_the_broker_lost_its_data_and_republishes_everything(
    own_settings: Settings, broker: TansuBroker, fact: FactFactory
) -> None:
    ledger = Ledger(own_settings, clock=lambda: NOW)
    ids = recorded_ids(ledger, fact, 20)
    topic = own_settings.kafka.ledger_topic
    relay = Relay(own_settings, ledger, check_s=0.2, confirm_s=0.2)
    stop = threading.Event()
    thread = threading.Thread(target=relay.run, args=(stop,), kwargs={"retry_s": 0.2})
    thread.start()
    try:
        wait_for(lambda: relay_position(ledger, topic) == 20)
        assert sorted(on_topic(broker.bootstrap, topic)) == sorted(ids)

        broker.restart()

        wait_for(lambda: relay_generation(ledger, topic) == 2 and relay_position(ledger, topic) == 20)
        assert sorted(present(broker.bootstrap, topic)) == sorted(ids)
        more = recorded_ids(ledger, fact, 1)
        wait_for(lambda: relay_position(ledger, topic) == 21)
    finally:
        stop.set()
        thread.join(timeout=60)
    assert not thread.is_alive()
    assert relay.stats.resets == 1
    assert sorted(on_topic(broker.bootstrap, topic)) == sorted(ids + more)


def test_relay_from_start_republishes_everything_through_the_cli(
    tmp_path: Path, kafka_broker: TansuBroker, topic_factory: Callable[..., str], fact: FactFactory
) -> None:
    topic = topic_factory()
    settings = Settings(data_dir=tmp_path / "data", kafka=kafka_broker.bootstrap, ledger_topic=topic)
    ledger = Ledger(settings, clock=lambda: NOW)
    ids = recorded_ids(ledger, fact, 25)
    args = ["relay", "--once", "--kafka", kafka_broker.bootstrap, "--data-dir", str(settings.data_dir)]
    env = {"LEDGER_LEDGER_TOPIC": topic}
    runner = StrictRunner()
    assert runner.invoke(app, args, env=env).exit_code == 0

    again = runner.invoke(app, [*args, "--from-start"], env=env)

    assert again.exit_code == 0, again.output
    assert "relayed 25 events" in again.stderr and "1 republished from the start" in again.stderr
    assert Counter(on_topic(kafka_broker.bootstrap, topic)) == {i: 2 for i in ids}
    assert (relay_generation(ledger, topic), relay_position(ledger, topic)) == (2, 25)
    unchanged = runner.invoke(app, args, env=env)  # without the flag: nothing new to send
    assert unchanged.exit_code == 0 and "relayed 0 events" in unchanged.stderr


def test_a_republish_killed_at_any_moment_still_ends_with_every_event_republished(
    tmp_path: Path, kafka_broker: TansuBroker, topic_factory: Callable[..., str], fact: FactFactory
) -> None:
    topic = topic_factory()
    settings = Settings(data_dir=tmp_path / "data", kafka=kafka_broker.bootstrap, ledger_topic=topic)
    ledger = Ledger(settings, clock=lambda: NOW)
    ids = recorded_ids(ledger, fact, 60)
    env = {**os.environ, "LEDGER_DATA_DIR": str(settings.data_dir), "LEDGER_KAFKA": kafka_broker.bootstrap,
           "LEDGER_LEDGER_TOPIC": topic, "LEDGER_BATCH_SIZE": "4"}
    relay = [sys.executable, "-m", "ledger.cli", "relay"]
    subprocess.run([*relay, "--once"], env=env, check=True, capture_output=True)

    kill_when([*relay, "--from-start"], env, lambda: relay_generation(ledger, topic) == 2)
    kill_when(relay, env, lambda: relay_position(ledger, topic) > 0)
    killed_at = relay_position(ledger, topic)
    subprocess.run([*relay, "--once"], env=env, check=True, capture_output=True)

    assert relay_generation(ledger, topic) == 2
    assert killed_at < relay_position(ledger, topic) == 60
    counts = Counter(on_topic(kafka_broker.bootstrap, topic))
    assert set(counts) == set(ids)
    assert all(n >= 2 for n in counts.values()), counts  # once before, at least once since


def test_what_counts_as_a_reset() -> None:
    assert reset_reason("t", None, {}, published=False) == "topic 't' does not exist any more"
    backwards = reset_reason("t", {0: 3, 1: 9}, {0: 5, 1: 9}, published=True)
    assert backwards is not None and "partition 0 ends at 3, below offset 4" in backwards
    assert "partition 1" not in backwards
    assert "holds no records" in (reset_reason("t", {0: 0, 1: 0}, {}, published=True) or "")
    assert reset_reason("t", {0: 0, 1: 0}, {}, published=False) is None  # nothing sent yet
    assert reset_reason("t", {0: 5, 1: 12}, {0: 5, 1: 9}, published=True) is None  # grown, not reset


def test_a_projector_down_while_the_topic_was_recreated_rebuilds_instead_of_skipping(
    own_settings: Settings, broker: TansuBroker, fact: FactFactory
) -> None:
    """The old topic held every event twice (republished from the start), so the projector's
    positions were high; the new topic, after the broker lost its data, holds more records
    than those positions: only its id tells that they are positions in another topic. Status
    says so, and the projector rebuilds rather than skipping what lies below them."""
    ledger = Ledger(own_settings, clock=lambda: NOW)
    recorded_ids(ledger, fact, 30)
    Relay(own_settings, ledger, confirm_s=0.2).run_once()
    Relay(own_settings, ledger, confirm_s=0.2).run_once(from_start=True)  # each event twice: 60 records
    args = ["--data-dir", str(own_settings.data_dir), "--kafka", broker.bootstrap]
    runner = StrictRunner()
    assert runner.invoke(app, ["project", "--once", *args]).exit_code == 0

    broker.restart()
    topics.create(own_settings)
    recorded_ids(ledger, fact, 45)
    assert Relay(own_settings, ledger, confirm_s=0.2).run_once().sent == 75  # 75 records > the old 60

    shown = runner.invoke(app, ["status", "--json", *args])
    assert shown.exit_code == 0, shown.output
    assert "the topic was recreated since the read models were built" in shown.stdout
    assert runner.invoke(app, ["project", "--once", *args]).exit_code == 0
    rebuilt = runner.invoke(app, ["query", "SELECT count(*) AS n FROM events", "--json", *args[:2]])
    assert rebuilt.stdout.strip() == '[{"n": 75}]'
    shown = runner.invoke(app, ["status", "--json", *args])
    assert '"lag": 0' in shown.stdout and "topic_reset" in shown.stdout


def test_a_following_projector_rebuilds_once_after_a_reset_not_on_every_round(
    own_settings: Settings, broker: TansuBroker, fact: FactFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import UTC, datetime

    from ledger.ops import projecting

    ledger = Ledger(own_settings, clock=lambda: NOW)
    recorded_ids(ledger, fact, 20)
    Relay(own_settings, ledger, confirm_s=0.2).run_once()
    rebuilds: list[int] = []
    rounds: list[int] = []
    rebuild = projecting._rebuild_after
    monkeypatch.setattr(projecting, "_rebuild_after", lambda *a, **k: rebuilds.append(1) or rebuild(*a, **k))

    def clock() -> datetime:
        rounds.append(1)
        return datetime.now(UTC)

    stop = threading.Event()
    follower = threading.Thread(target=projecting.follow, args=(own_settings, clock, stop), kwargs={"idle_s": 0.01})
    follower.start()
    try:
        wait_for(lambda: own_settings.published_path.exists() and len(rounds) > 5)
        broker.restart()
        topics.create(own_settings)
        Relay(own_settings, ledger, confirm_s=0.2).run_once()
        wait_for(lambda: rebuilds)
        seen = len(rounds)
        wait_for(lambda: len(rounds) > seen + 40)  # forty rounds of following after the rebuild
    finally:
        stop.set()
        follower.join(timeout=60)
    assert not follower.is_alive()
    assert len(rebuilds) == 1
