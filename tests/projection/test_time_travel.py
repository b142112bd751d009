"""Time travel: `--as-of T` gives every read model as of the event time T (late events that
happened by T included), `--known-at K` as the ledger knew it at K (events recorded by K).
Each answer equals what a projector gives from exactly those events, in a ledger of its own."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import duckdb
import pytest

from ledger.cli.main import app
from ledger.projection.publish import remove_abandoned_copies
from tests.support.cli import StrictRunner

COMPARED = ("customer_profile", "customer_spend", "orders", "lifecycle", "lifecycle_transitions", "rfm",
            "satisfaction_daily", "consent", "segments", "events")
T = "2026-02-15T00:00:00Z"


def fact(event_type: str, customer: str, at: str, n: str, **fields: object) -> dict[str, object]:
    return {"type": event_type, "customer_id": customer, "occurred_at": at, "source": "shop", "source_event_id": n,
            **fields}


def purchase(customer: str, at: str, n: str, total: int) -> dict[str, object]:
    return fact("PurchaseMade", customer, at, n, order_id=f"o-{n}", currency="EUR", total_minor=total, channel="web")


FIRST = [
    fact("CustomerRegistered", "C1", "2026-01-02T09:00:00Z", "r1", name="Ann", email="ann@example.com"),
    fact("ConsentChanged", "C1", "2026-01-02T09:00:00Z", "k1", purpose="profiling", granted=True),
    purchase("C1", "2026-01-10T12:00:00Z", "p1", 5000),
    fact("CustomerRegistered", "C2", "2026-02-01T09:00:00Z", "r2", name="Bob"),
    fact("FeedbackGiven", "C2", "2026-02-02T10:00:00Z", "f1", kind="nps", score=3, channel="email"),
]
LATE = [  # recorded later; the first two happened before T
    purchase("C1", "2026-01-20T12:00:00Z", "p2", 7000),
    fact("ContactLogged", "C2", "2026-02-03T10:00:00Z", "c1", contact_id="c1", channel="phone",
         direction="inbound", is_complaint=True),
    purchase("C2", "2026-03-01T12:00:00Z", "p3", 9000),
    fact("PurchaseRefunded", "C1", "2026-03-02T12:00:00Z", "x1", order_id="o-p1", currency="EUR", amount_minor=5000),
    fact("CustomerErased", "C3", "2026-03-05T12:00:00Z", "e3"),  # after T, and recorded after K
]
EARLY_C3 = [
    fact("CustomerRegistered", "C3", "2026-01-03T09:00:00Z", "r3", name="Cid", email="cid@example.com"),
    fact("ConsentChanged", "C3", "2026-01-03T09:00:00Z", "k3", purpose="profiling", granted=True),
    purchase("C3", "2026-01-04T12:00:00Z", "p4", 99000),
]
FIRST = FIRST + EARLY_C3


def ledger(*args: str):
    result = StrictRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result


def record(data: Path, facts: list[dict[str, object]]) -> None:
    lines = data.parent / f"{data.name}-{len(facts)}.jsonl"
    lines.write_text("".join(json.dumps(f) + "\n" for f in facts), encoding="utf-8")
    ledger("ingest", str(lines), "--data-dir", str(data))


def tables(data: Path, *flags: str) -> dict[str, list[dict[str, object]]]:
    """Every compared table's rows, as `ledger query --json` gives them, all in one query: with
    --as-of or --known-at each query builds its own time-travel copy, so one query, not one per
    table. Each table is a column holding the list of its rows; rows are sorted here, which
    compares them as the `ORDER BY ALL` of one query per table did."""
    skip = {"recorded_at", "event_id", "as_of"}
    with duckdb.connect(str(data / "readmodels.published.duckdb"), read_only=True) as con:
        columns = {table: [c for (c,) in con.execute(
            "SELECT column_name FROM duckdb_columns() WHERE table_name = ? ORDER BY column_index", [table]).fetchall()
            if c not in skip] for table in COMPARED}
    selects = [f'(SELECT list(t) FROM (SELECT {", ".join(chr(34) + c + chr(34) for c in columns[table])} '
               f'FROM {table}) AS t) AS "{table}"' for table in COMPARED]
    sql = "SELECT " + ", ".join(selects)
    (row,) = json.loads(ledger("query", sql, "--json", "--data-dir", str(data), *flags).stdout)
    return {table: sorted(row[table] or [], key=lambda r: json.dumps(r, sort_keys=True)) for table in COMPARED}


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    data = tmp_path_factory.mktemp("travel") / "data"
    record(data, FIRST)
    with duckdb.connect(str(data / "readmodels.published.duckdb"), read_only=True) as con:
        (known,) = con.execute("SELECT max(recorded_at) FROM events").fetchone()
    record(data, LATE)
    return data, known.isoformat() + "Z"


def truth(tmp_path: Path, facts: list[dict[str, object]], when: str) -> dict[str, list[dict[str, object]]]:
    """The read models of a ledger that only ever recorded `facts`, replayed as of `when`."""
    data = tmp_path / "truth"
    record(data, facts)
    ledger("replay", "--as-of", when, "--data-dir", str(data))
    return tables(data)


def occurred_by(when: str, facts: list[dict[str, object]]) -> list[dict[str, object]]:
    return [f for f in facts if str(f["occurred_at"]) <= when]


def with_erasures(facts: list[dict[str, object]]) -> list[dict[str, object]]:
    """Erasure is final at every time: time travel keeps every CustomerErased."""
    return facts + [f for f in FIRST + LATE if f["type"] == "CustomerErased" and f not in facts]


def test_as_of_gives_every_model_from_the_events_that_happened_by_then(history, tmp_path: Path) -> None:
    data, _ = history
    travelled = tables(data, "--as-of", T)
    assert travelled == truth(tmp_path, with_erasures(occurred_by(T, FIRST + LATE)), T)
    spend = {r["customer_id"]: r["purchased_minor"] for r in travelled["customer_spend"]}
    assert spend == {"C1": 12000, "C3": 99000}  # the late January purchase counts, March's does not
    assert sum(r["complaints"] for r in travelled["satisfaction_daily"]) == 1


def test_known_at_gives_the_ledger_as_it_knew_it_then(history, tmp_path: Path) -> None:
    data, known = history
    travelled = tables(data, "--known-at", known)
    assert travelled == truth(tmp_path, with_erasures(FIRST), known)
    assert {r["customer_id"]: r["purchased_minor"] for r in travelled["customer_spend"]} == {"C1": 5000, "C3": 99000}
    assert sum(r["contacts"] for r in travelled["satisfaction_daily"]) == 0


def test_both_together_take_what_had_happened_by_t_and_was_known_by_k(history, tmp_path: Path) -> None:
    data, known = history
    travelled = tables(data, "--as-of", T, "--known-at", known)
    assert travelled == truth(tmp_path, with_erasures(occurred_by(T, FIRST)), T)


def test_as_of_after_the_last_event_equals_the_published_models_refreshed_then(history, tmp_path: Path) -> None:
    data, _ = history
    later = "2026-06-01T00:00:00Z"
    assert tables(data, "--as-of", later) == truth(tmp_path, FIRST + LATE, later)


def test_a_customer_erased_later_is_erased_at_every_time(history) -> None:
    data, known = history
    for flags in (("--as-of", T), ("--known-at", known), ("--as-of", "2026-01-05T00:00:00Z")):
        answer = json.loads(ledger(
            "query", "SELECT (SELECT count(*) FROM consent WHERE customer_id = 'C3' AND granted) AS consents, "
            "(SELECT count(*) FROM rfm WHERE customer_id = 'C3' AND r_score IS NOT NULL) AS scored, "
            "(SELECT count(*) FROM segment_membership WHERE customer_id = 'C3') AS stays, "
            "(SELECT any_value(name) FROM customer_profile WHERE customer_id = 'C3') AS name, "
            "(SELECT any_value(erased) FROM customer_profile WHERE customer_id = 'C3') AS erased",
            "--json", "--data-dir", str(data), *flags).stdout)
        assert answer == [{"consents": 0, "scored": 0, "stays": 0, "name": None, "erased": True}], flags


def test_time_travel_leaves_the_published_copy_and_no_scratch_behind(history) -> None:
    data, known = history
    before = (data / "readmodels.published.duckdb").read_bytes()
    ledger("query", "SELECT count(*) FROM events", "--known-at", known, "--as-of", T, "--data-dir", str(data))
    assert (data / "readmodels.published.duckdb").read_bytes() == before
    assert not [p for p in data.iterdir() if p.name.startswith(".as-of-")]


@pytest.mark.parametrize("flag", ["--as-of", "--known-at"])
def test_a_time_that_is_not_one_is_refused_naming_the_flag(history, flag: str) -> None:
    data, _ = history
    result = StrictRunner().invoke(app, ["query", "SELECT 1", flag, "yesterday-ish", "--data-dir", str(data)])
    assert result.exit_code == 2 and flag in result.stderr


def test_copies_left_by_a_killed_reader_are_swept_from_the_system_temporary_folder(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    left = Path(tempfile.mkdtemp(prefix=f"ledger.as-of-{dead.pid}-"))
    (left / "readmodels.published.duckdb").write_bytes(b"personal data of a customer erased since")
    mine = Path(tempfile.mkdtemp(prefix=f"ledger.as-of-{os.getpid()}-"))
    try:
        remove_abandoned_copies(tmp_path)
        assert not left.exists() and mine.exists()
    finally:
        shutil.rmtree(mine, ignore_errors=True)
