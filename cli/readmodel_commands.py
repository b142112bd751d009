"""Commands of the read models: project, replay, query, status."""

from __future__ import annotations

from typing import Annotated

import typer

from ledger.cli.app import (
    AsJson,
    AsOf,
    DataDir,
    Kafka,
    Store,
    as_of_time,
    command,
    err,
    lag_bar,
    print_mapping,
    print_rows,
    settings,
)
from ledger.ops.projecting import project, replay
from ledger.ops.status import status as read_status
from ledger.projection.query import DEFAULT_TIMEOUT_S
from ledger.projection.query import query as run_query


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
    data_dir: DataDir = None,
    store: Store = None,
    kafka: Kafka = None,
) -> None:
    """Rebuild every read model from the first event into a new file, then swap it in.

    Example: ledger replay --as-of 2026-06-30T00:00:00Z
    """
    config = settings(data_dir, store, kafka)
    with lag_bar("replaying") as progress:
        stats = replay(config, as_of_time(as_of), progress=progress)
    err.print(f"rebuilt read models from {stats.read} events in {stats.seconds:.1f}s", highlight=False)


@command()
def query(
    sql: Annotated[str, typer.Argument(help="Read-only SQL over the read models.")],
    as_json: AsJson = False,
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of",
            help="Recompute lifecycle, RFM, segments and the profile's stage as of this ISO-8601 "
            "time, in a temporary copy of the published read models (default: as published).",
        ),
    ] = None,
    timeout: Annotated[
        float, typer.Option("--timeout", min=0.001, help="Stop the query after this many seconds.")
    ] = DEFAULT_TIMEOUT_S,
    data_dir: DataDir = None,
) -> None:
    """Run one read-only statement over the published read models.

    The connection is sandboxed: SELECT, WITH, DESCRIBE, SHOW, SUMMARIZE, EXPLAIN and read
    PRAGMAs only, one per call, no files, no ATTACH, no extensions; Ctrl-C stops it. Times are
    UTC; with --json, timestamps are ISO-8601 and intervals ISO-8601 durations.

    With --as-of the time-dependent models are recomputed for that time in a temporary copy;
    the published file is left as it is.

    Personal columns (the fields the schemas mark "pii"): in `events` name, email, phone,
    city, birth_date, attributes, reason, agent_id and comment; in `customer_profile` name,
    email, phone and city. They read NULL for an erased customer (docs/read-models.md).

    Example: ledger query "SELECT stage, count(*) FROM lifecycle GROUP BY 1" --as-of 2026-03-31
    """
    config = settings(data_dir)
    when = None if as_of is None else as_of_time(as_of)
    columns, rows = run_query(config.published_path, sql, as_of=when, settings=config, timeout_s=timeout)
    print_rows(columns, rows, as_json)


@command()
def status(as_json: AsJson = False, data_dir: DataDir = None, store: Store = None, kafka: Kafka = None) -> None:
    """Show the store head, projector positions, lag and when read models were published.

    Example: ledger status --json
    """
    print_mapping(read_status(settings(data_dir, store, kafka)), as_json)
