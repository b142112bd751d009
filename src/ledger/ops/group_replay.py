"""`ledger replay` for a projectors' group: every partition's slice rebuilt, then combined.

A replay rebuilds the read models from the first event (after a change to the models' SQL, say).
In a group each member holds only its partitions, so the replay rebuilds each partition on its
own, from that partition of the topic into a scratch file, exactly as a member would, and
publishes it as the partition's slice; then it combines them into the analysts' tables. Every
publish is one lake transaction, so readers are never stopped: they see the old tables until
the combine commits, then the new ones.

The slices are dropped first, so a replay killed half way leaves some partitions without a
slice, which members then rebuild from their first record, never a slice of the old SQL beside
new ones. The members must be stopped first, as a single projector must be for its replay: a member
running on would go on from its own file, built by the old SQL, and publish it over the
replayed slice. Members that start again delete their files and begin from the replayed slices.
"""

from __future__ import annotations

from datetime import datetime

import duckdb

from ledger.errors import ReadModelError
from ledger.kafka.clients import consumer, partitions_of
from ledger.kafka.source import KafkaSource
from ledger.ops.combiner import Combiner, remove_file
from ledger.ops.group import SESSION_TIMEOUT_MS, WORK_DIR
from ledger.ops.roster import members
from ledger.projection import slices
from ledger.projection.engine import Progress, Projector, RunStats
from ledger.projection.readmodels import ReadModels
from ledger.settings import Settings
from ledger.write.key_reader import KeyReader

ALIVE_S = 3 * SESSION_TIMEOUT_MS / 1000
"""A member that said where it is more recently than this is taken to be running."""


def replay_group(settings: Settings, as_of: datetime, *, progress: Progress | None = None) -> RunStats:
    """Rebuild every partition's slice from the topic, then combine them (see the module)."""
    running = [m["member"] for m in members(settings)
               if float(str(m["seen_s_ago"])) < ALIVE_S]
    if running:
        raise ReadModelError(
            f"members of the projectors' group are running ({', '.join(map(str, running))}): stop them first "
            "(they would publish their files, built before the replay, over the replayed slices)")
    total = RunStats()
    with duckdb.connect() as con:  # a kill from here on leaves partitions without a slice: begun from 0
        slices.drop_all(con, settings)
    for partition in _partitions(settings):
        stats = _rebuild(settings, partition, as_of, progress)
        total.read, total.new, total.parked = (total.read + stats.read, total.new + stats.new,
                                               total.parked + stats.parked)
        total.seconds += stats.seconds
    combiner = Combiner(settings)
    try:
        if not combiner.leads():
            raise ReadModelError("another process holds the group's combine: stop every member first")
        combiner.combine(as_of, force=True)
    finally:
        combiner.close()
    return total


def _partitions(settings: Settings) -> list[int]:
    client = consumer(settings, group_id=None)
    try:
        return [tp.partition for tp in partitions_of(client, settings.kafka.ledger_topic, settings)]
    finally:
        client.close()


def _rebuild(settings: Settings, partition: int, as_of: datetime, progress: Progress | None) -> RunStats:
    """One partition from its first record into a scratch file, published as its slice."""
    scratch = settings.data_dir / WORK_DIR / f"replay-{partition}.duckdb"
    remove_file(scratch)
    source = KafkaSource(settings, partition=partition)
    try:
        with ReadModels(scratch, settings=settings) as models:
            stats = Projector(models, source, batch_size=settings.batch_size, keys=KeyReader(settings),
                              catch_up_batch_size=settings.projection.catch_up_batch_size,
                              ).catch_up(as_of, progress=progress, finish=False)
            models.shred_if_erased()
            slices.publish(models.con, settings, partition, forget=False)
    finally:
        source.close()
        remove_file(scratch)
    return stats

