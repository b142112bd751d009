"""What a running `ledger serve` counts, for Prometheus, and the state of each of its parts.

Where the numbers come from: the parts below ops already keep cumulative stats objects
(`RelayStats`, `IntakeStats`, the projector's `RunStats`), and the relay and the intake take
an ``on_batch(stats, seconds)`` callback, called from their own thread after each batch. So no
room below ops imports prometheus_client or this module, and nothing new sits beside the
rooms: this module turns those stats into counters (by the difference since the last batch),
each batch's duration into a histogram, and keeps the gauges. The projector is driven from
ops (`projecting.follow`), which reports through `Metrics.projector_round` and
`Metrics.published`.

Every metric lives in a registry of its own, not prometheus_client's global one: a test or a
library user can run serve twice in one process, and nothing registered elsewhere leaks out.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.exposition import generate_latest

from ledger import version
from ledger.intake.consumer import IntakeStats
from ledger.kafka.relay import RelayStats

BATCH_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
"""Seconds: a small batch near the head takes milliseconds, a 250,000-event catch-up tens of seconds."""

STATES = ("starting", "running", "stopped", "failed")


@dataclass
class PartState:
    state: str = "starting"
    published: bool = False
    """The projector only: it caught up and published the read models at least once."""
    error: str | None = None


class Metrics:
    """The registry of one serve, the hooks its parts call, and their states for /healthz."""

    def __init__(self, parts: list[str]):
        self.registry = CollectorRegistry()
        r = self.registry
        Info("ledger", "The ledger's version.", registry=r).info({"version": version()})
        self.recorded = Counter("ledger_intake_events_recorded", "Facts the intake recorded in the store "
                                "(repeats of facts already recorded not counted).", registry=r)
        self.dead_letters = Counter("ledger_intake_dead_letters", "Records the intake wrote to the dead-letter "
                                    "topic.", registry=r)
        self.projected = Counter("ledger_projector_events", "Events applied to the read models "
                                 "(repeats dropped by event_id and parked events not counted).", registry=r)
        self.relayed = Counter("ledger_relay_events", "Events the relay published to the ledger topic.", registry=r)
        self.parked = Counter("ledger_events_parked", "Events set aside: by the projector (cannot be applied) "
                              "or the relay (refused by Kafka).", ["part"], registry=r)
        self.lag = Gauge("ledger_lag_events", "Events not yet processed, per part and partition (the projector: "
                         "source head minus stored position, after each round; the relay: store head minus "
                         "relay position, and the intake: intake topic end minus decided position, after "
                         "each batch).", ["part", "partition"], registry=r)
        self.batch_seconds = Histogram("ledger_batch_duration_seconds", "How long one batch took, per part.",
                                       ["part"], buckets=BATCH_BUCKETS, registry=r)
        self.publish_seconds = Histogram("ledger_publish_duration_seconds", "How long refreshing and publishing "
                                         "the read models took.", buckets=BATCH_BUCKETS, registry=r)
        self.up = Gauge("ledger_part_up", "1 while the part runs, 0 once it stopped or failed.", ["part"],
                        registry=r)
        for part in ("relay", "projector"):
            self.parked.labels(part)  # present at 0, so a rate() has a start
        self.parts = {name: PartState() for name in parts}
        self._seen: dict[str, int] = {}
        self._lock = threading.Lock()

    # The parts' hooks, each called from that part's thread.

    def relay_batch(self, stats: RelayStats, seconds: float, lag: int | None = None) -> None:
        """After a relay batch: `stats` is the relay's RelayStats (cumulative)."""
        self._advance("relay.sent", self.relayed, stats.sent)
        self._advance("relay.parked", self.parked.labels("relay"), stats.parked)
        self.batch_seconds.labels("relay").observe(seconds)
        if lag is not None:
            self.lag.labels("relay", "log").set(lag)

    def intake_batch(self, stats: IntakeStats, seconds: float, lag: dict[str, int] | None = None) -> None:
        """After an intake batch: `stats` is the intake's IntakeStats (cumulative), `lag` per
        partition of the intake topic."""
        self._advance("intake.recorded", self.recorded, stats.recorded)
        self._advance("intake.dead_letters", self.dead_letters, stats.dead_letters)
        self.batch_seconds.labels("intake").observe(seconds)
        for partition, behind in (lag or {}).items():
            self.lag.labels("intake", partition).set(behind)

    def projector_batch(self, seconds: float) -> None:
        self.batch_seconds.labels("projector").observe(seconds)

    def projector_round(self, new: int, parked: int, lag: dict[str, int]) -> None:
        """After a catch-up round: the events it applied and parked, the lag per partition."""
        self.projected.inc(new)
        self.parked.labels("projector").inc(parked)
        for partition, behind in lag.items():
            self.lag.labels("projector", partition).set(behind)

    def published(self, seconds: float) -> None:
        self.publish_seconds.observe(seconds)
        with self._lock:
            if "projector" in self.parts:
                self.parts["projector"].published = True

    def set_state(self, part: str, state: str, error: str | None = None) -> None:
        with self._lock:
            self.parts[part].state = state
            self.parts[part].error = error
        self.up.labels(part).set(1 if state == "running" else 0)

    # What the endpoints show.

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    def health(self) -> tuple[bool, dict[str, Any]]:
        """Healthy while no part failed."""
        with self._lock:
            failed = any(p.state == "failed" for p in self.parts.values())
            return not failed, {"status": "failed" if failed else "ok", "parts": self._shown()}

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        """Ready once every part runs and the projector (if any) has published at least once."""
        with self._lock:
            ready = all(p.state == "running" for p in self.parts.values()) and all(
                p.published for name, p in self.parts.items() if name == "projector")
            return ready, {"status": "ready" if ready else "not ready", "parts": self._shown()}

    def _shown(self) -> dict[str, dict[str, Any]]:
        shown: dict[str, dict[str, Any]] = {}
        for name, p in self.parts.items():
            shown[name] = {"state": p.state}
            if name == "projector":
                shown[name]["published"] = p.published
            if p.error:
                shown[name]["error"] = p.error
        return shown

    def _advance(self, key: str, counter: Any, total: int) -> None:
        """Add what a part's cumulative count `key` gained since its last batch."""
        before = self._seen.get(key, 0)
        if total > before:
            counter.inc(total - before)
        self._seen[key] = max(before, total)
