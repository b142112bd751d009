"""Segment rules: ``projections/segments/NAME.sql`` and the ``segments_dir`` setting.

Each rule is a query returning ``customer_id``, run at every refresh into the temp tables
``segment_results`` and ``segment_runs`` that ``projections/segments.sql`` turns into the
membership history. A broken rule is reported, never fatal.

Every segment is for one consent purpose: ``profiling`` unless a line of the file's leading
comment declares another (``-- consent: marketing_sms``). segments.sql keeps only the members
holding that consent as of the refresh, so a rule cannot reach customers who did not agree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import duckdb
import pyarrow as pa

from ledger.errors import SegmentError, SettingsError

_SEGMENT_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_CONSENT_LINE = re.compile(r"^consent:\s*(\S*)\s*$")

CONSENT_PURPOSES = ("marketing_email", "marketing_sms", "marketing_phone", "profiling")
"""The purposes of ConsentChanged (schemas/consent_changed.*.avsc), as `consent` lists them."""
PROFILING = "profiling"


@dataclass(frozen=True)
class SegmentRule:
    """One segment rule file: a query returning ``customer_id``."""

    name: str
    file: str
    """How the file is named in messages: ``projections/segments/NAME.sql`` or its path."""
    sql: str
    description: str | None
    problem: str | None = None
    """Why the file cannot be used at all (bad name, duplicate, unreadable), if it cannot."""
    duplicate: bool = False
    """Another file already defines a segment of this name; that one stays in use."""
    consent: str | None = None
    """The consent purpose its members must hold as of the refresh (None if it cannot be used)."""


def load_segment_rules(extra_dir: Path | None = None) -> list[SegmentRule]:
    """The shipped segment rules, then those in `extra_dir`, sorted by name within each."""
    folder = resources.files("ledger.projections.segments")
    shipped = sorted(
        (entry for entry in folder.iterdir() if entry.name.endswith(".sql")), key=lambda e: e.name
    )
    rules = [
        _rule(e.name[:-4], f"projections/segments/{e.name}", e.read_text("utf-8")) for e in shipped
    ]
    if extra_dir is not None:
        if not extra_dir.is_dir():
            raise SettingsError(f"segments_dir {extra_dir} is not a directory")
        names = {rule.name for rule in rules}
        for path in sorted(extra_dir.glob("*.sql")):
            try:
                text = path.read_text("utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                rules.append(SegmentRule(path.stem, str(path), "", None, f"cannot read it: {exc}"))
                continue
            rule = _rule(path.stem, str(path), text)
            if rule.name in names:
                problem = f"segment {rule.name!r} is already defined by another file; rename it"
                rule = SegmentRule(rule.name, rule.file, "", None, problem, duplicate=True)
            names.add(rule.name)
            rules.append(rule)
    return rules


def _rule(name: str, file: str, text: str) -> SegmentRule:
    if not _SEGMENT_NAME.match(name):
        problem = "a segment file name must be lower case letters, digits and _ (NAME.sql)"
        return SegmentRule(name, file, "", None, problem)
    comments, consent = [], PROFILING
    for line in text.splitlines():
        if not line.startswith("--"):
            break
        comment = line[2:].strip()
        if declared := _CONSENT_LINE.match(comment):
            consent = declared.group(1)
        else:
            comments.append(comment)
    if consent not in CONSENT_PURPOSES:
        problem = f"consent {consent!r} is not a purpose; use one of {', '.join(CONSENT_PURPOSES)}"
        return SegmentRule(name, file, "", None, problem)
    sql = text.rstrip().rstrip(";").rstrip()
    if not sql:
        return SegmentRule(name, file, "", None, "the file is empty")
    return SegmentRule(name, file, sql, " ".join(comments) or None, consent=consent)


class RetryRefresh(Exception):
    """A segment rule failed inside the refresh transaction: roll back, run again without it."""


def precheck(con: duckdb.DuckDBPyConnection, rules: list[SegmentRule]) -> dict[str, SegmentError]:
    """The rules that cannot run, by file: parsed and bound outside the transaction (without
    running them), where most mistakes show with DuckDB's message about the file's own text."""
    broken: dict[str, SegmentError] = {}
    for rule in rules:
        problem = rule.problem or _problem(con, rule)
        if problem:
            broken[rule.file] = SegmentError(f"segment file {rule.file}: {problem}")
    return broken


def _problem(con: duckdb.DuckDBPyConnection, rule: SegmentRule) -> str | None:
    try:
        statements = duckdb.extract_statements(rule.sql)
        if len(statements) != 1 or statements[0].type != duckdb.StatementType.SELECT:
            return "a segment file must hold exactly one SELECT query returning customer_id"
        columns = con.sql(rule.sql).columns
    except duckdb.Error as exc:
        return str(exc)
    if "customer_id" not in columns:
        return f"the query must return a customer_id column (it returns {', '.join(columns)})"
    return None


def run_segment_rules(
    con: duckdb.DuckDBPyConnection, rules: list[SegmentRule], broken: dict[str, SegmentError]
) -> None:
    """Fill ``segment_results`` and ``segment_runs``; a rule failing at run time is added to
    `broken` and RetryRefresh raised, since the failed statement spoils the transaction."""
    con.execute(
        "CREATE OR REPLACE TEMP TABLE segment_results (segment VARCHAR, customer_id VARCHAR)"
    )
    con.execute(
        "CREATE OR REPLACE TEMP TABLE segment_runs "
        "(segment VARCHAR, file VARCHAR, description VARCHAR, consent VARCHAR, error VARCHAR)"
    )
    for rule in rules:
        if rule.file in broken:
            continue
        statement = (
            "INSERT INTO segment_results "
            f"SELECT DISTINCT '{rule.name}', rule.customer_id::VARCHAR "
            f"FROM ({rule.sql}\n) AS rule "
            "WHERE rule.customer_id IN "
            "(SELECT customer_id FROM lifecycle WHERE stage <> 'erased')"
        )
        try:
            con.execute(statement)
        except duckdb.Error as exc:
            broken[rule.file] = SegmentError(f"segment file {rule.file}: {exc}")
            raise RetryRefresh from exc
    listed = [r for r in rules if not r.duplicate]
    columns = ("segment", "file", "description", "consent", "error")
    runs = pa.table(
        {
            "segment": [r.name for r in listed],
            "file": [r.file for r in listed],
            "description": [r.description for r in listed],
            "consent": [r.consent for r in listed],
            "error": [str(broken[r.file]) if r.file in broken else None for r in listed],
        },
        schema=pa.schema([(name, pa.string()) for name in columns]),
    )
    con.register("new_segment_runs", runs)
    con.execute("INSERT INTO segment_runs SELECT * FROM new_segment_runs")
    con.unregister("new_segment_runs")
