"""Every source a projector reads keeps one contract, the way eventsourcing tests its
recorders: a test case per interface, run once per implementation. The store's notification
log on SQLite and on PostgreSQL, and the Kafka ledger topic (relayed from a PostgreSQL store),
each hand out every event once, in each customer's recording order, resume exactly from the
positions they gave, and say where they end. And the read models built from each are the same.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ledger.contract.codec import default_codec
from ledger.kafka.relay import Relay
from ledger.kafka.source import KafkaSource
from ledger.ops.projecting import project
from ledger.projection.engine import Projector, lag
from ledger.projection.readmodels import ReadModels
from ledger.settings import Settings
from ledger.write.application import Ledger
from ledger.write.log import NotificationLogSource, Source
from tests.support.broker import TansuBroker
from tests.support.facts import CLOCK, DAY, T0, buy, fact

AS_OF = datetime(2026, 3, 1, tzinfo=UTC)


def history() -> list[dict]:
    """A few customers' facts, interleaved, some late (an older occurred_at recorded later)."""
    facts = []
    for day in range(12):
        for n in range(5):
            customer = f"C{n}"
            facts.append(fact("ContactLogged", customer, T0 + day * DAY, is_complaint=day % 4 == 0))
            if (day + n) % 3 == 0:
                facts.append(buy(customer, T0 + day * DAY, total_minor=100 * (n + 1)))
        if day % 5 == 4:
            facts.append(fact("FeedbackGiven", "C1", T0 + (day - 3) * DAY, kind="nps", score=day % 11))
    facts.append(fact("CustomerErased", "C4", T0 + 11 * DAY))
    return facts


@dataclass
class Bench:
    """One implementation under the contract: where facts are recorded, and a new source."""

    ledger: Ledger
    settings: Settings
    publish: Callable[[], None]
    open: Callable[[], Source]


def read_all(source: Source, positions: dict[str, int], limit: int) -> tuple[list[str], dict[str, int]]:
    """Every event id after `positions`, in the order handed out, and the positions after."""
    codec = default_codec()
    head = source.head()
    ids: list[str] = []
    while lag(head, positions):
        batch = source.read(positions, limit)
        ids.extend(str(codec.decode(data)[1]["event_id"]) for data in batch.payloads)
        positions = {**positions, **batch.positions}
    return ids, positions


def recorded(ledger: Ledger) -> list[tuple[str, str]]:
    """(customer_id, event_id) of every fact, in recording order."""
    codec = ledger.codec
    return [
        (record["customer_id"], str(record["event_id"]))
        for _, record in (codec.decode(n.state) for n in ledger.notifications(0, 10**6))
    ]


