"""One relay per topic: while `ledger relay` runs, a second relay, or a `ledger serve` that
would run one, is refused with exit code 4 and publishes nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from ledger.cli.main import app
from ledger.errors import WriterBusyError
from ledger.kafka.relay import Relay, relay_position
from ledger.settings import Settings
from ledger.write.application import Ledger
from tests.kafka.test_relay_parking import on_topic
from tests.support.broker import TansuBroker
from tests.support.cli import StrictRunner
from tests.support.facts import NOW, FactFactory

pytestmark = pytest.mark.kafka


def wait_for(condition: Callable[[], bool], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.05)


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_a_second_relay_for_the_same_topic_is_refused_with_exit_code_4(
    kind: str, tmp_path: Path, kafka_broker: TansuBroker, topic_factory: Callable[..., str],
    settings_for_store: Callable[[str], str | None], fact: FactFactory,
) -> None:
    topic = topic_factory()
    store = settings_for_store(kind)
    settings = Settings(data_dir=tmp_path / "data", store=store, kafka=kafka_broker.bootstrap, ledger_topic=topic)
    ledger = Ledger(settings, clock=lambda: NOW)
    ledger.record_many([fact("ContactLogged", f"C{i}") for i in range(5)])
    common = ["--kafka", kafka_broker.bootstrap, "--data-dir", str(settings.data_dir)]
    common += ["--store", store] if store else []
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")} | {"LEDGER_LEDGER_TOPIC": topic}
    first = subprocess.Popen([sys.executable, "-m", "ledger.cli", "relay", *common], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: relay_position(ledger, topic) == ledger.head() or first.poll() is not None)
        assert first.poll() is None, first.communicate()
        ledger.record(fact("ContactLogged", "C-late"))  # for the first relay, not the refused ones
        runner = StrictRunner()

        second = runner.invoke(app, ["relay", "--once", *common], env={"LEDGER_LEDGER_TOPIC": topic})
        served = runner.invoke(app, ["serve", "--only", "relay", *common], env={"LEDGER_LEDGER_TOPIC": topic})
        with pytest.raises(WriterBusyError):
            Relay(settings, ledger).run_once()

        for refused in (second, served):
            assert refused.exit_code == 4, refused.output
            assert f"the relay of topic {topic!r} is held by another process" in refused.stderr
            assert f"pid {first.pid}: " in refused.stderr  # who holds it, on either store
        wait_for(lambda: relay_position(ledger, topic) == ledger.head() == 6)  # the first one goes on
    finally:
        first.send_signal(signal.SIGINT)
        _, stderr = first.communicate(timeout=60)
    assert first.returncode == 0, stderr
    assert len(on_topic(kafka_broker.bootstrap, topic)) == 6  # each event once: nobody raced the first
    assert Relay(settings, ledger).run_once().sent == 0  # the lock is free again
