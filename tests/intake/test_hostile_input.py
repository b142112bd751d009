"""Input built to crash the ingest: every such line is refused with its line number and a
reason naming the field, and the valid lines around it, in the same chunk, are recorded.

Each case once crashed `ledger ingest` with a traceback and lost its chunk's valid lines, or
(CSV) silently read the rows after a bad quote into one cell.
"""

# ruff: noqa: E501 - the corpus is a table, one case per line

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest

from ledger.cli.main import app
from ledger.contract.facts import event_id_for
from ledger.intake.ingest import ingest, read_csv, read_json_lines
from ledger.write.application import Ledger
from tests.support.cli import StrictRunner
from tests.support.kafka import recorded

WHEN = "2026-05-01T09:30:00Z"
runner = StrictRunner()


def purchase(**fields: Any) -> dict[str, Any]:
    return {"type": "PurchaseMade", "customer_id": "C1", "occurred_at": WHEN, "source": "shop",
            "order_id": "O1", "channel": "web", "currency": "EUR", "total_minor": 1999, **fields}


def registered(**fields: Any) -> dict[str, Any]:
    return {"type": "CustomerRegistered", "customer_id": "C1", "occurred_at": WHEN,
            "source": "crm", **fields}


def line(fact: dict[str, Any]) -> bytes:
    """JSON as an adapter writes it: ASCII, so a lone surrogate arrives as a \\ud800 escape."""
    return json.dumps(fact).encode()


def good(n: int) -> dict[str, Any]:
    return {"type": "ContactLogged", "customer_id": f"G{n % 3}", "occurred_at": WHEN,
            "source": "callcentre", "source_event_id": f"good-{n}", "contact_id": f"K{n}",
            "channel": "chat", "direction": "inbound"}


def good_id(n: int) -> str:
    return str(event_id_for("callcentre", f"good-{n}"))


