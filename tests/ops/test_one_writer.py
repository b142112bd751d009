"""One writer per data directory: while `ledger project` follows, every other command that
would write the read models is refused with exit code 4 and changes nothing; and a data
directory remembers the store it was built from."""

from __future__ import annotations

import gc
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ledger.cli.main import app
from ledger.projection.query import query
from ledger.settings import Settings
from ledger.write.application import Ledger
from tests.support.cli import StrictRunner
from tests.support.facts import NOW

CONTACT = {
    "type": "ContactLogged", "customer_id": "C1", "occurred_at": "2026-01-05T10:00:00Z", "source": "desk",
    "contact_id": "k1", "channel": "phone", "direction": "inbound",
}


def wait_for(condition, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.05)


def cli(*args: str):
    return StrictRunner().invoke(app, list(args))


def events_in(data: Path) -> list[tuple]:
    return query(data / "readmodels.published.duckdb", "SELECT event_id FROM events ORDER BY event_id")[1]


@pytest.fixture
def follower(tmp_path: Path):
    """`ledger project` following a data directory with one event, in another process."""
    data = tmp_path / "data"
    assert cli("record", json.dumps(CONTACT), "--data-dir", str(data)).exit_code == 0
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "ledger.cli", "project", "--data-dir", str(data)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    wait_for(lambda: (data / "writer.lock.holder").exists() or process.poll() is not None)
    assert process.poll() is None, process.communicate()
    yield data, process
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr


def _fingerprint(data: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(data.iterdir())
        if p.suffix in (".duckdb", ".sqlite")
    }


def test_a_second_writer_is_refused_with_exit_code_4_while_one_follows(follower, tmp_path: Path) -> None:
    data, process = follower
    lines = tmp_path / "more.jsonl"
    lines.write_text(json.dumps({**CONTACT, "contact_id": "k2", "source_event_id": "k2"}) + "\n")
    head = Ledger(Settings(data_dir=data)).head()
    for args in (
        ("project", "--once"),
        ("replay",),
        ("ingest", str(lines)),
        ("record", json.dumps({**CONTACT, "contact_id": "k3"})),
        ("erase", "C1"),
    ):
        refused = cli(*args, "--data-dir", str(data))
        assert refused.exit_code == 4, (args, refused.output)
        held = f"data directory {data} (its read models) is held by another process (pid {process.pid}"
        assert held in refused.stderr
    assert Ledger(Settings(data_dir=data)).head() == head  # the refused ones recorded nothing


def test_recording_only_is_not_a_writer_of_the_read_models_and_the_follower_projects_it(follower) -> None:
    data, _ = follower
    recorded = cli("record", json.dumps({**CONTACT, "contact_id": "k9"}), "--no-project", "--data-dir", str(data))
    assert recorded.exit_code == 0, recorded.output
    wait_for(lambda: len(events_in(data)) == 2)


