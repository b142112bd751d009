"""Commands of the read models: project, replay, query, status."""

from __future__ import annotations

import os
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from ledger.cli.app import (
    AsJson,
    AsOf,
    DataDir,
    Kafka,
    KnownAt,
    Store,
    as_of_time,
    command,
    err,
    lag_bar,
    print_mapping,
    print_rows,
    settings,
    when_asked,
)
from ledger.errors import SettingsError
from ledger.ops.projecting import project, replay
from ledger.ops.status import status as read_status
from ledger.projection.answers import (
    FORMATS,
    TABLE_ROWS,
    Answer,
    Take,
    keep_rows,
    output_file,
    write_parquet,
    write_text,
)
from ledger.projection.query import DEFAULT_TIMEOUT_S, answer, published


@command("project")
def project_(
    once: Annotated[bool, typer.Option("--once", help="Stop when caught up instead of following.")] = False,
    as_of: AsOf = None,
    data_dir: DataDir = None,
    store: Store = None,
    kafka: Kafka = None,
) -> None:
    """Bring the read models up to date (from the store, or from Kafka with --kafka).

    Example: ledger project --once
    """
    import threading

    from ledger.ops.projecting import follow
    from ledger.ops.signals import stop_on_signals

    config = settings(data_dir, store, kafka)
    if once:
        with lag_bar("projecting") as progress:
            stats = project(config, as_of_time(as_of), progress=progress)
        err.print(f"projected {stats.read} events ({stats.new} new) in {stats.seconds:.1f}s", highlight=False)
        return
    stop = threading.Event()
    with stop_on_signals(stop):
        stats = follow(config, lambda: as_of_time(as_of), stop)
    err.print(f"stopped after {stats.read} events", highlight=False)


@command("replay")
def replay_(
    as_of: AsOf = None,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Rebuild into a scratch file and print what a replay would change, per "
                     "table; swap nothing (by default as of the published copy's own time)."),
    ] = False,
    as_json: AsJson = False,
    data_dir: DataDir = None,
    store: Store = None,
    kafka: Kafka = None,
) -> None:
    """Rebuild every read model from the first event into a new file, then swap it in.

    With --dry-run nothing is swapped and no writer is stopped: the rebuild goes to a scratch
    folder and is compared with the published copy, table by table (rows added, removed and
    changed by primary key). Exit 0 either way; --json for scripts.

    Example: ledger replay --as-of 2026-06-30T00:00:00Z

    Also: ledger replay --dry-run
    """
    config = settings(data_dir, store, kafka)
    if dry_run:
        from ledger.ops.replay_diff import dry_run as rebuild_and_compare
        from ledger.ops.replay_diff import published_as_of

        when = as_of_time(as_of) if as_of is not None else (published_as_of(config) or as_of_time(None))
        with lag_bar("rebuilding") as progress:
            result = rebuild_and_compare(config, when, progress=progress)
        rows = [(t.table, t.rows_now, t.rows_after, t.added, t.removed, t.changed, t.note) for t in result.tables]
        if as_json:
            print_mapping({"as_of": result.as_of, "events": result.events, "unchanged": result.unchanged,
                           "tables": [dict(zip(("table", "rows_now", "rows_after", "added", "removed", "changed",
                                                "note"), row, strict=True)) for row in rows]}, True)
            return
        print_rows(["table", "rows now", "rows after", "added", "removed", "changed", "note"], rows, False,
                   title=f"replay as of {result.as_of.isoformat()} from {result.events} events (dry run)")
        err.print("no table would change" if result.unchanged else "nothing was swapped: run without --dry-run "
                  "to replay", highlight=False)
        return
    with lag_bar("replaying") as progress:
        stats = replay(config, as_of_time(as_of), progress=progress)
    err.print(f"rebuilt read models from {stats.read} events in {stats.seconds:.1f}s", highlight=False)


