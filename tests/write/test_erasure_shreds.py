"""Erasing a customer leaves no byte of their personal data anywhere the ledger keeps data.

A customer, C1, has a marker in every personal field (the schemas' ``"pii": true``) of every
event type that has one; another, C2, has markers of its own. Everything goes through the
`ledger` command, on the embedded SQLite store and on PostgreSQL: personal data is sealed in the
store, opened in the read models and in `ledger audit`; once C1 is erased, no file of the data
directory and no row of the store holds one of C1's markers, C1's events still count, C2's
data still reads back, and a replay gives the same timeline.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest

from ledger.cli.main import app
from ledger.contract.facts import to_record
from ledger.settings import Settings
from ledger.write.application import Ledger
from ledger.write.erasure import erase
from ledger.write.recorders import fingerprint
from tests.support.cli import StrictRunner
from tests.support.facts import NOW, fact
from tests.support.privacy import (
    MarkedHistory,
    as_sent,
    files_holding,
    found_in,
    marked_history,
    opened,
    personal_columns,
    write_jsonl,
)
from tests.support.stores import POSTGRES

runner = StrictRunner()
PERSONAL = sorted(personal_columns())


@dataclass
class Erased:
    """A data directory (and store) where C1 was erased, with what was seen before."""

    kind: str
    data: Path
    store: str | None
    c1: MarkedHistory
    c2: MarkedHistory
    before: dict[str, Any] = field(default_factory=dict)

    def run(self, *args: str) -> Any:
        extra = ["--store", self.store] if self.store and args[0] != "query" else []
        return runner.invoke(app, [*args, "--data-dir", str(self.data), *extra])

    def ok(self, *args: str) -> Any:
        result = self.run(*args)
        assert result.exit_code == 0, (args, result.stdout, result.stderr)
        return result

    def query(self, sql: str) -> list[dict[str, Any]]:
        return json.loads(self.ok("query", sql, "--json").stdout)

    def audit(self, customer_id: str) -> dict[str, Any]:
        return json.loads(self.ok("audit", customer_id).stdout)

    def store_dump(self) -> bytes:
        """Every byte the store holds, as the store shows it."""
        if self.store is None:
            return b"".join(p.read_bytes() for p in sorted(self.data.glob("store.sqlite*")) if p.is_file())
        schema = self.store.split("schema=")[1]
        if shutil.which("pg_dump"):
            dumped = subprocess.run(["pg_dump", "--schema", schema, "--data-only", POSTGRES],
                                    capture_output=True, timeout=60)
            assert dumped.returncode == 0, dumped.stderr
            return dumped.stdout
        with psycopg.connect(POSTGRES) as connection:
            tables = [r[0] for r in connection.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", [schema])]
            return "\n".join(str(row) for table in tables for row in connection.execute(
                f'SELECT t::text FROM "{schema}"."{table}" t')).encode()

    def key_owners(self) -> set[str]:
        """The customers whose data key the store's key table (``*_keys``: one per store) keeps."""
        if self.store is None:
            with closing(sqlite3.connect(f"file:{self.data / 'store.sqlite'}?mode=ro", uri=True)) as connection:
                (table,) = [r[0] for r in connection.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE '%\\_keys' ESCAPE '\\'")]
                return {r[0] for r in connection.execute(f'SELECT customer_id FROM "{table}"')}
        schema = self.store.split("schema=")[1]
        with psycopg.connect(POSTGRES) as connection:
            (table,) = [r[0] for r in connection.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s "
                "AND table_name LIKE '%%\\_keys'", [schema])]
            return {r[0] for r in connection.execute(f'SELECT customer_id FROM "{schema}"."{table}"')}


def timeline(erased: Erased, customer_id: str) -> list[dict[str, Any]]:
    return erased.query(f"SELECT * FROM events WHERE customer_id = '{customer_id}' ORDER BY event_id")


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def erased(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Erased]:
    schema = f"test_{uuid.uuid4().hex[:12]}"
    store = f"{POSTGRES}?schema={schema}" if request.param == "postgresql" else None
    root = tmp_path_factory.mktemp(f"erasure-{request.param}")
    c1, c2 = marked_history("C1"), marked_history("C2")
    case = Erased(request.param, root / "data", store, c1, c2)
    try:
        case.ok("ingest", str(write_jsonl(root / "facts.jsonl", c1.facts + c2.facts)))
        case.before = {
            "store": case.store_dump(),
            "files": files_holding(case.data, c1.texts),
            "c1_timeline": timeline(case, "C1"),
            "c1_audit": case.audit("C1"),
            "key_owners": case.key_owners(),
        }
        case.ok("erase", "C1")
        yield case
    finally:
        if store is not None:
            with psycopg.connect(POSTGRES, autocommit=True) as connection:
                connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def test_personal_data_is_sealed_in_the_store_and_opened_in_the_read_models(erased: Erased) -> None:
    stored = erased.before["store"]
    assert found_in(stored, erased.c1.plain_texts + erased.c2.plain_texts) == erased.c1.plain_texts + \
        erased.c2.plain_texts, "the scan must see what the store keeps in clear, or it proves nothing"
    assert found_in(stored, erased.c1.texts + erased.c2.texts) == []

    shown = json.dumps(erased.before["c1_timeline"], ensure_ascii=False)
    assert [t for t in erased.c1.texts if t not in shown] == []
    assert [d for d in erased.c1.dates if d.isoformat() not in shown] == []
    assert set(erased.before["files"].get("readmodels.published.duckdb", [])) == set(erased.c1.texts), \
        "the read models hold C1's personal data in clear before the erasure (the scan below sees it)"