class SourceContract:
    """Subclassed once per implementation, which provides `bench`."""

    @pytest.fixture
    def bench(self) -> Iterator[Bench]:
        raise NotImplementedError

    @pytest.fixture
    def facts(self) -> list[dict]:
        return history()

    @pytest.fixture
    def filled(self, bench: Bench, facts: list[dict]) -> Bench:
        outcomes = bench.ledger.record_many(facts)
        assert all(o.status == "recorded" for o in outcomes)
        bench.publish()
        return bench

    def test_every_event_is_handed_out_once_in_each_customers_order(self, filled: Bench) -> None:
        source = filled.open()
        try:
            ids, _ = read_all(source, {}, limit=7)
        finally:
            source.close()
        expected = recorded(filled.ledger)
        assert sorted(ids) == sorted(e for _, e in expected)
        rank = {e: i for i, e in enumerate(ids)}
        for customer in {c for c, _ in expected}:
            mine = [e for c, e in expected if c == customer]
            assert sorted(mine, key=rank.__getitem__) == mine, customer

    def test_reading_resumes_exactly_from_the_positions_a_batch_gave(self, filled: Bench) -> None:
        first = filled.open()
        try:
            batch = first.read({}, 10)
            while not batch.payloads:  # a Kafka fetch may come back empty at first
                batch = first.read({}, 10)
        finally:
            first.close()
        codec = default_codec()
        before = [str(codec.decode(data)[1]["event_id"]) for data in batch.payloads]
        again = filled.open()
        try:
            after, positions = read_all(again, dict(batch.positions), limit=1000)
            assert again.read(positions, 1000).payloads == []
        finally:
            again.close()
        assert not set(before) & set(after)
        assert sorted(before + after) == sorted(e for _, e in recorded(filled.ledger))

    def test_caught_up_is_an_empty_batch_without_positions_and_no_lag(self, filled: Bench) -> None:
        source = filled.open()
        try:
            assert lag(source.head(), {}) == len(recorded(filled.ledger))
            _, positions = read_all(source, {}, limit=1000)
            nothing = source.read(positions, 1000)
            assert (nothing.payloads, nothing.positions) == ([], {})
            assert lag(source.head(), positions) == 0
        finally:
            source.close()

    def test_the_read_models_equal_those_of_the_embedded_sqlite_store(
        self, filled: Bench, facts: list[dict], tmp_path: Path
    ) -> None:
        reference = Settings(data_dir=tmp_path / "reference")
        reference_ledger = Ledger(reference, clock=lambda: CLOCK)
        reference_ledger.record_many(facts)
        project(reference, AS_OF, ledger=reference_ledger)
        target = tmp_path / "target.duckdb"
        source = filled.open()
        try:
            with ReadModels(target, settings=filled.settings) as models:
                Projector(models, source, batch_size=13).catch_up(AS_OF)
        finally:
            source.close()
        expected = read_models(reference.readmodel_path)
        assert len(expected["events"]) == len(facts)
        assert read_models(target) == expected


def read_models(path: Path) -> dict[str, list[tuple]]:
    """Every read-model table's rows, sorted, without the source-specific bookkeeping."""
    bookkeeping = {"projector_positions", "projector_state", "readmodel_migrations", "ledger_position"}
    with ReadModels(path) as models:
        tables = [name for (name,) in models.con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE NOT temporary ORDER BY 1").fetchall()
            if name not in bookkeeping]
        return {t: models.con.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall() for t in tables}


class TestTheStoreLogOnSQLite(SourceContract):
    @pytest.fixture
    def bench(self, tmp_path: Path) -> Iterator[Bench]:
        settings = Settings(data_dir=tmp_path / "store")
        ledger = Ledger(settings, clock=lambda: CLOCK)
        yield Bench(ledger, settings, lambda: None, lambda: NotificationLogSource(ledger))
        ledger.close()


@pytest.mark.postgres
class TestTheStoreLogOnPostgreSQL(SourceContract):
    @pytest.fixture
    def bench(self, tmp_path: Path, settings_for_store) -> Iterator[Bench]:
        settings = Settings(data_dir=tmp_path / "store", store=settings_for_store("postgresql"))
        ledger = Ledger(settings, clock=lambda: CLOCK)
        yield Bench(ledger, settings, lambda: None, lambda: NotificationLogSource(ledger))
        ledger.close()


@pytest.mark.kafka
@pytest.mark.postgres
class TestTheLedgerTopicRelayedFromPostgreSQL(SourceContract):
    @pytest.fixture
    def bench(
        self, tmp_path: Path, settings_for_store, kafka_broker: TansuBroker, topic_factory
    ) -> Iterator[Bench]:
        settings = Settings(data_dir=tmp_path / "store", store=settings_for_store("postgresql"),
                            kafka=kafka_broker.bootstrap, ledger_topic=topic_factory(partitions=3))
        ledger = Ledger(settings, clock=lambda: CLOCK)

        def publish() -> None:
            stats = Relay(settings, ledger, batch_size=17).run_once()
            assert stats.sent == len(recorded(ledger))

        yield Bench(ledger, settings, publish, lambda: KafkaSource(settings, poll_ms=200))
        ledger.close()
