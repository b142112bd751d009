"""Rotating the master key: every customer's data key re-wrapped, no event touched.

The new key is written beside the current one first (``master.key.new``), the rows are
re-wrapped in one transaction under the writers' turn, then the new file takes the old one's
place. A crash between the two leaves both files; every process reads both, so nothing is
unreadable, and rotating again finishes the swap. The old key is not kept: rotating is how
an operator stops trusting it (backups of the key table made before still need it).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ledger.errors import SettingsError
from ledger.write.application import Ledger
from ledger.write.keys import (
    PENDING_SUFFIX,
    Keyring,
    KeyRow,
    MasterKey,
    read_key_file,
    sync_directory,
    write_key_file,
)


@dataclass(frozen=True)
class Rotation:
    rows: int
    old: str
    new: str


def rotate(ledger: Ledger, new_key_file: Path | None = None) -> Rotation:
    """Re-wrap every customer's key under a new master key (made, or read from
    `new_key_file`), in the writers' turn: two rotations, or a rotation and a writer, take
    turns. The new key is in place beside the current one (``master.key.new``) before any row
    is re-wrapped, so a rotation stopped anywhere leaves every key readable."""
    settings = ledger.settings
    from_setting = settings.privacy.master_key is not None
    if from_setting and new_key_file is None:
        raise SettingsError("the master key comes from LEDGER_MASTER_KEY: give the new one with --new-key-file "
                            "FILE, then set LEDGER_MASTER_KEY to it for every process")
    given = read_key_file(new_key_file) if new_key_file is not None else None
    path = settings.master_key_path.resolve()  # a link to a safer place: rotate the key there
    pending = path.with_name(path.name + PENDING_SUFFIX)
    with ledger.turn():
        ledger.forget_keys()  # another rotation may have finished while this one waited
        before = ledger.keyring
        if not from_setting:
            if pending.exists() and given is not None and read_key_file(pending).id != given.id:
                raise SettingsError(f"a rotation to the key in {pending} was stopped before it finished; run "
                                    "`ledger keys rotate` without --new-key-file to finish it first")
            write_key_file(pending, given or MasterKey.generate())  # kept if a stopped rotation made it
            new = read_key_file(pending)
        else:
            new = given  # type: ignore[assignment]
        both = Keyring([new, *before.masters.values()])

        def rewrapped(row: KeyRow) -> KeyRow:
            return both.wrap(row[0], both.unwrap(row))

        rows = ledger.recorder.rewrap(rewrapped)  # type: ignore[attr-defined]
        if not from_setting:
            os.replace(pending, path)
            sync_directory(path.parent)
        ledger.forget_keys()
    return Rotation(rows, before.current.id, new.id)


def new_key_text() -> str:
    """A new master key, as a key file holds it."""
    return MasterKey.generate().text()

