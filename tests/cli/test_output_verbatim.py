"""What `ledger query` and `ledger status` print is the data, verbatim: every DuckDB type in
tables and in --json, TIMESTAMPTZ as the same UTC instant whatever the machine's TZ, and no
value (nor an error message) read as rich markup or emoji codes.

The CLI runs in a subprocess so that TZ can be set for it alone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ledger.cli.main import app
from tests.support.cli import StrictRunner

MARKUP = "root:x:0 [red]C1[/] [/ :smile: [bold]"
LINES = [
    {"type": "CustomerRegistered", "customer_id": MARKUP, "occurred_at": "2026-03-01T10:00:00Z",
     "source": "shop", "source_event_id": "r1", "name": "[link=http://x]Ada[/link] :x:", "country": "GB"},
    {"type": "ContactLogged", "customer_id": MARKUP, "occurred_at": "2026-03-05T10:00:00Z",
     "source": "desk", "contact_id": "k1", "channel": "phone", "direction": "inbound"},
]
TIMEZONES = [None, "America/New_York", "Asia/Kolkata"]

EVERY_TYPE = (
    "SELECT TIMESTAMPTZ '2026-01-01 12:00:00+00' AS tz, TIMESTAMP '2026-01-01 12:00' AS ts, "
    "INTERVAL 3 DAY + INTERVAL 90 MINUTE AS i, INTERVAL 0 SECOND AS zero, "
    "INTERVAL 1234567 MICROSECOND AS fine, -INTERVAL 1 DAY AS neg, TIME '10:00:01' AS tm, "
    "DATE '2026-02-03' AS d, 12345678901234567890::HUGEINT AS h, 1.5::DECIMAL(10,2) AS dec, "
    "[1, 2] AS l, {'a': TIME '01:00'} AS s, MAP {'k': 1} AS m, '\\x00'::BLOB AS b, "
    "'nan'::DOUBLE AS nan, '00000000-0000-0000-0000-000000000001'::UUID AS u"
)
AS_JSON = {
    "tz": "2026-01-01T12:00:00+00:00", "ts": "2026-01-01T12:00:00", "i": "P3DT1H30M", "zero": "PT0S",
    "fine": "PT1.234567S", "neg": "-P1D", "tm": "10:00:01", "d": "2026-02-03", "h": 12345678901234567890,
    "dec": "1.50", "l": [1, 2], "s": {"a": "01:00:00"}, "m": {"k": 1}, "b": "00", "nan": None,
    "u": "00000000-0000-0000-0000-000000000001",
}
IN_A_TABLE = {**{k: str(v) for k, v in AS_JSON.items()}, "l": "[1, 2]", "s": '{"a": "01:00:00"}',
              "m": '{"k": 1}', "nan": "nan"}


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Read models built by a real ingest, in a directory whose name looks like markup."""
    root = tmp_path_factory.mktemp("verbatim")
    lines = root / "in.jsonl"
    lines.write_text("".join(json.dumps(line) + "\n" for line in LINES))
    data = root / "data [red]:x:"
    assert StrictRunner().invoke(app, ["ingest", str(lines), "--data-dir", str(data)]).exit_code == 0
    return data


