"""The `ledger` command, through typer's CliRunner (strict: tests.support.cli)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer

from ledger.cli.main import app
from tests.support.cli import StrictRunner

runner = StrictRunner()


STORE_COMMANDS = {"demo", "project", "record", "erase", "replay", "status", "ingest", "relay", "serve"}


def ledger(*args: str) -> object:
    return runner.invoke(app, list(args))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def cli(request: pytest.FixtureRequest, settings_for_store) -> object:
    """`ledger ...` on each store: the embedded SQLite file, or PostgreSQL (--store)."""
    store = settings_for_store(request.param)

    def run(*args: str) -> object:
        extra = ["--store", store] if store and args and args[0] in STORE_COMMANDS else []
        return ledger(*args, *extra)

    return run


LINES = [
    {"type": "CustomerRegistered", "customer_id": "C1", "occurred_at": "2026-03-01T10:00:00Z",
     "source": "shop", "source_event_id": "r1", "name": "Ada", "country": "GB"},
    {"type": "PurchaseMade", "customer_id": "C1", "occurred_at": "2026-03-03T10:00:00Z",
     "source": "shop", "source_event_id": "o1", "order_id": "O1", "channel": "web",
     "currency": "GBP", "total_minor": 2599},
]


def write_lines(path: Path, lines: list[object]) -> Path:
    path.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n")
    return path


def test_every_command_has_help_with_an_example() -> None:
    group = typer.main.get_command(app)
    for name, command in group.commands.items():  # type: ignore[attr-defined]
        assert command.help and "Example: ledger" in command.help, name


def test_ingest_records_valid_lines_and_names_each_rejected_line(cli, tmp_path: Path) -> None:
    data = str(tmp_path / "d")
    bad = [*LINES, '{"type": "FeedbackGiven"', "[1]",
           {**LINES[1], "source_event_id": "o2", "currency": "gbp"}, LINES[0]]
    result = cli("ingest", str(write_lines(tmp_path / "in.jsonl", bad)), "--data-dir", data)
    assert result.exit_code == 3
    assert "in.jsonl:3: not JSON" in result.stderr
    assert "in.jsonl:4: expected a JSON object, got list" in result.stderr
    assert "in.jsonl:5: currency: 'gbp' is not an ISO 4217 code" in result.stderr
    assert "2 recorded, 1 duplicates, 3 rejected" in result.stderr
    rows = json.loads(cli("query", "SELECT customer_id, purchases FROM customer_profile", "--json",
                             "--data-dir", data).stdout)
    assert rows == [{"customer_id": "C1", "purchases": 1}]


def test_ingest_of_only_good_and_duplicate_lines_succeeds(cli, tmp_path: Path) -> None:
    path = write_lines(tmp_path / "in.jsonl", LINES)
    assert cli("ingest", str(path), "--data-dir", str(tmp_path)).exit_code == 0
    again = cli("ingest", str(path), "--data-dir", str(tmp_path))
    assert again.exit_code == 0
    assert "0 recorded, 2 duplicates, 0 rejected" in again.stderr


def test_ingest_of_a_missing_file_says_so(cli, tmp_path: Path) -> None:
    result = cli("ingest", str(tmp_path / "nope.jsonl"), "--data-dir", str(tmp_path))
    assert result.exit_code == 1
    assert "cannot read" in result.stderr and "nope.jsonl" in result.stderr


def test_no_project_leaves_read_models_alone_until_project(cli, tmp_path: Path) -> None:
    path = write_lines(tmp_path / "in.jsonl", LINES)
    data = str(tmp_path / "d")
    assert cli("ingest", str(path), "--no-project", "--data-dir", data).exit_code == 0
    assert "no read models" in cli("query", "SELECT 1", "--data-dir", data).stderr
    assert cli("project", "--once", "--data-dir", data).exit_code == 0
    status = json.loads(cli("status", "--json", "--data-dir", data).stdout)
    assert (status["store_head"], status["lag"], status["events"]) == (2, 0, 2)


def test_replay_rebuilds_the_read_models_from_the_store_as_of_the_time_given(cli, tmp_path: Path) -> None:
    import duckdb

    data = str(tmp_path)
    cli("ingest", str(write_lines(tmp_path / "in.jsonl", LINES)), "--data-dir", data)
    before = cli("query", "SELECT * FROM customer_profile", "--json", "--data-dir", data).stdout
    damaged = duckdb.connect(str(tmp_path / "readmodels.duckdb"))
    damaged.execute("DELETE FROM customer_profile; DELETE FROM events; DELETE FROM projector_positions")
    damaged.close()
    (tmp_path / "readmodels.published.duckdb").unlink()

    assert cli("replay", "--as-of", "2026-03-10T00:00:00Z", "--data-dir", data).exit_code == 0

    rows = json.loads(cli(
        "query", "SELECT customer_id, name, purchases, net_spend['GBP'] AS gbp, lifecycle_stage, "
        "(SELECT count(*) FROM events) AS events, (SELECT max(as_of) FROM lifecycle) AS as_of "
        "FROM customer_profile", "--json", "--data-dir", data).stdout)
    assert rows == [{"customer_id": "C1", "name": "Ada", "purchases": 1, "gbp": 2599,
                     "lifecycle_stage": "new", "events": 2, "as_of": "2026-03-10T00:00:00"}]
    assert cli("replay", "--data-dir", data).exit_code == 0
    assert cli("query", "SELECT * FROM customer_profile", "--json", "--data-dir", data).stdout == before


@pytest.mark.parametrize(
    ("sql", "message", "code"),
    [("SELECT nope", "query failed", 1), ("DELETE FROM events", "only read statements", 2)],
)
def test_query_refuses_bad_and_writing_sql_with_a_message(
    cli, tmp_path: Path, sql: str, message: str, code: int
) -> None:
    cli("ingest", str(write_lines(tmp_path / "in.jsonl", LINES)), "--data-dir", str(tmp_path))
    result = cli("query", sql, "--data-dir", str(tmp_path))
    assert result.exit_code == code
    assert message in result.stderr
    assert "Traceback" not in result.output


def test_bad_settings_exit_2(tmp_path: Path) -> None:
    result = ledger("status", "--store", "mysql://x", "--data-dir", str(tmp_path))
    assert result.exit_code == 2
    assert "store.url (--store) must be sqlite:///PATH or postgresql://" in result.stderr


def test_demo_records_projects_and_summarises(cli, tmp_path: Path) -> None:
    result = cli("demo", "--customers", "60", "--data-dir", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert "Events by type" in result.stdout
    rows = json.loads(cli("query", "SELECT count(*) AS n FROM customer_profile", "--json",
                             "--data-dir", str(tmp_path)).stdout)
    assert rows[0]["n"] >= 50


def test_erase_forgets_a_customer_once_and_refuses_unknown_ones(cli, tmp_path: Path) -> None:
    data = str(tmp_path)
    assert cli("ingest", str(write_lines(tmp_path / "in.jsonl", LINES)), "--data-dir", data).exit_code == 0
    erased = cli("erase", "C1", "--reason", "request 118", "--data-dir", data)
    assert erased.exit_code == 0, erased.output
    rows = json.loads(cli("query", "SELECT erased, name FROM customer_profile", "--json", "--data-dir", data).stdout)
    assert rows == [{"erased": True, "name": None}]
    again = cli("erase", "C1", "--data-dir", data)
    assert (again.exit_code, again.stdout.strip()) == (0, "C1 was already erased")
    status = json.loads(cli("status", "--json", "--data-dir", data).stdout)
    assert status["store_head"] == 3
    unknown = cli("erase", "C404", "--data-dir", data)
    assert unknown.exit_code == 1
    assert "no customer 'C404'" in unknown.stderr


def test_record_records_one_event_once_and_refuses_a_bad_one_with_exit_3(cli, tmp_path: Path) -> None:
    data = str(tmp_path)
    first = cli("record", json.dumps(LINES[0]), "--data-dir", data)
    assert first.exit_code == 0, first.output
    assert first.stdout.startswith("CustomerRegistered ")
    again = cli("record", json.dumps(LINES[0]), "--data-dir", data)
    assert again.stdout.startswith("already recorded: CustomerRegistered ")
    bad = cli("record", json.dumps({**LINES[1], "total_minor": -5}), "--data-dir", data)
    assert bad.exit_code == 3
    assert "total_minor" in bad.stderr
    assert cli("record", "[1]", "--data-dir", data).exit_code == 3
    rows = cli("query", "SELECT customer_id, name FROM customer_profile", "--json", "--data-dir", data).stdout
    assert json.loads(rows) == [{"customer_id": "C1", "name": "Ada"}]


def test_a_refusal_prints_the_input_verbatim_even_when_it_looks_like_markup(cli, tmp_path: Path) -> None:
    bad = {**LINES[0], "occurred_at": "x[/]y[red]z"}
    refused = cli("record", json.dumps(bad), "--data-dir", str(tmp_path))
    assert refused.exit_code == 3
    assert "'x[/]y[red]z' is not an ISO-8601 timestamp" in refused.stderr
