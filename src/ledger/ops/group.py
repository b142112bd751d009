"""Projectors sharing the ledger topic: members of one Kafka consumer group.

With ``projection.projector_group`` on, `ledger project` and `ledger serve`'s projector join the
consumer group ``kafka.consumer_group`` and own the partitions it assigns them. For each one a
member keeps a working file in its data directory (``partitions/<p>.duckdb``), which the
projector engine fills from that partition alone, and publishes it into the lake as the
partition's slice, positions with it (projection/slices.py).

- **A partition that comes** starts from the lake's slice when the lake is ahead of the
  member's own file (another member had it since), else from the file; the consumer seeks to
  the position stored with the data, never to a group offset.
- **A partition that goes** is published first, then its file is closed. A member killed
  publishes nothing more: the next owner starts from the slice and applies again what came
  after it, the same events into the same SQL, so the rows are the same.
- **One member at a time combines** the slices into the analysts' tables: the holder of a
  PostgreSQL advisory lock on the lake's catalog (held by its session, so a member killed
  lets go of it). It does so after each round that changed a slice, and every
  ``projection.refresh_idle_s`` for time moving stages.
- Offsets are committed to the group after each publish too, for `ledger status` and Kafka's
  own tools; they are never read back.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import socket
import threading
import time
from collections.abc import Callable
from datetime import datetime

import duckdb
from kafka import ConsumerRebalanceListener, KafkaConsumer, TopicPartition
from kafka.errors import KafkaError as ClientError
from kafka.structs import OffsetAndMetadata

from ledger.errors import KafkaError, LakeUnavailableError, ReadModelError
from ledger.kafka.clients import consumer, high_watermarks, partitions_of
from ledger.ops.combiner import COMBINED, Combiner, remove_file
from ledger.ops.roster import PartitionLocks, Roster
from ledger.projection import lake, slices
from ledger.projection.engine import Projector, RunStats
from ledger.projection.readmodels import ReadModels
from ledger.settings import Settings
from ledger.write.key_reader import KeyReader
from ledger.write.log import SourceBatch

log = logging.getLogger(__name__)

WORK_DIR = "partitions"
"""The member's working files, one per partition it owns, in its data directory."""
POLL_MS = 500
SESSION_TIMEOUT_MS = 6000
"""How soon the group gives a silent member's partitions to the others (its heartbeats stop);
also how long a join takes on Tansu, about half of it (kafka-python's default is 10 s)."""
PUBLISH_S = 30.0
"""While far behind, a following member publishes its slices this often (each publish compares
the whole slice); once caught up, after every round. A `once` run publishes at its end."""


class _Partition:
    """What the engine needs of a source for a partition the member reads for it: the name and
    identity its positions are stored under. The member's consumer does the reading."""

    def __init__(self, topic: str, identity: str | None):
        self.name, self.identity = f"kafka:{topic}", identity

    def read(self, positions: object, limit: int) -> SourceBatch:
        return SourceBatch([])

    def head(self) -> dict[str, int]:
        return {}

    def close(self) -> None:
        """Nothing to close: the member's consumer is shared."""


class Owned:
    """One partition this member owns: its working file and the engine that fills it."""

    def __init__(self, settings: Settings, topic: str, partition: int, identity: str | None):
        self.partition, self.key = partition, str(partition)
        self.path = settings.data_dir / WORK_DIR / f"{partition}.duckdb"
        self.models = ReadModels(self.path, settings=settings)
        self.source = _Partition(topic, identity)
        self.projector = Projector(self.models, self.source, batch_size=settings.batch_size, keys=KeyReader(settings))
        self.dirty = False
        self.published: slices.Published | None = None
        """What the last publish of this process wrote (None: nothing yet, so everything)."""

    @property
    def position(self) -> int:
        return self.models.positions(self.source.name).get(self.key, 0)

    def apply(self, records: list, as_of: datetime) -> tuple[int, int]:
        batch = SourceBatch([r.value for r in records], {self.key: records[-1].offset + 1},
                            [(self.key, r.offset) for r in records])
        self.dirty = True
        return self.projector.apply_batch(batch, as_of)

    def publish(self, settings: Settings) -> None:
        """The file as the partition's slice; an erasure's file rewritten first, its mark
        cleared only once the lake forgot too."""
        self.models.shred_if_erased()
        con = self.models.con
        forget = bool(con.execute("SELECT 1 FROM projector_state WHERE key = ?", [lake.FORGET_PENDING]).fetchall())
        try:
            self.published = slices.publish(con, settings, self.partition, forget=forget, before=self.published)
        except duckdb.Error as exc:
            with contextlib.suppress(duckdb.Error):  # attached afresh next time (its PostgreSQL restarted, say)
                con.execute(f"DETACH {lake.LAKE}")
            raise LakeUnavailableError(f"cannot publish partition {self.partition} into the lake: {exc}") from exc
        # The mark went into the slice with the rest: cleared here, the next publish clears it there
        # (else every later owner restoring the slice would do the whole erasure again).
        self.dirty = forget
        if forget:
            con.execute("DELETE FROM projector_state WHERE key = ?", [lake.FORGET_PENDING])

    def close(self, *, remove: bool = False) -> None:
        self.models.close()
        if remove:
            remove_file(self.path)


