"""`ledger dlq parked`: the events the projector parked, from the published read models, for
people (a table) and scripts (--json, every column, the payload as hex)."""

from __future__ import annotations

import json
from pathlib import Path

from ledger.cli.main import app
from tests.projection.bad_events import contact, corrupt, position
from tests.support.cli import StrictRunner
from tests.support.readmodels import Harness

runner = StrictRunner()


def data_dir_with_damaged_events(tmp_path: Path, damaged: tuple[int, ...] = (1,)) -> tuple[str, list[int], list[bytes]]:
    """A data directory whose store holds four contacts, those numbered `damaged` cut short;
    returns it, their positions in the log and the bytes now stored."""
    h = Harness(tmp_path)
    try:
        facts = [contact(n) for n in range(4)]
        h.record(*facts)
        bad = [position(h, facts[n]) for n in damaged]
        stored = [corrupt(h, p) for p in bad]
    finally:
        h.close()
    return str(h.settings.data_dir), bad, stored


def test_dlq_parked_lists_what_the_projector_parked_and_json_gives_every_column(tmp_path: Path) -> None:
    data, [bad], [stored] = data_dir_with_damaged_events(tmp_path)
    assert runner.invoke(app, ["project", "--once", "--data-dir", data]).exit_code == 0

    shown = runner.invoke(app, ["dlq", "parked", "--data-dir", data], env={"COLUMNS": "300"})
    assert shown.exit_code == 0
    assert "store log" in shown.stdout and "corrupt body" in shown.stdout
    assert "1 parked events" in shown.stderr

    scripted = runner.invoke(app, ["dlq", "parked", "--json", "--data-dir", data])
    [parked] = json.loads(scripted.stdout)
    assert (parked["source"], parked["position_key"], parked["position"], parked["stage"]) == (
        "store", "log", bad, "decode",
    )
    assert parked["event_type"] == "ContactLogged" and parked["reason"].startswith("ContactLogged: corrupt body")
    assert bytes.fromhex(parked["payload"]) == stored


def test_dlq_parked_limit_shows_the_most_recent(tmp_path: Path) -> None:
    data, bad, _ = data_dir_with_damaged_events(tmp_path, damaged=(0, 2))
    runner.invoke(app, ["project", "--once", "--data-dir", data])

    scripted = runner.invoke(app, ["dlq", "parked", "--json", "--limit", "1", "--data-dir", data])
    assert [p["position"] for p in json.loads(scripted.stdout)] == [max(bad)]
    shown = runner.invoke(app, ["dlq", "parked", "--limit", "1", "--data-dir", data])
    assert "showing 1 of 2 parked events" in shown.stderr


def test_dlq_parked_without_read_models_says_so_and_creates_nothing(tmp_path: Path) -> None:
    data = tmp_path / "nothing-yet"
    result = runner.invoke(app, ["dlq", "parked", "--data-dir", str(data)])
    assert result.exit_code == 1
    assert "no read models" in result.stderr
    assert not data.exists()


def test_dlq_parked_with_nothing_parked_says_so_and_exits_0(tmp_path: Path) -> None:
    data, _, _ = data_dir_with_damaged_events(tmp_path, damaged=())
    assert runner.invoke(app, ["project", "--once", "--data-dir", data]).exit_code == 0

    shown = runner.invoke(app, ["dlq", "parked", "--data-dir", data])
    assert shown.exit_code == 0
    assert shown.stdout == f"No parked events in {Path(data) / 'readmodels.published.duckdb'}.\n"
    scripted = runner.invoke(app, ["dlq", "parked", "--json", "--data-dir", data])
    assert (scripted.exit_code, json.loads(scripted.stdout)) == (0, [])


def test_status_counts_the_parked_events_and_shows_why(tmp_path: Path) -> None:
    data, [bad], _ = data_dir_with_damaged_events(tmp_path)
    assert runner.invoke(app, ["project", "--once", "--data-dir", data]).exit_code == 0
    shown = json.loads(runner.invoke(app, ["status", "--json", "--data-dir", data]).stdout)
    assert shown["parked_events"] == 1 and shown["events"] == 3 and shown["lag"] == 0
    assert "corrupt body" in shown["newest_parked"][0] and str(bad) in shown["newest_parked"][0]
