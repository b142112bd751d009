"""`ledger export` writes the read models as files from one snapshot, with a manifest that
says how many rows each file holds and which ledger position they reflect."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from ledger.cli.main import app
from ledger.projection.catalogue import BOOKKEEPING_TABLES
from tests.support.cli import StrictRunner


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("export") / "data"
    result = StrictRunner().invoke(app, ["demo", "--customers", "30", "--seed", "5", "--data-dir", str(data)])
    assert result.exit_code == 0, result.output
    return data


def ledger(data: Path, *args: str):
    return StrictRunner().invoke(app, ["export", *args, "--data-dir", str(data)])


def published(data: Path) -> duckdb.DuckDBPyConnection:
    return duckdb.connect(str(data / "readmodels.published.duckdb"), read_only=True)


def test_every_read_model_is_exported_as_parquet_equal_to_its_table(data: Path, tmp_path: Path) -> None:
    result = ledger(data, "--to", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    with published(data) as con:
        tables = {n for (n,) in con.execute(
            "SELECT table_name FROM duckdb_tables() UNION SELECT view_name FROM duckdb_views() WHERE NOT internal"
        ).fetchall()}
        assert set(manifest["tables"]) == tables - BOOKKEEPING_TABLES
        for table, entry in manifest["tables"].items():
            read_back = pq.read_table(tmp_path / "out" / entry["file"])
            assert read_back.num_rows == entry["rows"], table
            if table != "ledger_position":  # its `age` is now() minus the publish time
                expected = con.execute(f"SELECT * FROM {table} ORDER BY ALL").fetchall()
                written = duckdb.execute(
                    "SELECT * FROM read_parquet(?) ORDER BY ALL", [str(tmp_path / "out" / entry["file"])]
                ).fetchall()
                assert written == expected, table
        positions = con.execute("SELECT source, key, position FROM projector_positions").fetchall()
        state = dict(con.execute("SELECT key, value FROM projector_state").fetchall())
    assert [(p["source"], p["partition"], p["position"]) for p in manifest["positions"]] == positions
    assert manifest["as_of"] == state["as_of"] and manifest["published_at"] == state["published_at"]


def test_csv_export_of_chosen_tables_has_a_header_and_every_row(data: Path, tmp_path: Path) -> None:
    result = ledger(data, "lifecycle", "customer_spend", "--format", "csv", "--to", str(tmp_path))
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert sorted(manifest["tables"]) == ["customer_spend", "lifecycle"]
    rows = list(csv.reader((tmp_path / "lifecycle.csv").open()))
    with published(data) as con:
        assert rows[0] == [d[0] for d in con.execute("SELECT * FROM lifecycle LIMIT 0").description]
        assert len(rows) - 1 == manifest["tables"]["lifecycle"]["rows"] == con.execute(
            "SELECT count(*) FROM lifecycle").fetchone()[0]


def test_sums_of_money_beyond_a_double_stay_exact_in_parquet(tmp_path: Path) -> None:
    from ledger.projection.export import _select

    with duckdb.connect() as con:
        con.execute("CREATE TABLE t (h HUGEINT, m MAP(VARCHAR, HUGEINT), n BIGINT)")
        con.execute("INSERT INTO t VALUES (12345678901234567890123, MAP {'EUR': 98765432109876543210987}, 1)")
        con.execute(f"COPY ({_select(con, 't', 'parquet')}) TO '{tmp_path}/t.parquet'")
        (h, m, n), = con.execute("SELECT * FROM read_parquet(?)", [str(tmp_path / "t.parquet")]).fetchall()
    assert (h, m["EUR"], n) == (12345678901234567890123, 98765432109876543210987, 1)


def test_an_as_of_export_reflects_that_time_and_leaves_the_published_copy_alone(data: Path, tmp_path: Path) -> None:
    before = (data / "readmodels.published.duckdb").read_bytes()
    result = ledger(data, "lifecycle", "--as-of", "2025-06-01T00:00:00Z", "--to", str(tmp_path))
    assert result.exit_code == 0, result.output
    as_of = {str(v) for v in pq.read_table(tmp_path / "lifecycle.parquet").column("as_of").to_pylist()}
    assert as_of == {"2025-06-01 00:00:00"}
    assert (data / "readmodels.published.duckdb").read_bytes() == before
    assert not [p for p in data.iterdir() if p.name.startswith(".as-of-")]


def test_an_unknown_or_bookkeeping_table_is_refused_and_nothing_is_written(data: Path, tmp_path: Path) -> None:
    for name in ("nope", "projector_state", 'events"; COPY events TO \'/tmp/x.csv', "../../etc"):
        result = ledger(data, "events", name, "--to", str(tmp_path / "out"))
        assert result.exit_code == 2, name
        assert "no read model named" in result.stderr and "customer_profile" in result.stderr
    assert not (tmp_path / "out").exists()


def test_an_export_never_writes_into_the_data_directory(data: Path) -> None:
    before = sorted(p.name for p in data.iterdir())
    for target in (data, data / "exports", data / ".." / data.name / "x"):
        result = ledger(data, "--to", str(target))
        assert result.exit_code == 2 and "data directory" in result.stderr, target
    assert sorted(p.name for p in data.iterdir()) == before


def test_a_target_that_is_a_file_or_cannot_be_written_is_named(data: Path, tmp_path: Path) -> None:
    file = tmp_path / "a-file"
    file.write_text("keep me")
    result = ledger(data, "--to", str(file))
    assert result.exit_code == 2 and "is a file" in result.stderr
    assert file.read_text() == "keep me"
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        result = ledger(data, "--to", str(locked))
        assert result.exit_code == 2 and "cannot write the export" in result.stderr


def test_a_second_export_replaces_the_first_and_leaves_no_scratch(data: Path, tmp_path: Path) -> None:
    assert ledger(data, "events", "--to", str(tmp_path)).exit_code == 0
    assert ledger(data, "orders", "--to", str(tmp_path)).exit_code == 0
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["events.parquet", "manifest.json", "orders.parquet"]
    assert list(json.loads((tmp_path / "manifest.json").read_text())["tables"]) == ["orders"]


def test_a_known_at_export_says_so_in_its_manifest(data: Path, tmp_path: Path) -> None:
    with published(data) as con:
        (known,) = con.execute("SELECT max(recorded_at) FROM events").fetchone()
    result = ledger(data, "lifecycle", "--known-at", known.isoformat() + "Z", "--to", str(tmp_path))
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["known_at"].startswith(known.isoformat()[:19])
