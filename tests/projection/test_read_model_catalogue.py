"""The catalogue: one SQL file per read model, built in the order its declared dependencies
give, with exactly the tables and columns docs/read-models.md promises analysts."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import pytest

from ledger.errors import ReadModelError
from ledger.projection.catalogue import SPLIT_OUT, in_build_order, load_models, parse_model
from ledger.projection.readmodels import ReadModels

DOCS = Path(__file__).resolve().parents[2] / "docs" / "read-models.md"

TABLES_BY_FILE = {
    "events": {"events"},
    "facts": {"facts", "corrected_events", "fact_amendments", "customer_merges"},
    "customer_spend": {"customer_spend"},
    "exchange_rates": {"exchange_rates"},
    "orders": {"orders"},
    "lifecycle": {"lifecycle", "lifecycle_transitions"},
    "consent": {"consent"},
    "rfm": {"rfm", "rfm_segment_map"},
    "customer_profile": {"customer_profile", "customer_profile_keys"},
    "satisfaction": {
        "satisfaction_daily", "feedback_attributed", "satisfaction_weekly",
        "satisfaction_monthly", "satisfaction_by_segment",
    },
    "segments": {"segments", "segment_membership"},
    "insight": {"insight_runs", "churn_risk", "basket_pairs", "next_best_offer", "customer_clusters", "clusters"},
}


def model(name: str, depends: str) -> str:
    return f"-- {name}\n-- depends: {depends}\n\n-- section: schema\nCREATE TABLE {name} (x INTEGER);\n"


def names(text_by_name: dict[str, str]) -> list[str]:
    return [m.name for m in in_build_order([parse_model(n, t) for n, t in text_by_name.items()])]


def test_models_are_built_after_what_they_depend_on_ties_by_name() -> None:
    got = names({"c": model("c", "a"), "b": model("b", "c, a"), "a": model("a", ""), "d": model("d", "")})
    assert got == ["a", "c", "b", "d"]


def test_an_unknown_dependency_is_an_error_naming_the_file() -> None:
    with pytest.raises(ReadModelError, match=r"projections/b\.sql depends on nowhere"):
        names({"a": model("a", ""), "b": model("b", "a, nowhere")})


def test_a_cycle_is_an_error_naming_the_files_in_it() -> None:
    with pytest.raises(ReadModelError, match="cycle") as caught:
        names({"a": model("a", "c"), "b": model("b", "a"), "c": model("c", "b"), "d": model("d", "")})
    assert "projections/a.sql, projections/b.sql, projections/c.sql" in str(caught.value)
    assert "projections/d.sql" not in str(caught.value)


def test_a_file_without_its_depends_line_is_an_error_naming_it() -> None:
    with pytest.raises(ReadModelError, match=r"projections/a\.sql needs one '-- depends:"):
        parse_model("a", "-- a\n-- section: schema\nCREATE TABLE a (x INTEGER);\n")


def test_every_shipped_file_is_in_the_catalogue_each_after_its_dependencies() -> None:
    models = load_models()
    shipped = sorted(p.stem for p in (Path(__file__).resolve().parents[2] / "projections").glob("*.sql"))
    assert sorted(m.name for m in models) == shipped == sorted(TABLES_BY_FILE)
    position = {m.name: i for i, m in enumerate(models)}
    for m in models:
        assert all(position[d] < position[m.name] for d in m.depends), m.name
    assert position["orders"] < position["lifecycle"] < position["rfm"] < position["customer_profile"]
    assert position["customer_spend"] < position["customer_profile"]


def test_each_file_creates_the_tables_it_is_named_after() -> None:
    con = duckdb.connect()
    created: dict[str, set[str]] = {}
    for m in load_models():
        before = {t for (t,) in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        con.execute(m.sections["schema"])
        after = {t for (t,) in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        created[m.name] = after - before
    assert created == TABLES_BY_FILE


def documented_columns() -> dict[str, set[str]]:
    """Table name -> the columns its `| column | type | meaning |` table in the docs lists."""
    columns: dict[str, set[str]] = {}
    table = None
    rows = iter(DOCS.read_text("utf-8").splitlines())
    for line in rows:
        if heading := re.match(r"^#+ (\w+)", line):
            table = heading.group(1)
        elif named := re.match(r"^`(\w+)`: ", line):
            table = named.group(1)
        elif line.startswith("| column | type | meaning |") and table:
            next(rows)
            for row in rows:
                if not row.startswith("|"):
                    break
                first = row.split("|")[1]
                columns.setdefault(table, set()).update(c.strip(" `") for c in first.split(","))
    return columns


def test_every_documented_table_has_exactly_the_documented_columns(tmp_path: Path) -> None:
    documented = documented_columns()
    assert set(documented) >= {
        "events", "customer_profile", "customer_spend", "orders", "lifecycle",
        "lifecycle_transitions", "consent", "rfm", "segments", "segment_membership",
        "satisfaction_daily",
    }
    with ReadModels(tmp_path / "rm.duckdb") as models:
        for table, wanted in documented.items():
            got = {name for name, *_ in models.con.execute(f'DESCRIBE "{table}"').fetchall()}
            assert got == wanted, table


def earlier_catalogue_file(path: Path, lifecycle: str, profile: str) -> None:
    """A file as the catalogue before the split left it: orders inside lifecycle and
    customer_spend inside customer_profile, neither with a record of its own."""
    ReadModels(path).close()
    old = duckdb.connect(str(path))
    old.execute("DELETE FROM readmodel_migrations WHERE model IN ('orders', 'customer_spend')")
    old.execute("UPDATE readmodel_migrations SET checksum = ? WHERE model = 'lifecycle'", [lifecycle])
    old.execute("UPDATE readmodel_migrations SET checksum = ? WHERE model = 'customer_profile'", [profile])
    old.close()


def test_a_file_built_before_orders_and_customer_spend_had_files_opens_without_a_rebuild(tmp_path: Path) -> None:
    path = tmp_path / "rm.duckdb"
    earlier_catalogue_file(path, SPLIT_OUT["lifecycle"][0], SPLIT_OUT["customer_profile"][0])

    with ReadModels(path) as models:
        recorded = dict(models.con.execute("SELECT model, checksum FROM readmodel_migrations").fetchall())

    assert recorded == {model.name: model.checksum for model in load_models()}


def test_a_file_built_from_another_definition_asks_for_a_replay(tmp_path: Path) -> None:
    path = tmp_path / "rm.duckdb"
    earlier_catalogue_file(path, "another", "definition")
    with pytest.raises(ReadModelError, match=r"changed since .* run `ledger replay`"):
        ReadModels(path)


def test_the_read_models_know_the_amendments_the_contract_names(tmp_path: Path) -> None:
    from ledger.contract.amendments import AMENDMENTS
    from ledger.contract.codec import default_codec

    with ReadModels(tmp_path / "rm.duckdb") as models:
        amending = {t for t in default_codec().event_types
                    if models.con.execute("SELECT is_amendment(?)", [t]).fetchone()[0]}
    assert amending == set(AMENDMENTS)
