"""Commands of the embedded ledger: demo, project, replay, query, status, schemas."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated

import typer
from ledger.cli.app import (
    EXIT_REJECTED,
    AsJson,
    AsOf,
    DataDir,
    Kafka,
    Store,
    as_of_time,
    command,
    err,
    lag_bar,
    out,
    print_mapping,
    print_rows,
    progress_bar,
    settings,
)

from ledger.contract.codec import default_codec
from ledger.errors import InputError, SchemaError, ValidationError
from ledger.intake.files import json_fact
from ledger.intake.ingest import IngestReport, ingest
from ledger.ops.projecting import project, project_if_embedded, replay
from ledger.ops.status import status as read_status
from ledger.projection.readmodels import query as run_query
from ledger.write.application import Ledger


@command()
def demo(
    customers: Annotated[int, typer.Option(min=1, help="How many customers to simulate.")] = 2000,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same history.")] = 7,
    data_dir: DataDir = None,
    store: Store = None,
) -> None:
    """Record a realistic, deterministic customer history, project it and summarise it.

    Example: ledger demo --customers 500 --seed 1 --data-dir /tmp/ledger
    """
    from ledger.ops.demo import generate

    config = settings(data_dir, store)
    ledger = Ledger(config)
    end = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    facts = list(generate(customers=customers, seed=seed, end=end))
    started = time.perf_counter()
    report = IngestReport()
    with progress_bar() as bar:
        task = bar.add_task("recording", total=len(facts))
        report = ingest(
            ledger,
            iter(enumerate(facts, start=1)),
            progress=lambda r: bar.update(task, completed=r.lines),
        )
    recorded_s = time.perf_counter() - started
    with progress_bar() as bar:
        task = bar.add_task("projecting", total=ledger.head())
        stats = project(
            config, datetime.now(UTC), ledger=ledger,
            progress=lambda done, _lag: bar.update(task, completed=done),
        )
    err.print(
        f"recorded {report.recorded} facts ({report.duplicates} already there) in {recorded_s:.1f}s "
        f"({report.lines / recorded_s:,.0f}/s); projected {stats.read} in {stats.seconds:.1f}s "
        f"({stats.rate:,.0f}/s)",
        highlight=False,
    )
    for title, sql in _demo_summaries():
        columns, rows = run_query(config.published_path, sql)
        print_rows(columns, rows, as_json=False, title=title)
    out.print(
        f"Read models: {config.published_path}. "
        f'Try: ledger query "SELECT * FROM customer_profile LIMIT 5" --data-dir {config.data_dir}'
    )


def _demo_summaries() -> list[tuple[str, str]]:
    return [
        (
            "Events by type",
            "SELECT event_type, count(*) AS events FROM events GROUP BY ALL ORDER BY events DESC",
        ),
        (
            "Top customers by net spend (EUR)",
            "SELECT customer_id, name, purchases, refunds, net_spend['EUR'] AS net_eur_minor "
            "FROM customer_profile WHERE NOT erased ORDER BY net_eur_minor DESC NULLS LAST LIMIT 5",
        ),
        (
            "Lifecycle stages (as of the refresh)",
            "SELECT stage, count(*) AS customers, "
            "count(*) FILTER (WHERE stage_since > as_of - INTERVAL 30 DAY) AS entered_last_30_days "
            "FROM lifecycle GROUP BY ALL ORDER BY customers DESC",
        ),
        (
            "Lifecycle transitions in the last 3 full months",
            "SELECT strftime(date_trunc('month', t.at), '%Y-%m') AS month, "
            "count(*) FILTER (WHERE to_stage = 'new') AS became_new, "
            "count(*) FILTER (WHERE to_stage = 'at_risk') AS went_at_risk, "
            "count(*) FILTER (WHERE to_stage = 'churned') AS churned, "
            "count(*) FILTER (WHERE to_stage = 'reactivated') AS reactivated "
            "FROM lifecycle_transitions t, (SELECT max(as_of) AS as_of FROM lifecycle) a "
            "WHERE t.at >= date_trunc('month', a.as_of) - INTERVAL 3 MONTH "
            "AND t.at < date_trunc('month', a.as_of) GROUP BY ALL ORDER BY month",
        ),
        (
            "RFM segments (monetary in the reporting currency, minor units)",
            "SELECT segment, count(*) AS customers, round(avg(recency_days)) AS avg_recency_days, "
            "round(avg(frequency), 1) AS avg_orders, round(avg(monetary)) AS avg_monetary, "
            "any_value(currency) AS currency FROM rfm GROUP BY segment ORDER BY customers DESC",
        ),
        (
            "Segments",
            "SELECT segment, members, last_error FROM segments ORDER BY segment",
        ),
        (
            "Satisfaction by month, all channels (last 6 months)",
            "SELECT strftime(month, '%Y-%m') AS month, sum(csat_responses) AS csat_n, "
            "round(100.0 * sum(csat_satisfied) / nullif(sum(csat_responses), 0), 1) AS csat_pct, "
            "sum(nps_responses) AS nps_n, "
            "round(100.0 * (sum(nps_promoters) - sum(nps_detractors)) "
            "/ nullif(sum(nps_responses), 0), 1) AS nps, "
            "round(sum(ces_sum) / nullif(sum(ces_responses), 0), 2) AS ces_avg, "
            "sum(contacts) AS contacts, "
            "round(100.0 * sum(complaints) / nullif(sum(contacts), 0), 1) AS complaint_pct "
            "FROM satisfaction_monthly GROUP BY month ORDER BY month DESC LIMIT 6",
        ),
        (
            "Satisfaction by channel (last 90 days)",
            "SELECT channel, sum(csat_responses) AS csat_n, "
            "round(100.0 * sum(csat_satisfied) / nullif(sum(csat_responses), 0), 1) AS csat_pct, "
            "sum(nps_responses) AS nps_n, "
            "round(100.0 * (sum(nps_promoters) - sum(nps_detractors)) "
            "/ nullif(sum(nps_responses), 0), 1) AS nps, "
            "round(sum(ces_sum) / nullif(sum(ces_responses), 0), 2) AS ces_avg, "
            "sum(contacts) AS contacts, sum(complaints) AS complaints "
            "FROM satisfaction_daily WHERE day > (SELECT max(day) FROM satisfaction_daily) - 90 "
            "GROUP BY channel ORDER BY contacts DESC",
        ),
    ]


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


@command()
def record(
    event: Annotated[str, typer.Argument(help="One event: a JSON object with its `type` (as one line of ingest).")],
    no_project: Annotated[bool, typer.Option("--no-project", help="Only record; leave the read models.")] = False,
    data_dir: DataDir = None,
    store: Store = None,
) -> None:
    """Record one event; print its event_id, or why it was refused (exit 3).

    Recording the same (source, source_event_id) again changes nothing.

    Example: ledger record '{"type": "ContactLogged", "customer_id": "C42", "occurred_at": "2026-05-01T09:30:00Z",
    "source": "desk", "source_event_id": "t-981", "contact_id": "t-981", "channel": "phone", "direction": "inbound"}'
    """
    config = settings(data_dir, store)
    fact = json_fact(event.encode("utf-8", "surrogateescape"))
    ledger = Ledger(config)
    try:
        if isinstance(fact, InputError):
            raise fact
        outcome = ledger.record(fact)
    except (InputError, SchemaError, ValidationError) as error:
        err.print(f"[bold red]refused:[/] {error}", highlight=False)
        raise typer.Exit(EXIT_REJECTED) from None
    already = "already recorded: " if outcome.status == "duplicate" else ""
    out.print(f"{already}{outcome.event_type} {outcome.event_id}", highlight=False)
    if not no_project:
        project_if_embedded(config, ledger)


@command()
def erase(
    customer_id: Annotated[str, typer.Argument(help="The customer to forget.")],
    reason: Annotated[str | None, typer.Option(help="Why, for the record (a request number, say).")] = None,
    no_project: Annotated[bool, typer.Option("--no-project", help="Only record; leave the read models.")] = False,
    data_dir: DataDir = None,
    store: Store = None,
) -> None:
    """Erase a customer: record CustomerErased; nothing is accepted for them afterwards.

    The read models then show the customer as erased, without personal data. Erasing again
    changes nothing.

    Example: ledger erase C000042 --reason "request 2026-118"
    """
    config = settings(data_dir, store)
    ledger = Ledger(config)
    customer = ledger.customer(customer_id)
    if customer is None:
        raise InputError(f"no customer {customer_id!r} is recorded in {config.store_shown}; nothing to erase")
    if customer.erased:
        out.print(f"{customer_id} was already erased", highlight=False)
        return
    outcome = ledger.record({
        "type": "CustomerErased", "customer_id": customer_id, "occurred_at": ledger.clock(),
        "source": "ledger-cli", "source_event_id": f"erase:{customer_id}", "reason": reason,
    })
    out.print(f"erased {customer_id} (event {outcome.event_id})", highlight=False)
    if not no_project:
        project_if_embedded(config, ledger)


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
    data_dir: DataDir = None,
) -> None:
    """Run read-only SQL over the published read models.

    With --as-of the time-dependent models are recomputed for that time in a temporary copy;
    the published file is left as it is.

    Example: ledger query "SELECT stage, count(*) FROM lifecycle GROUP BY 1" --as-of 2026-03-31
    """
    config = settings(data_dir)
    when = None if as_of is None else as_of_time(as_of)
    columns, rows = run_query(config.published_path, sql, as_of=when, settings=config)
    print_rows(columns, rows, as_json)


@command()
def status(as_json: AsJson = False, data_dir: DataDir = None, store: Store = None, kafka: Kafka = None) -> None:
    """Show the store head, projector positions, lag and when read models were published.

    Example: ledger status --json
    """
    print_mapping(read_status(settings(data_dir, store, kafka)), as_json)


@command()
def schemas(as_json: AsJson = False) -> None:
    """List the event types and schema versions of the Avro contract, with fingerprints.

    Example: ledger schemas
    """
    rows = [(v.event_type, v.version, v.file_name, v.fingerprint.hex()) for v in default_codec().versions]
    print_rows(["event_type", "version", "file", "fingerprint"], rows, as_json)