# (case, the line, words the reason must contain)
HOSTILE: list[tuple[str, bytes, str]] = [
    ("lone surrogate in customer_id", line(purchase(customer_id="\ud800")), "customer_id: not valid Unicode"),
    ("lone surrogate in source", line(purchase(source="shop\udfff")), "source: not valid Unicode"),
    ("lone surrogate in source_event_id", line(purchase(source_event_id="\ud800")), "source_event_id: not valid Unicode"),
    ("lone surrogate in the type", line(purchase(type="\udc00")), "type: not valid Unicode"),
    ("lone surrogate in a key of attributes", line(registered(attributes={"\ud800": "x"})), "attributes: a key is not valid Unicode"),
    ("lone surrogate in a value of attributes", line(registered(attributes={"tier": "\ud800"})), "attributes.tier: not valid Unicode"),
    ("lone surrogate in a line's sku", line(purchase(lines=[{"sku": "\ud800", "quantity": 1, "unit_price_minor": 1}])), "lines[0].sku: not valid Unicode"),
    ("lone surrogate as a field name", line({**purchase(), "\ud800": 1}), "a field name is not valid Unicode"),
    ("100k nested arrays", b"[" * 100_000, "nested too deeply"),
    ("100k nested objects", b'{"a":' * 100_000, "nested too deeply"),
    ("deep nesting in a field", line(registered(attributes=json.loads("[" * 500 + "]" * 500))), "attributes: list [[[["),
    ("integer of 5000 digits", b'{"type": "PurchaseMade", "total_minor": ' + b"9" * 5000 + b"}", "a number of more than 4300 digits"),
    ("2**63 minor units", line(purchase(total_minor=2**63)), "total_minor: int 9223372036854775808 is out of range for a 64-bit integer"),
    ("-2**63 - 1 minor units", line(purchase(total_minor=-(2**63) - 1)), "total_minor: int -9223372036854775809 is out of range for a 64-bit integer"),
    ("2**100 minor units", line(purchase(total_minor=2**100)), "total_minor: int 1267650600228229401496703205376 is out of range for a 64-bit"),
    ("quantity past 32 bits", line(purchase(lines=[{"sku": "A", "quantity": 2**31, "unit_price_minor": 1}])), "lines[0].quantity: int 2147483648 is out of range for a 32-bit integer"),
    ("float for an int", line(purchase(total_minor=1999.0)), "total_minor: float 1999.0 does not fit long"),
    ("boolean for an int", line(purchase(total_minor=True)), "total_minor: bool True does not fit long"),
    ("NaN literal", line(purchase()).replace(b"1999", b"NaN"), "not JSON: NaN is not a JSON number"),
    ("Infinity literal", line(purchase()).replace(b"1999", b"Infinity"), "not JSON: Infinity is not a JSON number"),
    ("-Infinity literal", line(purchase()).replace(b"1999", b"-Infinity"), "not JSON: -Infinity is not a JSON number"),
    ("a key twice", line(purchase()).replace(b'"total_minor": 1999', b'"total_minor": 1, "total_minor": 1999'), "key 'total_minor' appears twice"),
    ("year 1 with an offset", line(purchase(occurred_at="0001-01-01T00:00:00+01:00")), "occurred_at: '0001-01-01T00:00:00+01:00' is before 1900"),
    ("year 9999 with an offset", line(purchase(occurred_at="9999-12-31T23:59:59-01:00")), "occurred_at: '9999-12-31T23:59:59-01:00' cannot be put in UTC"),
    ("year 1 in UTC", line(purchase(occurred_at="0001-01-01T00:00:00Z")), "occurred_at: '0001-01-01T00:00:00Z' is before 1900"),
    ("year 1899", line(purchase(occurred_at="1899-12-31T23:59:59Z")), "is before 1900, the earliest year the ledger takes"),
    ("year 9999 in UTC", line(purchase(occurred_at="9999-12-31T23:59:59Z")), "occurred_at: 9999-12-31T23:59:59+00:00 is more than 1 day"),
    ("birth date in 9999", line(registered(birth_date="9999-12-31")), "birth_date: 9999-12-31 is after 2199"),
    ("type not text", line(purchase(type=["PurchaseMade"])), "type: expected the event's name as text"),
    ("event_id an object", line(purchase(event_id={"a": 1})), "event_id: dict is not a UUID"),
    ("attributes a list", line(registered(attributes=["a"])), "attributes: list ['a'] does not fit null or map"),
    ("attribute value a number", line(registered(attributes={"tier": 1})), "attributes['tier']: int 1 does not fit string"),
    ("a line that is not an object", line(purchase(lines=["A"])), "lines[0]: str 'A' does not fit a PurchaseLine record"),
    ("a line missing its price", line(purchase(lines=[{"sku": "A", "quantity": 1}])), "lines[0].unit_price_minor: required field missing"),
    ("9 MB line", b'{"type": "' + b"x" * (9 * 1024 * 1024) + b'"}', "line longer than 8 MB"),
]


