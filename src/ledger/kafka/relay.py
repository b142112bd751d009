"""The relay: publishes the store's notification log to the Kafka ledger topic, in order.

One relay per topic: `run` and `run_once` hold the store lock ``relay:<topic>`` for their
life (a PostgreSQL advisory lock, or a lock file beside the SQLite store), so a second relay,
or a second `ledger serve`, is refused with WriterBusyError instead of racing the first.

Commit order of a batch, which is the delivery guarantee:

1. send it and flush (every record acked by all in-sync replicas, or refused for its
   content: too large, invalid; see `clients.CONTENT_ERRORS`);
2. park the refused ones in the store (`parking`), so none is retried forever;
3. store, per partition, the end offset Kafka's acks prove (tracking ``<name>#<partition>``);
4. store the position: the last notification id of the batch (tracking ``<name>``).

A crash anywhere sends the tail again, never skips it; projectors drop repeats by event_id.

Positions belong to a generation of the topic, because eventsourcing's tracking records
only grow. Generation 1 is tracked as ``relay:<topic>``, generation g as
``relay:<topic>@<g>``; the current g is itself a growing tracking record,
``relay:<topic>:generation`` (absent means 1). Starting again from the first event (the
topic was reset, or ``ledger relay --from-start``) is:

a. store generation g + 1; from then on the position is that of g + 1, which has none: 0;
b. (re)create the topic if it is missing, with the ledger's configs;
c. publish from the first event, as above.

A kill -9 before (a) leaves generation g, whose stored acks still prove the topic went
backwards (or is gone), so the next start finds the reset again; after (a) the next start
publishes from the first event. Either way nothing is skipped.

A reset is noticed (see `resets`) at start, after any Kafka error, every `check_s` while
idle, and whenever Kafka acknowledges an offset below one it acknowledged before.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from eventsourcing.persistence import Tracking

from ledger.errors import KafkaError, SchemaError, TopicResetError
from ledger.kafka import topics
from ledger.kafka.clients import EVENT_TYPE_HEADER, Outgoing, Producer, customer_key
from ledger.kafka.parking import Parking, describe
from ledger.kafka.resets import confirmed, reset_error, reset_reason, topic_ends
from ledger.settings import Settings
from ledger.write.application import Ledger
from ledger.write.recorders import LogEntry
from ledger.write.store import TOPIC_PREFIX, store_lock

log = logging.getLogger(__name__)


CATCH_UP_AT_MOST = 100_000
"""The relay's largest batch. Relaying 1M events with batches of 250,000 (the projectors' catch-up
batch) peaked at 557 MB and took 36.9 s; with 100,000, 300 MB and 34.9 s: a batch waits in
memory with a future per record until Kafka acknowledges its last, and beyond 100,000 the
flushes it saves no longer show."""


@dataclass
class RelayStats:
    sent: int = 0
    batches: int = 0
    producers: int = 0
    parked: int = 0
    resets: int = 0
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds else 0.0


def generation_name(topic: str) -> str:
    return f"relay:{topic}:generation"


def position_name(topic: str, generation: int) -> str:
    return f"relay:{topic}" if generation == 1 else f"relay:{topic}@{generation}"


def relay_generation(ledger: Ledger, topic: str) -> int:
    return ledger.recorder.max_tracking_id(generation_name(topic)) or 1


def relay_position(ledger: Ledger, topic: str) -> int:
    """The last notification id known to be on `topic` (in its current generation)."""
    return ledger.recorder.max_tracking_id(position_name(topic, relay_generation(ledger, topic))) or 0


@contextmanager
def holding(settings: Settings) -> Iterator[None]:
    """The lock of the relay of `settings`' ledger topic, one per topic and store, for the life
    of a run; WriterBusyError if another relay has it."""
    topic = settings.kafka.ledger_topic
    with store_lock(settings.store_url, f"relay:{topic}", f"the relay of topic {topic!r}"):
        yield


class Relay:
    def __init__(
        self,
        settings: Settings,
        ledger: Ledger,
        *,
        batch_size: int | None = None,
        max_request_size: int | None = None,
        check_s: float = 10.0,
        confirm_s: float = 1.0,
        on_batch: Callable[[RelayStats, float], None] | None = None,
    ):
        """`max_request_size` overrides the producer's (records above it are parked);
        `check_s`: how often an idle relay checks the topic for a reset; `confirm_s`: how long
        a reset must persist before the relay acts on it; `on_batch(stats, seconds)`: called by
        `run` after each batch with the running totals (how `ledger serve` counts, in ops,
        without this room knowing of metrics)."""
        self.settings = settings
        self.ledger = ledger
        self.topic = settings.kafka.ledger_topic
        self.batch_size = batch_size or settings.batch_size
        options = {} if max_request_size is None else {"max_request_size": max_request_size}
        self.producer = Producer(settings, self.topic, **options)
        self.check_s = check_s
        self.confirm_s = confirm_s
        self.stats = RelayStats()
        self.on_batch = on_batch
        self.generation = relay_generation(ledger, self.topic)
        self.acked: dict[int, int] = {}
        self._parking: Parking | None = None
        self._reader: ThreadPoolExecutor | None = None
        self._ahead: tuple[int, Future[list[LogEntry]]] | None = None

    @property
    def tracking_name(self) -> str:
        return position_name(self.topic, self.generation)

    def position(self) -> int:
        """The last notification id known to be on the topic."""
        return self.ledger.recorder.max_tracking_id(self.tracking_name) or 0

    def step(self) -> int:
        """Publish one batch after the stored position; return how many were read (sent or
        parked). Raises TopicResetError when Kafka's acks show the topic went backwards."""
        notifications = self._read(self.position())
        if not notifications:
            return 0
        sendable: list[tuple[LogEntry, Outgoing]] = []
        refused: dict[int, str] = {}
        for n in notifications:
            try:
                sendable.append((n, (customer_key(n.state), n.state, [(EVENT_TYPE_HEADER, _event_type(n))])))
            except SchemaError as error:
                refused[n.id] = f"cannot read the event's customer_id for its key: {error}"
        self._read_ahead(notifications[-1].id)  # while Kafka acknowledges this batch
        delivery = self.producer.deliver([outgoing for _, outgoing in sendable])
        self.stats.producers = self.producer.built
        refused.update((sendable[index][0].id, reason) for index, reason in delivery.refused.items())
        backwards = {p: end for p, end in delivery.acked.items() if end <= self.acked.get(p, 0)}
        if backwards:
            shown = ", ".join(f"partition {p} acknowledged offset {end - 1}, not past offset {self.acked[p] - 1} "
                              "it acknowledged before" for p, end in sorted(backwards.items()))
            raise reset_error(self.topic, f"topic {self.topic!r} went backwards: {shown}", ends=backwards)
        if refused:
            self._park([n for n in notifications if n.id in refused], refused)
        self.parking.published(n.id for n, _ in sendable if n.id not in refused)
        self.ledger.recorder.insert_trackings([  # the partitions' acks, then the position: one commit
            *(Tracking(f"{self.tracking_name}#{partition}", end) for partition, end in sorted(delivery.acked.items())),
            Tracking(self.tracking_name, notifications[-1].id),
        ])
        self.acked.update(delivery.acked)
        self.stats.sent += len(notifications) - len(refused)
        self.stats.batches += 1
        return len(notifications)

    def _size(self, position: int) -> int:
        """A batch: `batch_size`, or the projectors' catch-up batch (at most
        `CATCH_UP_AT_MOST`) while that far behind (a batch's flush waits for its last acks,
        which larger batches pay less often)."""
        catch_up = min(self.settings.projection.catch_up_batch_size, CATCH_UP_AT_MOST)
        return catch_up if self.ledger.head() - position >= catch_up > self.batch_size else self.batch_size

    def _read(self, position: int) -> list[LogEntry]:
        """The batch after `position`: the one read ahead if it starts there, else read now."""
        ahead, self._ahead = self._ahead, None
        if ahead is not None and ahead[0] == position:
            return ahead[1].result()
        return self.ledger.log(position, self._size(position))

    def _read_ahead(self, position: int) -> None:
        """Read the batch after `position` in a thread while this one is sent; a step that
        starts elsewhere (a failure, a reset) drops it."""
        if self._reader is None:
            self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="relay-read")
        self._ahead = (position, self._reader.submit(self.ledger.log, position, self._size(position)))

    def _stop_reading(self) -> None:
        self._ahead = None
        if self._reader is not None:
            self._reader.shutdown(wait=True)
            self._reader = None

    def run_once(self, *, from_start: bool = False) -> RelayStats:
        """Publish until the topic holds everything recorded when this call began."""
        started = time.perf_counter()
        with holding(self.settings):
            try:
                self._begin(from_start, None)
                head = self.ledger.head()
                while self.position() < head:
                    try:
                        if self.step() == 0:
                            break  # only notifications that are not events remain
                    except TopicResetError as reset:
                        self.republish(str(reset))
            finally:
                self._stop_reading()
                self.producer.close()
                self.stats.seconds += time.perf_counter() - started
        return self.stats

    def run(
        self, stop: threading.Event, idle_s: float = 0.2, retry_s: float = 1.0, *, from_start: bool = False,
        held: bool = False,
    ) -> RelayStats:
        """Publish until `stop` is set. A producer Kafka declares unusable (unknown producer
        id, fenced, broker restarted) is replaced, resuming from the stored position, once the
        topic was checked for a reset. `held`: the caller holds the relay's lock already."""
        started = time.perf_counter()
        with contextlib.nullcontext() if held else holding(self.settings):
            try:
                self._run(stop, idle_s, retry_s, from_start)
            finally:
                self._stop_reading()
                self.producer.close()
                self.stats.seconds += time.perf_counter() - started
        return self.stats

    def _run(self, stop: threading.Event, idle_s: float, retry_s: float, from_start: bool) -> None:
        begun = False
        next_check = 0.0
        while not stop.is_set():
            try:
                try:
                    if not begun:
                        self._begin(from_start, stop)
                        begun, next_check = True, time.monotonic() + self.check_s
                    elif time.monotonic() >= next_check:
                        self.check(stop)
                        next_check = time.monotonic() + self.check_s
                    started = time.perf_counter()
                    if self.step() == 0:
                        stop.wait(idle_s)
                    else:  # while busy, Kafka's acks are the check
                        next_check = time.monotonic() + self.check_s
                        if self.on_batch is not None:
                            self.on_batch(self.stats, time.perf_counter() - started)
                except TopicResetError as reset:
                    self.republish(str(reset))
            except KafkaError as error:
                log.warning("relay: %s; starting a new producer in %.1fs", error, retry_s)
                self.producer.discard()
                next_check = 0.0
                stop.wait(retry_s)

    def check(self, stop: threading.Event | None = None, ends: dict[int, int] | None = None) -> None:
        """Raise TopicResetError if the topic is gone or went backwards, and still is
        `confirm_s` later. `ends`: the topic's end offsets if just read (None: read them)."""
        published = self._published_before()

        def find(ends: dict[int, int] | None = None) -> str | None:
            ends = ends if ends is not None else topic_ends(self.settings, self.topic)
            return reset_reason(self.topic, ends, self.acked, published=published)

        first = find(ends)
        if first is not None and confirmed(find, self.confirm_s, stop) is not None:
            raise reset_error(self.topic, first)

    def republish(self, reason: str) -> None:
        """Start again from the first event: a new generation (see the module docstring)."""
        self.producer.discard()
        if self.position() > 0 or self.acked:
            log.warning("relay: %s; republishing every event from the store to %r (generation %d)",
                        reason, self.topic, self.generation + 1)
            self.ledger.recorder.insert_tracking(Tracking(generation_name(self.topic), self.generation + 1))
            self.generation += 1
            self.acked = {}
            self.stats.resets += 1
        else:
            log.warning("relay: %s; nothing published to it yet in this generation", reason)
        for name, created in topics.create(self.settings).items():
            if created:
                log.warning("relay: created the missing topic %r", name)

    @property
    def parking(self) -> Parking:
        if self._parking is None:
            self._parking = Parking(self.ledger, self.topic)
        return self._parking

    def _begin(self, from_start: bool, stop: threading.Event | None) -> None:
        """At start: the generation and acks stored, --from-start, then a reset check."""
        self.generation = relay_generation(self.ledger, self.topic)
        ends = topic_ends(self.settings, self.topic)
        self.acked = self._stored_acks(max(self.settings.kafka.partitions, len(ends or {})))
        if from_start:
            self.republish("an operator asked to republish everything (--from-start)")
            ends = topic_ends(self.settings, self.topic)
        try:
            self.check(stop, ends)
        except TopicResetError as reset:
            self.republish(str(reset))

    def _stored_acks(self, partitions: int) -> dict[int, int]:
        found = {p: self.ledger.recorder.max_tracking_id(f"{self.tracking_name}#{p}") for p in range(partitions)}
        return {p: end for p, end in found.items() if end}

    def _published_before(self) -> bool:
        """Whether some event up to the position was published (not all of them parked),
        for a position stored before acks were: an empty topic then means a lost one."""
        position = self.position()
        if position == 0 or self.acked:
            return bool(self.acked)
        parked = self.parking.ids
        first = self.ledger.log(0, len(parked) + 1)
        return any(n.id <= position and n.id not in parked for n in first)

    def _park(self, notifications: list[LogEntry], reasons: dict[int, str]) -> None:
        now = datetime.now(UTC)
        events = [describe(self.topic, n, reasons[n.id], now) for n in notifications]
        for event in events:
            log.error("relay: parked notification %d (event %s, %s, %d bytes): %s", event.notification_id,
                      event.event_id, event.event_type, event.size_bytes, event.reason)
        self.parking.park(events)
        self.stats.parked += len(events)


def _event_type(notification: LogEntry) -> bytes:
    return notification.topic[len(TOPIC_PREFIX):].encode()
