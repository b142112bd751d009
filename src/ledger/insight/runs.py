"""Run an insight model into the read models, and run the recorded ones again after a replay.

A run replaces its kind's tables whole and records itself in `insight_runs` (its as_of, its
parameters, what it found) in the same transaction: readers see the old run or the new one,
never a mix. A replay builds a new read-model file from the first event; `rerun` then runs each
recorded run again with the same as_of and parameters, so the replayed tables hold the same
rows, less whatever was erased or lost consent since (the models read `facts` as replayed).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from ledger.errors import InsightError
from ledger.insight import basket, churn, clusters
from ledger.insight.population import Result, naive
from ledger.settings import InsightSettings

log = logging.getLogger(__name__)

KINDS = ("churn", "basket", "clusters")
TABLES = {"churn": ("churn_risk",), "basket": ("basket_pairs", "next_best_offer"),
          "clusters": ("customer_clusters", "clusters")}


@dataclass(frozen=True)
class Run:
    """One kind's run: as of when, and every parameter its tables depend on."""

    kind: str
    as_of: datetime
    horizon_days: int
    basket_min_support: float
    basket_min_confidence: float
    offers: int
    cluster_count: int
    model_seed: int

    @classmethod
    def of(cls, kind: str, as_of: datetime, settings: InsightSettings, horizon_days: int | None = None) -> Run:
        if kind not in KINDS:
            raise InsightError(f"no insight named {kind!r}; there are {', '.join(KINDS)}")
        values = asdict(settings)
        values["horizon_days"] = horizon_days or settings.horizon_days
        return cls(kind=kind, as_of=as_of.astimezone(UTC), **values)

    @property
    def horizon(self) -> timedelta:
        return timedelta(days=self.horizon_days)

    def parameters(self) -> str:
        values = asdict(self)
        del values["kind"], values["as_of"]
        return json.dumps(values, sort_keys=True)


def compute(con: duckdb.DuckDBPyConnection, run: Run, rates: pa.Table | None = None) -> Result:
    """The tables and summary of `run`, from the read models `con` holds (`rates`: see
    clusters.features)."""
    if run.kind == "churn":
        return churn.score(con, run.as_of, run.horizon, run.model_seed)
    if run.kind == "basket":
        return basket.compute(con, run.as_of, run.basket_min_support, run.basket_min_confidence, run.offers,
                              run.horizon)
    return clusters.compute(con, run.as_of, run.cluster_count, run.model_seed, rates)


def write(con: duckdb.DuckDBPyConnection, run: Run, result: Result, ran_at: datetime) -> None:
    """Replace `run`'s tables with `result`'s and record the run, in one transaction."""
    con.execute("BEGIN")
    try:
        for table in TABLES[run.kind]:
            con.register("insight_rows", result.tables[table])
            con.execute(f"DELETE FROM {table}")
            con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM insight_rows")
            con.unregister("insight_rows")
        con.execute("INSERT OR REPLACE INTO insight_runs VALUES (?, ?, ?, ?, ?, ?)", [
            run.kind, naive(run.as_of), result.model_version, run.parameters(),
            json.dumps(result.summary, sort_keys=True, default=str), naive(ran_at)])
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


def recorded(path: Path) -> list[Run]:
    """The runs recorded in the read-model file at `path` (none if it or its table is missing)."""
    if not path.exists():
        return []
    try:
        with duckdb.connect(str(path), read_only=True) as con:
            rows = con.execute("SELECT kind, as_of, parameters FROM insight_runs ORDER BY kind").fetchall()
    except duckdb.Error:
        return []
    return [Run(kind=kind, as_of=as_of.replace(tzinfo=UTC), **json.loads(parameters))
            for kind, as_of, parameters in rows]


def rerun(con: duckdb.DuckDBPyConnection, runs: list[Run], rates: pa.Table | None = None) -> list[str]:
    """Run `runs` again (after a replay); a run that cannot (scikit-learn gone, say) is left out
    with a warning, and its message returned, rather than stop the replay."""
    problems = []
    for run in runs:
        try:
            write(con, run, compute(con, run, rates), datetime.now(UTC))
        except InsightError as exc:
            problems.append(f"insight {run.kind} as of {run.as_of:%Y-%m-%d} was not run again: {exc}")
            log.warning("%s", problems[-1])
    return problems


def summary(con: duckdb.DuckDBPyConnection, kind: str) -> dict[str, Any] | None:
    rows = con.execute("SELECT summary FROM insight_runs WHERE kind = ?", [kind]).fetchall()
    return json.loads(rows[0][0]) if rows else None
