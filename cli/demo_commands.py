"""`ledger demo`: a realistic history recorded, projected and summarised."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated

import typer

from ledger.cli.app import (
    DataDir,
    Store,
    command,
    err,
    out,
    print_rows,
    progress_bar,
    settings,
)
from ledger.intake.ingest import IngestReport, ingest
from ledger.ops.projecting import project, recording
from ledger.projection.query import published
from ledger.projection.query import query as run_query
from ledger.settings import Settings
from ledger.write.application import Ledger


@command()
def demo(
    customers: Annotated[int, typer.Option(min=1, help="How many customers to simulate.")] = 2000,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same history.")] = 7,
    signal: Annotated[bool, typer.Option(
        "--signal/--no-signal", help="--no-signal: identical memoryless customers, nothing for insight to find "
                                     "(the models' control).")] = True,
    data_dir: DataDir = None,
    store: Store = None,
) -> None:
    """Record a realistic, deterministic customer history, project it and summarise it.

    Example: ledger demo --customers 500 --seed 1 --data-dir /tmp/ledger
    """
    config = settings(data_dir, store)
    with recording(config):
        _demo(config, customers, seed, signal)


def _demo(config: Settings, customers: int, seed: int, signal: bool = True) -> None:
    from ledger.ops.demo import generate
    from ledger.ops.demo_noise import generate as generate_noise

    ledger = Ledger(config)
    end = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    facts = list((generate if signal else generate_noise)(customers=customers, seed=seed, end=end))
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
        columns, rows = run_query(published(config), sql)
        print_rows(columns, rows, as_json=False, title=title)
    out.print(
        f"Read models: {published(config)}. "
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
            "RFM segments (monetary in the reporting currency, minor units; "
            "without profiling consent: not profiled)",
            "SELECT coalesce(segment, '(not profiled)') AS segment, count(*) AS customers, "
            "round(avg(recency_days)) AS avg_recency_days, "
            "round(avg(frequency), 1) AS avg_orders, round(avg(monetary)) AS avg_monetary, "
            "any_value(currency) AS currency FROM rfm GROUP BY ALL ORDER BY customers DESC",
        ),
        (
            "Segments (members hold the consent; without_consent: left out for lack of it)",
            "SELECT segment, consent, members, without_consent, last_error FROM segments "
            "ORDER BY segment",
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
