"""Bad input, tried on purpose: JSON Lines, CSV rows and raw bytes on the Kafka intake.

Every bad input is refused with a reason a person understands (each case names the words
it must contain), and the valid event sent right after it is recorded.
"""

# ruff: noqa: E501 - the corpus is a table, one case per line

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from ledger.contract.codec import default_codec
from ledger.contract.facts import event_id_for
from ledger.errors import SchemaError
from ledger.intake.consumer import Intake
from ledger.intake.dead_letters import readable
from ledger.intake.ingest import ingest, read_csv, read_json_lines
from ledger.write.application import Ledger
from tests.support.facts import NOW
from tests.support.kafka import avro, dead_letters, produce, recorded

MB = 1024 * 1024
WHEN = "2026-05-01T09:30:00Z"


def feedback(**fields: Any) -> dict[str, Any]:
    return {"type": "FeedbackGiven", "customer_id": "C1", "occurred_at": WHEN, "source": "survey",
            "kind": "csat", "score": 4, "channel": "email", **fields}


def purchase(**fields: Any) -> dict[str, Any]:
    return {"type": "PurchaseMade", "customer_id": "C1", "occurred_at": WHEN, "source": "shop",
            "order_id": "O1", "channel": "web", "currency": "EUR", "total_minor": 1999, **fields}


def refund(**fields: Any) -> dict[str, Any]:
    return {"type": "PurchaseRefunded", "customer_id": "C1", "occurred_at": WHEN,
            "source": "shop", "order_id": "O1", "currency": "EUR", "amount_minor": 500, **fields}


def registered(**fields: Any) -> dict[str, Any]:
    return {"type": "CustomerRegistered", "customer_id": "C1", "occurred_at": WHEN,
            "source": "crm", **fields}


def consent(**fields: Any) -> dict[str, Any]:
    return {"type": "ConsentChanged", "customer_id": "C1", "occurred_at": WHEN, "source": "crm",
            "purpose": "marketing_email", "granted": True, **fields}


def without(fact: dict[str, Any], name: str) -> dict[str, Any]:
    return {k: v for k, v in fact.items() if k != name}


# Facts that break the contract or a rule: (case, fact, words the reason must contain).
# Those marked avro=True can also be Avro-encoded by an adapter, so the intake sees them too.
FACTS: list[tuple[str, dict[str, Any], str, bool]] = [
    ("empty object", {}, "type: missing", False),
    ("unknown type", feedback(type="FeedbackGivn"), "unknown event type 'FeedbackGivn'", False),
    ("missing required field", without(feedback(), "score"), "score: required field missing", False),
    ("wrong type", feedback(score="high"), "score: str 'high' does not fit int", False),
    ("NPS 11", feedback(kind="nps", score=11), "score: nps score must be 0 to 10, got 11", True),
    ("CSAT 0", feedback(kind="csat", score=0), "score: csat score must be 1 to 5, got 0", True),
    ("CES 8", feedback(kind="ces", score=8), "score: ces score must be 1 to 7, got 8", True),
    ("negative amount", refund(amount_minor=-100), "amount_minor: must not be negative", True),
    ("negative total", purchase(total_minor=-1), "total_minor: must not be negative", True),
    ("lowercase currency", purchase(currency="eur"), "'eur' is not an ISO 4217 code (codes are upper case)", True),
    ("unknown currency", purchase(currency="EUX"), "'EUX' is not an ISO 4217 code", True),
    ("timestamp in 2999", feedback(occurred_at="2999-01-01T00:00:00Z"), "occurred_at: 2999-01-01T00:00:00+00:00 is more than 1 day", True),
    ("timestamp that is not one", feedback(occurred_at="yesterday"), "occurred_at: 'yesterday' is not an ISO-8601 timestamp", False),
    ("empty customer_id", feedback(customer_id=""), "customer_id: must not be empty", True),
    ("blank customer_id", feedback(customer_id="   "), "customer_id: must not be empty", True),
    ("customer_id too long", feedback(customer_id="C" * 201), "customer_id: longer than 200 characters", True),
    ("1 MB comment", feedback(comment="x" * MB), "comment: longer than 10000 characters", True),
    ("100k source_event_id", feedback(source_event_id="s" * 100_000), "source_event_id: longer than 10000 characters", True),
    ("100k sku", purchase(lines=[{"sku": "A" * 100_000, "quantity": 1, "unit_price_minor": 1999}]), "lines[0].sku: longer than 10000 characters", True),
    ("100k attribute", registered(attributes={"k": "v" * 100_000}), "attributes['k']: longer than 10000 characters", True),
    ("100k attribute key", registered(attributes={"k" * 100_000: "v"}), "attributes: a key: longer than 10000 characters", True),
    ("unknown field in a line", purchase(lines=[{"sku": "A", "quantity": 1, "unit_price_minor": 1999, "colour": "red"}]), "lines[0]: PurchaseLine has no field 'colour'", False),
    ("misspelt field", feedback(chanel="email"), "FeedbackGiven has no field 'chanel'", False),
    ("unknown enum symbol", feedback(channel="pigeon"), "channel: str 'pigeon' does not fit one of phone", False),
    ("recorded_at sent by the adapter", feedback(recorded_at=WHEN), "recorded_at: set by the ledger", False),
    ("erased customer", feedback(customer_id="GONE"), "customer_id: customer 'GONE' was erased", True),
    ("event_id not a UUID", feedback(event_id="not-a-uuid"), "event_id: 'not-a-uuid' is not a UUID", False),
    ("quantity 0", purchase(lines=[{"sku": "A", "quantity": 0, "unit_price_minor": 1999}]), "lines[0].quantity: must be positive, got 0", True),
    ("negative unit price", purchase(lines=[{"sku": "A", "quantity": 1, "unit_price_minor": -5}]), "lines[0].unit_price_minor: must not be negative", True),
    ("lowercase country", registered(country="gb"), "country: 'gb' is not an ISO 3166 alpha-2 code", True),
    ("birth date not a date", registered(birth_date="31/12/1990"), "birth_date: '31/12/1990' is not an ISO-8601 date", False),
    ("empty source", feedback(source=""), "source: must not be empty", True),
    ("money as a float", purchase(total_minor=19.99), "total_minor: float 19.99 does not fit long", False),
    ("boolean as text", consent(granted="yes"), "granted: str 'yes' does not fit boolean", False),
    ("purpose not known", consent(purpose="telepathy"), "purpose: str 'telepathy' does not fit one of marketing_email", False),
]

