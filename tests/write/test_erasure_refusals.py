"""What erasure refuses: every spelling of an erased customer's id, an erasure of nobody, a
sealed value sent from outside; and what a dry run shows without changing anything."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from ledger.cli.app import EXIT_REJECTED
from ledger.cli.main import app
from ledger.contract.facts import to_record
from ledger.contract.sealing import SEALED
from ledger.errors import ValidationError
from ledger.settings import Settings
from ledger.write.application import Ledger
from ledger.write.domain import Recorded, customer_uuid
from tests.support.cli import StrictRunner
from tests.support.facts import NOW, fact
from tests.support.privacy import as_json, marked_history, write_jsonl

runner = StrictRunner()

SPELLINGS = ["C1 ", " C1", "Ｃ１", "C\u200b1"]
"""Ids that are "C1" once normalised: white space at an end, full width, a zero-width space."""


def cli(data: Path, store: str | None):
    def run(*args: str) -> Any:
        extra = ["--store", store] if store and args[0] != "query" else []
        return runner.invoke(app, [*args, "--data-dir", str(data), *extra])
    return run


def line(made: dict[str, Any]) -> str:
    return json.dumps(made, default=as_json, ensure_ascii=False)


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_every_spelling_of_an_id_is_one_customer_and_refused_once_erased(
    kind: str, settings_for_store, tmp_path: Path
) -> None:
    ledger = cli(tmp_path / "data", settings_for_store(kind))
    assert ledger("record", line(fact("CustomerRegistered", "C1", name="Ada")), "--no-project").exit_code == 0
    for n, spelling in enumerate(SPELLINGS):
        recorded = ledger("record", line(fact("FeedbackGiven", spelling, source_event_id=f"spelt-{n}")),
                          "--no-project")
        assert recorded.exit_code == 0, (spelling, recorded.stderr)

    audit = json.loads(ledger("audit", "C1").stdout)
    assert audit["customer_id"] == "C1"
    assert sorted(e["source_event_id"] for e in audit["events"] if e["type"] == "FeedbackGiven") == \
        [f"spelt-{n}" for n in range(len(SPELLINGS))]
    assert {e["customer_id"] for e in audit["events"]} == {"C1"}
    assert ledger("project", "--once").exit_code == 0
    assert json.loads(ledger("query", "SELECT customer_id, count(*) AS n FROM events GROUP BY 1", "--json").stdout) \
        == [{"customer_id": "C1", "n": 1 + len(SPELLINGS)}]

    assert ledger("erase", "C1", "--no-project").exit_code == 0
    for n, spelling in enumerate(SPELLINGS):
        refused = ledger("record", line(fact("ContactLogged", spelling, source_event_id=f"after-{n}")), "--no-project")
        assert refused.exit_code == EXIT_REJECTED, (spelling, refused.stdout, refused.stderr)
        assert "customer_id" in refused.stderr and "erased" in refused.stderr
        again = ledger("erase", spelling, "--no-project")
        assert again.exit_code == 0 and "C1 was already erased" in again.stdout, (spelling, again.stdout, again.stderr)
    audit = json.loads(ledger("audit", "Ｃ１").stdout)
    assert (audit["customer_id"], audit["erased"]) == ("C1", True)
    assert [e["type"] for e in audit["events"]].count("CustomerErased") == 1
    assert len(audit["events"]) == 1 + len(SPELLINGS) + 1


def digests(directory: Path) -> dict[str, str]:
    return {str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.rglob("*")) if p.is_file()}


def test_a_dry_run_lists_the_events_with_personal_data_and_their_fields_and_changes_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    ledger = cli(data, None)
    c1, c2 = marked_history("C1"), marked_history("C2")
    assert ledger("ingest", str(write_jsonl(tmp_path / "in.jsonl", c1.facts + c2.facts))).exit_code == 0
    audit = ledger("audit", "C1").stdout
    files = digests(data)

    dry = ledger("erase", "C1", "--dry-run", "--json")
    assert dry.exit_code == 0, dry.stderr

    event_ids = {e["source_event_id"]: e["event_id"] for e in json.loads(audit)["events"]}
    listed = {row["event_id"]: (row["event_type"], set(row["personal_fields"].split(", ")))
              for row in json.loads(dry.stdout)}
    expected = {event_ids[made["source_event_id"]]: (made["type"], set(c1.personal[made["source_event_id"]]))
                for made in c1.facts if made["source_event_id"] in c1.personal}
    assert listed == expected
    assert [t for t in c1.texts if t in dry.stdout] == []

    assert digests(data) == files
    assert ledger("audit", "C1").stdout == audit
    assert json.loads(audit)["erased"] is False
    assert all(t in audit for t in c1.texts)


@pytest.mark.parametrize("dry_run", [[], ["--dry-run"]])
def test_erasing_a_customer_the_ledger_never_saw_fails_and_says_so(dry_run: list[str], tmp_path: Path) -> None:
    ledger = cli(tmp_path / "data", None)
    assert ledger("record", line(fact("CustomerRegistered", "C1")), "--no-project").exit_code == 0
    result = ledger("erase", "NOBODY", *dry_run)
    assert result.exit_code != 0
    assert "no customer 'NOBODY' is recorded" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert len(json.loads(ledger("audit", "C1").stdout)["events"]) == 1


def stored_sealed(ledger: Ledger, customer_id: str) -> bytes:
    """A sealed value the ledger itself wrote, on one of the customer's events."""
    for stored in ledger.recorder.select_events(customer_uuid(customer_id)):
        event = ledger.mapper.to_domain_event(stored)
        if isinstance(event, Recorded) and event.record.get(SEALED) is not None:
            return bytes(event.record[SEALED])
    raise AssertionError(f"no sealed value on {customer_id}'s events")


def test_a_fact_carrying_a_sealed_value_from_outside_is_refused_naming_the_field(tmp_path: Path) -> None:
    ledger = Ledger(Settings(data_dir=tmp_path / "data"), clock=lambda: NOW)
    try:
        ledger.record(fact("CustomerRegistered", "C1", name="Ada", email="ada@example.com"))
        blob = stored_sealed(ledger, "C1")
        head = ledger.head()

        copied = fact("ProfileUpdated", "C1", city="Bath", sealed=blob)
        (outcome,) = ledger.record_many([copied])
        assert isinstance(outcome.error, ValidationError) and outcome.error.field == SEALED
        assert "sealed" in str(outcome.error)

        event_type, record = to_record(fact("FeedbackGiven", "C2", comment="fine"), NOW)
        (typed,) = ledger.record_typed([(event_type, {**record, SEALED: blob})])
        assert isinstance(typed.error, ValidationError) and typed.error.field == SEALED
        assert ledger.head() == head
    finally:
        ledger.close()

    refused = runner.invoke(app, ["record", line(fact("FeedbackGiven", "C3", sealed="AQID")),
                                  "--data-dir", str(tmp_path / "data"), "--no-project"])
    assert refused.exit_code == EXIT_REJECTED
    assert "sealed" in refused.stderr
