"""What an attack on erasure and the master key found, each kept from coming back: ids that
normalise differently twice, NUL in text the store keeps as text, rotations stopped half way
or run twice at once, a key file that is a link, a lost master key, abandoned --as-of copies."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.cli.main import app
from ledger.contract.rules import normal_customer_id
from ledger.settings import Settings
from ledger.write.application import Ledger
from ledger.write.keys import MasterKey, write_key_file
from tests.support.cli import StrictRunner
from tests.support.facts import fact
from tests.support.privacy import as_json, ledger_process, write_jsonl

runner = StrictRunner()


def ledger(data: Path, *args: str, code: int = 0) -> Any:
    result = runner.invoke(app, [*args, "--data-dir", str(data)])
    assert result.exit_code == code, (args, result.stdout, result.stderr)
    return result


def registered(customer_id: str, n: int = 1, **fields: Any) -> dict[str, Any]:
    return fact("CustomerRegistered", customer_id, source="crm", source_event_id=f"reg-{n}",
                name=f"SECRET-NAME-{n}", email=f"secret{n}@example.org", **fields)


@given(st.text(max_size=12))
def test_normalising_a_normal_id_changes_nothing(text: str) -> None:
    once = normal_customer_id(text)
    assert normal_customer_id(once) == once


@pytest.mark.parametrize("spelling", ["Jose\u200b\u0301", "Jose\u0301", "José", " Jos\u00e9\u034f "])
def test_an_erasure_by_any_spelling_destroys_the_one_key_and_every_spelling_is_refused_after(
    tmp_path: Path, spelling: str
) -> None:
    data = tmp_path / "data"
    ledger(data, "ingest", str(write_jsonl(tmp_path / "in.jsonl", [registered("Jose\u200b\u0301")])))

    ledger(data, "erase", spelling)

    keys = Ledger(Settings(data_dir=data))
    try:
        assert keys.recorder.select_keys(["José", "Jose\u0301", "Jose\u200b\u0301"]) == []
    finally:
        keys.close()
    for other in ("Jose\u200b\u0301", "Jose\u0301", "José"):
        refused = ledger(data, "record", json.dumps(registered(other, 2), default=as_json), code=3)
        assert "erased" in refused.stderr
    rows = json.loads(ledger(data, "query", "SELECT DISTINCT customer_id, name FROM events", "--json").stdout)
    assert rows == [{"customer_id": "José", "name": None}]


@pytest.mark.parametrize("customer_id", ["C\x001", "C\n1", "C\x851", "\x00"])
def test_an_id_with_a_control_character_is_refused(tmp_path: Path, customer_id: str) -> None:
    refused = ledger(tmp_path / "data", "record", json.dumps(registered(customer_id), default=as_json), code=3)
    assert "customer_id" in refused.stderr and "control character" in refused.stderr


def test_a_nul_in_text_the_store_keeps_as_text_is_refused_on_its_line_and_the_rest_kept(
    settings: Any, tmp_path: Path
) -> None:
    """On PostgreSQL a NUL in the index's text columns once ended the whole ingest with a traceback."""
    lines = [fact("ContactLogged", "P1", source="desk", source_event_id="a\x00", contact_id="k1",
                  channel="phone", direction="inbound"),
             fact("ContactLogged", "P2", source="de\x00sk", source_event_id="b", contact_id="k2",
                  channel="phone", direction="inbound"),
             fact("ContactLogged", "P3", source="desk", source_event_id="c", contact_id="k\x003",
                  channel="phone", direction="inbound")]
    path = write_jsonl(tmp_path / "nul.jsonl", lines)
    args = ["ingest", str(path), "--no-project", "--data-dir", str(settings.data_dir)]
    result = runner.invoke(app, [*args, *(("--store", settings.store.url) if settings.store else ())])

    assert result.exit_code == 3, result.output
    assert "nul.jsonl:1: source_event_id: must not contain a NUL" in result.stderr
    assert "nul.jsonl:2: source: must not contain a NUL" in result.stderr
    assert "1 recorded, 0 duplicates, 2 rejected" in result.stderr


def test_a_rotation_stopped_after_its_new_key_was_written_is_finished_by_the_next_and_refuses_another_key(
    tmp_path: Path
) -> None:
    data = tmp_path / "data"
    ledger(data, "ingest", str(write_jsonl(tmp_path / "in.jsonl", [registered("C1")])))
    # A rotation killed between writing its key and re-wrapping the rows leaves this behind.
    write_key_file(data / "master.key.new", MasterKey.generate())
    other = tmp_path / "other.key"
    other.write_text(MasterKey.generate().text())

    refused = ledger(data, "keys", "rotate", "--new-key-file", str(other), code=2)
    assert "stopped before it finished" in refused.stderr
    pending = (data / "master.key.new").read_text()
    ledger(data, "keys", "rotate")

    assert (data / "master.key").read_text() == pending and not (data / "master.key.new").exists()
    audit = json.loads(ledger(data, "audit", "C1").stdout)
    assert audit["events"][0]["name"] == "SECRET-NAME-1"