def test_the_writer_lock_is_free_again_once_the_writer_ends(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert cli("record", json.dumps(CONTACT), "--data-dir", str(data)).exit_code == 0
    assert cli("project", "--once", "--data-dir", str(data)).exit_code == 0
    assert cli("replay", "--data-dir", str(data)).exit_code == 0
    assert not (data / "writer.lock.holder").exists()


def test_a_data_directory_refuses_another_store_until_replayed_from_it(tmp_path: Path) -> None:
    data, other = tmp_path / "data", f"sqlite:///{tmp_path / 'other.sqlite'}"
    assert cli("record", json.dumps(CONTACT), "--data-dir", str(data)).exit_code == 0
    assert json.loads((data / "ledger.json").read_text()) == {"store": "sqlite:///store.sqlite"}
    Ledger(Settings(store=other), clock=lambda: NOW).record(
        {**CONTACT, "customer_id": "C2", "occurred_at": "2026-01-04T00:00:00Z"}
    )
    for args in (("project", "--once"), ("status",), ("record", json.dumps({**CONTACT, "contact_id": "x"}))):
        refused = cli(*args, "--data-dir", str(data), "--store", other)
        assert refused.exit_code == 2, (args, refused.output)
        assert f"was built from the store sqlite:///store.sqlite, not {other}" in refused.stderr
    assert Ledger(Settings(store=other)).head() == 1  # the refused record left the other store alone
    assert cli("replay", "--data-dir", str(data), "--store", other).exit_code == 0
    assert json.loads((data / "ledger.json").read_text()) == {"store": other}
    assert len(events_in(data)) == 1
    assert cli("project", "--once", "--data-dir", str(data)).exit_code == 2


KILLED_REPLAY = """
import os, sys
from datetime import UTC, datetime
import ledger.ops.writer as writer
from ledger.ops.projecting import replay
from ledger.settings import Settings

where = sys.argv[3]
settle, replace = writer.settle, writer.os.replace

def settle_then(settings):
    home = settings.data_dir
    swapped = (home / writer.PENDING_NAME).exists() and not (home / writer.REPLAY_NAME).exists()
    if where == "after the swap" and swapped:
        os._exit(9)
    settle(settings)

def replace_then(source, target):
    if where == "before the swap" and str(source).endswith(writer.REPLAY_NAME):
        os._exit(9)
    replace(source, target)

writer.settle = settle_then
writer.os.replace = replace_then
replay(Settings(data_dir=sys.argv[1], store=sys.argv[2]), datetime.now(UTC))
"""


@pytest.mark.parametrize("where", ["before the swap", "after the swap"])
def test_a_replay_from_another_store_killed_at_its_swap_leaves_files_and_record_agreeing(
    tmp_path: Path, where: str
) -> None:
    data, other = tmp_path / "data", f"sqlite:///{tmp_path / 'other.sqlite'}"
    assert cli("record", json.dumps(CONTACT), "--data-dir", str(data)).exit_code == 0
    Ledger(Settings(store=other), clock=lambda: NOW).record(
        {**CONTACT, "customer_id": "C2", "contact_id": "k2", "occurred_at": "2026-01-04T00:00:00Z"}
    )
    Ledger(Settings(store=other), clock=lambda: NOW).record(
        {**CONTACT, "customer_id": "C3", "contact_id": "k3", "occurred_at": "2026-01-04T00:00:00Z"}
    )
    killed = subprocess.run([sys.executable, "-c", KILLED_REPLAY, str(data), other, where], capture_output=True)
    assert killed.returncode == 9, killed.stderr
    now_from, refused_from = ("sqlite:///store.sqlite", other) if where == "before the swap" else (
        other, "sqlite:///store.sqlite")
    store = ("--store", other) if now_from == other else ()
    assert cli("status", "--json", "--data-dir", str(data), *store).exit_code == 0
    refused = cli("project", "--once", "--data-dir", str(data), "--store", refused_from)
    assert refused.exit_code == 2 and f"was built from the store {now_from}" in refused.stderr
    agreed = cli("project", "--once", "--data-dir", str(data), *store)
    assert agreed.exit_code == 0, agreed.output
    assert len(events_in(data)) == (2 if now_from == other else 1)
    assert json.loads((data / "ledger.json").read_text()) == {"store": now_from}
    assert not (data / "ledger.json.pending").exists()


def test_a_moved_data_directory_still_knows_its_own_store(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert cli("record", json.dumps(CONTACT), "--data-dir", str(data)).exit_code == 0
    moved = data.rename(tmp_path / "moved")
    assert cli("project", "--once", "--data-dir", str(moved)).exit_code == 0


def test_status_creates_nothing(tmp_path: Path) -> None:
    fresh = tmp_path / "fresh"
    shown = cli("status", "--json", "--data-dir", str(fresh))
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["store_state"].startswith("not created yet")
    assert not fresh.exists()


def test_status_changes_no_file_of_a_built_data_directory(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert cli("record", json.dumps(CONTACT), "--data-dir", str(data)).exit_code == 0
    gc.collect()  # the recording ledger's connections closed: its WAL is in the file
    before = _fingerprint(data)
    names = sorted(p.name for p in data.iterdir())
    shown = cli("status", "--json", "--data-dir", str(data))
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["store_head"] == 1
    assert _fingerprint(data) == before
    assert sorted(p.name for p in data.iterdir()) == names


def test_status_neither_checkpoints_a_killed_writers_log_nor_switches_a_journal_mode(tmp_path: Path) -> None:
    """A store whose writer was killed keeps its write-ahead log; status reads through it (the
    event in the log counts) and leaves the log, the file and the directory as they were."""
    import sqlite3

    data = tmp_path / "data"
    assert cli("record", json.dumps(CONTACT), "--data-dir", str(data)).exit_code == 0
    gc.collect()
    killed = subprocess.run([sys.executable, "-c", (
        "import os, sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.execute('PRAGMA journal_mode=WAL'); "
        "c.execute('CREATE TABLE written_by_the_killed (x)'); c.commit(); os._exit(9)"
    ), str(data / "store.sqlite")])
    assert killed.returncode == 9 and (data / "store.sqlite-wal").exists()
    def files() -> dict[str, bytes]:  # but -shm: SQLite's shared-memory index, which every reader maintains
        return {p.name: p.read_bytes() for p in data.iterdir() if not p.name.endswith("-shm")}

    before = files()
    directory_changed = data.stat().st_mtime_ns
    shown = cli("status", "--json", "--data-dir", str(data))
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["store_head"] == 1
    assert files() == before
    assert data.stat().st_mtime_ns == directory_changed
    with sqlite3.connect(f"file:{data / 'store.sqlite'}?mode=ro", uri=True) as check:
        assert check.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_a_second_serve_is_refused_before_it_starts(follower) -> None:
    data, _ = follower
    second = subprocess.run(
        [sys.executable, "-m", "ledger.cli", "serve", "--data-dir", str(data)],
        env={k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")},
        capture_output=True, text=True, timeout=120,
    )
    assert second.returncode == 4, second.stderr
    assert "is held by another process" in second.stderr


def test_a_corrupt_store_is_a_clear_error_for_every_command(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "store.sqlite").write_bytes(b"not a database" * 400)
    lines = tmp_path / "in.jsonl"
    lines.write_text(json.dumps(CONTACT) + "\n")
    for args in (("status",), ("ingest", str(lines)), ("record", json.dumps(CONTACT)), ("project", "--once")):
        failed = cli(*args, "--data-dir", str(data))
        assert failed.exit_code == 1, (args, failed.output)
        assert "store.sqlite: file is not a database" in failed.stderr


def test_a_command_whose_arguments_are_not_utf8_is_refused_without_a_traceback(tmp_path: Path) -> None:
    """The writer lock's note names the command; bytes that are not UTF-8 (or terminal escapes)
    in its arguments must neither crash that note nor reach the terminal raw."""
    data = tmp_path / "data"
    env = {k: v for k, v in os.environb.items() if not k.startswith(b"LEDGER_")}
    for args in (
        [b"record", b'{"type":"ContactLogged","reason":"\xff\x1b[2J"}'],
        [b"erase", b"C\xff"],
    ):
        done = subprocess.run(
            [sys.executable.encode(), b"-m", b"ledger.cli", *args, b"--data-dir", str(data).encode()],
            env=env, capture_output=True,
        )
        assert b"Traceback" not in done.stderr, done.stderr
        assert done.returncode in (1, 3), (args, done.returncode, done.stderr)
        assert b"not valid U" in done.stderr  # UTF-8 (the JSON line) or Unicode (the id)
        assert b"\x1b" not in done.stderr