# Lines that are not even a fact.
LINES: list[tuple[str, bytes, str]] = [
    ("truncated JSON", b'{"type": "ContactLogged", "customer_id": "C1"', "not JSON: Expecting ',' delimiter"),
    ("invalid UTF-8", b'{"type": "ContactLogged", "customer_id": "\xff\xfe"}', "not valid UTF-8 at byte 42"),
    ("JSON array", b"[1, 2]", "expected a JSON object, got list"),
    ("JSON string", b'"ContactLogged"', "expected a JSON object, got a string"),
    ("JSON null", b"null", "expected a JSON object, got null"),
    ("JSON number", b"42", "expected a JSON object, got a number (42)"),
]


def good(n: int) -> dict[str, Any]:
    return {"type": "ContactLogged", "customer_id": f"G{n % 5}", "occurred_at": WHEN,
            "source": "callcentre", "source_event_id": f"good-{n}", "contact_id": f"K{n}",
            "channel": "chat", "direction": "inbound"}


def good_id(n: int) -> str:
    return str(event_id_for("callcentre", f"good-{n}"))


def with_id(fact: dict[str, Any], case: str) -> dict[str, Any]:
    if fact and "source_event_id" not in fact:
        return {**fact, "source_event_id": f"bad-{case}"}
    return fact


@pytest.fixture
def erased_ledger(settings) -> Ledger:
    ledger = Ledger(settings, clock=lambda: NOW)
    ledger.record({"type": "CustomerErased", "customer_id": "GONE", "source": "crm",
                   "source_event_id": "erase-gone", "occurred_at": "2026-04-01T00:00:00Z"})
    yield ledger
    ledger.close()


def check(reasons: dict[str, str], expected: dict[str, str]) -> None:
    wrong = {case: reasons.get(case) for case, words in expected.items()
             if words not in (reasons.get(case) or "")}
    assert not wrong, wrong


def test_the_corpus_has_at_least_40_bad_inputs() -> None:
    assert len(FACTS) + len(LINES) + len(AVRO_ONLY) + len(CSV_ROWS) >= 40
    assert len(FACTS) + len(LINES) >= 30


