"""Backfill from CSV: cells read by their schema type, streamed in bounded memory, counted."""

from __future__ import annotations

import csv
import json
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from ledger.cli.main import app
from ledger.errors import InputError
from ledger.intake.ingest import FactFile, ingest, read_csv
from ledger.write.application import Ledger
from tests.support.cli import StrictRunner

runner = StrictRunner()
WHEN = "2026-05-01T09:30:00Z"


def write(path: Path, header: list[str], rows: list[list[str]], encoding: str = "utf-8") -> Path:
    with path.open("w", encoding=encoding, newline="") as out:
        writer = csv.writer(out)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def stored(ledger: Ledger) -> list[tuple[str, dict]]:
    return [ledger.opened(n.state) for n in ledger.notifications(0, 1000)]


def test_cells_are_read_by_the_type_of_their_schema_field(tmp_path: Path, ledger: Ledger) -> None:
    contacts = write(tmp_path / "contacts.csv",
                     ["customer_id", "occurred_at", "source", "source_event_id", "contact_id",
                      "channel", "direction", "is_complaint", "duration_s", "outcome", "reason"],
                     [["C1", WHEN, "cc", "k1", "K1", "phone", "inbound", "TRUE", " 300 ",
                       "resolved", "billing, again"],
                      ["C1", WHEN, "cc", "k2", "K2", "chat", "outbound", "no", "", "", ""]])
    people = write(tmp_path / "people.csv",
                   ["type", "customer_id", "occurred_at", "source", "name", "birth_date",
                    "attributes"],
                   [["CustomerRegistered", "C1", WHEN, "crm", "Ada", "1990-12-10",
                     '{"tier": "gold"}']])
    orders = write(tmp_path / "orders.csv",
                   ["customer_id", "occurred_at", "source", "order_id", "channel", "currency",
                    "total_minor", "lines"],
                   [["C1", WHEN, "shop", "O1", "web", "EUR", "2500",
                     '[{"sku": "A", "quantity": 1, "unit_price_minor": 2500}]']])

    for path, event_type in ((contacts, "ContactLogged"), (people, None), (orders, "PurchaseMade")):
        report = ingest(ledger, read_csv(path, event_type))
        assert (report.recorded, report.rejected_count) == (report.lines, 0), report.rejected

    by_type = {}
    for event_type, record in stored(ledger):
        by_type.setdefault(event_type, []).append(record)
    first, second = by_type["ContactLogged"]
    assert (first["is_complaint"], first["duration_s"], first["outcome"]) == (True, 300, "resolved")
    assert first["reason"] == "billing, again"
    assert first["occurred_at"] == datetime(2026, 5, 1, 9, 30, tzinfo=UTC)
    # An empty cell is "not given": null, or the field's default.
    assert (second["is_complaint"], second["duration_s"], second["outcome"]) == (False, None, None)
    (person,) = by_type["CustomerRegistered"]
    assert person["birth_date"] == date(1990, 12, 10)
    assert person["attributes"] == {"tier": "gold"}
    (order,) = by_type["PurchaseMade"]
    assert order["lines"] == [{"sku": "A", "quantity": 1, "unit_price_minor": 2500}]


def test_a_type_column_names_each_rows_type(tmp_path: Path, ledger: Ledger) -> None:
    header = ["type", "customer_id", "occurred_at", "source", "kind", "score", "channel",
              "contact_id", "direction"]
    path = write(tmp_path / "mixed.csv", header, [
        ["FeedbackGiven", "C1", WHEN, "survey", "csat", "5", "email", "", ""],
        ["ContactLogged", "C1", WHEN, "cc", "", "", "phone", "K1", "inbound"],
    ])
    report = ingest(ledger, read_csv(path))
    assert (report.recorded, report.rejected) == (2, [])
    assert [event_type for event_type, _ in stored(ledger)] == ["FeedbackGiven", "ContactLogged"]
    with pytest.raises(InputError, match="give --type EventType or add a `type` column"):
        list(read_csv(write(tmp_path / "untyped.csv", header[1:], [])))


