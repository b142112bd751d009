"""The writer's side of crypto-shredding: customers' data keys, read, made and cached.

Mixed into the ledger application (ledger.write.application): a batch's keys are read once
for its customers, a customer's first sealed fact makes their key, which is saved in the
batch's transaction, and an erasure's key is forgotten (and its freed pages shredded) once
the transaction that deleted it commits.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ledger.contract.rules import normal_customer_id
from ledger.contract.sealing import SEALED, cipher, has_personal, new_data_key, seal, unseal
from ledger.errors import StoreError
from ledger.write.domain import Customer, customer_uuid
from ledger.write.keys import Keyring, KeyRow, master_keys

KEYS_CACHED_AT_MOST = 200_000


@dataclass
class BatchKeys:
    """The key work of one batch: keys made for customers who had none, customers erased."""

    new: dict[UUID, tuple[KeyRow, AESGCM]] = field(default_factory=dict)
    erased: list[UUID] = field(default_factory=list)


class CustomerKeys:
    """Data keys for the ledger application (which provides the attributes below)."""

    settings: Any
    codec: Any
    recorder: Any
    _keyring: Keyring | None
    _data_keys: dict[UUID, AESGCM]
    customer: Callable[[str], Customer | None]

    def _sealed(self, event_type: str, record: dict[str, Any], customer: Customer, keys: BatchKeys) -> dict[str, Any]:
        """`record` with its personal fields sealed under the customer's data key (made now
        for a customer who has none: it is saved with the batch)."""
        personal = self.codec.newest(event_type).personal
        if not personal:
            return record
        if not has_personal(record, personal):
            return seal(record, personal, b"")
        key = self._data_keys.get(customer.id) or keys.new.get(customer.id, (None, None))[1]
        if key is None:
            made = new_data_key()
            key = cipher(made)
            keys.new[customer.id] = (self.keyring.wrap(customer.customer_id, made), key)
        return seal(record, personal, key)

    def opened(self, data: bytes) -> tuple[str, dict[str, Any]]:
        """A stored fact decoded, its personal fields opened while its customer's key exists."""
        event_type, record = self.codec.decode(data)
        key = self.data_key(record["customer_id"]) if record.get(SEALED) is not None else None
        return event_type, unseal(record, self.codec.newest(event_type).personal, key)

    def _load_keys(self, customer_ids: list[str]) -> None:
        """Unwrap into the cache the data keys of these customers that it lacks."""
        wanted = list({c for c in customer_ids if customer_uuid(c) not in self._data_keys})
        if not wanted:
            return
        if len(self._data_keys) > KEYS_CACHED_AT_MOST:
            self._data_keys.clear()
        for row in self.recorder.select_keys(wanted):  # type: ignore[attr-defined]
            self._data_keys[customer_uuid(row[0])] = cipher(self.keyring.unwrap(row))

    @property
    def keyring(self) -> Keyring:
        """The master keys of this process (`load_keyring`)."""
        return self.load_keyring()

    def load_keyring(self) -> Keyring:
        """The master keys of this process, read (or made) the first time they are needed,
        and checked against the store's: a process with another master key is refused."""
        if self._keyring is None:
            found = self.recorder.a_master()
            # A store that holds keys already needs its own master key: none is made for it.
            keyring = Keyring(master_keys(self.settings, create=found is None, wrapping=found))
            if found is not None and found not in keyring.masters:
                raise StoreError(keyring.unknown_master(found))
            self._keyring = keyring
        return self._keyring

    def _check_master(self) -> None:
        """A writer with another master key than the store's records nothing (its keys are
        read, and checked, at its first turn); and another process may have rotated the key
        since this one read it: read it again then, so no new key is wrapped by one the store
        no longer uses."""
        if self._keyring is not None:
            found = self.recorder.a_master()
            if found is not None and found not in self._keyring.masters:
                self.forget_keys()
        self.load_keyring()

    def forget_keys(self) -> None:
        """Forget the master keys and every data key read (after a rotation)."""
        self._keyring = None
        self._data_keys.clear()

    def data_key(self, customer_id: str, *, create: bool = False) -> AESGCM | None:
        """A customer's data key; None once they are erased (or, without `create`, if they
        have none). With `create`, one is made and kept for a customer who has none (a dead
        letter of a customer not recorded yet is sealed under it)."""
        customer_id = normal_customer_id(customer_id)
        aggregate_id = customer_uuid(customer_id)
        self._load_keys([customer_id])
        if aggregate_id in self._data_keys:
            return self._data_keys[aggregate_id]
        customer = self.customer(customer_id)
        if not create or (customer is not None and customer.erased):
            return None
        row = self.recorder.add_key(self.keyring.wrap(customer_id, new_data_key()))  # type: ignore[attr-defined]
        self._data_keys[aggregate_id] = cipher(self.keyring.unwrap(row))
        return self._data_keys[aggregate_id]

    def _keep_keys(self, keys: BatchKeys, touched: dict[UUID, Customer]) -> None:
        """After a save: cache the keys it stored, forget (and shred) those it deleted."""
        for aggregate_id, (_, key) in keys.new.items():
            if aggregate_id in touched:
                self._data_keys[aggregate_id] = key
        for aggregate_id in keys.erased:
            self._data_keys.pop(aggregate_id, None)
        if keys.erased:
            self.recorder.shred_freed()  # type: ignore[attr-defined]

