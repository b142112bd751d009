"""Sums of money cannot overflow: two legal amounts near the BIGINT limit are summed exactly
(HUGEINT), and a read-model file built when the sums were BIGINT is upgraded in place."""

from __future__ import annotations

from pathlib import Path

from ledger.projection.catalogue import UPGRADES
from ledger.projection.engine import Projector
from ledger.projection.readmodels import ReadModels
from ledger.write.log import NotificationLogSource
from tests.projection.before_hugeint import models_before
from tests.projection.tables import snapshot
from tests.support.facts import DAY, T0, buy, fact
from tests.support.readmodels import Harness

BIG = 9 * 10**18
"""A legal amount (below 2^63 - 1); two of them are more than a BIGINT holds."""
AS_OF = T0 + 30 * DAY
SUM_COLUMNS = {
    "customer_spend": {"purchased_minor", "refunded_minor", "net_minor"},
    "orders": {"refunded_minor", "net_minor"},
    "rfm": {"monetary"},
}


def column_types(models: ReadModels) -> dict[tuple[str, str], str]:
    rows = models.con.execute(
        "SELECT table_name, column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = 'main'"
    ).fetchall()
    return {(table, column): kind for table, column, kind in rows}


def replay(h: Harness, path: Path) -> dict[str, list[tuple]]:
    with ReadModels(path, settings=h.settings) as models:
        Projector(models, NotificationLogSource(h.ledger), batch_size=100_000).catch_up(AS_OF)
        return snapshot(models)


def test_two_purchases_of_9e18_are_summed_exactly_and_the_next_event_still_projects(tmp_path: Path) -> None:
    h = Harness(tmp_path, batch_size=1)
    try:
        h.record(
            buy("C1", T0 + DAY, total_minor=BIG, currency="EUR"),
            buy("C1", T0 + 2 * DAY, total_minor=BIG, currency="EUR"),
            fact("ContactLogged", "C1", T0 + 3 * DAY),
        )
        stats = h.project(AS_OF)
        assert (stats.read, stats.new, stats.parked) == (3, 3, 0)
        assert h.rows("SELECT purchased_minor, refunded_minor, net_minor FROM customer_spend") == [
            (2 * BIG, 0, 2 * BIG)
        ]
        assert h.rows("SELECT purchases, contacts, net_spend FROM customer_profile") == [
            (2, 1, {"EUR": 2 * BIG})
        ]
        assert h.rows("SELECT monetary, frequency FROM rfm") == [(2 * BIG, 2)]
        assert h.rows("SELECT sum(net_minor) FROM orders") == [(2 * BIG,)]
        assert snapshot(h.models) == replay(h, tmp_path / "replay.duckdb")
    finally:
        h.close()


def test_every_sum_of_money_is_a_hugeint_and_every_single_amount_a_bigint(tmp_path: Path) -> None:
    with ReadModels(tmp_path / "rm.duckdb") as models:
        types = column_types(models)
    for table, columns in SUM_COLUMNS.items():
        assert {types[(table, c)] for c in columns} == {"HUGEINT"}, table
    assert types[("customer_profile", "net_spend")] == "MAP(VARCHAR, HUGEINT)"
    assert types[("events", "total_minor")] == types[("orders", "total_minor")] == "BIGINT"


def test_a_file_built_with_bigint_sums_is_upgraded_in_place_keeping_its_rows(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    try:
        h.record(
            buy("C1", T0 + DAY, order_id="A", total_minor=1500, currency="EUR"),
            fact("PurchaseRefunded", "C1", T0 + 2 * DAY, order_id="A", amount_minor=500, currency="EUR"),
            buy("C2", T0 + DAY, total_minor=700, currency="GBP"),
        )
        old_path = tmp_path / "old.duckdb"
        with ReadModels(old_path, models_before(), settings=h.settings) as old:
            Projector(old, NotificationLogSource(h.ledger)).catch_up(AS_OF)
            assert {column_types(old)[("customer_spend", "net_minor")]} == {"BIGINT"}
            before = old.con.execute(
                "SELECT customer_id, currency, net_minor FROM customer_spend ORDER BY ALL"
            ).fetchall()

        with ReadModels(old_path, settings=h.settings) as upgraded:
            with ReadModels(tmp_path / "fresh.duckdb", settings=h.settings) as fresh:
                assert column_types(upgraded) == column_types(fresh)
            recorded = upgraded.con.execute(
                "SELECT name, model, from_checksum, to_checksum FROM readmodel_upgrades ORDER BY model"
            ).fetchall()
            assert recorded == sorted(
                ((u.name, u.model, u.before, u.after) for u in UPGRADES), key=lambda r: r[1]
            )
            assert upgraded.con.execute(
                "SELECT customer_id, currency, net_minor FROM customer_spend ORDER BY ALL"
            ).fetchall() == before == [("C1", "EUR", 1000), ("C2", "GBP", 700)]

            h.record(buy("C1", T0 + 3 * DAY, total_minor=BIG), buy("C1", T0 + 4 * DAY, total_minor=BIG))
            Projector(upgraded, NotificationLogSource(h.ledger)).catch_up(AS_OF)
            assert upgraded.con.execute(
                "SELECT net_minor FROM customer_spend WHERE customer_id = 'C1'"
            ).fetchall() == [(2 * BIG + 1000,)]
            got = snapshot(upgraded)
        assert got == replay(h, tmp_path / "replay.duckdb")
    finally:
        h.close()


def test_opening_an_upgraded_file_again_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    ReadModels(path, models_before()).close()
    ReadModels(path).close()
    with ReadModels(path) as again:
        assert again.con.execute("SELECT count(*) FROM readmodel_upgrades").fetchall() == [(len(UPGRADES),)]
