"""`ledger replay --dry-run` rebuilds into scratch and says, per table, what a replay would
add, remove and change; it swaps nothing, takes no writer lock and leaves no file behind."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from ledger.cli.main import app
from tests.support.cli import StrictRunner

CONTACT = {"type": "ContactLogged", "customer_id": "NEW-1", "occurred_at": "2026-01-05T10:00:00Z",
           "source": "desk", "source_event_id": "late-1", "contact_id": "k1", "channel": "phone",
           "direction": "inbound"}


def ledger(*args: str, env: dict[str, str] | None = None):
    return StrictRunner().invoke(app, list(args), env=env)


def fingerprints(data: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(data.iterdir()) if p.is_file()}


@pytest.fixture
def data(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    result = ledger("demo", "--customers", "40", "--seed", "2", "--data-dir", str(data))
    assert result.exit_code == 0, result.output
    return data


def dry_run(data: Path, *flags: str, env: dict[str, str] | None = None) -> dict:
    result = ledger("replay", "--dry-run", "--json", "--data-dir", str(data), *flags, env=env)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def by_table(report: dict) -> dict[str, dict]:
    return {t["table"]: t for t in report["tables"]}


def test_a_dry_run_of_an_up_to_date_ledger_changes_nothing_and_touches_nothing(data: Path) -> None:
    before = fingerprints(data)
    report = dry_run(data)
    assert report["unchanged"] is True
    assert all(t["added"] == t["removed"] == 0 and not t["changed"] for t in report["tables"])
    assert {"events", "customer_profile", "lifecycle", "segments"} <= set(by_table(report))
    assert fingerprints(data) == before
    assert not [p for p in data.iterdir() if p.name.startswith(".as-of-") or "replay" in p.name]


def test_events_recorded_since_the_last_publish_show_as_added(data: Path) -> None:
    assert ledger("record", json.dumps(CONTACT), "--no-project", "--data-dir", str(data)).exit_code == 0
    tables = by_table(dry_run(data))
    assert tables["events"]["added"] == 1 and tables["events"]["removed"] == 0
    assert tables["customer_profile"]["added"] == 1
    assert tables["events"]["rows_after"] == tables["events"]["rows_now"] + 1


def test_a_new_segment_rule_shows_what_it_would_add(data: Path, tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "everyone.sql").write_text("-- every customer\nSELECT customer_id FROM lifecycle\n")
    tables = by_table(dry_run(data, env={"LEDGER_SEGMENTS_DIR": str(rules)}))
    assert tables["segments"]["added"] == 1
    assert tables["segment_membership"]["added"] > 0
    assert tables["events"]["added"] == tables["events"]["changed"] == 0


HOLD = """
import sys
from pathlib import Path
from ledger.ops.writer import writing
from ledger.settings import Settings
with writing(Settings(data_dir=Path(sys.argv[1]))):
    print("held", flush=True)
    sys.stdin.readline()
"""


def test_a_dry_run_needs_no_writer_lock(data: Path) -> None:
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(data)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"  # another process holds the data directory
        report = dry_run(data)
        refused = ledger("replay", "--data-dir", str(data))
    finally:
        holder.communicate("go\n", timeout=60)
    assert report["unchanged"] is True
    assert refused.exit_code == 4  # a real replay waits for the writer


def test_a_dry_run_as_of_another_time_says_what_would_change(data: Path) -> None:
    tables = by_table(dry_run(data, "--as-of", "2025-01-01T00:00:00Z"))
    assert tables["lifecycle"]["removed"] > 0 or tables["lifecycle"]["changed"] > 0
    assert tables["events"]["added"] == tables["events"]["removed"] == 0  # events do not depend on T