def test_after_erasure_no_file_of_the_data_directory_holds_a_byte_of_the_customers_personal_data(
    erased: Erased,
) -> None:
    assert files_holding(erased.data, erased.c1.texts) == {}
    assert {p.name for p in erased.data.iterdir()} >= {"readmodels.duckdb", "readmodels.published.duckdb"}


def test_after_erasure_the_store_holds_no_byte_of_the_customers_personal_data_nor_their_key(
    erased: Erased,
) -> None:
    assert found_in(erased.store_dump(), erased.c1.texts) == []
    assert erased.before["key_owners"] == {"C1", "C2"}
    assert erased.key_owners() == {"C2"}


def test_other_customers_personal_data_still_reads_back_after_an_erasure(erased: Erased) -> None:
    shown = json.dumps(timeline(erased, "C2"), ensure_ascii=False)
    assert [t for t in erased.c2.texts if t not in shown] == []
    assert [d for d in erased.c2.dates if d.isoformat() not in shown] == []
    audit = erased.audit("C2")
    assert audit["erased"] is False
    assert opened(audit, erased.c2) == as_sent(erased.c2)


def test_an_erased_customers_events_still_count_with_every_personal_column_null(erased: Erased) -> None:
    before = erased.before["c1_timeline"]
    after = timeline(erased, "C1")
    assert len(before) == len(erased.c1.facts)
    assert sorted(e["event_type"] for e in after) == sorted([e["event_type"] for e in before] + ["CustomerErased"])
    assert [(e["event_id"], {c: e[c] for c in PERSONAL if e[c] is not None}) for e in after] == \
        [(e["event_id"], {}) for e in after]
    unchanged = [{k: v for k, v in e.items() if k not in PERSONAL} for e in before]
    assert [{k: v for k, v in e.items() if k not in PERSONAL} for e in after if e["event_type"] != "CustomerErased"] \
        == unchanged
    profile = erased.query("SELECT erased, name, email, phone, city, purchases FROM customer_profile "
                           "WHERE customer_id = 'C1'")
    # two purchases: the order its refund is of, and the last fact of the history
    assert profile == [{"erased": True, "name": None, "email": None, "phone": None, "city": None, "purchases": 2}]


def test_audit_shows_every_event_with_its_personal_fields_opened_and_none_once_erased(erased: Erased) -> None:
    before = erased.before["c1_audit"]
    assert (before["customer_id"], before["erased"]) == ("C1", False)
    assert sorted(e["source_event_id"] for e in before["events"]) == \
        sorted(f["source_event_id"] for f in erased.c1.facts)
    assert opened(before, erased.c1) == as_sent(erased.c1)

    after = erased.audit("C1")
    assert (after["customer_id"], after["erased"]) == ("C1", True)
    assert [e["type"] for e in after["events"]] == [e["type"] for e in before["events"]] + ["CustomerErased"]
    assert [{c: e[c] for c in PERSONAL if e.get(c) is not None} for e in after["events"]] == \
        [{} for _ in after["events"]]
    assert found_in(json.dumps(after).encode(), erased.c1.texts) == []


def test_a_replay_after_an_erasure_gives_the_same_timeline_and_brings_nothing_back(erased: Erased) -> None:
    everything = "SELECT * FROM events ORDER BY event_id"
    before = erased.query(everything)
    erased.ok("replay")
    assert erased.query(everything) == before
    assert files_holding(erased.data, erased.c1.texts) == {}


def test_after_erasure_the_store_cannot_confirm_a_guess_of_the_customers_personal_data(tmp_path: Path) -> None:
    """A fact sent without a source_event_id is recognised again by a digest of what it says.
    A digest of personal data outlives the key unless it leaves out the personal fields (or
    is keyed by the customer's data key): whoever guesses a value could confirm it."""
    settings = Settings(data_dir=tmp_path / "data")
    ledger = Ledger(settings, clock=lambda: NOW)
    try:
        said = fact("FeedbackGiven", "C1", source_event_id=..., comment="my neighbour Bob was rude")
        recorded = ledger.record(said)
        erase(ledger, "C1")
        event_type, right = to_record({**said, "event_id": recorded.event_id}, NOW)
        _, wrong = to_record({**said, "event_id": recorded.event_id, "comment": "someone else"}, NOW)
        right_guess = fingerprint(ledger.codec.encode(event_type, right), ledger.codec)
        wrong_guess = fingerprint(ledger.codec.encode(event_type, wrong), ledger.codec)
    finally:
        ledger.close()
    # The digest the store keeps is the same whatever the personal data: it confirms no guess.
    assert right_guess == wrong_guess
    assert "my neighbour" not in settings.store_path.read_bytes().decode("latin-1")
