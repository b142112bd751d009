"""The money invariants at the command line: `ledger record` refuses with exit 3 and the
reason, `ledger ingest` names each refused line and records the rest, a refund before its
order waits (`ledger waiting`, `ledger status`) and the read models count it once the order
arrives. On SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ledger.cli.main import app
from tests.support.cli import StrictRunner

runner = StrictRunner()
STORE_COMMANDS = {"record", "ingest", "status", "waiting"}


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def cli(request: pytest.FixtureRequest, settings_for_store: Any, tmp_path: Path) -> Any:
    """`ledger ...` on each store, with a data directory of its own."""
    store = settings_for_store(request.param)

    def run(*args: str) -> Any:
        extra = ["--store", store] if store and args[0] in STORE_COMMANDS else []
        return runner.invoke(app, [*args, "--data-dir", str(tmp_path / "data"), *extra])

    return run


def purchase(n: int, **fields: Any) -> dict[str, Any]:
    return {"type": "PurchaseMade", "customer_id": "C1", "occurred_at": "2026-03-03T10:00:00Z", "source": "shop",
            "source_event_id": f"o{n}", "order_id": f"O{n}", "channel": "web", "currency": "EUR",
            "total_minor": 1000, **fields}


def refund(n: int, order: str, amount: int, **fields: Any) -> dict[str, Any]:
    return {"type": "PurchaseRefunded", "customer_id": "C1", "occurred_at": "2026-03-04T10:00:00Z",
            "source": "shop", "source_event_id": f"r{n}", "order_id": order, "currency": "EUR",
            "amount_minor": amount, **fields}


def query(cli: Any, sql: str) -> list[dict[str, Any]]:
    return json.loads(cli("query", sql, "--json").stdout)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (purchase(2, lines=[{"sku": "A", "quantity": 2, "unit_price_minor": 999}], total_minor=2000),
         "refused: total_minor: lines sum to 1,998, total_minor is 2,000"),
        (purchase(2, order_id="O1"), "refused: order_id: order 'O1' was already recorded for customer 'C1'"),
        (refund(1, "O1", 100, currency="USD"), "refused: currency: USD is not the currency of order 'O1' (EUR)"),
        (refund(1, "O1", 1001), "refused: amount_minor: 1,001 exceeds what is left of order 'O1' (1,000 of 1,000 EUR)"),
    ],
)
def test_record_refuses_a_fact_breaking_a_money_invariant_with_exit_3_and_records_the_next(
    cli: Any, bad: dict[str, Any], message: str
) -> None:
    assert cli("record", json.dumps(purchase(1)), "--no-project").exit_code == 0

    refused = cli("record", json.dumps(bad), "--no-project")
    good = cli("record", json.dumps(refund(9, "O1", 400)))

    assert refused.exit_code == 3
    assert refused.stderr.startswith(message), refused.stderr
    assert good.exit_code == 0 and good.stdout.startswith("PurchaseRefunded ")
    assert query(cli, "SELECT order_id, refunded_minor FROM orders") == [{"order_id": "O1", "refunded_minor": 400}]


def test_ingest_names_each_line_breaking_a_money_invariant_and_records_the_rest(cli: Any, tmp_path: Path) -> None:
    rows = [purchase(1), purchase(2, lines=[{"sku": "A", "quantity": 3, "unit_price_minor": 100}]),
            refund(1, "O1", 100, currency="GBP"), refund(2, "O1", 700), refund(3, "O1", 400), refund(4, "O1", 300),
            purchase(3, order_id="O1")]
    path = tmp_path / "facts.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))

    done = cli("ingest", str(path))

    assert done.exit_code == 3
    assert [line.split(": ")[1] for line in done.stderr.splitlines() if line.startswith(f"{path}:")] == [
        "total_minor", "currency", "amount_minor", "order_id"]
    assert f"{path}:2: total_minor: lines sum to 300, total_minor is 1,000" in done.stderr
    assert f"{path}:5: amount_minor: 400 exceeds what is left of order 'O1' (300 of 1,000 EUR)" in done.stderr
    assert "2 recorded" not in done.stderr and "3 recorded, 0 duplicates, 4 rejected" in done.stderr
    assert query(cli, "SELECT refunded_minor FROM orders") == [{"refunded_minor": 1000}]


def test_a_refund_before_its_order_waits_and_is_counted_once_the_order_arrives(cli: Any, tmp_path: Path) -> None:
    early = cli("record", json.dumps(refund(1, "O7", 250)))
    assert early.exit_code == 0 and early.stdout.startswith("waiting for order O7: PurchaseRefunded ")
    listed = json.loads(cli("waiting", "--json").stdout)
    assert [(r["order_id"], r["status"], r["source_event_id"]) for r in listed] == [("O7", "waiting", "r1")]
    status = json.loads(cli("status", "--json").stdout)
    assert status["waiting_facts"] == 1 and "oldest_waiting_since" in status
    assert query(cli, "SELECT count(*) AS n FROM events") == [{"n": 0}]

    path = tmp_path / "late.jsonl"
    path.write_text(json.dumps(purchase(7)) + "\n" + json.dumps(refund(2, "O8", 50)) + "\n")
    done = cli("ingest", str(path))

    assert done.exit_code == 0, done.stderr
    assert "1 recorded, 0 duplicates, 1 waiting for their order, 0 rejected" in done.stderr
    assert query(cli, "SELECT order_id, refunded_minor, net_minor FROM orders") == [
        {"order_id": "O7", "refunded_minor": 250, "net_minor": 750}]
    assert query(cli, "SELECT purchased_minor, refunded_minor FROM customer_spend") == [
        {"purchased_minor": 1000, "refunded_minor": 250}]
    assert [r["order_id"] for r in json.loads(cli("waiting", "--json").stdout)] == ["O8"]


def test_a_waiting_refund_rejected_when_its_order_comes_is_listed_with_its_reason(cli: Any) -> None:
    cli("record", json.dumps(refund(1, "O1", 5000)), "--no-project")
    cli("record", json.dumps(purchase(1)), "--no-project")

    table = cli("waiting")
    (listed,) = json.loads(cli("waiting", "--json").stdout)
    status = json.loads(cli("status", "--json").stdout)

    assert table.exit_code == 0 and "rejected" in table.stdout
    assert listed["status"] == "rejected"
    assert listed["reason"] == "amount_minor: 5,000 exceeds what is left of order 'O1' (1,000 of 1,000 EUR)"
    assert status["waiting_facts"] == 0 and status["waiting_rejected"].startswith("1 ")
