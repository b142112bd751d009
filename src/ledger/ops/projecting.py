"""Run projectors where the deployment says: the store's log (embedded) or the ledger topic."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import duckdb

from ledger.errors import (
    KafkaError,
    LakeUnavailableError,
    ReadModelError,
    SegmentError,
    TopicResetError,
)
from ledger.insight.runs import recorded, rerun
from ledger.ops.deployment import Deployment
from ledger.ops.writer import REPLAY_NAME, swap_in, writing
from ledger.projection.engine import Progress, Projector, RunStats
from ledger.projection.readmodels import ReadModels
from ledger.settings import Settings
from ledger.write.application import Clock, Ledger
from ledger.write.key_reader import KeyReader
from ledger.write.log import Source

log = logging.getLogger(__name__)

KAFKA_RETRY_S = 1.0
"""How long a following projector waits before reading a topic it could not reach again."""


class Observer(Protocol):
    """What a following projector reports as it goes (`ledger serve`'s Metrics), from its thread."""

    def projector_batch(self, seconds: float) -> None: ...

    def projector_round(self, new: int, parked: int, lag: dict[str, int]) -> None: ...

    def published(self, seconds: float) -> None: ...


def project(
    settings: Settings,
    as_of: datetime,
    *,
    ledger: Ledger | None = None,
    progress: Progress | None = None,
    stop: threading.Event | None = None,
    before_refresh: Callable[[ReadModels], None] | None = None,
) -> RunStats:
    """Bring the read models up to date with the source, then publish them (`before_refresh`
    runs after the catch-up, before the refresh: `ledger insight`'s model, say)."""
    if settings.projection.projector_group:
        from ledger.ops.group import Member

        with writing(settings):
            stats = Member(settings, lambda: as_of, stop or threading.Event(), before_refresh).run(once=True)
        raise_segment_errors(stats)
        return stats
    with writing(settings):
        source = Deployment(settings).source(ledger)
        try:
            with ReadModels(settings.readmodel_path, settings=settings) as models:
                projector = Projector(
                    models, source, batch_size=settings.batch_size,
                    catch_up_batch_size=settings.projection.catch_up_batch_size, publish_to=settings.published_path,
                    keys=KeyReader(settings), before_refresh=before_refresh,
                )
                stats = projector.catch_up(as_of, progress=progress, stop=stop)
        except TopicResetError as reset:
            stats = _rebuild_after(reset, settings, as_of, ledger=ledger, progress=progress)
        finally:
            source.close()
    raise_segment_errors(stats)
    return stats


def _rebuild_after(
    reset: TopicResetError, settings: Settings, as_of: datetime, *, ledger: Ledger | None,
    progress: Progress | None = None,
) -> RunStats:
    """The topic went backwards or was recreated: the stored positions mean nothing there any
    more, so the read models are rebuilt from its first record (the relay republishes the
    whole store into it), and the reset is kept in the state for `ledger status`."""
    log.warning("%s; rebuilding the read models from the start of the topic", reset)
    note = {"topic_reset": f"{datetime.now(UTC).isoformat()}: {reset}"}
    return _replay(settings, as_of, ledger=ledger, progress=progress, state=note)


@contextmanager
def recording(settings: Settings, *, then_project: bool = True) -> Iterator[None]:
    """Around a command that records and then projects (embedded): the writer lock and the
    data directory's store check come first, so a second writer is refused before anything is
    recorded, not after."""
    if then_project and Deployment(settings).projects_after_recording:
        with writing(settings):
            yield
    else:
        yield


def project_if_embedded(settings: Settings, ledger: Ledger) -> None:
    """After recording in embedded mode, bring the read models up to date (with Kafka, the
    projector following the topic does it)."""
    if Deployment(settings).projects_after_recording:
        project(settings, datetime.now(UTC), ledger=ledger)


def raise_segment_errors(stats: RunStats) -> None:
    """After publishing: fail loudly if a segment rule file was broken (the rest is updated)."""
    if stats.segment_errors:
        problems = "\n".join(str(error) for error in stats.segment_errors)
        raise SegmentError(
            f"{problems}\nthe read models, including the other segments, were updated and published"
        )


def follow(
    settings: Settings,
    clock: Clock,
    stop: threading.Event,
    *,
    ledger: Ledger | None = None,
    idle_s: float = 1.0,
    observer: Observer | None = None,
) -> RunStats:
    """Keep projecting until `stop` is set, refreshing and publishing after each catch-up that
    brought new events, and otherwise every ``settings.projection.refresh_idle_s`` (time moves stages).

    A broken segment rule does not stop the follower: it stays recorded in the read models
    (``segments.last_error``, and ``segment_errors`` in ``ledger status``) until fixed.
    Each round that brought events is logged at info (events, batches, seconds, lag), each
    publish too; `observer` hears of every batch, round and publish.
    """
    if settings.projection.projector_group:
        return _follow_in_group(settings, clock, stop)
    with writing(settings):
        return _follow(settings, clock, stop, ledger=ledger, idle_s=idle_s, observer=observer)


def _follow_in_group(settings: Settings, clock: Clock, stop: threading.Event) -> RunStats:
    """A member of the projectors' group until `stop`: a broker out of reach once following is
    waited for, as `_follow` does (the member leaves the group and joins again)."""
    from ledger.ops.group import Member

    total, started = RunStats(), False
    with writing(settings):
        while not stop.is_set():
            try:
                stats = Member(settings, clock, stop).run(once=False)
            except TopicResetError:
                raise  # the group's lake must be rebuilt (docs/scale.md): joining again would not do it
            except KafkaError as error:
                if not started:
                    raise
                log.warning("%s; joining the group again in %g s", error, KAFKA_RETRY_S)
                stop.wait(KAFKA_RETRY_S)
                continue
            finally:
                started = True
            total.read, total.new = total.read + stats.read, total.new + stats.new
    return total


def _follow(
    settings: Settings, clock: Clock, stop: threading.Event, *, ledger: Ledger | None, idle_s: float,
    observer: Observer | None = None,
) -> RunStats:
    total = RunStats()
    started = False
    while not stop.is_set():
        # A source of its own per round: one that met a reset remembers the topic as it was
        # (its id), and would report the same reset again after every rebuild. Once following,
        # a broker that cannot be reached (restarting, say) is waited for, not fatal; at the
        # start it is an error, said at once (a topic not created, a wrong address).
        try:
            source = Deployment(settings).source(ledger)
        except KafkaError as error:
            if not started:
                raise
            log.warning("%s; trying the topic again in %g s", error, KAFKA_RETRY_S)
            stop.wait(KAFKA_RETRY_S)
            continue
        started = True
        try:
            try:
                _follow_until_reset(settings, clock, stop, source, total, idle_s, observer)
            except TopicResetError as reset:
                source.close()  # before the rebuild opens a source of its own (closing twice is harmless)
                _rebuild_after(reset, settings, clock(), ledger=ledger)
        except KafkaError as error:
            log.warning("%s; reading the topic again in %g s", error, KAFKA_RETRY_S)
            stop.wait(KAFKA_RETRY_S)
        finally:
            source.close()
    return total


def _follow_until_reset(
    settings: Settings, clock: Clock, stop: threading.Event, source: Source, total: RunStats, idle_s: float,
    observer: Observer | None = None,
) -> None:
    with ReadModels(settings.readmodel_path, settings=settings) as models:
        projector = Projector(models, source, batch_size=settings.batch_size,
                              catch_up_batch_size=settings.projection.catch_up_batch_size,
                              publish_to=settings.published_path, keys=KeyReader(settings))
        refreshed_at, unpublished = -math.inf, False
        while not stop.is_set():
            timer = _BatchTimer(observer)
            stats = projector.catch_up(clock(), stop=stop, finish=False, progress=timer)
            position = models.positions(source.name)
            behind = _lag(source.head(), position)
            if observer is not None:
                observer.projector_round(stats.new, stats.parked, behind)
            published = None
            if stats.new or unpublished or time.monotonic() - refreshed_at >= settings.projection.refresh_idle_s:
                began = time.perf_counter()
                try:
                    projector.finish(clock())
                except LakeUnavailableError as error:  # its PostgreSQL restarting, say: waited for, not fatal
                    log.warning("%s; publishing again in %g s", error, KAFKA_RETRY_S)
                    unpublished = True
                    stop.wait(KAFKA_RETRY_S)
                else:
                    published, unpublished = time.perf_counter() - began, False
                    refreshed_at = time.monotonic()
                    if observer is not None:
                        observer.published(published)
            _log_round(stats, published, position, behind)
            total.read += stats.read
            total.new += stats.new
            total.parked += stats.parked
            total.batches += stats.batches
            total.seconds += stats.seconds
            if stats.read == 0:
                stop.wait(idle_s)


def _log_round(stats: RunStats, published: float | None, position: dict[str, int], lag: dict[str, int]) -> None:
    """One line per round that brought events (info), or per idle republish (debug)."""
    fields = {"part": "projector", "events": stats.read, "new": stats.new, "parked": stats.parked,
              "batches": stats.batches, "seconds": round(stats.seconds, 3), "position": position, "lag": lag,
              "publish_seconds": None if published is None else round(published, 3)}
    if stats.read:
        log.info("projected %d events (%d new, %d parked) in %d batches, %.3f s%s; lag %d", stats.read, stats.new,
                 stats.parked, stats.batches, stats.seconds,
                 "" if published is None else f", published in {published:.3f} s", sum(lag.values()), extra=fields)
    elif published is not None:
        log.debug("nothing new; refreshed and published the read models in %.3f s", published, extra=fields)


class _BatchTimer:
    """The projector's progress callback (called after each batch) as batch durations: the time
    since the round began or the batch before (reading the next batch overlaps with applying
    this one, so this is the pace of the pipeline, which is what an operator watches)."""

    def __init__(self, observer: Observer | None):
        self.observer = observer
        self.read = 0
        self.since = time.perf_counter()

    def __call__(self, read: int, remaining: int) -> None:
        now = time.perf_counter()
        if read > self.read:
            log.debug("projector batch of %d events in %.3f s; %d to go", read - self.read, now - self.since,
                      remaining, extra={"part": "projector", "events": read - self.read,
                                        "seconds": round(now - self.since, 3), "lag": remaining})
            if self.observer is not None:
                self.observer.projector_batch(now - self.since)
        self.read, self.since = read, now


def _lag(head: dict[str, int], positions: dict[str, int]) -> dict[str, int]:
    return {key: max(0, end - positions.get(key, 0)) for key, end in head.items()}


def replay(
    settings: Settings,
    as_of: datetime,
    *,
    ledger: Ledger | None = None,
    progress: Progress | None = None,
) -> RunStats:
    """Rebuild every read model from the first event into a new file, then swap it in.

    The live file is replaced only after the rebuild succeeded; on failure it is untouched.
    A rebuild from the first event may move the data directory to another store or topic.
    The insight runs recorded in the live file are run again, as of the same times.
    """
    if settings.projection.projector_group:
        from ledger.ops.group_replay import replay_group

        with writing(settings):
            return replay_group(settings, as_of, progress=progress)
    with writing(settings, rebind=True):
        stats = _replay(settings, as_of, ledger=ledger, progress=progress)
    raise_segment_errors(stats)
    return stats


def _replay(
    settings: Settings, as_of: datetime, *, ledger: Ledger | None, progress: Progress | None,
    state: dict[str, str] | None = None,
) -> RunStats:
    live = settings.readmodel_path
    _refuse_if_locked(live)
    scratch = live.with_name(REPLAY_NAME)
    _remove(scratch)
    stats = rebuild(settings, scratch, as_of, ledger=ledger, progress=progress)
    _remove(Path(str(live) + ".wal"))
    swap_in(settings, scratch, live)
    with ReadModels(live, settings=settings) as models:
        for key, value in (state or {}).items():
            models.set_state(key, value)
        models.publish(settings.published_path, datetime.now(as_of.tzinfo))
    return stats


def rebuild(
    settings: Settings, target: Path, as_of: datetime, *, ledger: Ledger | None, progress: Progress | None
) -> RunStats:
    """Project every event from the first into a new read-model file at `target` (a replay's,
    or its dry run's, scratch file), and run the live file's insight runs again into it."""
    runs = recorded(settings.readmodel_path)

    def insight(models: ReadModels) -> None:
        rerun(models.con, runs, models.rates.table())

    source = Deployment(settings).source(ledger)
    try:
        with ReadModels(target, settings=settings) as models:
            return Projector(models, source, batch_size=settings.batch_size,
                             catch_up_batch_size=settings.projection.catch_up_batch_size,
                             keys=KeyReader(settings), before_refresh=insight).catch_up(as_of, progress=progress)
    finally:
        source.close()


def _refuse_if_locked(path: Path) -> None:
    if not path.exists():
        return
    try:
        duckdb.connect(str(path)).close()
    except duckdb.Error as exc:
        raise ReadModelError(
            f"{path} is in use (is `ledger project` or `ledger serve` running?); stop it first: {exc}"
        ) from exc


def _remove(path: Path) -> None:
    for candidate in (path, Path(str(path) + ".wal")):
        candidate.unlink(missing_ok=True)
