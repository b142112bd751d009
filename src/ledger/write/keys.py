"""Customer data keys, wrapped by a master key: what makes erasure final.

Each customer has one random 256-bit data key; their personal fields are sealed with it
(ledger.contract.sealing) before a fact leaves the write side. The data keys live in the
store's key table, one row per customer, each wrapped (AES-256-GCM, the customer id as
associated data) by the master key, which lives outside the store: a file (by default
``master.key`` in the data directory, made with mode 0600 the first time) or a secret in the
settings. Erasing a customer deletes their row in the transaction that records
CustomerErased; from then on every copy of their personal data (the store, Kafka's
retention, dead letters, backups) is ciphertext nobody can open.

Rotating the master key re-wraps every row in one transaction and touches no event.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ledger.contract.sealing import KEY_BYTES, NONCE_BYTES
from ledger.errors import SettingsError, StoreError
from ledger.settings import Settings

KeyRow = tuple[str, str, bytes]
"""``(customer_id, master key id, wrapped data key)``: one row of the key table."""

PENDING_SUFFIX = ".new"
"""A master key being rotated in: kept beside the current one until every row is re-wrapped."""


@dataclass(frozen=True)
class MasterKey:
    key: bytes = field(repr=False)

    @property
    def id(self) -> str:
        """A short public name of the key (a digest), stored with each row it wraps."""
        return hashlib.blake2b(self.key, digest_size=8, person=b"ledger-master").hexdigest()

    @classmethod
    def generate(cls) -> MasterKey:
        return cls(AESGCM.generate_key(bit_length=KEY_BYTES * 8))

    @classmethod
    def parse(cls, text: str, where: str) -> MasterKey:
        try:
            key = base64.b64decode(text.strip(), validate=True)
        except (binascii.Error, ValueError):
            key = b""
        if len(key) != KEY_BYTES:
            raise SettingsError(f"{where} must hold a master key: {KEY_BYTES} random bytes in base64 "
                                "(`ledger keys new` prints one)")
        return cls(key)

    def text(self) -> str:
        return base64.b64encode(self.key).decode("ascii")


def write_key_file(path: Path, key: MasterKey) -> bool:
    """Write `key` to `path` (mode 0600) unless a file is there already; True if written.

    Written beside and linked into place, so a reader never sees half a key, and of two
    processes making one at once, one wins and both use its key."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(descriptor, "w") as out:
            out.write(key.text() + "\n")
            out.flush()
            os.fsync(out.fileno())
        os.link(temporary, path)
        sync_directory(path.parent)  # the new name survives a power cut, as the keys it wraps do
        return True
    except FileExistsError:
        return False
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()


def sync_directory(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def master_keys(settings: Settings, *, create: bool = True, wrapping: str | None = None) -> list[MasterKey]:
    """The master keys this process can unwrap with, the one that wraps new keys first.

    With no key in the settings and no file at the default place, one is made there (0600)
    and the ledger says so on stderr: it is the one thing a backup of the data cannot replace.
    A reader (`create` false), or the writer of a store whose keys are wrapped already (by the
    master key `wrapping`), never makes one.
    """
    if settings.privacy.master_key is not None:
        return [MasterKey.parse(settings.privacy.master_key.value, "LEDGER_MASTER_KEY")]
    path = settings.master_key_path
    if not path.exists():
        if settings.privacy.master_key_file is not None or not create:
            held = f"; the store's keys are wrapped by master key {wrapping}" if wrapping else ""
            raise SettingsError(f"no master key file at {path} (LEDGER_MASTER_KEY_FILE){held}; give this process "
                                "the ledger's master key (`ledger keys new > FILE` makes a new one)")
        if write_key_file(path, MasterKey.generate()):
            print(f"ledger: made a new master key in {path} (mode 0600). Personal data is sealed under keys it "
                  "wraps: keep a copy of it apart from the data, and give every process of this ledger the same one.",
                  file=sys.stderr)
    keys = [read_key_file(path)]
    pending = path.with_name(path.name + PENDING_SUFFIX)
    if pending.exists():
        keys.append(read_key_file(pending))
    return keys


def read_key_file(path: Path) -> MasterKey:
    try:
        return MasterKey.parse(path.read_text(encoding="ascii", errors="replace"), f"the master key file {path}")
    except OSError as exc:
        raise SettingsError(f"cannot read the master key file {path}: {exc.strerror or exc}") from exc


class Keyring:
    """Wraps and unwraps customers' data keys with the master keys of this process."""

    def __init__(self, masters: Iterable[MasterKey]):
        masters = list(masters)
        self.current = masters[0]
        self.masters = {m.id: m for m in masters}

    def wrap(self, customer_id: str, data_key: bytes) -> KeyRow:
        nonce = os.urandom(NONCE_BYTES)
        wrapped = nonce + AESGCM(self.current.key).encrypt(nonce, data_key, _bound(customer_id))
        return customer_id, self.current.id, wrapped

    def unwrap(self, row: KeyRow) -> bytes:
        customer_id, master_id, wrapped = row
        master = self.masters.get(master_id)
        if master is None:
            raise StoreError(self.unknown_master(master_id))
        try:
            return AESGCM(master.key).decrypt(wrapped[:NONCE_BYTES], bytes(wrapped[NONCE_BYTES:]), _bound(customer_id))
        except InvalidTag:
            raise StoreError(f"the data key of customer {customer_id!r} does not open with master key "
                             f"{master_id}: the key table is damaged") from None

    def unknown_master(self, master_id: str) -> str:
        return (f"the store's customer keys are wrapped by master key {master_id}, and this process has "
                f"{', '.join(self.masters)}: give it the ledger's master key (LEDGER_MASTER_KEY_FILE or "
                "LEDGER_MASTER_KEY)")


def _bound(customer_id: str) -> bytes:
    return customer_id.encode("utf-8", "surrogatepass")
