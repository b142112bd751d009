"""One description per table and column, written once: the DuckDB file carries them as
comments (the published copy, an as-of copy and a shredded file too), `ledger models` prints
them, docs/read-models.md shows them, and none of the three can drift from the others."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from ledger.cli.main import app
from ledger.contract.codec import default_codec
from ledger.projection import descriptions
from ledger.projection.catalogue_docs import read_models
from ledger.projection.descriptions import describe, documented, load, render_docs
from ledger.projection.readmodels import ReadModels
from tests.support.cli import StrictRunner

DOCS = Path(__file__).resolve().parents[2] / "docs" / "read-models.md"
NOW = datetime(2026, 6, 1, tzinfo=UTC)


def uncommented(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
    tables = con.execute(
        "SELECT table_name, '' FROM duckdb_tables() WHERE database_name = current_database() AND comment IS NULL "
        "UNION ALL SELECT view_name, '' FROM duckdb_views() WHERE database_name = current_database() "
        "AND NOT internal AND comment IS NULL"
    ).fetchall()
    columns = con.execute(
        "SELECT table_name, column_name FROM duckdb_columns() "
        "WHERE database_name = current_database() AND NOT internal AND (comment IS NULL OR comment = '')"
    ).fetchall()
    return sorted(tables + columns)


def test_the_source_describes_exactly_the_tables_and_columns_the_projector_builds(tmp_path: Path) -> None:
    with ReadModels(tmp_path / "r.duckdb") as models:
        built = {t.name: [c.name for c in t.columns] for t in describe(models.con)}
    written = {t: list(d["columns"]) for t, d in load().items()}
    assert written == built
    for table, doc in load().items():
        assert doc["description"].strip(), table
        assert set(doc.get("personal", ())) <= set(doc["columns"]), table
        assert set(doc.get("key", ())) <= set(doc["columns"]), table


def test_every_table_and_column_of_a_new_file_has_its_comment(tmp_path: Path) -> None:
    with ReadModels(tmp_path / "r.duckdb") as models:
        assert uncommented(models.con) == []
        comment = models.con.execute(
            "SELECT comment FROM duckdb_columns() WHERE table_name = 'lifecycle' AND column_name = 'stage'"
        ).fetchone()[0]
    assert comment == load()["lifecycle"]["columns"]["stage"]


def test_a_file_built_before_the_descriptions_gets_them_when_the_projector_opens_it(tmp_path: Path) -> None:
    path = tmp_path / "r.duckdb"
    with ReadModels(path) as models:
        for table in describe(models.con):
            models.con.execute(f"COMMENT ON {table.kind.upper()} {table.name} IS NULL")
            for column in table.columns:
                models.con.execute(f"COMMENT ON COLUMN {table.name}.{column.name} IS NULL")
        models.con.execute("DELETE FROM projector_state WHERE key = ?", [descriptions.STATE_KEY])
        assert len(uncommented(models.con)) == len(load()) + sum(len(d["columns"]) for d in load().values())
    with ReadModels(path) as models:
        assert uncommented(models.con) == []


def test_comments_reach_the_published_copy_and_survive_an_erasure_rewrite(tmp_path: Path) -> None:
    path = tmp_path / "r.duckdb"
    with ReadModels(path) as models:
        models.set_state("shred_pending", "1")
        models.publish(tmp_path / "published.duckdb", NOW)  # publishing rewrites the file first
        assert uncommented(models.con) == []
    with duckdb.connect(str(tmp_path / "published.duckdb"), read_only=True) as con:
        assert uncommented(con) == []


def test_personal_columns_of_events_are_the_fields_the_schemas_mark_pii() -> None:
    marked = {name for v in default_codec().versions for name in v.personal}
    assert set(load()["events"]["personal"]) == marked
    assert set(load()["customer_profile"]["personal"]) == marked & set(load()["customer_profile"]["columns"])


def test_the_docs_show_every_table_once_and_exactly_what_the_source_says() -> None:
    page = DOCS.read_text(encoding="utf-8")
    tables = read_models()
    assert sorted(documented(page)) == sorted(t.name for t in tables)
    assert render_docs(page, tables) == page, "run: python -m ledger.projection.catalogue_docs docs/read-models.md"


def test_a_description_with_quotes_or_sql_in_it_is_kept_as_text(tmp_path: Path, monkeypatch) -> None:
    hostile = """it's a "quote"'; DROP TABLE events; -- and a | pipe"""
    in_toml = hostile.replace('"', '\\"')
    original = descriptions._text()
    event_id = load()["events"]["columns"]["event_id"]
    changed = original.replace(f'event_id = "{event_id}"', f'event_id = "{in_toml}"', 1)
    assert changed != original
    monkeypatch.setattr(descriptions, "_text", lambda: changed)
    with ReadModels(tmp_path / "r.duckdb") as models:
        comment = models.con.execute(
            "SELECT comment FROM duckdb_columns() WHERE table_name = 'events' AND column_name = 'event_id'"
        ).fetchone()[0]
        assert comment == hostile
        assert models.con.execute("SELECT count(*) FROM events").fetchone()[0] == 0
        (events,) = [t for t in describe(models.con) if t.name == "events"]
    assert "a \\| pipe" in descriptions.markdown(events)  # a bare pipe would end the Markdown cell


def test_ledger_models_lists_tables_columns_types_and_personal_ones(tmp_path: Path) -> None:
    result = StrictRunner().invoke(app, ["models", "customer_profile", "--json", "--data-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    (profile,) = json.loads(result.stdout)["tables"]
    columns = {c["column"]: c for c in profile["columns"]}
    assert columns["email"]["personal"] and not columns["country"]["personal"]
    assert columns["net_spend"]["type"] == "MAP(VARCHAR, HUGEINT)"
    assert columns["erased"]["description"] == load()["customer_profile"]["columns"]["erased"]
    table = StrictRunner().invoke(app, ["models", "--data-dir", str(tmp_path)])
    assert table.exit_code == 0 and "segment_membership" in table.stdout


@pytest.mark.parametrize("name", ["nope", "events; DROP TABLE events", "[red]x[/]"])
def test_ledger_models_names_an_unknown_table_and_lists_the_real_ones(tmp_path: Path, name: str) -> None:
    result = StrictRunner().invoke(app, ["models", name, "--data-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert repr(name) in result.stderr and "customer_profile" in result.stderr
