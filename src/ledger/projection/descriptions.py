"""What every read-model table and column means, written once (projections/descriptions.toml).

The one source reaches analysts three ways, so they always say the same thing (as dbt's
persist_docs does): the projector writes it into the DuckDB file as ``COMMENT ON`` (a BI tool
or ``duckdb_columns()`` shows it, in the published copy too), `ledger models` prints it, and
docs/read-models.md's column tables are generated from it (`python -m
ledger.projection.catalogue_docs docs/read-models.md`; a test keeps the page in step).
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from dataclasses import dataclass
from importlib import resources
from typing import Any

import duckdb

SOURCE = "descriptions.toml"
STATE_KEY = "descriptions"
"""The projector_state key holding the checksum of the descriptions last written as comments."""


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    description: str
    personal: bool


@dataclass(frozen=True)
class Table:
    name: str
    kind: str
    """``table`` or ``view``."""
    description: str
    columns: tuple[Column, ...]


def _text() -> str:
    return resources.files("ledger.projections").joinpath(SOURCE).read_text("utf-8")


def load() -> dict[str, Any]:
    """The descriptions as written: table -> {description, personal, columns}."""
    return tomllib.loads(_text())


def personal_columns() -> dict[str, frozenset[str]]:
    """Table -> its personal columns (NULL once the customer is erased)."""
    return {t: frozenset(d.get("personal", ())) for t, d in load().items()}


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def write_comments(con: duckdb.DuckDBPyConnection) -> bool:
    """Write the descriptions into the open file as comments, in one transaction, unless
    those same descriptions were written before; True if written. A table or column the
    file does not have (yet) is left out: comments describe, they never fail a projector."""
    checksum = hashlib.sha256(_text().encode()).hexdigest()[:16]
    row = con.execute("SELECT value FROM projector_state WHERE key = ?", [STATE_KEY]).fetchone()
    if row is not None and row[0] == checksum:
        return False
    present = _present(con)
    con.execute("BEGIN TRANSACTION")
    try:
        for table, doc in load().items():
            if table not in present:
                continue
            kind, columns = present[table]
            con.execute(f'COMMENT ON {kind.upper()} "{table}" IS {_literal(doc["description"])}')
            for column, text in doc.get("columns", {}).items():
                if column in columns:
                    con.execute(f'COMMENT ON COLUMN "{table}"."{column}" IS {_literal(text)}')
        con.execute("INSERT OR REPLACE INTO projector_state VALUES (?, ?)", [STATE_KEY, checksum])
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return True


def _present(con: duckdb.DuckDBPyConnection) -> dict[str, tuple[str, dict[str, str]]]:
    """Table -> (table or view, column -> type) of the file open on `con`."""
    rows = con.execute(
        "SELECT c.table_name, CASE WHEN v.view_name IS NULL THEN 'table' ELSE 'view' END, c.column_name, c.data_type "
        "FROM duckdb_columns() c LEFT JOIN duckdb_views() v "
        "ON v.view_name = c.table_name AND v.database_name = c.database_name AND NOT v.internal "
        "WHERE c.database_name = current_database() AND NOT c.internal ORDER BY c.table_name, c.column_index"
    ).fetchall()
    present: dict[str, tuple[str, dict[str, str]]] = {}
    for table, kind, column, data_type in rows:
        present.setdefault(table, (kind, {}))[1][column] = data_type
    return present


def describe(con: duckdb.DuckDBPyConnection) -> list[Table]:
    """Every table and view of the file open on `con`, as its comments describe it."""
    personal = personal_columns()
    comments = dict(con.execute(
        "SELECT table_name, comment FROM duckdb_tables() WHERE database_name = current_database() "
        "UNION ALL SELECT view_name, comment FROM duckdb_views() WHERE database_name = current_database() "
        "AND NOT internal"
    ).fetchall())
    column_comments = {
        (t, c): text for t, c, text in con.execute(
            "SELECT table_name, column_name, comment FROM duckdb_columns() "
            "WHERE database_name = current_database() AND NOT internal"
        ).fetchall()
    }
    return [
        Table(
            table, kind, comments.get(table) or "",
            tuple(Column(c, t, column_comments.get((table, c)) or "", c in personal.get(table, ()))
                  for c, t in columns.items()),
        )
        for table, (kind, columns) in sorted(_present(con).items())
    ]


def markdown(table: Table) -> str:
    """A table's columns as the Markdown table docs/read-models.md shows."""
    lines = ["| column | type | meaning |", "| --- | --- | --- |"]
    for c in table.columns:
        mark = " **Personal.**" if c.personal else ""
        text = c.description.replace("|", "\\|")
        lines.append(f"| {c.name} | {c.type} | {text}{mark} |")
    return "\n".join(lines)


_BLOCK = re.compile(r"(<!-- columns: (\w+) -->\n)(?:\|[^\n]*\n)*(<!-- /columns -->)")
"""A generated block: its markers and, between them, only the lines of a Markdown table."""


def render_docs(page: str, tables: list[Table]) -> str:
    """`page` with every ``<!-- columns: NAME -->`` block replaced by NAME's columns."""
    by_name = {t.name: t for t in tables}

    def block(match: re.Match[str]) -> str:
        name = match.group(2)
        if name not in by_name:
            raise KeyError(f"docs name a table {name!r} that the read models do not have")
        return match.group(1) + markdown(by_name[name]) + "\n" + match.group(3)

    return _BLOCK.sub(block, page)


def documented(page: str) -> list[str]:
    """The tables the page has a generated block for, in order."""
    return [m.group(2) for m in _BLOCK.finditer(page)]
