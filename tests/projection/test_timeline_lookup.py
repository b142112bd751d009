"""A customer's timeline is found through an index on `events.customer_id`, in the published
copy analysts query, after an erasure rewrote the file, and in a file built before the index
existed (upgraded in place)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ledger.projection.engine import Projector
from ledger.projection.query import query
from ledger.projection.readmodels import ReadModels
from ledger.write.log import NotificationLogSource
from tests.projection.before_hugeint import models_before
from tests.support.facts import DAY, T0, buy, fact
from tests.support.readmodels import Harness

AS_OF = T0 + 30 * DAY
INDEXES = "SELECT index_name FROM duckdb_indexes() WHERE table_name = 'events'"
TIMELINE = "SELECT event_id, event_type, occurred_at FROM events WHERE customer_id = ? ORDER BY occurred_at, event_id"


def history(customers: int) -> list[dict]:
    return [
        event
        for n in range(customers)
        for event in (
            fact("CustomerRegistered", f"C{n}", T0, name=f"N{n}"),
            buy(f"C{n}", T0 + DAY, total_minor=100 + n),
            fact("ContactLogged", f"C{n}", T0 + 2 * DAY),
        )
    ]


def timeline_plan(published: Path, customer_id: str) -> str:
    sql = TIMELINE.replace("?", f"'{customer_id}'")
    _, rows = query(published, f"EXPLAIN ANALYZE {sql}")
    return "\n".join(str(cell) for row in rows for cell in row)


@pytest.fixture
def h(tmp_path: Path) -> Iterator[Harness]:
    harness = Harness(tmp_path)
    yield harness
    harness.close()


def test_the_published_timeline_of_a_customer_is_read_through_the_index(h: Harness, tmp_path: Path) -> None:
    h.record(*history(300))
    h.project(AS_OF)
    published = tmp_path / "published.duckdb"
    h.models.publish(published, datetime.now(UTC))

    assert "Index Scan" in timeline_plan(published, "C17")
    _, rows = query(published, TIMELINE.replace("?", "'C17'"))
    scanned = h.rows(TIMELINE.replace("customer_id = ?", "customer_id || '' = ?"), "C17")
    assert [r[1] for r in rows] == ["CustomerRegistered", "PurchaseMade", "ContactLogged"]
    assert rows == scanned


def test_the_index_survives_the_rewrite_that_shreds_an_erased_customer(h: Harness, tmp_path: Path) -> None:
    h.record(*history(50))
    h.project(AS_OF)
    h.record(fact("CustomerErased", "C3", T0 + 3 * DAY))
    h.project(AS_OF)
    published = tmp_path / "published.duckdb"
    h.models.publish(published, datetime.now(UTC))  # rewrites the file first (shred_if_erased)

    assert h.rows(INDEXES) == [("events_by_customer",)]
    assert "Index Scan" in timeline_plan(published, "C4")
    _, rows = query(published, "SELECT count(*), count(name) FROM events WHERE customer_id = 'C3'")
    assert rows == [(4, 0)]


def test_a_file_built_before_the_index_gets_it_in_place_keeping_its_rows(h: Harness, tmp_path: Path) -> None:
    h.record(*history(40))
    old_path = tmp_path / "old.duckdb"
    with ReadModels(old_path, models_before({"events"}), settings=h.settings) as old:
        Projector(old, NotificationLogSource(h.ledger)).catch_up(AS_OF)
        assert old.con.execute(INDEXES).fetchall() == []
        before = old.con.execute("SELECT * FROM events ORDER BY event_id").fetchall()

    with ReadModels(old_path, settings=h.settings) as upgraded:
        assert upgraded.con.execute(
            "SELECT name FROM readmodel_upgrades WHERE model = 'events' ORDER BY name"
        ).fetchall() == [("amendments",), ("contact_language_sentiment",), ("timeline_index",)]
        assert upgraded.con.execute(
            "SELECT * EXCLUDE (language, sentiment, target_event_id, target_type, changes, survivor_id, actor, "
            "status) FROM events ORDER BY event_id").fetchall() == before
        h.record(buy("C5", T0 + 5 * DAY, total_minor=9))
        Projector(upgraded, NotificationLogSource(h.ledger)).catch_up(AS_OF)
        upgraded.publish(tmp_path / "published.duckdb", datetime.now(UTC))
    assert "Index Scan" in timeline_plan(tmp_path / "published.duckdb", "C5")
    _, rows = query(tmp_path / "published.duckdb", TIMELINE.replace("?", "'C5'"))
    assert [r[1] for r in rows] == ["CustomerRegistered", "PurchaseMade", "ContactLogged", "PurchaseMade"]
