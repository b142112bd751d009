"""The projector's own read-model file: micro-batch transactions and refreshes.

DuckDB allows one writing process per file. The projector owns ``readmodels.duckdb`` and,
after each catch-up, publishes a consistent copy (``readmodels.published.duckdb``, see
publish.py; or into a lake, lake.py) that analysts read (query.py), never meeting its lock. The models
themselves come from the catalogue (catalogue.py), the segment rules from segments.py.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa

from ledger.contract.amendments import AMENDMENTS
from ledger.errors import LakeUnavailableError, ReadModelError, SegmentError
from ledger.projection import lake
from ledger.projection.catalogue import Model, load_models, migrate
from ledger.projection.descriptions import write_comments
from ledger.projection.history import plan
from ledger.projection.parked import ParkedEvent, is_content_error, parked_table
from ledger.projection.publish import publish_copy, remove_abandoned_copies
from ledger.projection.rates import RatesSource
from ledger.projection.segments import RetryRefresh, load_segment_rules, precheck, run_segment_rules
from ledger.settings import Settings


def identity_key(source: str) -> str:
    return f"source_identity:{source}"


HISTORY_CHANGED = "history_changed_from"
"""The projector_state key holding the earliest occurred_at applied since the last refresh."""
SHRED_PENDING = "shred_pending"
"""The projector_state key set with a batch that erased someone, until the file is rewritten."""


def has_table(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    """Whether the file `con` reads has table `name`: a copy built by an older release may not."""
    return bool(con.execute("SELECT 1 FROM duckdb_tables() WHERE table_name = ?", [name]).fetchall())


def naive_utc(when: datetime) -> datetime:
    """`when` as the read models keep times: UTC without a zone (a naive time is taken as UTC)."""
    return when.astimezone(UTC).replace(tzinfo=None) if when.tzinfo is not None else when


def _naive_text(text: str | None) -> datetime | None:
    return None if text is None else naive_utc(datetime.fromisoformat(text))


def _quoted(path: Path) -> str:
    return str(path).replace("'", "''")


class ReadModels:
    """One open read-model file, for writing.

    `settings` gives what the "as of" models need: lifecycle thresholds, the reporting
    currency and the extra segment directory.
    """

    def __init__(
        self, path: Path, models: list[Model] | None = None, *, settings: Settings | None = None
    ):
        self.path = path
        self.models = models if models is not None else load_models()
        self.settings = settings or Settings()
        self.segment_rules = load_segment_rules(self.settings.projection.segments_dir)
        self.rates = RatesSource(self.settings.projection.exchange_rates, self.settings.projection.reporting_currency)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.con = self._connect()
        migrate(self.con, self.models, path)
        write_comments(self.con)

    def _connect(self) -> duckdb.DuckDBPyConnection:
        try:
            # Commits only append to the WAL; the default 16 MB threshold made nearly every
            # batch's COMMIT a checkpoint (measured: COMMIT 5.6 s of 17 s for 200k events).
            # publish() checkpoints explicitly, and closing does too.
            # memory_limit: see ProjectionSettings.memory_limit.
            con = duckdb.connect(str(self.path), config={
                "checkpoint_threshold": "1GB", "memory_limit": self.settings.projection.memory_limit.strip()})
        except duckdb.IOException as exc:
            raise ReadModelError(
                f"cannot open {self.path} for writing: is another projector running? ({exc})"
            ) from exc
        con.execute("SET TimeZone = 'UTC'")  # now() in the models' SQL (applied_at...) is UTC whatever TZ says
        return con

    def shred_if_erased(self) -> bool:
        """Rewrite the file if an erasure was applied since it was last rewritten; True if so.

        An erasure's UPDATEs leave the old values in blocks the file no longer uses, and a
        CHECKPOINT does not wipe them: the tables are copied into a new file, swapped in
        atomically. A crash before the swap leaves the mark, and the next call rewrites."""
        if self.con.execute("SELECT 1 FROM projector_state WHERE key = ?", [SHRED_PENDING]).fetchone() is None:
            return False
        self.con.execute("CHECKPOINT")
        scratch = self.path.with_name(self.path.name + ".shred")
        scratch.unlink(missing_ok=True)
        scratch.with_name(scratch.name + ".wal").unlink(missing_ok=True)
        database = self.con.execute("SELECT current_database()").fetchone()[0]  # type: ignore[index]
        self.con.execute(f"ATTACH '{_quoted(scratch)}' AS shredded")
        try:
            self.con.execute(f'COPY FROM DATABASE "{database}" TO shredded')
            self.con.execute("DELETE FROM shredded.projector_state WHERE key = ?", [SHRED_PENDING])
        finally:
            self.con.execute("DETACH shredded")
        self.con.close()
        os.replace(scratch, self.path)
        self.con = self._connect()
        remove_abandoned_copies(self.path.parent)
        return True

    def identity(self, source: str) -> str | None:
        """The identity of `source` its stored positions were taken in (None if not known)."""
        row = self.con.execute("SELECT value FROM projector_state WHERE key = ?", [identity_key(source)]).fetchone()
        return row[0] if row else None

    def positions(self, source: str) -> dict[str, int]:
        rows = self.con.execute(
            "SELECT key, position FROM projector_positions WHERE source = ?", [source]
        ).fetchall()
        return dict(rows)

    def apply(
        self,
        incoming: pa.Table,
        source: str,
        positions: Mapping[str, int],
        *,
        parked: Sequence[ParkedEvent] = (),
        parked_at: datetime | None = None,
        identity: str | None = None,
    ) -> int:
        """Apply one micro-batch, the events of it that are parked, and its source positions
        in one transaction.

        Order inside the transaction: drop events already applied or parked (by event_id),
        insert the rest into `events`, run every model's `apply`, record `parked` (each event
        once, at `parked_at`), then store the positions. Nothing is visible until COMMIT, so
        a crash leaves the read models at the previous batch. Returns how many events were new.
        With the positions goes the source's `identity` (a topic's id), when it has one.
        """
        con = self.con
        con.execute("BEGIN")
        try:
            new = self._apply_events(incoming)
            if parked:
                self._park(source, parked, parked_at or datetime.now(UTC))
            self._store_positions(source, positions)
            if identity is not None and positions:
                self.set_state(identity_key(source), identity)
            con.execute("COMMIT")
        except BaseException as exc:
            self._roll_back(exc, "batch")
            raise
        return new

    def attempt(self, incoming: pa.Table) -> BaseException | None:
        """Try `incoming` on the read models and undo it: None if it applies, the error if
        its events' content cannot be applied. Any other error is raised."""
        self.con.execute("BEGIN")
        try:
            self._apply_events(incoming)
        except Exception as exc:
            if is_content_error(exc):
                return exc
            raise
        finally:
            self.con.execute("ROLLBACK")
        return None

    def _apply_events(self, incoming: pa.Table) -> int:
        con = self.con
        # Registered views are dropped only on success: in an aborted transaction dropping
        # one fails and would hide the error (the next register replaces it anyway).
        con.register("incoming", incoming)
        con.execute(
            """
            CREATE OR REPLACE TEMP TABLE batch_events AS
            SELECT * FROM incoming
            WHERE event_id NOT IN (
                SELECT e.event_id FROM events e SEMI JOIN incoming i ON e.event_id = i.event_id
            )
            AND event_id NOT IN (
                SELECT p.event_id FROM parked_events p SEMI JOIN incoming i ON p.event_id = i.event_id
            )
            QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY recorded_at) = 1
            """
        )
        con.unregister("incoming")
        new = con.execute("SELECT count(*) FROM batch_events").fetchall()[0][0]
        if not new:
            return 0
        # Segment history may have changed from the earliest of these events on (history.py).
        self._history_changed_from("SELECT min(occurred_at) FROM batch_events")
        if con.execute("SELECT 1 FROM batch_events WHERE event_type = 'CustomerErased' LIMIT 1").fetchone():
            self.set_state(SHRED_PENDING, "1")  # with this batch: the file is rewritten before it is published
            self.set_state(lake.FORGET_PENDING, "1")
        # Customers an amendment (a correction, a retraction, a merge, a split) touched are
        # counted again from their facts; in other batches none are (facts.sql).
        con.execute("CREATE OR REPLACE TEMP TABLE amended_ids (customer_id VARCHAR)")
        amending = con.execute("SELECT 1 FROM batch_events WHERE list_contains(?, event_type) LIMIT 1",
                               [list(AMENDMENTS)]).fetchone()
        for model in self.models:
            if amending:
                self._run_section(model, "amend")
            self._run_section(model, "apply")
        if amending:  # their history may have changed from their first fact on, as recorded or corrected
            self._history_changed_from("SELECT least((SELECT min(occurred_at) FROM batch_facts), (SELECT "
                                       "min(occurred_at) FROM events WHERE customer_id IN (SELECT customer_id "
                                       "FROM amended_ids)))")
        return new

    def _history_changed_from(self, earliest: str) -> None:
        """Move the HISTORY_CHANGED mark back to `earliest` (a query of one time) if it is earlier."""
        self.con.execute(
            f"INSERT OR REPLACE INTO projector_state SELECT ?, strftime(least(({earliest}), (SELECT "
            "TRY_CAST(value AS TIMESTAMP) FROM projector_state WHERE key = ?)), '%Y-%m-%dT%H:%M:%S.%f')",
            [HISTORY_CHANGED, HISTORY_CHANGED])

    def _park(self, source: str, parked: Sequence[ParkedEvent], at: datetime) -> None:
        """Each event once: one parked before (a resend, by payload or event_id) is not again."""
        at = naive_utc(at)
        self.con.register("new_parked", parked_table(source, list(parked)))
        self.con.execute(
            """
            INSERT INTO parked_events BY NAME
            SELECT n.*, ?::TIMESTAMP AS parked_at FROM new_parked n
            WHERE NOT EXISTS (
                SELECT 1 FROM parked_events p WHERE p.payload = n.payload OR p.event_id = n.event_id
            )
            """,
            [at],
        )
        self.con.unregister("new_parked")

    def _store_positions(self, source: str, positions: Mapping[str, int]) -> None:
        if not positions:
            return
        table = pa.table(
            {
                "source": [source] * len(positions),
                "key": list(positions),
                "position": list(positions.values()),
            }
        )
        self.con.register("new_positions", table)
        self.con.execute("INSERT OR REPLACE INTO projector_positions SELECT * FROM new_positions")
        self.con.unregister("new_positions")

    def refresh(self, as_of: datetime) -> list[SegmentError]:
        """Recompute the models that depend on an "as of" time at each point of the segment
        history's plan (history.py: the calendar boundaries where membership may have changed,
        then `as_of`), each point in one transaction, and return the broken rules' errors at
        `as_of`; raising is the caller's choice, after publishing."""
        state = dict(self.con.execute(
            "SELECT key, value FROM projector_state WHERE key IN ('as_of', ?)", [HISTORY_CHANGED]).fetchall())
        first = self.con.execute("SELECT min(occurred_at) FROM events").fetchall()[0][0]
        steps = plan(naive_utc(as_of), self.settings.projection.segment_history,
                     previous=_naive_text(state.get("as_of")), changed_from=_naive_text(state.get(HISTORY_CHANGED)),
                     first_event=first)
        # Read again each time, so a fixed rule file counts at the next refresh.
        self.segment_rules = load_segment_rules(self.settings.projection.segments_dir)
        # Checked whole before any point is refreshed: a broken file changes nothing.
        self.con.register("exchange_rates_file", self.rates.table())
        self._set_variables(as_of)
        broken = precheck(self.con, self.segment_rules)
        for n, point in enumerate(steps.points):
            when = as_of if n == len(steps.points) - 1 else point.replace(tzinfo=UTC)
            self.con.execute("SET VARIABLE last_point = ?", [n == len(steps.points) - 1])
            errors = self._refresh_at(when, broken, steps.rewind_from if n == 0 else None, steps.cut_before)
        self.con.unregister("exchange_rates_file")
        self.con.execute("DELETE FROM projector_state WHERE key = ?", [HISTORY_CHANGED])
        return errors

    def _refresh_at(self, as_of: datetime, broken: dict[str, SegmentError], rewind_from: datetime | None,
                    cut_before: datetime | None) -> list[SegmentError]:
        """One point, in one transaction: every model's `refresh` section, then every segment
        rule into ``segment_results``, then every model's `segments` section, then the state. A
        rule that fails is recorded (``segments.last_error``, state ``segment_errors``) and the
        transaction runs again without it, so the other models and segments still update."""
        con = self.con
        self._set_variables(as_of)
        con.execute("SET VARIABLE rewind_from = ?::TIMESTAMP", [rewind_from])
        con.execute("SET VARIABLE history_cut = ?::TIMESTAMP", [cut_before])
        while True:
            con.execute("BEGIN")
            try:
                for model in self.models:
                    self._run_section(model, "refresh")
                run_segment_rules(con, self.segment_rules, broken)
                for model in self.models:
                    self._run_section(model, "segments")
                self.set_state("as_of", as_of.isoformat())
                if broken:
                    self.set_state("segment_errors", "; ".join(str(e) for e in broken.values()))
                else:
                    con.execute("DELETE FROM projector_state WHERE key = 'segment_errors'")
                con.execute("COMMIT")
                return list(broken.values())
            except RetryRefresh:
                con.execute("ROLLBACK")
            except BaseException as exc:
                self._roll_back(exc, "refresh")
                raise

    def _roll_back(self, exc: BaseException, work: str) -> None:
        """Undo the transaction of a `work` ("batch" or "refresh") that failed with `exc`. If
        DuckDB ran out of memory, raise instead an error that names the settings to change
        (DuckDB's own advice is a SET the operator cannot give); the failing statement's model
        and section stay in the message."""
        with contextlib.suppress(duckdb.Error):  # a failed COMMIT may have ended it already
            self.con.execute("ROLLBACK")
        cause = exc if isinstance(exc, duckdb.OutOfMemoryException) else exc.__cause__
        if not isinstance(cause, duckdb.OutOfMemoryException):
            return
        p = self.settings.projection
        smaller = (f", or lower projection.catch_up_batch_size (LEDGER_CATCH_UP_BATCH_SIZE, now "
                   f"{p.catch_up_batch_size:,}) so that a batch needs less" if work == "batch" else "")
        raise ReadModelError(
            f"the read models need more memory than projection.memory_limit (LEDGER_MEMORY_LIMIT) "
            f"{p.memory_limit.strip()!r} gives DuckDB: raise it{smaller}; nothing of the {work} that failed "
            f"was applied ({str(exc).splitlines()[0]})"
        ) from exc

    def _set_variables(self, as_of: datetime) -> None:
        p = self.settings.projection
        if as_of.tzinfo is not None:
            as_of = as_of.astimezone(UTC)
        self.con.execute("SET VARIABLE as_of = ?::TIMESTAMP", [as_of.replace(tzinfo=None)])
        self.con.execute("SET VARIABLE new_days = ?::INTEGER", [p.new_days])
        self.con.execute("SET VARIABLE active_days = ?::INTEGER", [p.active_days])
        self.con.execute("SET VARIABLE churn_days = ?::INTEGER", [p.churn_days])
        self.con.execute("SET VARIABLE reporting_currency = ?::VARCHAR", [p.reporting_currency])

    def _run_section(self, model: Model, section: str) -> None:
        if section not in model.sections:
            return
        try:
            self.con.execute(model.sections[section])
        except duckdb.Error as exc:
            raise ReadModelError(f"{model.file}: {section} failed: {exc}") from exc

    def set_state(self, key: str, value: str) -> None:
        self.con.execute("INSERT OR REPLACE INTO projector_state VALUES (?, ?)", [key, value])

    def publish(self, target: Path, published_at: datetime) -> None:
        """Write a consistent copy for readers and swap it in atomically."""
        self.con.execute("BEGIN TRANSACTION")
        try:
            self.set_state("published_at", published_at.isoformat())
            self.con.execute("DELETE FROM ledger_position")
            self.con.execute(
                "INSERT INTO ledger_position SELECT source, key, position, "
                "(SELECT TRY_CAST(value AS TIMESTAMPTZ)::TIMESTAMP FROM projector_state WHERE key = 'as_of'), ? "
                "FROM projector_positions", [naive_utc(published_at)])
            self.con.execute("COMMIT")
        except duckdb.Error as exc:
            self._roll_back(exc, "publish")
            raise ReadModelError(f"cannot publish {self.path}: {exc}") from exc
        except BaseException as exc:
            self._roll_back(exc, "publish")
            raise
        self.shred_if_erased()
        if self.settings.projection.store == "ducklake":
            self._publish_to_lake()
            target.unlink(missing_ok=True)  # a copy from before the lake would outlive later erasures
        else:
            publish_copy(self.con, self.path, target)

    def _publish_to_lake(self) -> None:
        """After an erasure every older file goes too, the mark only then (a crash: the next)."""
        forget = bool(self.con.execute("SELECT 1 FROM projector_state WHERE key = ?", [lake.FORGET_PENDING]).fetchall())
        try:
            lake.publish(self.con, self.settings, forget=forget)
        except duckdb.Error as exc:
            with contextlib.suppress(duckdb.Error):  # attached afresh at the next publish
                self.con.execute(f"DETACH {lake.LAKE}")
            raise LakeUnavailableError(f"cannot publish {self.path} into the lake: {exc}") from exc
        if forget:
            self.con.execute("DELETE FROM projector_state WHERE key = ?", [lake.FORGET_PENDING])

    def close(self) -> None:
        with contextlib.suppress(duckdb.Error):  # the mark stays: the next open rewrites
            self.shred_if_erased()
        self.con.close()

    def __enter__(self) -> ReadModels:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
