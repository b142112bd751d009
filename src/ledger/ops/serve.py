"""`ledger serve`: the ledger's long-running parts in one process until told to stop.

With Kafka, serve first creates the topics that do not exist yet (`ledger topics create`).
Each part runs in its own thread with a shared stop event; SIGTERM or SIGINT sets it, each
part finishes its current batch (so every position it stored is consistent) and returns.
If one part fails, the others are stopped too and the failure is raised.

While it runs, serve counts (ops/metrics.py) and answers /metrics, /healthz and /readyz
(ops/endpoint.py) unless ``serve.metrics_port`` is off. The locks are taken first, then the
endpoint binds, then the parts start; it stops after the parts did.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime

from ledger.errors import LedgerError, SettingsError
from ledger.intake.consumer import Intake, IntakeStats
from ledger.kafka import topics
from ledger.kafka.relay import Relay, RelayStats
from ledger.kafka.relay import holding as relay_holding
from ledger.ops.deployment import PART_NAMES, Deployment
from ledger.ops.endpoint import Endpoint
from ledger.ops.metrics import Metrics
from ledger.ops.projecting import follow
from ledger.ops.writer import writing
from ledger.settings import Settings
from ledger.write.application import Ledger

log = logging.getLogger(__name__)


Runner = Callable[[threading.Event, Metrics], object]


@dataclass
class Part:
    name: str
    run: Runner
    error: BaseException | None = field(default=None)


def parts(settings: Settings, only: Collection[str] = PART_NAMES) -> list[Part]:
    """What runs: the relay and intake need Kafka; the projector runs in both modes.

    `only` picks some of them, so that each can be its own process (docker-compose.yml)."""
    unknown = set(only) - set(PART_NAMES)
    if unknown:
        raise SettingsError(f"no part named {', '.join(sorted(unknown))}; the parts are {', '.join(PART_NAMES)}")
    available = Deployment(settings).parts
    if set(only) == set(PART_NAMES):
        only = available
    missing = [name for name in PART_NAMES if name in only and name not in available]
    if missing:
        raise SettingsError(f"{' and '.join(missing)} need Kafka: give --kafka or LEDGER_KAFKA")
    runners: dict[str, Runner] = {
        "relay": lambda stop, metrics: _relay(settings, stop, metrics),
        "intake": lambda stop, metrics: _intake(settings, stop, metrics),
        "projector": lambda stop, metrics: follow(settings, lambda: datetime.now(UTC), stop, observer=metrics),
    }
    return [Part(name, runners[name]) for name in PART_NAMES if name in only]


def _relay(settings: Settings, stop: threading.Event, metrics: Metrics) -> object:
    relay = Relay(settings, Ledger(settings))
    sent = 0

    def batch(stats: RelayStats, seconds: float) -> None:
        nonlocal sent
        position = relay.position()
        lag = max(0, relay.ledger.head() - position)
        metrics.relay_batch(stats, seconds, lag)
        log.debug("relayed %d events in %.3f s; position %d, lag %d", stats.sent - sent, seconds, position, lag,
                  extra={"part": "relay", "events": stats.sent - sent, "seconds": round(seconds, 3),
                         "position": position, "lag": lag})
        sent = stats.sent

    relay.on_batch = batch
    return relay.run(stop, held=True)


def _intake(settings: Settings, stop: threading.Event, metrics: Metrics) -> object:
    intake = Intake(settings, Ledger(settings))

    def batch(stats: IntakeStats, seconds: float) -> None:
        lag = intake.lag()
        metrics.intake_batch(stats, seconds, {str(p): behind for p, behind in lag.items()})
        log.debug("intake batch in %.3f s; %d recorded, %d waiting for their order, %d dead letters so far; lag %d",
                  seconds, stats.recorded, stats.waiting, stats.dead_letters, sum(lag.values()), extra={
                      "part": "intake", "seconds": round(seconds, 3), "recorded": stats.recorded,
                      "waiting": stats.waiting, "dead_letters": stats.dead_letters, "lag": lag})

    intake.on_batch = batch
    return intake.run(stop)


def serve(settings: Settings, stop: threading.Event, chosen: list[Part] | None = None) -> None:
    """Run the chosen parts until `stop`. The locks of the chosen parts come first (the data
    directory's writer lock for the projector, the topic's relay lock for the relay), so a
    second `serve` is refused (exit 4) before any part starts; then the metrics endpoint
    binds (a port taken is exit 2), then the parts start."""
    chosen = chosen if chosen is not None else parts(settings)
    names = {p.name for p in chosen}
    metrics = Metrics([p.name for p in chosen])
    with contextlib.ExitStack() as held:
        if "projector" in names:
            held.enter_context(writing(settings))
        if "relay" in names:
            held.enter_context(relay_holding(settings))
        port = settings.serve.metrics_port
        if port is not None:
            endpoint = Endpoint(metrics, settings.serve.metrics_host, port)
            held.callback(endpoint.close)  # after the parts stopped, before the locks go
            endpoint.start()
        _serve(settings, stop, chosen, metrics)
    log.info("stopped")  # a log line, not a print: with --log-format json every line is JSON


def _serve(settings: Settings, stop: threading.Event, chosen: list[Part], metrics: Metrics) -> None:
    if Deployment(settings).uses_kafka:
        for name, created in topics.create(settings).items():
            log.info("topic %s %s", name, "created" if created else "exists",
                     extra={"topic": name, "topic_state": "created" if created else "exists"})
    threads = []
    for part in chosen:
        thread = threading.Thread(target=_guard, args=(part, stop, metrics), name=part.name, daemon=True)
        thread.start()
        threads.append(thread)
    for thread in threads:
        thread.join()
    failed = [p for p in chosen if p.error is not None]
    if failed:
        names = ", ".join(f"{p.name}: {p.error}" for p in failed)
        error = LedgerError(f"serve stopped because a part failed ({names})")
        error.exit_code = getattr(failed[0].error, "exit_code", 1)  # a busy writer stays exit 4
        raise error from failed[0].error


def _guard(part: Part, stop: threading.Event, metrics: Metrics) -> None:
    log.info("%s started", part.name, extra={"part": part.name})
    metrics.set_state(part.name, "running")
    try:
        part.run(stop, metrics)
    except BaseException as error:  # noqa: BLE001 - reported by serve() after the others stop
        if isinstance(error, LedgerError):
            log.error("%s failed: %s", part.name, error, extra={"part": part.name})  # no traceback
        else:
            log.exception("%s failed", part.name, extra={"part": part.name})
        part.error = error
        metrics.set_state(part.name, "failed", str(error))
        stop.set()
    else:
        metrics.set_state(part.name, "stopped")
        log.info("%s stopped", part.name, extra={"part": part.name})
