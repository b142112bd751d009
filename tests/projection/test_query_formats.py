"""`ledger query` answers in the format asked: a capped table for people, CSV, JSON, JSON Lines
and Parquet for tools, from SQL given as an argument, a file or stdin, whole or not at all."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from ledger.cli.main import app
from tests.support.cli import StrictRunner

EVENTS = "SELECT * FROM events ORDER BY event_id"


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("formats") / "data"
    result = StrictRunner().invoke(app, ["demo", "--customers", "40", "--seed", "3", "--data-dir", str(data)])
    assert result.exit_code == 0, result.output
    return data


def ledger(data: Path, *args: str, stdin: str | None = None):
    return StrictRunner().invoke(app, ["query", *args, "--data-dir", str(data)], input=stdin)


def published(data: Path, sql: str):
    with duckdb.connect(str(data / "readmodels.published.duckdb"), read_only=True) as con:
        return con.sql(sql).to_arrow_table()


def test_parquet_read_back_equals_the_table_type_for_type(data: Path, tmp_path: Path) -> None:
    for table in ("events", "customer_profile", "orders", "rfm", "satisfaction_monthly"):
        target = tmp_path / f"{table}.parquet"
        result = ledger(data, f"SELECT * FROM {table} ORDER BY ALL", "--output", str(target))
        assert result.exit_code == 0, result.output
        assert pq.read_table(target).equals(published(data, f"SELECT * FROM {table} ORDER BY ALL")), table
    # nested lists, maps and HUGEINT sums are among them
    assert "list" in str(pq.read_table(tmp_path / "events.parquet").schema.field("lines").type)


def test_csv_has_a_header_every_row_and_nested_values_as_json(data: Path) -> None:
    result = ledger(data, "SELECT event_id, lines, total_minor FROM events ORDER BY event_id", "--format", "csv")
    assert result.exit_code == 0, result.output
    rows = list(csv.reader(io.StringIO(result.stdout)))
    expected = published(data, "SELECT event_id, lines, total_minor FROM events ORDER BY event_id").to_pylist()
    assert rows[0] == ["event_id", "lines", "total_minor"]
    assert len(rows) == len(expected) + 1
    with_lines = next(i for i, r in enumerate(expected) if r["lines"])
    assert json.loads(rows[with_lines + 1][1]) == expected[with_lines]["lines"]
    assert rows[with_lines + 1][2] == str(expected[with_lines]["total_minor"])


def test_json_keeps_the_shape_of_json_and_jsonl_gives_one_object_a_line(data: Path) -> None:
    sql = "SELECT customer_id, last_seen_at, net_spend FROM customer_profile ORDER BY customer_id"
    old = ledger(data, sql, "--json")
    new = ledger(data, sql, "--format", "json")
    lines = ledger(data, sql, "--format", "jsonl")
    assert old.exit_code == new.exit_code == lines.exit_code == 0
    assert old.stdout == new.stdout
    as_array = json.loads(new.stdout)
    assert [json.loads(line) for line in lines.stdout.splitlines()] == as_array
    assert len(as_array) == published(data, "SELECT count(*) n FROM customer_profile").to_pylist()[0]["n"]


def test_a_table_shows_a_hundred_rows_and_says_how_many_more(data: Path) -> None:
    total = published(data, "SELECT count(*) n FROM events").to_pylist()[0]["n"]
    result = ledger(data, "SELECT event_id FROM events")
    assert result.exit_code == 0
    assert f"{total - 100} more rows not shown" in result.stderr
    assert ledger(data, "SELECT event_id FROM events", "--limit", "5").stderr.count(f"{total - 5} more") == 1


def test_limit_caps_every_format_and_says_what_was_left_out(data: Path, tmp_path: Path) -> None:
    total = published(data, "SELECT count(*) n FROM events").to_pylist()[0]["n"]
    jsonl = ledger(data, EVENTS, "--format", "jsonl", "--limit", "7")
    assert len(jsonl.stdout.splitlines()) == 7 and f"{total - 7} more rows not written" in jsonl.stderr
    target = tmp_path / "seven.parquet"
    assert ledger(data, EVENTS, "-o", str(target), "--limit", "7").exit_code == 0
    assert pq.read_table(target).equals(published(data, f"{EVENTS} LIMIT 7"))
    empty = ledger(data, EVENTS, "--format", "json", "--limit", "0")
    assert json.loads(empty.stdout) == []


def test_sql_comes_from_a_file_or_stdin(data: Path, tmp_path: Path) -> None:
    sql = tmp_path / "count.sql"
    sql.write_text("-- how many customers\nSELECT count(*) AS n FROM customer_profile\n", encoding="utf-8")
    from_file = ledger(data, "-f", str(sql), "--format", "json")
    from_stdin = ledger(data, "--format", "json", stdin=sql.read_text(encoding="utf-8"))
    from_dash = ledger(data, "-", "--format", "json", stdin=sql.read_text(encoding="utf-8"))
    assert from_file.exit_code == from_stdin.exit_code == from_dash.exit_code == 0
    assert from_file.stdout == from_stdin.stdout == from_dash.stdout
    assert json.loads(from_file.stdout)[0]["n"] > 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["SELECT 1", "--format", "parquet"], "--format parquet needs --output"),
        (["SELECT 1", "--json", "--format", "csv"], "--json and --format csv disagree"),
        (["SELECT 1", "-o", "answer.xlsx"], "say which format with --format"),
        (["-f", "nowhere.sql"], "cannot read the SQL file nowhere.sql"),
        (["SELECT 1", "-f", "nowhere.sql"], "not both"),
        (["SELECT 1", "--limit", "-1"], "--limit"),
        (["--format", "yaml", "SELECT 1"], "yaml"),
    ],
)
def test_bad_options_are_refused_with_exit_2_and_a_reason(data: Path, args: list[str], message: str) -> None:
    result = ledger(data, *args)
    assert result.exit_code == 2
    assert message in result.stderr


def test_sql_that_is_not_text_or_is_huge_is_refused(data: Path, tmp_path: Path) -> None:
    binary = tmp_path / "binary.sql"
    binary.write_bytes(b"SELECT \xff\xfe 1")
    assert "is not UTF-8 text" in ledger(data, "-f", str(binary)).stderr
    huge = tmp_path / "huge.sql"
    huge.write_bytes(b"SELECT 1 " + b" " * 2_000_000)
    result = ledger(data, "-f", str(huge))
    assert result.exit_code == 2 and "longer than 1,000,000 bytes" in result.stderr


def test_output_never_goes_into_the_data_directory(data: Path) -> None:
    before = sorted(p.name for p in data.iterdir())
    for target in (data / "ledger.sqlite", data / "readmodels.published.duckdb", data / "new.csv", data):
        result = ledger(data, "SELECT 1 AS one", "--format", "csv", "-o", str(target))
        assert result.exit_code == 2, target
        assert "data directory" in result.stderr or "is a directory" in result.stderr
    assert sorted(p.name for p in data.iterdir()) == before


def test_a_failed_query_leaves_the_earlier_output_as_it_was(data: Path, tmp_path: Path) -> None:
    target = tmp_path / "answer.csv"
    assert ledger(data, "SELECT 1 AS one", "-o", str(target)).exit_code == 0
    before = target.read_bytes()
    failing = "SELECT CASE WHEN i < 50000 THEN i ELSE error('boom') END AS i FROM range(100000) t(i)"
    result = ledger(data, failing, "-o", str(target))
    assert result.exit_code == 1 and "boom" in result.stderr
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["answer.csv"]  # no scratch left behind


def test_a_query_that_writes_nothing_tabular_is_refused_as_parquet(data: Path, tmp_path: Path) -> None:
    result = ledger(data, "SELECT 1 AS one WHERE false", "-o", str(tmp_path / "none.parquet"))
    assert result.exit_code == 0  # no rows is an answer: a file with the columns and no rows
    assert pq.read_table(tmp_path / "none.parquet").column_names == ["one"]


def test_ledger_position_says_which_position_and_when_the_copy_was_published(data: Path) -> None:
    result = ledger(data, "SELECT source, partition, position, published_at FROM ledger_position", "--json")
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)
    with duckdb.connect(str(data / "readmodels.published.duckdb"), read_only=True) as con:
        state = dict(con.execute("SELECT key, value FROM projector_state").fetchall())
        (position,) = con.execute("SELECT position FROM projector_positions").fetchone()
        (events,) = con.execute("SELECT count(*) FROM events").fetchone()
    assert (row["source"], row["partition"], row["position"]) == ("store", "log", position)
    assert position == events  # the demo's log holds only these events
    assert row["published_at"] + "+00:00" == state["published_at"]


def test_intervals_keep_their_months_in_parquet(data: Path, tmp_path: Path) -> None:
    target = tmp_path / "age.parquet"
    sql = ("SELECT INTERVAL 14 MONTH + INTERVAL 3 DAY AS i, now() - published_at AS age, NULL::INTERVAL AS n "
           "FROM ledger_position")
    result = ledger(data, sql, "-o", str(target))
    assert result.exit_code == 0, result.output
    (row,) = pq.read_table(target).to_pylist()
    assert row["i"] == "P1Y2M3D" and row["age"].startswith("PT") and row["n"] is None


def test_a_reader_that_goes_away_stops_the_query_quietly(data: Path) -> None:
    import subprocess
    import sys

    ledger_cli = [sys.executable, "-m", "ledger.cli", "query", EVENTS, "--format", "csv", "--data-dir", str(data)]
    writer = subprocess.Popen(ledger_cli, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert writer.stdout.readline().startswith(b"event_id,")
    writer.stdout.close()  # as `| head -1` does
    _, stderr = writer.communicate(timeout=120)
    assert writer.returncode in (0, 141) and b"Traceback" not in stderr and stderr == b""


def test_output_replaces_a_symlink_instead_of_writing_through_it(data: Path, tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    link = tmp_path / "answer.csv"
    link.symlink_to(victim)
    assert ledger(data, "SELECT 1 AS one", "-o", str(link)).exit_code == 0
    assert victim.read_text() == "keep me"
    assert not link.is_symlink() and link.read_text() == "one\n1\n"