def ledger(*args: str, tz: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_") and k != "TZ"}
    env["COLUMNS"] = "400"  # one line per row: what is asserted is the text, not rich's folding
    if tz:
        env["TZ"] = tz
    return subprocess.run(
        [sys.executable, "-m", "ledger.cli", *args], env=env, capture_output=True, text=True, timeout=120
    )


def query_json(data: Path, sql: str, tz: str | None = None) -> list[dict]:
    done = ledger("query", sql, "--json", "--data-dir", str(data), tz=tz)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def cells(table: str) -> list[list[str]]:
    """The cells of a rich table, row by row (borders and padding dropped)."""
    lines = [line.replace("┃", "│") for line in table.splitlines()]  # the header's border is heavy
    return [[cell.strip() for cell in line.split("│")[1:-1]] for line in lines if "│" in line]


@pytest.mark.parametrize("tz", TIMEZONES)
def test_every_duckdb_type_prints_as_json_with_timestamptz_in_utc_whatever_tz(data: Path, tz: str | None) -> None:
    assert query_json(data, EVERY_TYPE, tz) == [AS_JSON]


@pytest.mark.parametrize("tz", TIMEZONES)
def test_every_duckdb_type_prints_in_a_table_with_timestamptz_in_utc_whatever_tz(data: Path, tz: str | None) -> None:
    done = ledger("query", EVERY_TYPE, "--data-dir", str(data), tz=tz)
    assert done.returncode == 0, done.stderr
    header, row = cells(done.stdout)
    assert dict(zip(header, row, strict=True)) == IN_A_TABLE


@pytest.mark.parametrize("tz", TIMEZONES)
def test_read_model_times_are_the_same_utc_instant_whatever_tz(data: Path, tz: str | None) -> None:
    sql = ("SELECT occurred_at, timezone('UTC', occurred_at) AS instant, occurred_at::DATE AS day, "
           "now() - now() AS none FROM events WHERE event_type = 'ContactLogged'")
    assert query_json(data, sql, tz) == [
        {"occurred_at": "2026-03-05T10:00:00", "instant": "2026-03-05T10:00:00+00:00", "day": "2026-03-05",
         "none": "PT0S"}
    ]


def test_values_that_look_like_markup_print_verbatim_in_tables_and_json(data: Path) -> None:
    sql = "SELECT customer_id AS \"[b]who[/b] :x:\", name FROM customer_profile"
    table = ledger("query", sql, "--data-dir", str(data))
    assert table.returncode == 0, table.stderr
    assert cells(table.stdout) == [["[b]who[/b] :x:", "name"], [MARKUP, LINES[0]["name"]]]
    assert query_json(data, sql) == [{"[b]who[/b] :x:": MARKUP, "name": LINES[0]["name"]}]


def test_an_error_prints_its_message_verbatim(data: Path) -> None:
    failed = ledger("query", "SELECT error('[/ :x: [red]boom')", "--data-dir", str(data))
    assert failed.returncode == 1
    assert "[/ :x: [red]boom" in failed.stderr
    assert "Traceback" not in failed.stderr


def test_status_prints_a_data_directory_that_looks_like_markup_verbatim(data: Path) -> None:
    shown = ledger("status", "--data-dir", str(data))
    assert shown.returncode == 0, shown.stderr
    rows = dict(row for row in cells(shown.stdout) if len(row) == 2)
    assert rows["read_models"] == str(data / "readmodels.published.duckdb")
    as_json = json.loads(ledger("status", "--json", "--data-dir", str(data)).stdout)
    assert as_json["read_models"] == str(data / "readmodels.published.duckdb")


def test_terminal_control_codes_in_data_and_refusals_are_shown_escaped(data: Path, tmp_path: Path) -> None:
    """A value or a field name carrying ESC sequences (clear screen, retitle the window) is
    shown as ``\\x1b``: whatever a hostile file or row holds, the terminal obeys none of it."""
    table = ledger("query", "SELECT 'a' || chr(27) || '[2Jb' || chr(7) AS v", "--data-dir", str(data))
    assert table.returncode == 0, table.stderr
    assert cells(table.stdout) == [["v"], ["a\\x1b[2Jb\\x07"]]
    assert query_json(data, "SELECT 'a' || chr(27) AS v") == [{"v": "a\x1b"}]  # JSON escapes it itself
    hostile = tmp_path / "hostile.jsonl"
    hostile.write_text('{"type": "ContactLogged", "\\u001b]0;TITLE\\u0007\\u001b[31m": "\\ud800"}\n')
    refused = ledger("ingest", str(hostile), "--no-project", "--data-dir", str(tmp_path / "d"))
    assert refused.returncode == 3, refused.stderr
    assert "\x1b" not in refused.stderr and "\x07" not in refused.stderr
    assert "\\x1b]0;TITLE\\x07\\x1b[31m" in refused.stderr


def test_json_keeps_every_column_when_names_repeat(data: Path) -> None:
    assert query_json(data, "SELECT 1 AS a, 2 AS a, 'x' AS b") == [{"a": 1, "a_2": 2, "b": "x"}]


def test_a_bad_as_of_is_a_usage_error(data: Path) -> None:
    refused = ledger("query", "SELECT 1", "--as-of", "garbage", "--data-dir", str(data))
    assert refused.returncode == 2 and "--as-of: 'garbage' is not an ISO-8601 timestamp" in refused.stderr
