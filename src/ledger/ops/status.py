"""What an operator needs at a glance: store head, projector positions, lag, staleness."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any
from urllib.parse import quote

import duckdb
from eventsourcing.persistence import PersistenceError
from eventsourcing.utils import Environment

from ledger import version
from ledger.errors import DataDirMismatchError, NotPublishedError, ReadModelError, StoreError
from ledger.ops.deployment import Deployment
from ledger.ops.writer import mismatch
from ledger.projection.engine import lag
from ledger.projection.parked import parked_summary
from ledger.projection.query import open_for_reading, published, state
from ledger.projection.readmodels import has_table, identity_key
from ledger.settings import Settings
from ledger.write.application import Ledger


class _ReadingLedger(Ledger):
    """The store as `status` sees it: opened, never created (no directory, file or table)."""

    name = Ledger.name  # the same tables
    creates_tables = False
    through_log = False
    """Read a SQLite store through its write-ahead log even when there is none yet."""

    def construct_env(self, name: str, env: Any = None) -> Environment:
        environment = super().construct_env(name, env)
        environment["CREATE_TABLE"] = "n"
        if "SQLITE_DBNAME" in environment:
            environment["SQLITE_DBNAME"] = _read_only_uri(environment["SQLITE_DBNAME"], self.through_log)
        return environment


class _ReadingThroughLog(_ReadingLedger):
    through_log = True


def _read_only_uri(path: str, through_log: bool) -> str:
    """SQLite, opened so that reading changes no byte on disk: a store without a write-ahead
    log is complete in its file, read as immutable (no -wal or -shm made, no journal mode
    switched); one with a log (a writer running, or killed) is read read-only, log included,
    never checkpointed into the file."""
    mode = "mode=ro" if through_log or Path(path + "-wal").exists() else "mode=ro&immutable=1"
    return f"file:{quote(path, safe='/')}?{mode}"


def status(settings: Settings, ledger: Ledger | None = None) -> dict[str, Any]:
    """A plain dict, ready for a table or ``--json``. Reads only: a store, data directory or
    topic that does not exist yet is reported as such, never created."""
    problem = mismatch(settings)
    if problem:
        raise DataDirMismatchError(problem)
    deployment = Deployment(settings)
    report: dict[str, Any] = {"version": version(), "mode": deployment.mode, "store": settings.store_shown}
    ledger = ledger or _open_store(settings)
    if ledger is None:
        report["store_head"] = 0
        report["store_state"] = "not created yet (nothing recorded)"
        report["read_models"] = "not built yet"
        if deployment.uses_kafka:
            report.update(_kafka_status(settings, None, {}))
        return report
    report["store_head"] = ledger.head()
    report.update(_waiting(ledger))
    positions: dict[str, dict[str, int]] = {}
    where = published(settings)
    try:
        con = open_for_reading(where)
    except NotPublishedError:
        report["read_models"] = "not built yet"
        if deployment.uses_kafka:
            report.update(_kafka_status(settings, ledger, positions))
        return report
    try:
        for source, key, position in con.execute(
            "SELECT source, key, position FROM projector_positions ORDER BY source, key"
        ).fetchall():
            positions.setdefault(source, {})[key] = position
        report["read_models"] = str(where)
        report["positions"] = positions
        report.update(state(con))
        report["events"] = con.execute("SELECT count(*) FROM events").fetchall()[0][0]
        report.update(parked_summary(con))
        report.update(_rates_used(con))
        report.update(_insight_runs(con))
    except duckdb.Error as exc:
        raise ReadModelError(
            f"cannot read {where}: {exc}; `ledger project` publishes it again, "
            "`ledger replay` rebuilds it"
        ) from exc
    finally:
        con.close()
    if deployment.uses_kafka:
        taken_in = {source: report[identity_key(source)] for source in positions if identity_key(source) in report}
        report.update(_kafka_status(settings, ledger, positions, taken_in))
        if settings.projection.projector_group:
            from ledger.ops.roster import members

            report["group"] = settings.kafka.consumer_group
            report["group_members"] = members(settings)
    else:
        report["lag"] = lag({"log": report["store_head"]}, positions.get("store", {}))
    return report


def _waiting(ledger: Ledger) -> dict[str, Any]:
    """How many refunds wait for their order, since when the oldest, how many were rejected
    once it came (ledger.write.waiting); a store from before waiting facts has none."""
    try:
        summary = ledger.waiting_summary()
    except (PersistenceError, sqlite3.Error, StoreError) as exc:
        if _missing_table(exc):
            return {"waiting_facts": 0}
        raise StoreError(f"cannot read the waiting facts: {exc}") from exc
    report: dict[str, Any] = {"waiting_facts": summary["waiting"]}
    if summary["oldest"] is not None:
        report["oldest_waiting_since"] = summary["oldest"]
    if summary["rejected"]:
        report["waiting_rejected"] = f"{summary['rejected']} (rejected when their order came; `ledger waiting`)"
    return report


def waiting_facts(settings: Settings, limit: int) -> list[dict[str, Any]]:
    """The facts waiting for their order (and those rejected when it came), oldest first;
    read only, like status: nothing for a store not created yet."""
    ledger = _open_store(settings)
    if ledger is None:
        return []
    try:
        return ledger.waiting(limit)
    except (PersistenceError, sqlite3.Error) as exc:
        if _missing_table(exc):
            return []
        raise StoreError(f"cannot read the waiting facts: {exc}") from exc
    finally:
        ledger.close()


def _missing_table(exc: Exception) -> bool:
    """Whether `exc` says the table of waiting facts does not exist (a store made before it)."""
    return "no such table" in str(exc) or "does not exist" in str(exc)


def _rates_used(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """Which exchange rates the published orders and RFM were converted with, so an operator
    sees whether the file they set was used; nothing for a copy built before rates existed."""
    if not has_table(con, "exchange_rates"):
        return {}
    source, rates, into = con.execute(
        "SELECT any_value(source), count(*), any_value(reporting_currency) FROM exchange_rates").fetchall()[0]
    if not rates:
        return {"exchange_rates": "none: only orders in the reporting currency count"}
    return {"exchange_rates": f"{source}: {rates:,} rates into {into}"}


def _insight_runs(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """The latest run of each insight model (`ledger insight`): as of when, and which model, so
    an operator sees how old the scores are; nothing for a copy built before insight existed."""
    if not has_table(con, "insight_runs"):
        return {}
    runs = con.execute("SELECT kind, strftime(as_of, '%Y-%m-%dT%H:%M:%SZ'), model_version FROM insight_runs "
                       "ORDER BY kind").fetchall()
    return {"insight": "; ".join(f"{kind} as of {as_of} ({model})" for kind, as_of, model in runs) or "never run"}


def _kafka_status(
    settings: Settings, ledger: Ledger | None, positions: dict[str, dict[str, int]],
    identities: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Read-only, like all of status: a missing topic is shown as missing, never created."""
    from ledger.kafka.parking import relay_parked
    from ledger.kafka.relay import relay_position
    from ledger.kafka.source import KafkaSource
    from ledger.kafka.topics import existing, ledger_topics

    relayed = relay_position(ledger, settings.kafka.ledger_topic) if ledger else 0
    parked = relay_parked(settings, ledger) if ledger else []
    found = existing(settings)
    report: dict[str, Any] = {
        "topics": {t.name: "present" if t.name in found else "missing" for t in ledger_topics(settings)},
        "relay_position": relayed,
        "relay_lag": max(0, (ledger.head() if ledger else 0) - relayed),
        "relay_parked": len(parked),
    }
    if parked:
        report["newest_relay_parked"] = [f"notification {p.notification_id}: {p.reason}" for p in parked[-3:]]
    if settings.kafka.ledger_topic not in found:
        report["lag"] = f"unknown: no topic {settings.kafka.ledger_topic!r} (run `ledger topics create`)"
        return report
    source = KafkaSource(settings)
    try:
        ends = source.head()
    finally:
        source.close()
    projected = positions.get(source.name, {})
    report["topic_end_offsets"] = ends
    report["partition_lag"] = {p: max(0, end - projected.get(p, 0)) for p, end in ends.items()}
    report["lag"] = lag(ends, projected)
    taken_in = (identities or {}).get(source.name)
    past = sorted(p for p, at in projected.items() if at > ends.get(p, at))
    if projected and taken_in is not None and source.identity is not None and taken_in != source.identity:
        report["lag"] = (f"unknown: the topic was recreated since the read models were built (id {taken_in}, "
                         f"now {source.identity}); the projector rebuilds them when it next runs")
    elif past:
        report["lag"] = (f"unknown: positions past the end of partitions {', '.join(past)} (the topic was "
                         "emptied or recreated?); the projector rebuilds the read models when it next runs")
    return report


