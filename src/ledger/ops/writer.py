"""One writer per data directory, and a data directory that knows where its events come from.

DuckDB's own lock on ``readmodels.duckdb`` is not enough: it is a POSIX record lock, which
the projector's process loses as soon as it copies the file to publish it. So every command
that writes the read models (project, follow, replay, serve's projector, ingest and record
when they project) first takes ``writer.lock`` in the data directory (see write/locks.py); a
second one is refused with exit code 4.

The read models store positions in one source (the store's log, or a topic's partitions),
not which store or topic that was. Pointed at another store, they would go on from a position
that means nothing there: events missing, lag 0. So the data directory records its store and
topic in ``ledger.json`` on first use and refuses others; `ledger replay`, which rebuilds from
the first event, may take a new one.

A replay from another store swaps a new read-model file in and records the new store: two
renames, which a kill can come between. So the new store is written beside the record first
(``ledger.json.pending``), then the files are swapped, then the pending record replaces the
old one. Whoever comes next (`settle`) finds out which side of the swap the kill fell on by
the scratch file: still there, the swap did not happen and the pending record is dropped;
gone, it did and the pending record is the truth.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ledger.errors import DataDirMismatchError, StoreError
from ledger.settings import Settings
from ledger.write.locks import exclusive

LOCK_NAME = "writer.lock"
IDENTITY_NAME = "ledger.json"
PENDING_NAME = "ledger.json.pending"
REPLAY_NAME = "readmodels.replay.duckdb"
"""Where a replay builds the read models before swapping them in."""


@contextmanager
def writing(settings: Settings, *, rebind: bool = False) -> Iterator[None]:
    """Hold the data directory's writer lock, and check its store and topic first; with
    `rebind` (a rebuild from the first event), record them instead, once the block succeeded."""
    with exclusive(settings.data_dir / LOCK_NAME, f"data directory {settings.data_dir} (its read models)"):
        settle(settings)
        if not rebind:
            bind(settings)
        yield
        if rebind:
            bind(settings, rebind=True)


def swap_in(settings: Settings, scratch: Path, live: Path) -> None:
    """Replace the live read models with `scratch`, and the recorded store and topic with
    these settings', so that a kill at any point leaves the two in agreement (see above)."""
    _write(settings.data_dir / PENDING_NAME, identity(settings))
    os.replace(scratch, live)
    settle(settings)


def settle(settings: Settings) -> None:
    """Finish or forget a swap a kill interrupted (under the writer lock)."""
    pending = settings.data_dir / PENDING_NAME
    if not pending.exists():
        return
    try:
        if (settings.data_dir / REPLAY_NAME).exists():
            pending.unlink()
        else:
            os.replace(pending, settings.data_dir / IDENTITY_NAME)
    except OSError as exc:
        raise StoreError(f"cannot settle {pending}: {exc.strerror}") from exc


def identity(settings: Settings) -> dict[str, Any]:
    """Where this data directory's events come from, as recorded in ``ledger.json``.

    A SQLite store inside the data directory is recorded relative to it, so the directory can
    be moved; a password is never written.
    """
    store = settings.store_shown
    if store.startswith("sqlite:///"):
        path = Path(store[len("sqlite:///"):]).absolute()
        home = settings.data_dir.absolute()
        store = f"sqlite:///{path.relative_to(home) if path.is_relative_to(home) else path}"
    found: dict[str, Any] = {"store": store}
    if settings.kafka:
        found["topic"] = settings.kafka.ledger_topic
    return found


def recorded(settings: Settings) -> dict[str, Any] | None:
    """What ``ledger.json`` says, None if the directory has none yet (reads only: a swap a
    kill interrupted counts as done or not done, as `settle` will find)."""
    path = settings.data_dir / IDENTITY_NAME
    if (settings.data_dir / PENDING_NAME).exists() and not (settings.data_dir / REPLAY_NAME).exists():
        path = settings.data_dir / PENDING_NAME
    try:
        found = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise StoreError(f"cannot read {path}: {exc}; fix or remove it (then run `ledger replay`)") from exc
    if not isinstance(found, dict) or not isinstance(found.get("store"), str):
        raise StoreError(f"{path} does not say which store it was built from; fix or remove it")
    return found


def mismatch(settings: Settings) -> str | None:
    """Why these settings do not fit the data directory, or None when they do (or it is new)."""
    before = recorded(settings)
    if before is None:
        return None
    now = identity(settings)
    if before["store"] != now["store"]:
        return (
            f"the data directory {settings.data_dir} was built from the store {before['store']}, "
            f"not {now['store']}; give that store, another --data-dir, or rebuild it from this "
            "store with `ledger replay`"
        )
    if "topic" in before and "topic" in now and before["topic"] != now["topic"]:
        return (
            f"the data directory {settings.data_dir} was built from the topic {before['topic']!r}, "
            f"not {now['topic']!r}; give that topic, another --data-dir, or `ledger replay`"
        )
    return None


def bind(settings: Settings, *, rebind: bool = False) -> None:
    """Refuse a data directory built from another store or topic; record this one if new."""
    if not rebind:
        problem = mismatch(settings)
        if problem:
            raise DataDirMismatchError(problem)
    before = recorded(settings) or {}
    now = identity(settings)
    if rebind or before != {**before, **now}:
        merged = now if rebind else {**before, **now}
        _write(settings.data_dir / IDENTITY_NAME, merged)


def _write(path: Path, values: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_name(path.name + ".tmp")
    try:
        scratch.write_text(json.dumps(values, indent=2) + "\n")
        os.replace(scratch, path)
    except OSError as exc:
        raise StoreError(f"cannot write {path}: {exc.strerror}") from exc
