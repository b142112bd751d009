"""Analysts read, never write: `ledger query` runs one read statement on a sandboxed
connection, whatever the SQL tries, and a timeout or Ctrl-C stops it."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from ledger.cli.main import app
from ledger.errors import QueryRefusedError, ReadModelError
from ledger.projection.query import query
from tests.support.cli import StrictRunner

CONTACT = {
    "type": "ContactLogged", "customer_id": "root:x:0 [red]C1[/] [/ :smile:", "occurred_at": "2026-01-05T10:00:00Z",
    "source": "desk", "contact_id": "k1", "channel": "phone", "direction": "inbound",
}


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("sandbox") / "data"
    assert StrictRunner().invoke(app, ["record", json.dumps(CONTACT), "--data-dir", str(data)]).exit_code == 0
    return data


def fingerprints(data: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(data.iterdir()) if p.is_file()}


WRITES = [
    "COPY (SELECT 1) TO '{data}/store.sqlite'",
    "COPY events TO '{data}/out.csv'",
    "EXPORT DATABASE '{data}/export'",
    "ATTACH '{data}/readmodels.duckdb' AS w",
    "DELETE FROM events",
    "UPDATE customer_profile SET name = 'x'",
    "CREATE TABLE t AS SELECT 1",
    "DROP TABLE events",
    "SET enable_external_access = true",
    "INSTALL httpfs",
    "LOAD httpfs",
    "CHECKPOINT",
    "PRAGMA enable_profiling",
    "SELECT 1; DELETE FROM events",
    "EXPLAIN ANALYZE DELETE FROM events",
    "EXPLAIN ANALYZE COPY (SELECT 1) TO '{data}/x.csv'",
    "-- a comment first\nEXPLAIN (FORMAT json) SET enable_external_access = true",
    "/* a comment */ PRAGMA enable_profiling",
    "/* /* */ x table_info( */ PRAGMA enable_profiling",
    "/* /* */ x table_info( */ PRAGMA add_parquet_key('k', '0123456789112345')",
    "CALL checkpoint()",
    "",
    "   ;  ",
]


@pytest.mark.parametrize("sql", WRITES)
def test_anything_but_one_read_statement_is_refused_before_it_runs(data: Path, sql: str) -> None:
    before = fingerprints(data)
    with pytest.raises(QueryRefusedError) as refused:
        query(data / "readmodels.published.duckdb", sql.format(data=data))
    assert refused.value.exit_code == 2
    assert fingerprints(data) == before


FILES = [
    "SELECT * FROM read_text('/etc/passwd')",
    "SELECT * FROM read_blob('/etc/passwd')",
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM glob('/etc/*')",
    "SELECT * FROM '{data}/store.sqlite'",
    "SELECT * FROM query('COPY (SELECT 1) TO ''{data}/x.csv''')",
    "SELECT * FROM read_parquet('{data}/*.parquet')",
]


@pytest.mark.parametrize("sql", FILES)
def test_a_read_statement_cannot_reach_any_file(data: Path, sql: str) -> None:
    before = fingerprints(data)
    with pytest.raises(ReadModelError):
        query(data / "readmodels.published.duckdb", sql.format(data=data))
    assert fingerprints(data) == before


@pytest.mark.parametrize(
    "sql", ["SELECT count(*) FROM events", "WITH e AS (FROM events) SELECT count(*) FROM e", "FROM events",
            "DESCRIBE events", "SHOW TABLES", "SUMMARIZE events", "EXPLAIN SELECT 1", "EXPLAIN ANALYZE SELECT 1",
            "PRAGMA table_info('events')", "PRAGMA version", "VALUES (1)"],
)
def test_read_statements_run(data: Path, sql: str) -> None:
    columns, rows = query(data / "readmodels.published.duckdb", sql)
    assert columns and rows


def test_a_query_past_its_timeout_is_stopped_with_a_clear_error(data: Path) -> None:
    endless = "SELECT count(*) FROM range(100000000000) a, range(100000000000) b"
    with pytest.raises(ReadModelError, match=r"query took longer than 0.2 s and was stopped"):
        query(data / "readmodels.published.duckdb", endless, timeout_s=0.2)
    refused = StrictRunner().invoke(app, ["query", endless, "--timeout", "0.2", "--data-dir", str(data)])
    assert refused.exit_code == 1 and "took longer than 0.2 s" in refused.stderr


def test_ctrl_c_stops_a_running_query(data: Path) -> None:
    """SIGINT reaches the query: the command ends (130, no traceback) instead of running on."""
    endless = "SELECT count(*) FROM range(100000000000) a, range(100000000000) b"
    process = subprocess.Popen(
        [sys.executable, "-c", "import signal, threading, os, sys\n"
         "from ledger.cli.main import app\n"
         "threading.Timer(1.0, lambda: os.kill(os.getpid(), signal.SIGINT)).start()\n"
         f"sys.argv = ['ledger', 'query', {endless!r}, '--data-dir', {str(data)!r}]\n"
         "app()"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    _, stderr = process.communicate(timeout=120)
    assert process.returncode in (1, 130), stderr
    assert "Traceback" not in stderr


def test_a_value_python_cannot_hold_is_an_error_not_a_traceback(data: Path) -> None:
    refused = StrictRunner().invoke(app, ["query", "SELECT INTERVAL '2147483647 months' AS i", "--data-dir", str(data)])
    assert refused.exit_code == 1 and "a value in the result cannot be shown" in refused.stderr


def test_a_query_too_big_for_memory_never_spills_into_the_data_directory(data: Path) -> None:
    _, [(spill_to,)] = query(data / "readmodels.published.duckdb", "SELECT current_setting('temp_directory')")
    assert spill_to == ""