def _open_store(settings: Settings) -> Ledger | None:
    """The store for reading, or None when it does not exist yet."""
    url = settings.store_url
    if url.startswith("sqlite:///") and not Path(url[len("sqlite:///"):]).is_file():
        return None
    if not url.startswith("sqlite:///") and not _postgres_tables_exist(url):
        return None  # and opening would create the schema
    ledger: Ledger = _ReadingLedger(settings)
    try:
        try:
            ledger.head()
        except (PersistenceError, sqlite3.Error):
            if not url.startswith("sqlite:///"):
                raise
            # A writer started between looking for its log and reading the file as immutable,
            # and moved pages under us: read again, through its log.
            ledger = _ReadingThroughLog(settings)
            ledger.head()
    except (PersistenceError, sqlite3.Error) as exc:
        if "does not exist" in str(exc):  # PostgreSQL: the tables are not there yet
            return None
        raise StoreError(f"cannot read the event store {settings.store_shown}: {exc}") from exc
    return ledger


def _postgres_tables_exist(url: str) -> bool:
    import psycopg

    from ledger.write.store import connect, persistence_env

    env = persistence_env(url)
    table = f"{env.get('POSTGRES_SCHEMA', 'public')}.{Ledger.name.lower()}_events"
    with connect(env) as connection:
        try:
            row = connection.execute("SELECT to_regclass(%s)", [table]).fetchone()
        except psycopg.Error as exc:
            raise StoreError(f"cannot read the store: {exc}") from exc
    return bool(row and row[0])
