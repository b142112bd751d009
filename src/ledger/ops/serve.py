"""`ledger serve`: the ledger's long-running parts in one process until told to stop.

With Kafka, serve first creates the topics that do not exist yet (`ledger topics create`).
Each part runs in its own thread with a shared stop event; SIGTERM or SIGINT sets it, each
part finishes its current batch (so every position it stored is consistent) and returns.
If one part fails, the others are stopped too and the failure is raised.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime

from ledger.errors import LedgerError, SettingsError
from ledger.intake.consumer import Intake
from ledger.kafka import topics
from ledger.kafka.relay import Relay
from ledger.kafka.relay import holding as relay_holding
from ledger.ops.deployment import PART_NAMES, Deployment
from ledger.ops.projecting import follow
from ledger.ops.writer import writing
from ledger.settings import Settings
from ledger.write.application import Ledger

log = logging.getLogger(__name__)


@dataclass
class Part:
    name: str
    run: Callable[[threading.Event], object]
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
    runners: dict[str, Callable[[threading.Event], object]] = {
        "relay": lambda stop: Relay(settings, Ledger(settings)).run(stop, held=True),
        "intake": lambda stop: Intake(settings, Ledger(settings)).run(stop),
        "projector": lambda stop: follow(settings, lambda: datetime.now(UTC), stop),
    }
    return [Part(name, runners[name]) for name in PART_NAMES if name in only]


def serve(settings: Settings, stop: threading.Event, chosen: list[Part] | None = None) -> None:
    """Run the chosen parts until `stop`. The locks of the chosen parts come first (the data
    directory's writer lock for the projector, the topic's relay lock for the relay), so a
    second `serve` is refused (exit 4) before any part starts."""
    chosen = chosen if chosen is not None else parts(settings)
    names = {p.name for p in chosen}
    with contextlib.ExitStack() as locks:
        if "projector" in names:
            locks.enter_context(writing(settings))
        if "relay" in names:
            locks.enter_context(relay_holding(settings))
        _serve(settings, stop, chosen)


def _serve(settings: Settings, stop: threading.Event, chosen: list[Part]) -> None:
    if Deployment(settings).uses_kafka:
        for name, created in topics.create(settings).items():
            log.info("topic %s %s", name, "created" if created else "exists")
    threads = []
    for part in chosen:
        thread = threading.Thread(target=_guard, args=(part, stop), name=part.name, daemon=True)
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


def _guard(part: Part, stop: threading.Event) -> None:
    try:
        part.run(stop)
    except BaseException as error:  # noqa: BLE001 - reported by serve() after the others stop
        if isinstance(error, LedgerError):
            log.error("%s failed: %s", part.name, error)  # a message of its own: no traceback
        else:
            log.exception("%s failed", part.name)
        part.error = error
        stop.set()