def test_every_bad_json_line_is_refused_with_a_reason_and_the_next_line_recorded(
    tmp_path: Path, erased_ledger: Ledger
) -> None:
    cases = [(case, json.dumps(with_id(fact, case)).encode(), words) for case, fact, words, _ in FACTS]
    cases += LINES
    path = tmp_path / "bad.jsonl"
    with path.open("wb") as out:
        for n, (_, line, _) in enumerate(cases):
            out.write(line + b"\n" + json.dumps(good(n)).encode() + b"\n")

    report = ingest(erased_ledger, read_json_lines(path))

    reasons = {cases[(r.line - 1) // 2][0]: r.reason for r in report.rejected if r.line % 2}
    check(reasons, {case: words for case, _, words in cases})
    assert report.rejected_count == len(cases)
    assert report.recorded == len(cases)
    assert all(recorded(erased_ledger)[good_id(n)] == 1 for n in range(len(cases)))


# Bytes only an intake record can carry: (case, value, words the reason must contain).
def _avro_only() -> list[tuple[str, bytes | None, str]]:
    valid = avro(good(999))
    consent_bytes = avro(with_id(consent(), "consent"))
    return [
        ("no value (tombstone)", None, "no value: an intake record carries one Avro event"),
        ("empty value", b"", "truncated: 0 bytes is shorter than the 10-byte header"),
        ("random bytes", b"\x17" + random.Random(1).randbytes(63), "not Avro single-object encoding: marker is 17"),
        ("wrong magic", b"\xc3\x02" + valid[2:], "not Avro single-object encoding: marker is c302"),
        ("unknown fingerprint", valid[:2] + bytes(8) + valid[10:], "unknown schema fingerprint 0000000000000000: not a schema version"),
        ("truncated Avro", valid[: len(valid) // 2], "ContactLogged: corrupt body"),
        ("header only", valid[:10], "ContactLogged: corrupt body"),
        ("bytes after the body", valid + b"\x00\x01", "ContactLogged: 2 unexpected bytes after the body"),
        ("JSON instead of Avro", json.dumps(good(1)).encode(), "looks like JSON, but the intake takes Avro"),
        ("invalid UTF-8 in a string", valid.replace(b"\x04G4", b"\x04\xff\xfe", 1), "corrupt body (UnicodeDecodeError"),
        ("enum index out of range", consent_bytes[:-2] + b"\x64" + consent_bytes[-1:], "ConsentChanged: corrupt body"),
    ]


AVRO_ONLY = _avro_only()


@pytest.mark.kafka
def test_every_bad_intake_record_is_dead_lettered_with_a_reason_and_the_next_one_recorded(
    one_partition_settings
) -> None:
    settings = one_partition_settings
    ledger = Ledger(settings, clock=lambda: NOW)
    ledger.record({"type": "CustomerErased", "customer_id": "GONE", "source": "crm",
                   "source_event_id": "erase-gone", "occurred_at": "2026-04-01T00:00:00Z"})
    cases = [(case, avro(with_id(fact, case)), words) for case, fact, words, ok in FACTS if ok]
    cases += AVRO_ONLY
    records = []
    for n, (_, value, _) in enumerate(cases):
        records += [(b"K", value), (b"K", avro(good(n)))]
    produce(settings, records)

    stats = Intake(settings, ledger).run_once()

    letters = dead_letters(settings)
    reasons = {cases[letter.source_offset // 2][0]: letter.reason for letter in letters}
    check(reasons, {case: words for case, _, words in cases})
    assert all(letter.source_offset % 2 == 0 for letter in letters)
    assert (stats.dead_letters, stats.recorded) == (len(cases), len(cases))
    assert all(recorded(ledger)[good_id(n)] == 1 for n in range(len(cases)))
    # Sealed under the key of the customer the record names (or its Kafka key), opened with
    # it; the erased customer's is not kept at all.
    assert all(letter.sealed_for for letter in letters if letter.value)
    opened = {letter.source_offset // 2: None if letter.shredded else readable(settings, letter).value or b""
              for letter in letters}
    assert opened == {n: None if _names(value, "GONE") else value or b"" for n, (_, value, _) in enumerate(cases)}


def _names(value: bytes | None, customer_id: str) -> bool:
    """Whether intake bytes decode to a fact about `customer_id`."""
    try:
        return default_codec().decode(value or b"")[1]["customer_id"] == customer_id
    except SchemaError:
        return False


# CSV rows: (case, file header, the bad row's cells, words the reason must contain).
FEEDBACK_HEADER = ["customer_id", "occurred_at", "source", "source_event_id", "kind", "score",
                   "channel", "comment"]
CONTACT_HEADER = ["type", "customer_id", "occurred_at", "source", "source_event_id",
                  "contact_id", "channel", "direction", "is_complaint", "duration_s"]
CSV_ROWS: list[tuple[str, list[str], list[str], str]] = [
    ("score not a number", FEEDBACK_HEADER, ["C1", WHEN, "survey", "b1", "csat", "high", "email", ""], "score: 'high' is not a whole number"),
    ("score a decimal", FEEDBACK_HEADER, ["C1", WHEN, "survey", "b2", "csat", "4.5", "email", ""], "score: '4.5' is not a whole number"),
    ("NPS 11", FEEDBACK_HEADER, ["C1", WHEN, "survey", "b3", "nps", "11", "email", ""], "score: nps score must be 0 to 10, got 11"),
    ("CSAT 0", FEEDBACK_HEADER, ["C1", WHEN, "survey", "b4", "csat", "0", "email", ""], "score: csat score must be 1 to 5, got 0"),
    ("score left empty", FEEDBACK_HEADER, ["C1", WHEN, "survey", "b5", "csat", "", "email", ""], "score: required field missing"),
    ("unknown kind", FEEDBACK_HEADER, ["C1", WHEN, "survey", "b6", "stars", "4", "email", ""], "kind: str 'stars' does not fit one of csat, nps, ces"),
    ("invalid UTF-8 cell", FEEDBACK_HEADER, ["C1", WHEN, "survey", "b7", "csat", "4", "email", "caf\udcc3"], "comment: not valid UTF-8"),
    ("too few cells", FEEDBACK_HEADER, ["C1", WHEN, "survey", "b8", "csat"], "5 cells, but the header names 8 columns"),
    ("date not ISO", FEEDBACK_HEADER, ["C1", "01/05/2026", "survey", "b9", "csat", "4", "email", ""], "occurred_at: '01/05/2026' is not an ISO-8601 timestamp"),
    ("1 MB comment", FEEDBACK_HEADER, ["C1", WHEN, "survey", "b10", "csat", "4", "email", "x" * MB], "comment: longer than 10000 characters"),
    ("erased customer", FEEDBACK_HEADER, ["GONE", WHEN, "survey", "b11", "csat", "4", "email", ""], "customer_id: customer 'GONE' was erased"),
    ("empty customer_id", FEEDBACK_HEADER, ["", WHEN, "survey", "b12", "csat", "4", "email", ""], "customer_id: required field missing"),
    ("timestamp in 2999", FEEDBACK_HEADER, ["C1", "2999-01-01T00:00:00Z", "survey", "b13", "csat", "4", "email", ""], "in the future"),
    ("boolean that is not", CONTACT_HEADER, ["ContactLogged", "C1", WHEN, "cc", "c1", "K1", "phone", "inbound", "maybe", ""], "is_complaint: 'maybe' is not true or false"),
    ("unknown type in the type column", CONTACT_HEADER, ["ContactLoged", "C1", WHEN, "cc", "c2", "K1", "phone", "inbound", "", ""], "unknown event type 'ContactLoged'"),
    ("negative duration", CONTACT_HEADER, ["ContactLogged", "C1", WHEN, "cc", "c3", "K1", "phone", "inbound", "", "-5"], "duration_s: must not be negative, got -5"),
    ("unknown channel", CONTACT_HEADER, ["ContactLogged", "C1", WHEN, "cc", "c4", "K1", "pigeon", "inbound", "", ""], "channel: str 'pigeon' does not fit one of phone"),
]


def _good_row(header: list[str], n: int) -> list[str]:
    if header is FEEDBACK_HEADER:
        return [f"G{n % 5}", WHEN, "survey", f"good-{n}", "csat", "5", "email", "thanks"]
    return ["ContactLogged", f"G{n % 5}", WHEN, "callcentre", f"good-{n}", f"K{n}", "chat",
            "inbound", "false", "60"]


def _write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    import csv

    with path.open("w", encoding="utf-8", errors="surrogateescape", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(header)
        writer.writerows(rows)


def test_every_bad_csv_row_is_refused_with_a_reason_and_the_next_row_recorded(
    tmp_path: Path, erased_ledger: Ledger
) -> None:
    reasons: dict[str, str] = {}
    goods: list[str] = []
    for header, event_type in ((FEEDBACK_HEADER, "FeedbackGiven"), (CONTACT_HEADER, None)):
        cases = [(case, cells, words) for case, h, cells, words in CSV_ROWS if h is header]
        rows = []
        for n, (_, cells, _) in enumerate(cases):
            rows += [cells, _good_row(header, n)]
        path = tmp_path / f"{event_type or 'mixed'}.csv"
        _write_csv(path, header, rows)

        report = ingest(erased_ledger, read_csv(path, event_type))

        # Line 1 is the header; bad rows are on even lines.
        reasons.update({cases[(r.line - 2) // 2][0]: r.reason for r in report.rejected})
        assert report.rejected_count == len(cases)
        assert report.recorded + report.duplicates == len(cases)
        source = "survey" if header is FEEDBACK_HEADER else "callcentre"
        goods += [str(event_id_for(source, f"good-{n}")) for n in range(len(cases))]
    check(reasons, {case: words for case, _, _, words in CSV_ROWS})
    counts = recorded(erased_ledger)
    assert all(counts[g] == 1 for g in goods)

