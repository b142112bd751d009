"""Time travel: every read model as it was at an event time T, or as the ledger knew it at a
recorded time K, built in a scratch file from the published copy's own `events`.

`events` holds every applied event with both of its times, so the read models of any moment
are a projection of a subset of it: ``occurred_at <= T`` for "as of T" (a late event that
happened before T counts: the corrected history), ``recorded_at <= K`` for "known at K" (only
what had been recorded by then: the history as it was reported). The same SQL builds them as
builds the live models, so the answer is the one a projector would have given.

Erasure is final at every time: every CustomerErased is in the subset, whenever it happened
or was recorded, so an erased customer holds no consent, no RFM score and no segment at any T
(as the live models say), and what an erasure blanked in `events` stays blank.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import duckdb

from ledger.errors import ReadModelError
from ledger.projection.readmodels import SHRED_PENDING, ReadModels, has_table, naive_utc
from ledger.settings import Settings

SOURCE = "time-travel"
INSIGHT = {"churn": ("churn_risk",), "basket": ("basket_pairs", "next_best_offer"),
           "clusters": ("customer_clusters", "clusters")}
"""The insight tables per run kind (projections/insight.sql; ledger.insight.runs writes them).
They are not recomputed at T: a copy keeps the runs made as of T or before (and, known at K,
made by K), and drops later ones."""


def _naive(when: datetime | None) -> datetime | None:
    return None if when is None else naive_utc(when)


def nothing_after(con: duckdb.DuckDBPyConnection, as_of: datetime) -> bool:
    """True if no event in the file happened after `as_of`: then its event models are already
    those of T, and refreshing the as-of models in a copy is the whole of the work."""
    ((later,),) = con.execute("SELECT count(*) FROM events WHERE occurred_at > ?", [_naive(as_of)]).fetchall()
    if later == 0 and con.execute("SELECT 1 FROM duckdb_views() WHERE view_name = 'facts'").fetchall():
        # a correction may have moved a fact past T
        ((later,),) = con.execute("SELECT count(*) FROM facts WHERE occurred_at > ?", [_naive(as_of)]).fetchall()
    return later == 0


def refresh_copy(copy: Path, as_of: datetime, settings: Settings | None) -> None:
    """Refresh the as-of models of `copy` (a copy of the published file) at `as_of`."""
    with ReadModels(copy, settings=settings) as models:
        models.refresh(as_of)
        _copy_is_as_of(models, as_of)
        for kind in _later_runs(models.con, as_of, None):  # the copy has the tables: opening it migrated it
            for table in INSIGHT[kind]:
                models.con.execute(f"DELETE FROM {table}")
            models.con.execute("DELETE FROM insight_runs WHERE kind = ?", [kind])


def _later_runs(con: duckdb.DuckDBPyConnection, as_of: datetime | None, known_at: datetime | None) -> list[str]:
    """The insight runs of `con` made as of a time after `as_of`, or (`known_at`) made after it."""
    return [kind for (kind,) in con.execute(
        "SELECT kind FROM insight_runs WHERE as_of > coalesce(?::TIMESTAMP, as_of) OR ran_at > coalesce(?::TIMESTAMP, "
        "ran_at)", [_naive(as_of), _naive(known_at)]).fetchall()]


def _earlier_runs(source: duckdb.DuckDBPyConnection, as_of: datetime | None,
                  known_at: datetime | None) -> dict[str, object]:
    """The rows of the insight runs `source` holds that a copy as of `as_of` (known at
    `known_at`) keeps, per table, as Arrow tables."""
    if not has_table(source, "insight_runs"):
        return {}
    later = set(_later_runs(source, as_of, known_at))
    kept = [kind for (kind,) in source.execute("SELECT kind FROM insight_runs").fetchall() if kind not in later]
    rows: dict[str, object] = {}
    if kept:
        rows["insight_runs"] = source.sql(f"SELECT * FROM insight_runs WHERE kind IN ({', '.join('?' * len(kept))})",
                                          params=kept).to_arrow_table()
    for kind in kept:
        for table in INSIGHT[kind]:
            rows[table] = source.sql(f"SELECT * FROM {table}").to_arrow_table()
    return rows


def _copy_is_as_of(models: ReadModels, when: datetime) -> None:
    """ledger_position in a copy says where its source stood, and the T the copy is of."""
    models.con.execute("UPDATE ledger_position SET as_of = ?", [_naive(when)])


def rebuild(
    published: object, source: duckdb.DuckDBPyConnection, copy: Path, *,
    as_of: datetime | None, known_at: datetime | None, settings: Settings | None,
) -> None:
    """Project into `copy` the events of `source` (a read-only connection to `published`)
    with ``occurred_at <= as_of`` and ``recorded_at <= known_at``, then refresh the as-of
    models at `as_of` (default `known_at`). The copy says where its source stood
    (projector_positions, ledger_position, published_at), not where the rebuild did."""
    when = as_of or known_at
    assert when is not None
    batch = (settings or Settings()).projection.catch_up_batch_size
    try:
        positions = source.sql("SELECT source, key, position FROM projector_positions").to_arrow_table()
        where = source.sql("SELECT * FROM ledger_position").to_arrow_table()
        published_at = source.execute("SELECT value FROM projector_state WHERE key = 'published_at'").fetchall()
        insight = _earlier_runs(source, as_of, known_at)
        # Last: the reader streams, and the connection runs nothing else until it is done.
        events = source.sql(_SUBSET, params=[_naive(as_of), _naive(known_at)]).to_arrow_reader(batch)
    except duckdb.Error as exc:
        raise ReadModelError(f"cannot read the events of {published}: {exc}") from exc
    with ReadModels(copy, settings=settings) as models:
        for part in events:
            models.apply(_table(part), SOURCE, {})
        models.refresh(when)
        con = models.con
        con.execute("DELETE FROM projector_state WHERE key = ?", [SHRED_PENDING])  # nothing personal to shred here
        con.register("source_positions", positions)
        con.register("source_ledger_position", where)
        con.execute("INSERT INTO projector_positions SELECT * FROM source_positions")
        con.execute("INSERT INTO ledger_position SELECT * FROM source_ledger_position")
        con.unregister("source_positions")
        con.unregister("source_ledger_position")
        for table, rows in insight.items():
            con.register("source_insight", rows)
            con.execute(f"INSERT INTO {table} SELECT * FROM source_insight")
            con.unregister("source_insight")
        if published_at:
            models.set_state("published_at", published_at[0][0])
        if known_at is not None:
            models.set_state("known_at", known_at.isoformat())
        _copy_is_as_of(models, when)


_SUBSET = """
WITH moved AS (
    -- A fact whose occurred_at a correction known by then moved happened when it says.
    SELECT target_event_id,
           arg_max(changes['occurred_at'], {'o': occurred_at, 'r': recorded_at, 'e': event_id}) AS at
    FROM events
    WHERE event_type = 'FactCorrected' AND map_contains(changes, 'occurred_at')
      AND ($1::TIMESTAMP IS NULL OR occurred_at <= $1) AND ($2::TIMESTAMP IS NULL OR recorded_at <= $2)
    GROUP BY target_event_id
)
SELECT e.* FROM events e LEFT JOIN moved m ON m.target_event_id = e.event_id
WHERE ($1::TIMESTAMP IS NULL OR coalesce(m.at::JSON::TIMESTAMP, e.occurred_at) <= $1)
  AND ($2::TIMESTAMP IS NULL OR e.recorded_at <= $2)
   OR e.event_type = 'CustomerErased'
ORDER BY e.recorded_at, e.event_id
"""
"""The events of the moment asked: those that happened by T (as corrected by then) and were
recorded by K, and every erasure."""


def _table(batch: object) -> object:
    import pyarrow as pa

    return pa.Table.from_batches([batch])  # type: ignore[list-item]
