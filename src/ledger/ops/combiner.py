"""The member of the projectors' group that combines every partition's slice in the lake into
the analysts' tables (see projection/slices.py for why, ops/group.py for the group).

One member at a time: the holder of a PostgreSQL advisory lock on the lake's catalog, which
its session holds, so a member killed lets go of it and another takes it at its next round.
A combine builds a new file from the slices, refreshes it as a single projector would (so its
rows are a single projector's) and publishes it into the lake as lake.py does.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import psycopg

from ledger.errors import LakeUnavailableError, ReadModelError
from ledger.insight.runs import recorded_in, rerun
from ledger.projection import lake, slices
from ledger.projection.readmodels import ReadModels
from ledger.settings import Settings

log = logging.getLogger(__name__)

COMBINED = "combined.duckdb"
"""Where the combining member builds the analysts' tables before publishing them; removed after."""
COMBINE_LOCK = 0x1ED6E5C0
"""The PostgreSQL advisory lock (on the lake's catalog) of the member that combines."""


class Combiner:
    """The slices made into the analysts' tables, by whichever member holds the lock."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.pg: psycopg.Connection | None = None
        self.held = False
        self.con: duckdb.DuckDBPyConnection | None = None
        self.seen: object = None
        self.rest_until = -math.inf

    def leads(self) -> bool:
        """Whether this member combines: it holds the lock, or takes it now."""
        try:
            if self.pg is None:
                self.held = False
                self.pg = psycopg.connect(self.settings.lake_catalog_url, autocommit=True, connect_timeout=5)
            row = self.pg.execute("SELECT true" if self.held else "SELECT pg_try_advisory_lock(%s)",
                                  [] if self.held else [COMBINE_LOCK]).fetchone()
            self.held = bool(row and row[0])
        except psycopg.Error as exc:
            log.warning("cannot reach the lake's catalog to combine: %s", exc)
            self.close()
        return self.held

    def combine(self, as_of: datetime, *, force: bool,
                before_refresh: Callable[[ReadModels], None] | None = None) -> bool:
        """Combine if a slice changed since the last time (or `force`); True if it did. The
        insight runs the lake's tables hold are run again in the new file, as a replay does,
        then `before_refresh` (`ledger insight`'s run)."""
        if self.con is None:
            self.con = duckdb.connect(config={"python_enable_replacements": False})
        try:
            state = (slices.positions(self.con, self.settings), slices.erasures_waiting(self.con, self.settings))
        except duckdb.Error as exc:
            raise LakeUnavailableError(f"cannot read the lake's slices: {exc}") from exc
        if not state[0] or (state == self.seen and not force) or time.monotonic() < self.rest_until:
            return False
        path = self.settings.data_dir / COMBINED
        remove_file(path)
        began = time.perf_counter()
        try:
            runs = _runs_in_lake(self.con)
            with ReadModels(path, settings=self.settings) as models:
                slices.combine_into(models.con, self.settings, models.models)
                rerun(models.con, runs, models.rates.table())
                if before_refresh is not None:
                    before_refresh(models)
                if state[1]:
                    models.set_state(lake.FORGET_PENDING, "1")
                errors = models.refresh(as_of)
                models.publish(self.settings.published_path, datetime.now(UTC))
            slices.forgotten(self.con, self.settings, state[1])
        except duckdb.Error as exc:
            self.close()  # the lake attached afresh next time
            raise ReadModelError(f"cannot combine the lake's slices: {exc}") from exc
        finally:
            remove_file(path)
        for error in errors:
            log.error("%s", error)
        self.seen = state
        took = time.perf_counter() - began
        self.rest_until = time.monotonic() + took  # at most half its time combining, the rest projecting
        log.info("combined %d partitions into the read models in %.3f s", len(state[0]), took)
        return True

    def close(self) -> None:
        if self.pg is not None:
            try:
                self.pg.close()
            finally:
                self.pg, self.held = None, False
        if self.con is not None:
            self.con.close()
            self.con = None


def _runs_in_lake(con: duckdb.DuckDBPyConnection) -> list:
    """The insight runs the analysts' tables in the lake hold (none before the first combine)."""
    try:
        return recorded_in(con, f"{lake.LAKE}.main.insight_runs")
    except duckdb.CatalogException:
        return []


def remove_file(path: Path) -> None:
    """A DuckDB file and what may be left beside it (its write-ahead log, an erasure's rewrite)."""
    for candidate in (path, Path(str(path) + ".wal"), path.with_name(path.name + ".shred")):
        candidate.unlink(missing_ok=True)