def test_every_hostile_json_line_is_refused_and_the_lines_around_it_recorded(
    tmp_path: Path, ledger: Ledger
) -> None:
    path = tmp_path / "hostile.jsonl"
    with path.open("wb") as out:
        out.write(json.dumps(good(0)).encode() + b"\n")
        for n, (_, bad, _) in enumerate(HOSTILE, start=1):
            out.write(bad + b"\n" + json.dumps(good(n)).encode() + b"\n")

    report = ingest(ledger, read_json_lines(path))

    # Line 1 is good; bad lines are the even ones: case n on line 2n.
    reasons = {HOSTILE[r.line // 2 - 1][0]: r.reason for r in report.rejected}
    wrong = {case: reasons.get(case) for case, _, words in HOSTILE if words not in (reasons.get(case) or "")}
    assert not wrong, wrong
    assert all(r.line % 2 == 0 for r in report.rejected)
    assert (report.recorded, report.rejected_count) == (len(HOSTILE) + 1, len(HOSTILE))
    counts = recorded(ledger)
    assert all(counts[good_id(n)] == 1 for n in range(len(HOSTILE) + 1))
    assert len(counts) == len(HOSTILE) + 1


def test_a_reason_can_always_be_printed_and_encoded(tmp_path: Path, ledger: Ledger) -> None:
    path = tmp_path / "odd.jsonl"
    path.write_bytes(line(purchase(type="Purch\ud800aseMade")) + b"\n"
                     + line(purchase(channel="w\udfffeb", source_event_id="x")) + b"\n")

    report = ingest(ledger, read_json_lines(path))

    assert report.rejected_count == 2
    for rejection in report.rejected:
        assert rejection.reason
        rejection.reason.encode("utf-8")  # raises if a lone surrogate got into the reason


def test_a_byte_order_mark_before_the_first_json_line_is_skipped(tmp_path: Path, ledger: Ledger) -> None:
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(good(1)).encode() + b"\r\n"
                     + json.dumps(good(2)).encode() + b"\r\n")

    report = ingest(ledger, read_json_lines(path))

    assert (report.recorded, report.rejected) == (2, [])


def test_a_file_that_fails_part_way_keeps_the_rows_read_before(ledger: Ledger) -> None:
    def rows():
        yield 1, good(1)
        yield 2, good(2)
        raise OSError("the disk went away")

    with pytest.raises(OSError, match="the disk went away"):
        ingest(ledger, rows())

    counts = recorded(ledger)
    assert (counts[good_id(1)], counts[good_id(2)]) == (1, 1)


def test_ledger_ingest_refuses_hostile_lines_without_a_traceback_and_projects_the_rest(
    tmp_path: Path,
) -> None:
    path = tmp_path / "hostile.jsonl"
    cases = [bad for _, bad, _ in HOSTILE if len(bad) < 1024 * 1024]
    with path.open("wb") as out:
        for n, bad in enumerate(cases):
            out.write(bad + b"\n" + json.dumps(good(n)).encode() + b"\n")
    data = str(tmp_path / "d")

    result = runner.invoke(app, ["ingest", str(path), "--data-dir", data])

    assert result.exit_code == 3, result.output
    assert "Traceback" not in result.output
    assert f"{len(cases)} recorded, 0 duplicates, {len(cases)} rejected" in result.stderr
    assert "hostile.jsonl:1: customer_id: not valid Unicode" in result.stderr
    query = runner.invoke(app, ["query", "SELECT count(*) AS n FROM events", "--json", "--data-dir", data])
    assert json.loads(query.stdout) == [{"n": len(cases)}]


# CSV: a header, then rows; each case gives the text after the header and, for every row
# that must be recorded, its comment; and the (line, words) of every refusal.
HEADER = "customer_id,occurred_at,source,source_event_id,kind,score,channel,comment\r\n"


def row(n: int, comment: str = "ok", end: str = "\r\n") -> str:
    return f"G{n % 3},{WHEN},survey,s{n},csat,4,email,{comment}{end}"


def survey_id(n: int) -> str:
    return str(event_id_for("survey", f"s{n}"))


CSV_CASES: list[tuple[str, str, dict[int, str], dict[int, str]]] = [
    ("an unterminated quote, the rows after it kept",
     row(1) + row(2, '"never closed') + row(3) + row(4, '"quoted, and closed"') + row(5),
     {1: "ok", 3: "ok", 4: "quoted, and closed", 5: "ok"},
     {3: "a quoted cell opens on this line and runs to line 5, which is not CSV"}),
    ("an unterminated quote on the last row",
     row(1) + row(2, '"open to the end'),
     {1: "ok"},
     {3: "a quoted cell opens on this line and does not close before the end of the file"}),
    ("an unterminated quote whose rows have no quotes at all",
     row(1, '"oops') + row(2) + row(3),
     {2: "ok", 3: "ok"},
     {2: "does not close before the end of the file"}),
    ("two stray quotes that pair up across rows",
     row(1, '"stray') + row(2) + row(3, 'one"') + row(4),
     {2: "ok", 3: 'one"', 4: "ok"},
     {2: "runs to line 4, taking in line 3, which is a row by itself"}),
    ("a stray quote closed by the last cell of the next row, which is a row by itself",
     row(1, '"oops') + row(2, 'x"') + row(3),
     {2: 'x"', 3: "ok"},
     {2: "runs to line 3, taking in line 3, which is a row by itself"}),
    ("a stray quote closed by a row of the wrong width",
     row(1, '"stray') + 'x",y\r\n' + row(2),
     {2: "ok"},
     {2: "runs to line 3, giving 9 cells where the header names 8", 3: "2 cells, but the header names 8"}),
    ("a quoted comment over three lines is one cell",
     row(1, '"first line\nsecond, with a comma\nthird"') + row(2),
     {1: "first line\nsecond, with a comma\nthird", 2: "ok"},
     {}),
    ("a quote inside an unquoted cell is a character",
     row(1, '5" screen') + row(2, 'say ""hi""'),
     {1: '5" screen', 2: 'say ""hi""'},
     {}),
    ("text after a closing quote",
     row(1, '"closed"then more') + row(2),
     {2: "ok"},
     {2: "not CSV: ',' expected after '\"'"}),
    ("a NUL byte in a cell",
     row(1, "nul\x00here") + row(2),
     {2: "ok"},
     {2: "comment: contains a NUL byte"}),
    ("extra and missing cells",
     row(1, "ok,extra") + "G1,2026\r\n" + row(2),
     {2: "ok"},
     {2: "9 cells, but the header names 8", 3: "2 cells, but the header names 8"}),
    ("bare CR line ends and no newline at the end",
     row(1, end="\r") + row(2, end="\r") + row(3, end=""),
     {1: "ok", 2: "ok", 3: "ok"},
     {}),
    ("blank and empty rows are skipped",
     "\r\n" + row(1) + ",,,,,,,\r\n" + row(2),
     {1: "ok", 2: "ok"},
     {}),
    ("a score of 5000 digits",
     row(1).replace(",4,", "," + "9" * 5000 + ",") + row(2),
     {2: "ok"},
     {2: "score: '99999999"}),
    ("a score past 32 bits",
     row(1).replace(",4,", ",4294967296,") + row(2),
     {2: "ok"},
     {2: "score: int 4294967296 is out of range for a 32-bit integer"}),
    ("digits Python reads but CSV does not mean",
     row(1).replace(",4,", ",1_0,") + row(2).replace(",4,", ",\u0664,"),
     {},
     {2: "score: '1_0' is not a whole number", 3: "score: '\u0664' is not a whole number"}),
]


@pytest.mark.parametrize("case", CSV_CASES, ids=[case[0] for case in CSV_CASES])
def test_a_bad_csv_row_is_refused_on_its_line_and_the_others_recorded(
    case: tuple[str, str, dict[int, str], dict[int, str]], tmp_path: Path, ledger: Ledger
) -> None:
    _, body, kept, refused = case
    path = tmp_path / "feedback.csv"
    path.write_bytes(("\ufeff" + HEADER + body).encode("utf-8"))

    report = ingest(ledger, read_csv(path, "FeedbackGiven"))

    reasons = {r.line: r.reason for r in report.rejected}
    assert set(reasons) == set(refused), reasons
    assert all(words in reasons[number] for number, words in refused.items()), reasons
    assert report.recorded == len(kept)
    stored = {record["source_event_id"]: record["comment"]
              for _, record in (ledger.opened(n.state) for n in ledger.notifications(0, 100))}
    assert stored == {f"s{n}": comment for n, comment in kept.items()}


def test_a_csv_header_alone_records_nothing_and_refuses_nothing(tmp_path: Path, ledger: Ledger) -> None:
    path = tmp_path / "empty.csv"
    path.write_text(HEADER, encoding="utf-8")

    report = ingest(ledger, read_csv(path, "FeedbackGiven"))

    assert (report.lines, ledger.head()) == (0, 0)


@pytest.mark.parametrize(
    ("header", "words"),
    [
        (b'"customer_id,occurred_at\n', "line 1: a quote in the header never closes"),
        (b"\xff\xfec\x00u\x00s\x00t\x00\n", "line 1: the header is not valid UTF-8"),
        ("customer_id,occurred_at".encode("utf-16-le") + b"\n", "NUL byte"),
    ],
    ids=["open quote", "bad bytes", "UTF-16"],
)
def test_a_csv_header_that_cannot_be_read_is_refused_for_the_file(
    header: bytes, words: str, tmp_path: Path
) -> None:
    from ledger.errors import InputError

    path = tmp_path / "bad.csv"
    path.write_bytes(header + row(1).encode())

    with pytest.raises(InputError, match=words):
        list(read_csv(path, "FeedbackGiven"))


def test_a_large_csv_with_a_bad_quote_early_keeps_every_later_row(tmp_path: Path, ledger: Ledger) -> None:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    for n in range(3000):
        writer.writerow([f"G{n % 3}", WHEN, "survey", f"s{n}", "csat", "4", "email", "fine, quoted"])
    path = tmp_path / "big.csv"
    path.write_text(HEADER + row(99_999, '"broken') + out.getvalue(), encoding="utf-8")

    report = ingest(ledger, read_csv(path, "FeedbackGiven"))

    assert [r.line for r in report.rejected] == [2]
    assert report.recorded == 3000
    counts = recorded(ledger)
    assert all(counts[survey_id(n)] == 1 for n in range(0, 3000, 7))


def test_lines_of_megabytes_are_recorded_in_chunks_of_bounded_size(tmp_path: Path, ledger: Ledger) -> None:
    """Twenty lines of 2 MB each (attributes to be refused as too large when encoded) are not
    held all at once: the ingest records a chunk, and reports on it, every 16 MB or so (three
    chunks or more here: more than one is what the bound is about)."""
    from ledger.intake.files import FactFile
    from ledger.intake.ingest import CHUNK_BYTES

    huge = 20
    path = tmp_path / "huge.jsonl"
    big = {f"k{n}": "v" * 20 for n in range(80_000)}
    with path.open("wb") as out:
        for n in range(huge):
            out.write(line(registered(source_event_id=f"r{n}", attributes=big)) + b"\n")
        out.write(line(good(1)) + b"\n")
    chunks: list[int] = []
    report = ingest(ledger, FactFile(path), progress=lambda r: chunks.append(r.lines))
    assert (report.recorded, report.rejected_count) == (1, huge)
    assert "bytes encoded, more than the 900,000 allowed" in report.rejected[0].reason
    line_size = path.stat().st_size // (huge + 1)
    sizes = [b - a for a, b in zip([0, *chunks], chunks, strict=False)]
    assert sum(sizes) == huge + 1 and len(sizes) >= max(3, (huge + 1) * line_size // CHUNK_BYTES)
    assert max(sizes) <= CHUNK_BYTES // line_size + 1


@pytest.mark.parametrize(("path", "kind"), [("/dev/zero", "a device"), ("/dev/urandom", "a device"), (".", "a directory")])
def test_a_device_or_a_directory_is_refused_before_reading(path: str, kind: str, tmp_path: Path) -> None:
    """/dev/zero never ends: read, it would hold the writer lock forever."""
    done = runner.invoke(app, ["ingest", path, "--no-project", "--data-dir", str(tmp_path / "d")])
    assert done.exit_code == 1
    assert f"cannot read {path}: it is {kind}" in done.stderr


def test_a_pipe_is_read_like_a_file(tmp_path: Path) -> None:
    """`ledger ingest <(cat facts.jsonl)`: a pipe has no position to ask for; its bytes are counted."""
    import os
    import threading

    pipe = tmp_path / "facts.pipe"
    os.mkfifo(pipe)

    def write() -> None:
        with pipe.open("wb") as out:
            out.write(b"".join(line(good(n)) + b"\n" for n in range(5)) + b"not json\n")

    writer = threading.Thread(target=write)
    writer.start()
    done = runner.invoke(app, ["ingest", str(pipe), "--no-project", "--data-dir", str(tmp_path / "d")])
    writer.join(timeout=30)
    assert done.exit_code == 3, done.output
    assert "5 recorded, 0 duplicates, 1 rejected" in done.stderr