class Member:
    """One projector of the group: `run` until `stop` is set (or, `once`, until caught up)."""

    def __init__(self, settings: Settings, clock: Callable[[], datetime], stop: threading.Event,
                 before_refresh: Callable[[ReadModels], None] | None = None):
        self.settings, self.clock, self.stop = settings, clock, stop
        self.before_refresh = before_refresh
        """`ledger insight`'s run, in the combine a `once` run ends with (which it must lead)."""
        self.topic = settings.kafka.ledger_topic
        self.owned: dict[int, Owned] = {}
        self.waiting: set[int] = set()
        """Partitions assigned whose file could not be made ready yet (the lake out of reach)."""
        self.targets: dict[int, int] = {}
        self.combiner = Combiner(settings)
        self.roster = Roster(settings, f"{socket.gethostname()}:{os.getpid()}:{settings.data_dir.resolve()}")
        self.stats = RunStats()
        self.consumer: KafkaConsumer | None = None
        self.rebalanced = False
        self.joined = False
        """A first assignment came (an empty one too: more members than partitions)."""
        self.sought: set[int] = set()
        """Partitions sought since the last poll: what that poll fetched for them is stale."""
        self.locks = PartitionLocks(settings)
        self.identity: str | None = None

    def run(self, *, once: bool) -> RunStats:
        started = time.perf_counter()
        self.consumer = consumer(self.settings, group_id=self.settings.kafka.consumer_group,
                                 max_poll_records=self.settings.batch_size, session_timeout_ms=SESSION_TIMEOUT_MS,
                                 heartbeat_interval_ms=SESSION_TIMEOUT_MS // 6)
        # Files of an earlier run go: partitions may have moved since, and the lake's slices are
        # their copies (a file kept would also outlive the erasures published since).
        for stale in (self.settings.data_dir / WORK_DIR).glob("*.duckdb"):
            remove_file(stale)
        remove_file(self.settings.data_dir / COMBINED)
        try:
            partitions_of(self.consumer, self.topic, self.settings)  # a missing topic is said, not created
            self.identity = _topic_id(self.consumer, self.topic)
            self.consumer.subscribe([self.topic], listener=_Rebalance(self))
            self._loop(once)
        finally:
            self._leave()
            self.stats.seconds = time.perf_counter() - started
        return self.stats

    def _loop(self, once: bool) -> None:
        """Poll, act on a rebalance, apply each partition's records to its file, publish the
        slices when caught up (or every PUBLISH_S while far behind), combine if this member
        leads. One thread does all of it: the files, the consumer and the lake's connections
        are never shared between threads."""
        assert self.consumer is not None
        published_at = combined_at = -math.inf
        while not self.stop.is_set():
            try:
                fetched = self.consumer.poll(timeout_ms=POLL_MS, max_records=self.settings.batch_size)
            except ClientError as exc:
                group = self.settings.kafka.consumer_group
                raise KafkaError(f"reading {self.topic!r} in group {group!r}: {exc!r}") from exc
            self.sought.clear()
            if self.rebalanced:
                self._rebalanced()
            self._take(sorted(self.waiting))
            as_of = self.clock()
            for tp, records in fetched.items():
                owned = self.owned.get(tp.partition)
                # Records of a partition sought this round were fetched from wherever the group's
                # offset or the reset policy put it, before the seek: never applied.
                if owned is not None and records and tp.partition not in self.sought:
                    new, parked = owned.apply(records, as_of)
                    self.stats.read += len(records)
                    self.stats.new += new
                    self.stats.parked += parked
                    self.stats.batches += 1
            caught_up = self._caught_up()
            self.roster.say(self._where)
            behind_for = time.monotonic() - published_at
            if any(o.dirty for o in self.owned.values()) and (caught_up or (not once and behind_for >= PUBLISH_S)):
                self._publish(list(self.owned.values()))
                published_at = time.monotonic()
            if once:
                if self.joined and caught_up and not self.waiting:
                    self._finish()
                    return
                continue
            idle = time.monotonic() - combined_at >= self.settings.projection.refresh_idle_s
            if (caught_up or not fetched) and self.combiner.leads() and self._combine(force=idle):
                combined_at = time.monotonic()

    def _where(self) -> dict[int, dict[str, int]]:
        """Each owned partition's position and lag, for the roster (`ledger status`)."""
        assert self.consumer is not None
        where = {}
        for partition, owned in self.owned.items():
            end = self.consumer.highwater(TopicPartition(self.topic, partition)) or self.targets.get(partition, 0)
            where[partition] = {"position": owned.position, "lag": max(0, end - owned.position)}
        return where

    def _finish(self) -> None:
        """A `once` run's end: combine if this member leads (else the one that does will); a run
        of `ledger insight` must, since its model runs in the combine."""
        self._publish(list(self.owned.values()))  # an erasure's mark, cleared after its publish, goes too
        unpublished = sorted(p for p, o in self.owned.items() if o.dirty)
        if unpublished:
            raise LakeUnavailableError(f"partitions {', '.join(map(str, unpublished))} could not be published into "
                                       "the lake (see the warnings above); their events are applied again next time")
        if self.combiner.leads():
            done = self.combiner.combine(self.clock(), force=self.before_refresh is not None,
                                         before_refresh=self.before_refresh)
            if not done and self.before_refresh is not None:
                raise ReadModelError("nothing is projected into the lake yet: no insight model can run")
        elif self.before_refresh is not None:
            raise ReadModelError(
                "another projector of the group combines the read models (a following `ledger serve` or "
                "`ledger project`), and an insight model runs in the combine: run `ledger insight` where it runs "
                "once it is stopped, or with --train, which reads the lake and writes nothing")

    def _caught_up(self) -> bool:
        """Every partition owned has reached the end it had when it came (`once`), or its end
        as the last fetch saw it."""
        assert self.consumer is not None
        for partition, owned in self.owned.items():
            end = self.consumer.highwater(TopicPartition(self.topic, partition))
            if owned.position < max(self.targets.get(partition, 0), end or 0):
                return False
        return True

    def _publish(self, owned: list[Owned], *, commit: bool = True) -> None:
        """Each dirty file of `owned` as its slice. A slice another member moved on is made
        ready again from the lake; a lake out of reach leaves the file dirty for the next round
        (a following member waits; a once run fails at its end)."""
        assert self.consumer is not None
        done = {}
        for one in owned:
            if not one.dirty:
                continue
            try:
                with self.locks.held(one.partition):
                    one.publish(self.settings)
            except slices.SliceMovedError as moved:
                log.warning("%s; starting partition %d again from the lake", moved, one.partition)
                self._drop(one.partition, remove=True)
                self.waiting.add(one.partition)  # if it is still ours, made ready again from the lake
                continue
            except LakeUnavailableError as error:
                log.warning("%s; publishing it again later", error)
                continue
            done[TopicPartition(self.topic, one.partition)] = OffsetAndMetadata(one.position, "", -1)
        if done and commit:
            try:  # asynchronously: a synchronous commit waits out a rebalance under way, forever
                self.consumer.commit_async(done)
            except ClientError as exc:  # the next publish commits
                log.debug("committing group offsets failed: %r", exc)

    def _combine(self, *, force: bool) -> bool:
        """A following member's combine: a failure (the lake out of reach, or the refresh's) is
        logged and tried again later; it does not stop the member projecting its partitions."""
        try:
            return self.combiner.combine(self.clock(), force=force)
        except ReadModelError as error:
            log.error("%s; combining again later", error)
            return False

    def _rebalanced(self) -> None:
        """After a rebalance (heard of by `_Rebalance`, acted on here, in this thread: kafka-python
        calls the listener from its own network thread): publish and close what went, seek what
        stayed back to where its data ends (an assignment moves the fetch position to the group's
        offset), make ready what came."""
        assert self.consumer is not None
        self.rebalanced = False
        mine = {tp.partition for tp in self.consumer.assignment()}
        gone = [p for p in self.owned if p not in mine]
        self._publish([self.owned[p] for p in gone], commit=False)
        for partition in gone:  # the lake's slice is its copy now; a file left would outlive erasures
            self._drop(partition, remove=True)
        for partition, owned in self.owned.items():
            self._seek(partition, owned.position)
        self.waiting = mine - set(self.owned)
        self._take(sorted(self.waiting))

    def _seek(self, partition: int, position: int) -> None:
        assert self.consumer is not None
        self.sought.add(partition)
        tp = TopicPartition(self.topic, partition)
        if position:
            self.consumer.seek(tp, position)
        else:
            self.consumer.seek_to_beginning(tp)

    def _take(self, partitions: list[int]) -> None:
        """Partitions assigned: each from the lake's slice if that is ahead of this member's file."""
        assert self.consumer is not None
        assigned = {tp.partition for tp in self.consumer.assignment()}
        for partition in partitions:
            tp = TopicPartition(self.topic, partition)
            if partition not in assigned:
                self.waiting.discard(partition)
                continue
            try:
                owned = self._ready(partition)
            except (LakeUnavailableError, duckdb.Error) as error:
                log.warning("partition %d waits: %s", partition, error)
                self.consumer.pause(tp)
                continue
            try:
                owned.projector.positions()  # TopicResetError if the topic is not the one the data was taken in
            except BaseException:
                owned.close()
                raise
            self.owned[partition] = owned
            self.waiting.discard(partition)
            self._seek(partition, owned.position)
            self.consumer.resume(tp)
            self.targets[partition] = high_watermarks(self.settings, [tp]).get(partition, 0)
            log.info("projecting partition %d from %d", partition, owned.position)

    def _ready(self, partition: int) -> Owned:
        """The working file of `partition`: this member's own, or the lake's slice if that is
        further on (another member had the partition since)."""
        owned = Owned(self.settings, self.topic, partition, self.identity)
        try:
            in_lake = slices.positions(owned.models.con, self.settings).get(partition, {}).get(owned.key, 0)
            if in_lake > owned.position:
                owned.close(remove=True)
                owned = Owned(self.settings, self.topic, partition, self.identity)
                slices.restore(owned.models.con, self.settings, partition)
                log.info("partition %d restored from the lake at %d", partition, owned.position)
        except BaseException:
            owned.close()
            raise
        return owned

    def _drop(self, partition: int, *, remove: bool = False) -> None:
        owned = self.owned.pop(partition, None)
        if owned is not None:
            owned.close(remove=remove)

    def _leave(self) -> None:
        try:
            if self.owned:
                self._publish(list(self.owned.values()), commit=False)
        finally:
            for partition in list(self.owned):
                self._drop(partition)
            self.combiner.close()
            self.roster.leave()
            self.locks.close()
            if self.consumer is not None:
                self.consumer.close(autocommit=False, timeout_ms=2000)


class _Rebalance(ConsumerRebalanceListener):
    """Notes a rebalance for the member's own thread (`Member._rebalanced`). kafka-python calls
    this from its network thread; opening DuckDB files there hung (seen: a connect that never
    returned), and the member's files belong to the thread that applies to them."""

    def __init__(self, member: Member):
        self.member = member

    def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        self.member.rebalanced = True

    def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        self.member.rebalanced = self.member.joined = True


def _topic_id(client: KafkaConsumer, topic: str) -> str | None:
    """As KafkaSource: kafka-python keeps topic ids in its cluster metadata only."""
    found = getattr(getattr(client, "_cluster", None), "topic_id", None)
    value = found(topic) if callable(found) else None
    return None if value is None else str(value)
