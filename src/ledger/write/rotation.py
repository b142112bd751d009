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
from ledger.write.keys import PENDING_SUFFIX, Keyring, KeyRow, MasterKey, read_key_file, write_key_file


@dataclass(frozen=True)
class Rotation:
    rows: int
    old: str
    new: str


def rotate(ledger: Ledger, new_key_file: Path | None = None) -> Rotation:
    settings = ledger.settings
    before = ledger.keyring
    from_setting = settings.privacy.master_key is not None
    if from_setting and new_key_file is None:
        raise SettingsError("the master key comes from LEDGER_MASTER_KEY: give the new one with --new-key-file "
                            "FILE, then set LEDGER_MASTER_KEY to it for every process")
    path = settings.master_key_path
    pending = path.with_name(path.name + PENDING_SUFFIX)
    if new_key_file is not None:
        new = read_key_file(new_key_file)
    else:
        write_key_file(pending, MasterKey.generate())  # kept if a crashed rotation made it already
        new = read_key_file(pending)
    both = Keyring([new, *before.masters.values()])

    def rewrapped(row: KeyRow) -> KeyRow:
        return both.wrap(row[0], both.unwrap(row))

    with ledger.turn():
        rows = ledger.recorder.rewrap(rewrapped)  # type: ignore[attr-defined]
        if not from_setting:
            if new_key_file is not None:  # in place of anything pending: the rows are under `new` now
                installing = path.with_name(f".{path.name}.install")
                installing.unlink(missing_ok=True)
                write_key_file(installing, new)
                os.replace(installing, pending)
            os.replace(pending, path)
        ledger.forget_keys()
    return Rotation(rows, before.current.id, new.id)


def new_key_text() -> str:
    """A new master key, as a key file holds it."""
    return MasterKey.generate().text()

