"""`ledger serve`: the ledger's long-running parts in one process until told to stop.

Each part runs in its own thread with a shared stop event; SIGTERM or SIGINT sets it, each
part finishes its current batch (so every position it stored is consistent) and returns.
If one part fails, the others are stopped too and the failure is raised.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from ledger.application import Ledger
from ledger.errors import LedgerError
from ledger.projecting import follow
from ledger.relay import Relay
from ledger.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class Part:
    name: str
    run: Callable[[threading.Event], object]
    error: BaseException | None = field(default=None)


def parts(settings: Settings) -> list[Part]:
    """What runs: the relay and intake need Kafka; the projector runs in both modes."""
    chosen: list[Part] = []
    if settings.kafka:
        chosen.append(Part("relay", lambda stop: Relay(settings, Ledger(settings)).run(stop)))
        intake = _intake_part(settings)
        if intake is not None:
            chosen.append(intake)
    chosen.append(
        Part("projector", lambda stop: follow(settings, lambda: datetime.now(UTC), stop))
    )
    return chosen


def _intake_part(settings: Settings) -> Part | None:
    try:
        from ledger.intake import Intake
    except ImportError:  # intake arrives with the adapters' issue
        return None
    return Part("intake", lambda stop: Intake(settings, Ledger(settings)).run(stop))


def serve(settings: Settings, stop: threading.Event, chosen: list[Part] | None = None) -> None:
    chosen = chosen if chosen is not None else parts(settings)
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
        raise LedgerError(f"serve stopped because a part failed ({names})") from failed[0].error


def _guard(part: Part, stop: threading.Event) -> None:
    try:
        part.run(stop)
    except BaseException as error:  # noqa: BLE001 - reported by serve() after the others stop
        log.exception("%s failed", part.name)
        part.error = error
        stop.set()
