"""`ledger insight churn|basket|clusters`: models trained on the ledger's own history."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer

from ledger.cli.app import AsJson, DataDir, app, as_of_time, command, err, out, print_mapping, print_rows, settings
from ledger.errors import SettingsError
from ledger.insight import basket, churn
from ledger.insight.population import Result, last_fact
from ledger.insight.runs import Run, compute, write
from ledger.ops.projecting import project
from ledger.projection.query import open_for_reading, published
from ledger.projection.readmodels import ReadModels
from ledger.settings import Settings

insight_app = typer.Typer(
    help="Models trained on the ledger's own history as of a date: churn risk, items bought together, clusters.\n\n"
         "Example: ledger insight churn --train --as-of 2026-03-01 --horizon 90d",
    no_args_is_help=True,
)
app.add_typer(insight_app, name="insight")

AsOf = Annotated[str | None, typer.Option(
    "--as-of", help="Score as of this ISO-8601 time (default now): the model sees only facts up to it.")]
Horizon = Annotated[str | None, typer.Option(
    "--horizon", help="Days ahead a churn or an offer is judged over, as 90d or 90 (default: insight.horizon_days).")]
Train = Annotated[bool, typer.Option(
    "--train", help="Train as of --as-of (default: the latest date whose horizon the history covers) and print the "
                    "backtest on customers it was not trained on; writes nothing.")]


QUIET_DAYS = 7
"""A scoring run warns when the latest fact is older than this before its as-of."""


def _horizon(text: str | None) -> int | None:
    if text is None:
        return None
    match = re.fullmatch(r"\s*(\d{1,4})\s*d?\s*", text)
    if not match or not 1 <= int(match[1]) <= 3660:
        raise SettingsError(f"--horizon must be a number of days from 1 to 3660, as 90d or 90, got {text!r}")
    return int(match[1])


def _scored(config: Settings, kind: str, as_of: str | None, horizon: str | None) -> tuple[Run, Result]:
    """Catch the read models up, run the model into them and publish (under the writer lock)."""
    run = Run.of(kind, as_of_time(as_of), config.insight, _horizon(horizon))
    if run.as_of > datetime.now(UTC) + timedelta(minutes=1):
        raise SettingsError(f"--as-of {run.as_of.isoformat()} is in the future: insight scores what is known")
    done: dict[str, Result] = {}

    def model(models: ReadModels) -> None:
        done["result"] = compute(models.con, run, models.rates.table())
        write(models.con, run, done["result"], datetime.now(UTC))

    project(config, datetime.now(UTC), before_refresh=model)
    if "result" not in done:  # the topic was reset: project() rebuilt the read models, without this run
        project(config, datetime.now(UTC), before_refresh=model)
    result = done["result"]
    quiet = result.summary.get("days_since_last_fact", 0)
    if quiet > QUIET_DAYS:
        err.print(f"warning: the latest fact occurred {quiet:.0f} days before {run.as_of:%Y-%m-%d}: a model takes "
                  "days without facts for days without purchases (is the projector or an adapter behind?)",
                  highlight=False)
    if run.as_of < datetime.now(UTC) - timedelta(days=1):
        err.print(f"note: the {kind} tables now hold the run as of {run.as_of:%Y-%m-%d}, not today's", highlight=False)
    return run, result


def _backtest(config: Settings, kind: str, as_of: str | None, horizon: str | None) -> dict[str, Any]:
    """`--train`: read-only, on the published copy."""
    days = _horizon(horizon) or config.insight.horizon_days
    with open_for_reading(published(config)) as con:
        if as_of is None:
            latest = last_fact(con)
            when = (latest.replace(tzinfo=UTC) if latest else datetime.now(UTC)) - timedelta(days=days)
        else:
            when = as_of_time(as_of)
        if kind == "churn":
            return churn.evaluate(con, when, timedelta(days=days), config.insight.model_seed)
        i = config.insight
        return basket.evaluate(con, when, timedelta(days=days), i.basket_min_support, i.basket_min_confidence,
                               i.offers)


@command("churn", group=insight_app)
def churn_(as_of: AsOf = None, horizon: Horizon = None, train: Train = False, as_json: AsJson = False,
           data_dir: DataDir = None) -> None:
    """Churn risk per customer, with reasons, into `churn_risk`; prints the riskiest.

    A customer has churned who buys nothing in the horizon. The model (a logistic regression)
    is trained as of --as-of minus the horizon, on 70 % of the customers, and scores every
    customer with profiling consent as of --as-of; the other 30 % give the backtest (AUC,
    precision in the top 10 %, calibration) against ranking by recency alone.

    Example: ledger insight churn --train --as-of 2026-03-01 --horizon 90d
    """
    config = settings(data_dir)
    if train:
        report = _backtest(config, "churn", as_of, horizon)
        if as_json:
            print_mapping(report, True)
            return
        _print_backtest(report)
        print_rows(["feature", "weight per sd"], sorted(report["weights"].items(), key=lambda w: -abs(w[1])), False,
                   title="what the model learned (towards churn: positive)")
        return
    run, result = _scored(config, "churn", as_of, horizon)
    if as_json:
        print_mapping({"model_version": result.model_version, **result.summary}, True)
        return
    rows = sorted(result.tables["churn_risk"].to_pylist(), key=lambda r: (-r["score"], r["customer_id"]))[:10]
    print_rows(["customer_id", "score", "band", "reasons"],
               [(r["customer_id"], f"{r['score']:.3f}", r["band"], "; ".join(r["reasons"])) for r in rows], False,
               title=f"highest churn risk as of {run.as_of:%Y-%m-%d} ({result.model_version})")
    print_rows(["band", "customers"], list(result.summary["bands"].items()), False)
    _print_backtest(result.summary["backtest"])
    err.print(f"wrote churn_risk: {result.summary['scored']} customers", highlight=False)


def _print_backtest(report: dict[str, Any]) -> None:
    if "auc" not in report:
        out.print(f"backtest: {report.get('note', 'not enough customers')}", highlight=False)
        return
    print_rows(["measure", "model", "recency only"], [
        ("AUC", report["auc"], report["auc_recency_only"]),
        ("precision in the top 10 %", report["precision_top_10pct"], report["precision_top_10pct_recency_only"]),
        ("Brier score", report["brier"], ""),
        ("churn rate", report["churn_rate"], ""),
    ], False, title=f"backtest on {report['customers']} customers not trained on")
    print_rows(["predicted", "observed", "customers"],
               [(c["predicted"], c["observed"], c["customers"]) for c in report["calibration"]], False,
               title="calibration (fifths by score)")


@command("basket", group=insight_app)
def basket_(as_of: AsOf = None, horizon: Horizon = None, train: Train = False, as_json: AsJson = False,
            data_dir: DataDir = None) -> None:
    """Items bought together into `basket_pairs`, and each customer's next best offers into
    `next_best_offer`; prints the strongest pairs.

    Pairs need insight.basket_min_support and basket_min_confidence; offers leave out what the
    customer bought or refunded and go only to customers with profiling consent. The backtest:
    how often an offer made a horizon ago was in the customer's next order, against offering
    the most popular items.

    Example: ledger insight basket --as-of 2026-06-30
    """
    config = settings(data_dir)
    if train:
        report = _backtest(config, "basket", as_of, horizon)
        print_mapping(report, as_json)
        return
    run, result = _scored(config, "basket", as_of, horizon)
    if as_json:
        print_mapping({"model_version": result.model_version, **result.summary}, True)
        return
    print_rows(["sku", "with_sku", "orders", "support", "confidence", "lift"],
               [(p["sku"], p["with_sku"], p["orders_together"], f"{p['support']:.3f}", f"{p['confidence']:.3f}",
                 f"{p['lift']:.2f}") for p in result.summary["top_pairs"]], False,
               title=f"bought together as of {run.as_of:%Y-%m-%d}")
    test = result.summary["backtest"]
    out.print(f"backtest ({test['customers']} customers' next order within {test['horizon_days']} days of "
              f"{test['as_of'][:10]}): offers {test['hit_rate_top']:.1%} against most popular "
              f"{test['hit_rate_popular']:.1%}", highlight=False)
    err.print(f"wrote basket_pairs ({result.summary['pairs']} pairs) and next_best_offer "
              f"({result.summary['customers_offered']} customers)", highlight=False)


@command("clusters", group=insight_app)
def clusters_(as_of: AsOf = None, as_json: AsJson = False, data_dir: DataDir = None) -> None:
    """Behavioural clusters (k-means) into `customer_clusters` and `clusters`, described.

    Features: recency, orders and spend in the last year, satisfaction, complaint share and
    purchase channel mix, standardised; insight.cluster_count groups, seed insight.model_seed.
    Prints each cluster's size and what sets it apart, and the adjusted Rand index against the
    clusters of 90 days before (stability).

    Example: ledger insight clusters
    """
    config = settings(data_dir)
    run, result = _scored(config, "clusters", as_of, None)
    if as_json:
        print_mapping({"model_version": result.model_version, **result.summary}, True)
        return
    groups = result.tables["clusters"].to_pylist()
    print_rows(["cluster", "customers", "description"], [(g["cluster"], g["customers"], g["description"])
                                                         for g in groups], False,
               title=f"clusters as of {run.as_of:%Y-%m-%d} ({result.model_version})")
    out.print(f"stability against 90 days before (adjusted Rand index): {result.summary['stability_ari_90d']}",
              highlight=False)
