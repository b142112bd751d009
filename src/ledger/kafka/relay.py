"""The relay: publishes the store's notification log to the Kafka ledger topic, in order.

Commit order, which is the delivery guarantee: send a batch, flush it (every record acked by
all in-sync replicas), and only then store the position (an eventsourcing tracking record in
the store itself). A crash between the two sends the tail again, never skips it; projectors
drop the repeats by event_id.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from eventsourcing.persistence import Tracking

from ledger.errors import KafkaError
from ledger.kafka.clients import EVENT_TYPE_HEADER, Producer, customer_key
from ledger.settings import Settings
from ledger.write.application import Ledger
from ledger.write.store import TOPIC_PREFIX

log = logging.getLogger(__name__)


@dataclass
class RelayStats:
    sent: int = 0
    batches: int = 0
    producers: int = 0
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds else 0.0


class Relay:
    def __init__(self, settings: Settings, ledger: Ledger, *, batch_size: int | None = None):
        self.settings = settings
        self.ledger = ledger
        self.topic = settings.kafka.ledger_topic
        self.tracking_name = f"relay:{self.topic}"
        self.batch_size = batch_size or settings.batch_size
        self.producer = Producer(settings, self.topic)
        self.stats = RelayStats()

    def position(self) -> int:
        """The last notification id known to be on the topic."""
        return self.ledger.recorder.max_tracking_id(self.tracking_name) or 0

    def step(self) -> int:
        """Publish one batch after the stored position; return how many were sent."""
        after = self.position()
        notifications = self.ledger.notifications(after, self.batch_size)
        if not notifications:
            return 0
        self.producer.send_all(
            (customer_key(n.state), n.state, [(EVENT_TYPE_HEADER, n.topic[len(TOPIC_PREFIX) :].encode())])
            for n in notifications
        )
        self.stats.producers = self.producer.built
        self.ledger.recorder.insert_tracking(Tracking(self.tracking_name, notifications[-1].id))
        self.stats.sent += len(notifications)
        self.stats.batches += 1
        return len(notifications)

    def run_once(self) -> RelayStats:
        """Publish until the topic holds everything recorded when this call began."""
        started = time.perf_counter()
        head = self.ledger.head()
        try:
            while self.position() < head:
                self.step()
        finally:
            self.producer.close()
            self.stats.seconds += time.perf_counter() - started
        return self.stats

    def run(self, stop: threading.Event, idle_s: float = 0.2, retry_s: float = 1.0) -> RelayStats:
        """Publish until `stop` is set. A producer Kafka declares unusable (unknown producer
        id, fenced, broker restarted) is replaced, resuming from the stored position."""
        started = time.perf_counter()
        while not stop.is_set():
            try:
                if self.step() == 0:
                    stop.wait(idle_s)
            except KafkaError as error:
                log.warning("relay: %s; starting a new producer in %.1fs", error, retry_s)
                stop.wait(retry_s)
        self.producer.close()
        self.stats.seconds += time.perf_counter() - started
        return self.stats