class Format(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"
    jsonl = "jsonl"
    parquet = "parquet"


SQL_FILE_LIMIT = 1_000_000
"""Bytes of SQL read from -f or stdin: far more than any real query, far less than memory."""


@command()
def query(
    sql: Annotated[
        str | None, typer.Argument(help="One read-only statement; '-' or none: read it from -f or stdin.")
    ] = None,
    sql_file: Annotated[
        Path | None, typer.Option("--file", "-f", help="Read the statement from this file ('-': stdin).")
    ] = None,
    fmt: Annotated[
        Format | None,
        typer.Option(
            "--format", help="table (the default), csv, json, jsonl or parquet (needs --output); "
            "with --output, its suffix says which unless given."),
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the answer to this file (whole, or not at all).")
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option("--limit", min=0, help=f"At most this many rows (a table shows {TABLE_ROWS} unless told)."),
    ] = None,
    as_json: AsJson = False,
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of",
            help="Every model as of this ISO-8601 event time (only events that happened by then, the "
            "time-dependent models computed for then), in a temporary copy (default: as published).",
        ),
    ] = None,
    known_at: KnownAt = None,
    timeout: Annotated[
        float, typer.Option("--timeout", min=0.001, help="Stop the query after this many seconds.")
    ] = DEFAULT_TIMEOUT_S,
    data_dir: DataDir = None,
) -> None:
    """Run one read-only statement over the published read models.

    The connection is sandboxed: SELECT, WITH, DESCRIBE, SHOW, SUMMARIZE, EXPLAIN and read
    PRAGMAs only, one per call, no files, no ATTACH, no extensions; Ctrl-C stops it. Times are
    UTC; in JSON, timestamps are ISO-8601 and intervals ISO-8601 durations.

    A table shows the first 100 rows and says how many more there are; csv, json (an array of
    objects, as --json), jsonl and parquet write every row (or --limit) as they come.

    Time travel, in a temporary copy (the published file is left as it is): --as-of T gives
    every model as of the event time T, late events that happened by T included; --known-at K
    gives them as the ledger knew them at K (events recorded by K). The copy is built from the
    published `events`, which takes a while on a long history.

    Personal columns (`ledger models` lists them): they read NULL for an erased customer.

    Example: ledger query "SELECT stage, count(*) FROM lifecycle GROUP BY 1" --as-of 2026-03-31

    Also: ledger query -f churn.sql --format parquet -o churn.parquet
    """
    config = settings(data_dir)
    kind = _format(fmt, as_json, output)
    statement = _statement(sql, sql_file)
    when, known = when_asked(as_of), when_asked(known_at, "--known-at")

    def run(take: Take) -> Answer:
        return answer(published(config), statement, take, as_of=when, settings=config, timeout_s=timeout,
                      known_at=known)

    if kind == "table":
        result = run(keep_rows(TABLE_ROWS if limit is None else limit))
        print_rows(result.columns, result.rows, False)
    elif output is None:
        try:
            result = run(write_text(kind, sys.stdout, limit))
            sys.stdout.flush()
        except BrokenPipeError:  # the reader went away (`| head`): stop quietly, as Unix tools do
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise typer.Exit(141) from None
    else:
        with output_file(output, config.data_dir) as scratch:
            if kind == "parquet":
                result = run(write_parquet(scratch, limit))
            else:
                with scratch.open("w", encoding="utf-8", newline="") as stream:
                    result = run(write_text(kind, stream, limit))
        err.print(f"wrote {result.written} rows to {output}", highlight=False)
    if result.more:
        shown = "shown" if kind == "table" else "written"
        err.print(f"{result.more} more rows not {shown} (--limit N to change how many)", highlight=False)


def _format(fmt: Format | None, as_json: bool, output: Path | None) -> str:
    """The format asked for: --json is --format json, kept for the scripts that use it."""
    if as_json and fmt not in (None, Format.json):
        raise SettingsError(f"--json and --format {fmt.value} disagree: give one of them")
    kind = "json" if as_json else (fmt.value if fmt else _suffix_format(output))
    if kind == "parquet" and output is None:
        raise SettingsError("--format parquet needs --output FILE (Parquet is not for a terminal)")
    if kind == "table" and output is not None:
        raise SettingsError("--output takes csv, json, jsonl or parquet, not a table: give --format")
    return kind


def _suffix_format(output: Path | None) -> str:
    if output is None:
        return "table"
    suffix = output.suffix.lower().lstrip(".")
    kind = {"ndjson": "jsonl", "pq": "parquet"}.get(suffix, suffix)
    if kind not in FORMATS or kind == "table":
        raise SettingsError(f"--output {output}: say which format with --format csv|json|jsonl|parquet")
    return kind


def _statement(sql: str | None, sql_file: Path | None) -> str:
    """The SQL: the argument, or a file (-f), or stdin ('-', or nothing on a pipe)."""
    if sql not in (None, "-") and sql_file is not None:
        raise SettingsError("give the SQL as an argument or with -f FILE, not both")
    if sql not in (None, "-"):
        return sql
    if sql_file is None or str(sql_file) == "-":
        if sys.stdin is None or sys.stdin.isatty():
            raise SettingsError("no SQL: give it as an argument, with -f FILE, or on stdin")
        source, data = "stdin", sys.stdin.buffer.read(SQL_FILE_LIMIT + 1)
    else:
        try:
            source, data = str(sql_file), sql_file.open("rb").read(SQL_FILE_LIMIT + 1)
        except OSError as exc:
            raise SettingsError(f"cannot read the SQL file {sql_file}: {exc.strerror or exc}") from exc
    if len(data) > SQL_FILE_LIMIT:
        raise SettingsError(f"the SQL from {source} is longer than {SQL_FILE_LIMIT:,} bytes")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SettingsError(f"the SQL from {source} is not UTF-8 text (byte {exc.start})") from exc


@command()
def status(as_json: AsJson = False, data_dir: DataDir = None, store: Store = None, kafka: Kafka = None) -> None:
    """Show the store head, projector positions, lag and when read models were published.

    Example: ledger status --json
    """
    print_mapping(read_status(settings(data_dir, store, kafka)), as_json)
