"""The read models in a DuckLake on the local PostgreSQL (`projection.store = ducklake`).

Through the `ledger` command, as an operator runs it: the projector publishes every read model
into the lake, and every reader (query, as-of, export, status, models) reads the lake and finds
the rows the projector's own file holds; analysts' SQL on the lake reaches nothing past it; an
erased customer's data leaves every file of the lake with the publish that follows the erasure.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import psycopg
import pytest

from ledger.errors import ReadModelError
from ledger.projection import lake
from ledger.projection.export import analyst_tables
from ledger.settings import Settings
from ledger.write.application import Ledger
from tests.ops.test_following import CountingClock, following, wait_until
from tests.support.facts import NOW, FactFactory
from tests.support.lakes import SERVER, new_catalog
from tests.support.privacy import MarkedHistory, as_json, ledger_process, marked_history, write_jsonl


class LakeLedger:
    """`ledger` commands on one data directory whose read models go into the lake."""

    def __init__(self, data: Path, catalog: str):
        self.data, self.env = data, {"LEDGER_READMODEL_STORE": "ducklake", "LEDGER_LAKE_CATALOG": catalog}
        self.settings = Settings(data_dir=data, readmodel_store="ducklake", lake_catalog=catalog)

    def run(self, *args: str) -> Any:
        return ledger_process(*args, "--data-dir", str(self.data), env=self.env)

    def ok(self, *args: str) -> str:
        done = self.run(*args)
        assert done.returncode == 0, (args, done.stdout, done.stderr)
        return done.stdout

    def rows(self, sql: str) -> list[dict[str, Any]]:
        return json.loads(self.ok("query", sql, "--json"))

    def differences(self) -> dict[str, tuple[int, int]]:
        """Tables whose rows in the lake differ from the projector's file: (rows only in the
        lake, rows only in the file)."""
        con = duckdb.connect()
        try:
            lake.attach(con, self.settings, read_only=True)
            con.execute(f"ATTACH '{self.data / 'readmodels.duckdb'}' AS work (READ_ONLY)")
            con.execute("USE work")
            tables = analyst_tables(con)
            found = {}
            for table in tables:
                counts = tuple(con.execute(
                    f'SELECT count(*) FROM (FROM {a}.main."{table}" EXCEPT ALL FROM {b}.main."{table}")'
                ).fetchall()[0][0] for a, b in (("lake", "work"), ("work", "lake")))
                if counts != (0, 0):
                    found[table] = counts
            assert "customer_profile" in tables and "satisfaction_monthly" in tables
            return found
        finally:
            con.close()


@pytest.fixture
def lake_ledger(tmp_path: Path) -> Iterator[LakeLedger]:
    """A demo of 60 customers published into a lake of its own, for a test that changes it."""
    with new_catalog() as catalog:
        ledger = LakeLedger(tmp_path / "data", catalog)
        ledger.ok("demo", "--customers", "60", "--seed", "3")
        yield ledger


@pytest.fixture(scope="module")
def read_only_lake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LakeLedger]:
    """The same, shared by the tests that only read it."""
    with new_catalog() as catalog:
        ledger = LakeLedger(tmp_path_factory.mktemp("lake") / "data", catalog)
        ledger.ok("demo", "--customers", "60", "--seed", "3")
        yield ledger


def test_every_read_model_published_into_the_lake_holds_the_rows_of_the_projectors_file(
    lake_ledger: LakeLedger,
) -> None:
    assert lake_ledger.differences() == {}
    assert not (lake_ledger.data / "readmodels.published.duckdb").exists()  # readers have the lake
    profiles = lake_ledger.rows("SELECT count(*) AS n FROM customer_profile")
    assert profiles == [{"n": 60}]
    # The next publish writes what changed, and the lake still equals the file.
    history = marked_history("C-LAKE")
    lake_ledger.ok("ingest", str(write_jsonl(lake_ledger.data.parent / "more.jsonl", history.facts)))
    assert lake_ledger.differences() == {}
    assert lake_ledger.rows("SELECT count(*) AS n FROM customer_profile") == [{"n": 61}]


def test_readers_on_the_lake_answer_as_they_do_on_the_file(read_only_lake: LakeLedger, tmp_path: Path) -> None:
    lake_ledger = read_only_lake
    status = json.loads(lake_ledger.ok("status", "--json"))
    assert status["read_models"].startswith("the lake postgresql://") and status["events"] > 0
    then = lake_ledger.rows("SELECT strftime(min(occurred_at) + INTERVAL 60 DAY, '%Y-%m-%dT%H:%M:%SZ') AS t, "
                            "count(*) AS n FROM events")[0]
    early = lake_ledger.rows(f"SELECT count(*) AS n FROM events WHERE occurred_at <= '{then['t'][:-1]}' "
                             "OR event_type = 'CustomerErased'")[0]["n"]  # an as-of copy keeps every erasure
    as_of = lake_ledger.ok("query", "SELECT count(*) AS n FROM events", "--json", "--as-of", then["t"])
    assert json.loads(as_of)[0]["n"] == early < then["n"]
    for read in ("DESCRIBE events", "SUMMARIZE customer_profile", "EXPLAIN SELECT count(*) FROM facts",
                 "SELECT * FROM satisfaction_rollup('month')"):
        lake_ledger.ok("query", read)
    lake_ledger.ok("export", "customer_profile", "lifecycle", "--to", str(tmp_path / "out"))
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["tables"]["customer_profile"]["rows"] == 60
    assert [t["table"] for t in json.loads(lake_ledger.ok("models", "lifecycle", "--json"))["tables"]] == ["lifecycle"]


@pytest.mark.parametrize("sql", [
    "SELECT * FROM postgres_scan('dbname=test host=127.0.0.1 user=postgres', 'public', 'x')",
    "SELECT * FROM postgres_query('__ducklake_metadata_lake', 'SELECT 1')",
    "SELECT * FROM query('SELECT 1')",
    "SELECT name, setting FROM __ducklake_metadata_lake.pg_catalog.pg_settings",
    "SELECT * FROM __ducklake_metadata_lake.ledger_lake.ducklake_data_file",
    "SELECT count(*) FROM 'LAKE/**/*.parquet'",
    "SELECT count(*) FROM amended_facts('LAKE/main/events/*.parquet')",
    "SELECT count(*) FROM customer_profile AT (VERSION => 1)",
    "SELECT * FROM lake.snapshots()",
    "EXPLAIN ANALYZE SELECT * FROM postgres_scan('dbname=test host=127.0.0.1 user=postgres', 'public', 'x')",
    "SUMMARIZE SELECT * FROM \"postgres_scan\"('dbname=test host=127.0.0.1 user=postgres', 'public', 'x')",
    "SELECT count(*) FROM read_parquet('LAKE/**/*.parquet')",
    "SELECT * FROM glob('LAKE/**')",
    "SELECT * FROM ducklake_snapshots('lake')",
    "CALL ducklake_expire_snapshots('lake', older_than => now())",
    "ATTACH 'dbname=test host=127.0.0.1 user=postgres' AS pg (TYPE postgres)",
    "DELETE FROM customer_profile",
    "COPY customer_profile TO 'LAKE/../stolen.csv'",
])
def test_analysts_sql_on_the_lake_reaches_nothing_past_its_read_models(read_only_lake: LakeLedger, sql: str) -> None:
    lake_ledger = read_only_lake
    done = lake_ledger.run("query", sql.replace("LAKE", str(lake_ledger.settings.lake_data_path)))
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    assert lake_ledger.rows("SELECT count(*) AS n FROM customer_profile") == [{"n": 60}]


def _lake_texts(folder: Path, texts: list[str]) -> list[str]:
    """The texts of `texts` that any file of the lake holds: Parquet files read as tables (their
    pages are compressed), every other file as bytes."""
    found: set[str] = set()
    con = duckdb.connect()
    for path in (p for p in folder.rglob("*") if p.is_file()):
        if path.suffix == ".parquet":
            rows = str(con.execute(f"SELECT * FROM read_parquet('{path}')").fetchall())
        else:
            rows = path.read_bytes().decode("utf-8", "replace")
        found.update(t for t in texts if t in rows)
    return sorted(found)


def _catalog_texts(catalog: str, texts: list[str]) -> list[str]:
    """The texts of `texts` that the lake's catalog holds anywhere (column statistics, say)."""
    with psycopg.connect(catalog) as con:
        tables = [t for (t,) in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", [lake.METADATA_SCHEMA])]
        dump = "".join(str(con.execute(f'SELECT * FROM {lake.METADATA_SCHEMA}."{t}"').fetchall()) for t in tables)
    assert "ducklake_snapshot" in tables
    return sorted(t for t in texts if t in dump)


def _sorting_last(history: MarkedHistory) -> MarkedHistory:
    """`history` with every personal text made to sort after any other: the greatest value of
    its column, which DuckLake keeps in the catalog as that column's maximum."""
    facts = json.dumps(history.facts, default=as_json)
    for text in history.texts:
        facts = facts.replace(text, f"zzz{text}")
    history.facts, history.texts = json.loads(facts), [f"zzz{t}" for t in history.texts]
    return history


def test_an_erased_customers_personal_data_leaves_every_file_of_the_lake(lake_ledger: LakeLedger) -> None:
    c1, c2 = _sorting_last(marked_history("C1")), marked_history("C2")
    lake_ledger.ok("ingest", str(write_jsonl(lake_ledger.data.parent / "marked.jsonl", c1.facts + c2.facts)))
    folder = lake_ledger.settings.lake_data_path
    assert _lake_texts(folder, c1.texts)  # the check can see them: opened in the read models
    assert _catalog_texts(lake_ledger.env["LEDGER_LAKE_CATALOG"], c1.texts)  # column statistics hold some
    lake_ledger.ok("erase", "C1")
    assert _lake_texts(folder, c1.texts) == []
    assert _catalog_texts(lake_ledger.env["LEDGER_LAKE_CATALOG"], c1.texts) == []
    assert _lake_texts(folder, c2.texts)  # nobody else forgotten
    assert lake_ledger.differences() == {}
    assert lake_ledger.rows("SELECT erased FROM customer_profile WHERE customer_id = 'C1'") == [{"erased": True}]


def test_a_reader_keeps_the_snapshot_it_began_on_while_a_publish_replaces_the_tables(
    lake_ledger: LakeLedger,
) -> None:
    reader = duckdb.connect()
    lake.attach(reader, lake_ledger.settings, read_only=True)
    reader.execute("BEGIN")
    before = reader.execute("SELECT count(*) FROM lake.customer_profile").fetchall()
    lake_ledger.ok("ingest", str(write_jsonl(lake_ledger.data.parent / "more.jsonl", marked_history("C9").facts)))
    assert reader.execute("SELECT count(*) FROM lake.customer_profile").fetchall() == before == [(60,)]
    reader.execute("COMMIT")
    assert reader.execute("SELECT count(*) FROM lake.customer_profile").fetchall() == [(61,)]


def test_a_lake_that_cannot_be_reached_is_named_and_a_password_in_its_url_refused(tmp_path: Path) -> None:
    ledger = LakeLedger(tmp_path / "data", "postgresql://postgres@127.0.0.1:1/nowhere")
    done = ledger.run("demo", "--customers", "5")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "cannot open the lake (catalog 'postgresql://***@127.0.0.1:1/nowhere'" in done.stderr
    done = ledger.run("status")  # the events are recorded: a lake out of reach is said, not "not built yet"
    assert done.returncode == 1 and "cannot open the lake" in done.stderr and "not built yet" not in done.stdout
    # A password would show to every reader as the lake's attached path: libpq's password file has it.
    done = ledger_process("status", "--data-dir", str(tmp_path / "data"), env={
        "LEDGER_READMODEL_STORE": "ducklake", "LEDGER_LAKE_CATALOG": "postgresql://postgres:s3cret@127.0.0.1/x"})
    assert done.returncode == 2 and "~/.pgpass" in done.stderr and "s3cret" not in done.stderr + done.stdout


def _lake_events(settings: Settings) -> int | None:
    """How many events the lake holds, or None while it cannot be read (or holds nothing yet)."""
    con = duckdb.connect()
    try:
        lake.attach(con, settings, read_only=True)
        return con.execute("SELECT count(*) FROM lake.events").fetchall()[0][0]
    except (duckdb.Error, ReadModelError):
        return None
    finally:
        con.close()


def test_a_following_projector_waits_for_a_lake_it_cannot_reach_and_publishes_once_it_can(
    tmp_path: Path, fact: FactFactory
) -> None:
    name = f"lake_{uuid.uuid4().hex[:12]}"
    settings = Settings(data_dir=tmp_path, readmodel_store="ducklake", lake_catalog=f"{SERVER}/{name}",
                        refresh_idle_s=3600)
    ledger = Ledger(settings, clock=lambda: NOW)
    ledger.record_many([fact("ContactLogged", customer_id="C1")])
    clock = CountingClock()
    try:
        with following(settings, ledger, clock):
            clock.wait_for_rounds(3)  # each publishes into a catalog database that does not exist
            assert _lake_events(settings) is None
            with psycopg.connect(f"{SERVER}/test", autocommit=True) as con:
                con.execute(f"CREATE DATABASE {name}")
            wait_until(lambda: _lake_events(settings) == 1, clock)
            ledger.record_many([fact("ContactLogged", customer_id="C2")])
            wait_until(lambda: _lake_events(settings) == 2, clock)
    finally:
        ledger.close()
        with psycopg.connect(f"{SERVER}/test", autocommit=True) as con:
            con.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