def test_a_rotation_with_a_given_key_writes_it_beside_the_current_one_before_any_row_changes(tmp_path: Path) -> None:
    data = tmp_path / "data"
    ledger(data, "ingest", str(write_jsonl(tmp_path / "in.jsonl", [registered("C1")])))
    new = tmp_path / "new.key"
    new.write_text(MasterKey.generate().text())
    (data / "master.key.new").mkdir()  # where the new key must go first cannot take it

    failed = ledger(data, "keys", "rotate", "--new-key-file", str(new), code=2)

    assert "master.key.new: Is a directory" in failed.stderr and "Traceback" not in failed.output
    (data / "master.key.new").rmdir()
    audit = json.loads(ledger(data, "audit", "C1").stdout)  # the rows were left as they were
    assert audit["events"][0]["name"] == "SECRET-NAME-1"


def test_two_rotations_at_once_both_finish_and_every_key_still_opens(tmp_path: Path) -> None:
    data = tmp_path / "data"
    ledger(data, "ingest", str(write_jsonl(tmp_path / "in.jsonl", [registered(f"C{n}", n) for n in range(50)])))
    command = [sys.executable, "-m", "ledger.cli", "keys", "rotate", "--data-dir", str(data)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    both = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(2)]
    outcomes = [(p.wait(timeout=120), p.stderr.read() if p.stderr else "") for p in both]

    assert [code for code, _ in outcomes] == [0, 0], outcomes
    assert sorted(p.name for p in data.glob("master.key*")) == ["master.key"]
    audit = json.loads(ledger(data, "audit", "C7").stdout)
    assert audit["events"][0]["name"] == "SECRET-NAME-7"


def test_a_master_key_that_is_a_link_is_rotated_where_it_points(tmp_path: Path) -> None:
    data, safe = tmp_path / "data", tmp_path / "safe"
    safe.mkdir()
    data.mkdir()
    write_key_file(safe / "ledger.key", MasterKey.generate())
    (data / "master.key").symlink_to(safe / "ledger.key")
    ledger(data, "ingest", str(write_jsonl(tmp_path / "in.jsonl", [registered("C1")])))
    before = (safe / "ledger.key").read_text()

    ledger(data, "keys", "rotate")

    assert (data / "master.key").is_symlink() and (safe / "ledger.key").read_text() != before
    found = ledger_process("audit", "C1", env={"LEDGER_DATA_DIR": str(tmp_path / "elsewhere"),
                                               "LEDGER_STORE": f"sqlite:///{data}/store.sqlite",
                                               "LEDGER_MASTER_KEY_FILE": str(safe / "ledger.key")})
    assert found.returncode == 0, found.stderr
    assert json.loads(found.stdout)["events"][0]["name"] == "SECRET-NAME-1"


def test_a_store_that_holds_keys_never_gets_a_new_master_key_made_for_it(tmp_path: Path) -> None:
    data = tmp_path / "data"
    ledger(data, "ingest", str(write_jsonl(tmp_path / "in.jsonl", [registered("C1")])))
    (data / "master.key").unlink()

    another = json.dumps(registered("C2", 2), default=as_json)
    for args in (["audit", "C1"], ["erase", "C1", "--dry-run"], ["record", another]):
        refused = ledger(data, *args, code=2)
        assert "no master key file" in refused.stderr and "wrapped by master key" in refused.stderr
        assert not (data / "master.key").exists()


def test_erase_answers_in_json_when_asked(tmp_path: Path) -> None:
    data = tmp_path / "data"
    ledger(data, "ingest", str(write_jsonl(tmp_path / "in.jsonl", [registered("C1")])))

    first = json.loads(ledger(data, "erase", " C1", "--json").stdout)
    again = json.loads(ledger(data, "erase", "C1", "--json").stdout)

    assert first["customer_id"] == "C1" and first["event_id"] and first["already_erased"] is False
    assert again == {"customer_id": "C1", "event_id": None, "already_erased": True}


def test_a_copy_left_by_a_killed_as_of_query_is_removed(tmp_path: Path) -> None:
    data = tmp_path / "data"
    ledger(data, "ingest", str(write_jsonl(tmp_path / "in.jsonl", [registered("C1")])))
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    abandoned = data / f".as-of-{gone.stdout.strip()}-x"  # its process has ended
    abandoned.mkdir()
    (abandoned / "readmodels.published.duckdb").write_text("SECRET-NAME-1")

    ledger(data, "query", "SELECT count(*) FROM events", "--as-of", "2026-06-01")

    assert not abandoned.exists()
    assert not list(data.glob(".as-of-*"))
