"""The master key: rotating it re-wraps every customer's key and loses nothing; a process with
another master key than the store's is refused and records nothing."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

from ledger.cli.main import app
from ledger.write.keys import MasterKey
from tests.support.cli import StrictRunner
from tests.support.facts import fact
from tests.support.privacy import as_json, as_sent, ledger_process, marked_history, opened, write_jsonl

runner = StrictRunner()


def ledger(data: Path, *args: str) -> Any:
    result = runner.invoke(app, [*args, "--data-dir", str(data)])
    assert result.exit_code == 0, (args, result.stdout, result.stderr)
    return result


def test_rotating_the_master_key_replaces_the_file_and_every_customer_still_reads_back(tmp_path: Path) -> None:
    data = tmp_path / "data"
    c1, c2 = marked_history("C1"), marked_history("C2")
    ledger(data, "ingest", str(write_jsonl(tmp_path / "in.jsonl", c1.facts + c2.facts)))
    key_file = data / "master.key"
    old = key_file.read_text()

    rotated = ledger(data, "keys", "rotate")

    new = key_file.read_text()
    assert new != old
    assert MasterKey.parse(new, "new").key != MasterKey.parse(old, "old").key
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert sorted(p.name for p in data.glob("master.key*")) == ["master.key"]
    assert "re-wrapped 2 customer keys" in rotated.stdout
    assert f"{MasterKey.parse(old, 'old').id} -> {MasterKey.parse(new, 'new').id}" in rotated.stdout

    for history in (c1, c2):
        audit = json.loads(ledger(data, "audit", history.customer_id).stdout)
        assert opened(audit, history) == as_sent(history)

    ledger(data, "replay")
    shown = ledger(data, "query", "SELECT * FROM events WHERE customer_id = 'C2'", "--json").stdout
    assert [t for t in c2.texts if t not in shown] == []
    assert [d for d in c2.dates if d.isoformat() not in shown] == []

    ledger(data, "erase", "C1")  # a key wrapped by the new master key is destroyed like any
    assert json.loads(ledger(data, "audit", "C2").stdout)["erased"] is False
    assert opened(json.loads(ledger(data, "audit", "C2").stdout), c2) == as_sent(c2)


def test_a_process_with_another_master_key_is_refused_naming_both_keys_and_records_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    c2 = marked_history("C2")
    ledger(data, "ingest", str(write_jsonl(tmp_path / "in.jsonl", c2.facts)))
    before = ledger(data, "audit", "C2").stdout
    store_key = MasterKey.parse((data / "master.key").read_text(), "store")
    ledger(data, "keys", "rotate")
    rotated_key = MasterKey.parse((data / "master.key").read_text(), "store")
    printed = runner.invoke(app, ["keys", "new"])
    assert printed.exit_code == 0, printed.stderr
    another = MasterKey.parse(printed.stdout, "another")
    assert len({store_key.id, rotated_key.id, another.id}) == 3

    attempts = [
        (another, fact("ProfileUpdated", "C2", name="Not Recorded", source_event_id="wrong-1")),
        (another, fact("CustomerRegistered", "C3", email="c3@example.com", source_event_id="wrong-2")),
        (store_key, fact("FeedbackGiven", "C2", comment="rotated away", source_event_id="wrong-3")),
    ]
    for wrong, made in attempts:
        refused = ledger_process("record", json.dumps(made, default=as_json), "--data-dir", str(data),
                                 env={"LEDGER_MASTER_KEY": wrong.text()})
        assert refused.returncode != 0, (made, refused.stdout)
        assert "Traceback" not in refused.stderr
        assert "master key" in refused.stderr
        assert rotated_key.id in refused.stderr and wrong.id in refused.stderr, refused.stderr

    assert ledger(data, "audit", "C2").stdout == before
    unknown = runner.invoke(app, ["audit", "C3", "--data-dir", str(data)])
    assert unknown.exit_code != 0 and "no customer 'C3'" in unknown.stderr
    rows = json.loads(ledger(data, "query", "SELECT count(*) AS n FROM events", "--json").stdout)
    assert rows == [{"n": len(c2.facts)}]


def test_a_process_with_another_master_key_is_refused_even_for_a_fact_without_personal_data(tmp_path: Path) -> None:
    """The check must not wait for the first fact that needs a key: a misconfigured process
    would otherwise take some facts and refuse others, depending on what they carry."""
    data = tmp_path / "data"
    ledger(data, "record", json.dumps(fact("CustomerRegistered", "C1", name="Ada"), default=as_json))
    printed = runner.invoke(app, ["keys", "new"])
    another = MasterKey.parse(printed.stdout, "another")

    purchase = fact("PurchaseMade", "C1", source_event_id="wrong-buy")
    refused = ledger_process("record", json.dumps(purchase, default=as_json), "--data-dir", str(data),
                             env={"LEDGER_MASTER_KEY": another.text()})

    assert refused.returncode != 0, refused.stdout
    assert another.id in refused.stderr
    assert [e["type"] for e in json.loads(ledger(data, "audit", "C1").stdout)["events"]] == ["CustomerRegistered"]
