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
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa

from ledger.errors import InsightError
from ledger.insight import basket, churn, clusters
from ledger.insight.population import Result, naive
from ledger.projection.timetravel import INSIGHT as TABLES
from ledger.settings import InsightSettings

log = logging.getLogger(__name__)

KINDS = tuple(TABLES)


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
            con.execute(f"DELETE FROM {table}")
            if result.tables[table] is not None:  # None: a run that could not be made again (rerun)
                con.register("insight_rows", result.tables[table])
                con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM insight_rows")
                con.unregister("insight_rows")
        con.execute("INSERT OR REPLACE INTO insight_runs VALUES (?, ?, ?, ?, ?, ?)", [
            run.kind, naive(run.as_of), result.model_version, run.parameters(),
            json.dumps(result.summary, sort_keys=True, default=str), naive(ran_at)])
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


def recorded(path: Path) -> list[tuple[Run, datetime]]:
    """The runs recorded in the read-model file at `path`, with when each was made (none if the
    file or its table is missing). A record this version cannot read (an unknown kind, a
    parameter it does not know, broken JSON) is left out with a warning: a replay, the way
    back from trouble, must not fail on a derived table."""
    if not path.exists():
        return []
    try:
        with duckdb.connect(str(path), read_only=True) as con:
            return recorded_in(con, "insight_runs")
    except duckdb.Error:
        return []


def recorded_in(con: duckdb.DuckDBPyConnection, table: str) -> list[tuple[Run, datetime]]:
    """The runs recorded in `table` (an insight_runs table `con` reads): see `recorded`."""
    rows = con.execute(f"SELECT kind, as_of, parameters, ran_at FROM {table} ORDER BY kind").fetchall()
    known = {f.name: f.default for f in fields(InsightSettings)}
    runs = []
    for kind, as_of, parameters, ran_at in rows:
        try:
            given = json.loads(parameters)
            if kind not in KINDS or not isinstance(given, dict):
                raise ValueError(f"unknown kind {kind!r}" if kind not in KINDS else "parameters are not an object")
            values = {name: given.get(name, default) for name, default in known.items()}
            runs.append((Run(kind=kind, as_of=as_of.replace(tzinfo=UTC), **values), ran_at.replace(tzinfo=UTC)))
        except (ValueError, TypeError) as exc:
            log.warning("insight run %r as of %s is not run again: its record cannot be read (%s)", kind, as_of, exc)
    return runs


def rerun(con: duckdb.DuckDBPyConnection, runs: list[tuple[Run, datetime]], rates: pa.Table | None = None) -> None:
    """Run `runs` again (after a replay), each stamped with when it was first made. A run that
    fails (scikit-learn gone, say) leaves its tables empty and its record, saying why, so that
    the next replay tries again; it never stops the replay."""
    for run, ran_at in runs:
        try:
            write(con, run, compute(con, run, rates), ran_at)
        except Exception as exc:  # noqa: BLE001 - any model failure; the replay goes on
            log.warning("insight %s as of %s was not run again: %s", run.kind, f"{run.as_of:%Y-%m-%d}", exc)
            write(con, run, Result("not run again", {t: None for t in TABLES[run.kind]},
                                   {"not_run_again": str(exc)}), ran_at)
