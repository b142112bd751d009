"""Commands for analysts beyond `query`: models, export, report."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from ledger.cli.app import AsJson, DataDir, KnownAt, command, err, out, print_mapping, print_rows, settings, when_asked
from ledger.errors import SettingsError
from ledger.projection.catalogue_docs import read_models
from ledger.projection.export import export as run_export
from ledger.projection.query import published, snapshot


class ExportFormat(StrEnum):
    parquet = "parquet"
    csv = "csv"


@command()
def export(
    tables: Annotated[list[str] | None, typer.Argument(help="Tables to export (default: every read model).")] = None,
    to: Annotated[Path, typer.Option("--to", help="The directory to write into (created if missing).")] = Path(
        "ledger-export"
    ),
    fmt: Annotated[ExportFormat, typer.Option("--format", help="parquet or csv.")] = ExportFormat.parquet,
    as_of: Annotated[
        str | None,
        typer.Option("--as-of", help="Every model as of this ISO-8601 event time (as `query`)."),
    ] = None,
    known_at: KnownAt = None,
    as_json: AsJson = False,
    data_dir: DataDir = None,
) -> None:
    """Write the read models to files, one consistent snapshot, with a manifest.

    One file per table (TABLE.parquet or TABLE.csv, written by DuckDB itself) and
    manifest.json: the row count of each file, the ledger position and as-of time they
    reflect, and when the copy was published. Every table comes from the same snapshot; the
    manifest is written last, so an export is whole once it is there.

    Example: ledger export customer_profile lifecycle --to exports/2026-12 --format parquet
    """
    config = settings(data_dir)
    when, known = when_asked(as_of), when_asked(known_at, "--known-at")
    with snapshot(published(config), when, config, known) as readable:
        manifest = run_export(readable, list(tables or []), fmt.value, to, config.data_dir)
    if as_json:
        print_mapping(manifest, True)
        return
    rows = sum(t["rows"] for t in manifest["tables"].values())
    err.print(f"exported {len(manifest['tables'])} tables ({rows} rows) to {to}", highlight=False)


@command()
def models(
    tables: Annotated[list[str] | None, typer.Argument(help="Only these tables (default: all).")] = None,
    as_json: AsJson = False,
    data_dir: DataDir = None,
) -> None:
    """List the read models: tables, columns, types, what each means, and which are personal.

    Read from the published copy (the comments a BI tool shows too), or, before the first
    projection, from the models this version builds. A personal column reads NULL once its
    customer is erased.

    Example: ledger models customer_profile lifecycle
    """
    config = settings(data_dir)
    found = read_models(published(config))
    names = [t.name for t in found]
    unknown = [t for t in tables or [] if t not in names]
    if unknown:
        raise SettingsError(f"no read model named {', '.join(map(repr, unknown))}; the tables are {', '.join(names)}")
    chosen = [t for t in found if not tables or t.name in tables]
    if as_json:
        print_mapping({"tables": [
            {"table": t.name, "kind": t.kind, "description": t.description, "columns": [
                {"column": c.name, "type": c.type, "personal": c.personal, "description": c.description}
                for c in t.columns]}
            for t in chosen]}, True)
        return
    for table in chosen:
        out.print(f"{table.name} ({table.kind}): {table.description}", soft_wrap=True)
        rows = [(c.name, c.type, "personal" if c.personal else "", c.description) for c in table.columns]
        print_rows(["column", "type", "personal", "description"], rows, False)


@command()
def report(
    to: Annotated[
        Path | None, typer.Option("--to", help="The HTML file to write (default: ledger-report-DATE.html).")
    ] = None,
    as_of: Annotated[
        str | None,
        typer.Option("--as-of", help="Report as of this ISO-8601 event time: later events left out."),
    ] = None,
    known_at: KnownAt = None,
    data_dir: DataDir = None,
) -> None:
    """Write one self-contained HTML report with charts of the read models.

    Lifecycle funnel and transitions by month, CSAT, NPS and CES by month and channel (with
    their counts), complaint rate, segment sizes over time, the RFM grid, revenue and refunds
    by month, and cohort retention. It opens offline (the charting library is inside the
    file) and holds aggregates only, no personal data.

    Example: ledger report --to report.html --as-of 2026-06-30
    """
    from ledger.ops.report import default_target
    from ledger.ops.report import report as write_report

    config = settings(data_dir)
    known = when_asked(known_at, "--known-at")
    written = write_report(config, to or default_target(), when_asked(as_of), known)
    err.print(f"wrote {written}", highlight=False)
