"""Fixtures of the intake tests: settings on the session broker with fresh topics.

Load with ``pytest_plugins = ["tests.kafka_broker", "tests.intake_fixtures"]``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from ledger.settings import Settings
from tests.kafka_broker import TansuBroker


@pytest.fixture
def kafka_settings(
    tmp_path: Path, kafka_broker: TansuBroker, topic_factory: Callable[..., str]
) -> Settings:
    """Settings on the session broker with a fresh intake topic (4 partitions) and DLQ."""
    return Settings(
        data_dir=tmp_path / "data",
        kafka=kafka_broker.bootstrap,
        intake_topic=topic_factory(partitions=4),
        dlq_topic=topic_factory(partitions=2),
        batch_size=500,
    )


@pytest.fixture
def one_partition_settings(kafka_settings: Settings, topic_factory: Callable[..., str]) -> Settings:
    """An intake topic of one partition, so records are read in the order they were sent."""
    return kafka_settings.with_(intake_topic=topic_factory(partitions=1))


@pytest.fixture
def store_kafka_settings(
    settings: Settings, kafka_broker: TansuBroker, topic_factory: Callable[..., str]
) -> Settings:
    """Like `kafka_settings`, once per event store (conftest's `settings`: SQLite, PostgreSQL)."""
    return settings.with_(
        kafka=kafka_broker.bootstrap,
        intake_topic=topic_factory(partitions=4),
        dlq_topic=topic_factory(partitions=2),
        batch_size=500,
    )
