"""The projectors' group in the lake's catalog database (ops/group.py): who is in it, for
`ledger status`, and the locks that keep two members from publishing one partition at once."""

from __future__ import annotations

import contextlib
import json
import logging
import math
import time
from collections.abc import Callable, Iterator

import psycopg

from ledger.errors import LakeUnavailableError
from ledger.settings import Settings

log = logging.getLogger(__name__)

PARTITION_LOCK = 0x1ED6E600
"""PostgreSQL advisory locks PARTITION_LOCK + p: one publish of partition p's slice at a time."""
ROSTER = "ledger_group.members"
ROSTER_TABLE = (
    "CREATE SCHEMA IF NOT EXISTS ledger_group; CREATE TABLE IF NOT EXISTS ledger_group.members "
    "(member TEXT PRIMARY KEY, partitions JSONB NOT NULL, seen_at TIMESTAMPTZ NOT NULL)"
)


class Roster:
    """Who is in the group, for `ledger status`: each member's row in the lake's catalog
    database (schema ``ledger_group``), written once a second at most, deleted when it leaves.
    Kafka's own group description is not used: kafka-python cannot read Tansu's answer."""

    def __init__(self, settings: Settings, name: str):
        self.settings, self.name = settings, name
        self.pg: psycopg.Connection | None = None
        self.said_at = -math.inf

    def say(self, where: Callable[[], dict[int, dict[str, int]]]) -> None:
        """`where()`: each partition owned, {"position": ..., "lag": ...}; asked only when the row
        is written (at most once a second), since each position is a query of a working file."""
        if time.monotonic() - self.said_at < 1:
            return
        partitions = where()
        try:
            if self.pg is None:
                self.pg = psycopg.connect(self.settings.lake_catalog_url, autocommit=True, connect_timeout=5)
                self.pg.execute(ROSTER_TABLE)
                # Rows of members gone a day without a word (killed, their containers replaced).
                self.pg.execute(f"DELETE FROM {ROSTER} WHERE seen_at < now() - interval '1 day'")
            self.pg.execute(
                f"INSERT INTO {ROSTER} VALUES (%s, %s, now()) ON CONFLICT (member) DO UPDATE "
                "SET partitions = excluded.partitions, seen_at = excluded.seen_at",
                [self.name, json.dumps({str(p): v for p, v in sorted(partitions.items())})])
            self.said_at = time.monotonic()
        except psycopg.Error as exc:
            log.warning("cannot write this member's row in the lake's catalog: %s", exc)
            self.close()

    def leave(self) -> None:
        try:
            if self.pg is not None:
                self.pg.execute(f"DELETE FROM {ROSTER} WHERE member = %s", [self.name])
        except psycopg.Error:
            pass  # seen_at says it is gone
        finally:
            self.close()

    def close(self) -> None:
        if self.pg is not None:
            self.pg.close()
            self.pg = None


def members(settings: Settings) -> list[dict[str, object]]:
    """The group's members as they last said (`Roster`), newest first; none if none ever did."""
    try:
        with psycopg.connect(settings.lake_catalog_url, autocommit=True, connect_timeout=5) as pg:
            rows = pg.execute(f"SELECT member, partitions, seen_at, now() - seen_at FROM {ROSTER} "
                              "ORDER BY member").fetchall()
    except psycopg.errors.UndefinedTable:
        return []
    except psycopg.Error as exc:
        raise LakeUnavailableError(f"cannot read the group's members from the lake's catalog: {exc}") from exc
    return [{"member": member, "partitions": {int(p): v for p, v in partitions.items()},
             "lag": sum(v["lag"] for v in partitions.values()), "seen_at": seen_at.isoformat(),
             "seen_s_ago": round(ago.total_seconds(), 1)}
            for member, partitions, seen_at, ago in rows]


class PartitionLocks:
    """One publish of a partition's slice at a time, whoever publishes it: the member it was
    revoked from may still be publishing when the next owner does. The fence (slices._fence) is
    read inside the lock, so the later of two sees the earlier's commit."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.pg: psycopg.Connection | None = None

    @contextlib.contextmanager
    def held(self, partition: int) -> Iterator[None]:
        try:
            if self.pg is None:
                self.pg = psycopg.connect(self.settings.lake_catalog_url, autocommit=True, connect_timeout=5)
            self.pg.execute("SELECT pg_advisory_lock(%s)", [PARTITION_LOCK + partition])
        except psycopg.Error as exc:
            self.close()
            raise LakeUnavailableError(f"cannot lock partition {partition} in the lake's catalog: {exc}") from exc
        try:
            yield
        finally:
            try:
                self.pg.execute("SELECT pg_advisory_unlock(%s)", [PARTITION_LOCK + partition])
            except psycopg.Error:
                self.close()  # the session's end lets go of it

    def close(self) -> None:
        if self.pg is not None:
            with contextlib.suppress(psycopg.Error):
                self.pg.close()
            self.pg = None
