"""Fuzzing the ingest: whatever a file holds, each line is recorded or refused with a
reason, never a traceback, and the valid line after the garbage is recorded; whatever
bytes reach the intake topic, they are recorded or dead-lettered with a reason."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from itertools import count
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.contract.facts import event_id_for
from ledger.errors import InputError, SchemaError
from ledger.intake.decode import intake_fact
from ledger.intake.ingest import Line, ingest, read_csv, read_json_lines
from ledger.settings import Settings
from ledger.write.application import Ledger
from tests.support.facts import NOW
from tests.support.hostile import as_json_line, hostile_facts, mutated_encodings, valid_fact

FUZZ = settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
_serial = count()


@pytest.fixture(scope="module")
def fuzz_ledger(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ledger]:
    """One SQLite ledger for all the examples of a module: each example's sentinel facts
    have ids of their own, so examples cannot see one another's."""
    ledger = Ledger(Settings(data_dir=tmp_path_factory.mktemp("fuzz") / "data"), clock=lambda: NOW)
    yield ledger
    ledger.close()


def sentinel() -> tuple[dict[str, Any], str]:
    """A valid fact no other example sends, and its event_id."""
    n = next(_serial)
    fact = valid_fact("ContactLogged", 10**6 + n)
    return fact, str(event_id_for(fact["source"], fact["source_event_id"]))


def recorded_since(ledger: Ledger, head: int) -> Counter[str]:
    """How often each event_id was recorded after notification `head` (reading only the
    example's own facts keeps 200 examples fast)."""
    return Counter(str(ledger.codec.decode(n.state)[1]["event_id"])
                   for n in ledger.notifications(head, 10_000))


class Counted:
    """The rows a reader yields, counted on their way to `ingest`."""

    def __init__(self, rows: Iterator[Line]):
        self.rows, self.count, self.reasons = rows, 0, []

    def __iter__(self) -> Iterator[Line]:
        for number, item in self.rows:
            self.count += 1
            if isinstance(item, InputError):
                self.reasons.append(str(item))
            yield number, item


def ingest_accounts_for_every_row(ledger: Ledger, rows: Iterator[Line]) -> None:
    counted = Counted(rows)
    report = ingest(ledger, counted)
    assert report.lines == counted.count
    assert all(r.reason.strip() for r in report.rejected)
    assert all(reason.strip() for reason in counted.reasons)


JSON_TOKENS = st.sampled_from([
    "{", "}", "[", "]", ",", ":", '"', '"type"', '"PurchaseMade"', '"total_minor"', "1", "-0",
    "1e999", "NaN", "-Infinity", "true", "null", '"\\ud800"', '"\\udfff"', "\\", "\u00e9",
    "9" * 5000, "[" * 5000, '{"a":' * 3000, "\x00", "\ufeff", " ",
])
JSON_ISH = st.lists(JSON_TOKENS, max_size=12).map(lambda tokens: "".join(tokens).encode())


@FUZZ
@given(garbage=st.one_of(st.binary(max_size=300), JSON_ISH))
def test_any_bytes_in_a_json_lines_file_are_refused_and_the_next_line_recorded(
    garbage: bytes, fuzz_ledger: Ledger, tmp_path: Path
) -> None:
    head = fuzz_ledger.head()
    before, before_id = sentinel()
    after, after_id = sentinel()
    path = tmp_path / f"fuzz-{before_id}.jsonl"
    path.write_bytes(json.dumps(before).encode() + b"\n" + garbage + b"\n"
                     + json.dumps(after).encode() + b"\n")

    ingest_accounts_for_every_row(fuzz_ledger, read_json_lines(path))

    counts = recorded_since(fuzz_ledger, head)
    assert (counts[before_id], counts[after_id]) == (1, 1)


@FUZZ
@given(facts=st.lists(hostile_facts(), min_size=1, max_size=4), cut=st.integers(0, 40))
def test_any_json_fact_is_recorded_or_refused_with_a_reason_in_one_chunk(
    facts: list[dict[str, Any]], cut: int, fuzz_ledger: Ledger, tmp_path: Path
) -> None:
    head = fuzz_ledger.head()
    lines = [as_json_line(fact) for fact in facts]
    lines[0] = lines[0][: len(lines[0]) - cut]  # and one line cut short, perhaps
    after, after_id = sentinel()
    path = tmp_path / f"fuzz-{after_id}.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n" + json.dumps(after).encode() + b"\n")

    ingest_accounts_for_every_row(fuzz_ledger, read_json_lines(path))

    assert recorded_since(fuzz_ledger, head)[after_id] == 1


HEADER = "customer_id,occurred_at,source,source_event_id,kind,score,channel,comment"
CSV_TEXT = st.text(st.sampled_from('"",,,\n\r\x00\ufeffab1 -:TZ\udcff\u00e9'), max_size=120)


def good_row(fact: dict[str, Any]) -> str:
    return ",".join([fact["customer_id"], fact["occurred_at"], fact["source"],
                     fact["source_event_id"], "csat", "4", "email", "fine"])


def feedback_sentinel() -> tuple[dict[str, Any], str]:
    fact, _ = sentinel()
    return fact, str(event_id_for(fact["source"], fact["source_event_id"]))


@FUZZ
@given(garbage=CSV_TEXT, end=st.sampled_from(["\n", "\r\n", "\r"]))
def test_any_text_in_a_csv_file_is_refused_and_the_rows_around_it_recorded(
    garbage: str, end: str, fuzz_ledger: Ledger, tmp_path: Path
) -> None:
    head = fuzz_ledger.head()
    facts = [feedback_sentinel() for _ in range(3)]
    rows = [good_row(facts[0][0]), garbage, good_row(facts[1][0]), good_row(facts[2][0])]
    path = tmp_path / f"fuzz-{facts[0][1]}.csv"
    path.write_bytes((HEADER + end + end.join(rows) + end).encode("utf-8", "surrogateescape"))

    ingest_accounts_for_every_row(fuzz_ledger, read_csv(path, "FeedbackGiven"))

    counts = recorded_since(fuzz_ledger, head)
    assert [counts[event_id] for _, event_id in facts] == [1, 1, 1]


@FUZZ
@given(text=st.one_of(CSV_TEXT, CSV_TEXT.map(lambda rows: HEADER + "\n" + rows)))
def test_any_csv_file_at_all_is_read_or_refused_with_a_reason(
    text: str, fuzz_ledger: Ledger, tmp_path: Path
) -> None:
    path = tmp_path / "any.csv"
    path.write_bytes(text.encode("utf-8", "surrogateescape"))
    try:
        rows = list(read_csv(path, "FeedbackGiven"))
    except InputError as error:  # the header: the file as a whole is refused
        assert str(error).startswith("line 1: ")
        return
    ingest_accounts_for_every_row(fuzz_ledger, iter(rows))


@FUZZ
@given(data=st.one_of(mutated_encodings(), st.binary(max_size=80)))
def test_any_intake_bytes_are_recorded_or_refused_with_a_reason(
    data: bytes, fuzz_ledger: Ledger
) -> None:
    try:
        fact = intake_fact(data, fuzz_ledger.codec)
    except SchemaError as error:  # the record would go to the dead-letter topic
        assert str(error)
        return
    (outcome,) = fuzz_ledger.record_typed([fact])
    assert outcome.status in ("recorded", "duplicate") or str(outcome.error)