def test_cli_ingests_csv_and_reports_recorded_duplicate_and_rejected(tmp_path: Path) -> None:
    header = ["customer_id", "occurred_at", "source", "source_event_id", "kind", "score",
              "channel"]
    rows = [["C1", WHEN, "survey", f"s{n}", "csat", str(1 + n % 5), "email"] for n in range(50)]
    rows += [rows[0], ["C1", WHEN, "survey", "bad", "nps", "11", "email"]]
    path = write(tmp_path / "feedback.csv", header, rows)
    data = str(tmp_path / "d")

    result = runner.invoke(app, ["ingest", str(path), "--type", "FeedbackGiven",
                                 "--data-dir", data])

    assert result.exit_code == 3
    assert "50 recorded, 1 duplicates, 1 rejected" in result.stderr
    assert "feedback.csv:53: score: nps score must be 0 to 10, got 11" in result.stderr
    rows = json.loads(runner.invoke(app, ["query", "SELECT count(*) AS n FROM events", "--json",
                                          "--data-dir", data]).stdout)
    assert rows == [{"n": 50}]


def test_cli_says_what_is_wrong_with_a_csv_file(tmp_path: Path) -> None:
    data = str(tmp_path / "d")
    no_type = write(tmp_path / "a.csv", ["customer_id", "occurred_at"], [["C1", WHEN]])
    twice = write(tmp_path / "b.csv", ["type", "score", "score"], [["FeedbackGiven", "1", "2"]])
    unknown = write(tmp_path / "c.csv", ["customer_id"], [["C1"]])

    result = runner.invoke(app, ["ingest", str(no_type), "--data-dir", data])
    assert result.exit_code == 1
    assert "give --type EventType or add a `type` column" in result.stderr
    assert "column 'score' appears twice" in runner.invoke(
        app, ["ingest", str(twice), "--data-dir", data]).stderr
    bad_type = runner.invoke(app, ["ingest", str(unknown), "--type", "Feedback",
                                   "--data-dir", data])
    assert bad_type.exit_code == 1
    assert "unknown event type 'Feedback'" in bad_type.stderr
    jsonl = runner.invoke(app, ["ingest", str(tmp_path / "x.jsonl"), "--type", "FeedbackGiven",
                                "--data-dir", data])
    assert jsonl.exit_code == 1 and "--type applies to CSV files" in jsonl.stderr
    assert "Traceback" not in result.output + bad_type.output


def test_a_spreadsheet_export_with_a_byte_order_mark_reads(tmp_path: Path, ledger: Ledger) -> None:
    path = write(tmp_path / "excel.csv", ["customer_id", "occurred_at", "source", "kind", "score",
                                          "channel"],
                 [["C1", WHEN, "survey", "ces", "2", "app"]], encoding="utf-8-sig")
    report = ingest(ledger, read_csv(path, "FeedbackGiven"))
    assert (report.recorded, report.rejected) == (1, [])


def test_a_large_file_is_streamed_not_loaded(tmp_path: Path) -> None:
    header = ["customer_id", "occurred_at", "source", "contact_id", "channel", "direction"]
    path = write(tmp_path / "big.csv", header,
                 [[f"C{n % 100}", WHEN, "cc", f"K{n}", "phone", "inbound"] for n in range(100_000)])
    facts = FactFile(path, "ContactLogged")
    rows = iter(facts)
    number, first = next(rows)

    assert (number, first["contact_id"]) == (2, "K0")
    assert 0 < facts.position() < facts.size / 10
    for _ in range(50_000):
        next(rows)
    assert facts.size / 3 < facts.position() < facts.size * 2 / 3


def test_a_decimal_cell_is_read_as_a_number_and_text_that_is_none_is_refused(tmp_path: Path, ledger: Ledger) -> None:
    path = write(tmp_path / "contacts.csv",
                 ["customer_id", "occurred_at", "source", "contact_id", "channel", "direction", "language",
                  "sentiment"],
                 [["C1", WHEN, "cc", "K1", "chat", "inbound", "pt-BR", " -0.25 "],
                  ["C1", WHEN, "cc", "K2", "chat", "inbound", "en", "1e-1"],
                  ["C1", WHEN, "cc", "K3", "chat", "inbound", "en", "nan"],
                  ["C1", WHEN, "cc", "K4", "chat", "inbound", "", ""]])
    report = ingest(ledger, read_csv(path, "ContactLogged"))
    assert (report.recorded, report.rejected_count) == (3, 1)
    assert "sentiment: 'nan' is not a number" in str(report.rejected[0])
    assert [(r["language"], r["sentiment"]) for _, r in stored(ledger)] == [
        ("pt-BR", -0.25), ("en", 0.1), (None, None)]
