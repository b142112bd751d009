"""Personal fields sealed under the customer's own key: crypto-shredding.

Which fields are personal is the schemas' word, not a list here: a field marked
``"pii": true``. Before a fact leaves the write side its personal fields move into one field,
``sealed``: their values as JSON, encrypted with AES-256-GCM under the customer's data key,
the event id and customer id as associated data (a sealed value copied onto another event
does not open). The personal fields themselves are left null, so a reader without the key
(anyone downstream, or everyone once the customer is erased and their key destroyed) sees the
event, its amounts, scores and dates, and no personal data.

No I/O here: keys come from the caller (ledger.write.keys keeps them).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from datetime import date
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

SEALED = "sealed"
"""The field that carries the sealed personal fields (schema version 2 on)."""
FORMAT = b"\x01"
NONCE_BYTES = 12
KEY_BYTES = 32
_EPOCH = date(1970, 1, 1).toordinal()

Personal = Mapping[str, bool]
"""A schema version's personal fields: name -> whether it holds a date."""

Key = bytes | AESGCM
"""A data key, or the cipher made of it: holders of many seals keep the cipher (making one
costs as much as a seal)."""

_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
"""One encoder: `json.dumps` with options makes a new one per call (40% of a seal)."""


class SealError(ValueError):
    """A sealed value that does not open with the key it should: damaged, or moved."""


def new_data_key() -> bytes:
    return AESGCM.generate_key(bit_length=KEY_BYTES * 8)


def personal_fields(schema: Mapping[str, Any]) -> dict[str, bool]:
    """The fields of an Avro record schema marked ``"pii": true``: name -> holds a date."""
    found = {}
    for f in schema["fields"]:
        if f.get("pii") is True:
            branches = f["type"] if isinstance(f["type"], list) else [f["type"]]
            found[f["name"]] = any(isinstance(b, dict) and b.get("logicalType") == "date" for b in branches)
    return found


def has_personal(record: Mapping[str, Any], personal: Personal) -> bool:
    return any(record.get(name) is not None for name in personal)


def cipher(key: Key) -> AESGCM:
    return key if isinstance(key, AESGCM) else AESGCM(key)


def seal(record: Mapping[str, Any], personal: Personal, key: Key) -> dict[str, Any]:
    """`record` with its personal fields null and their values sealed under `key`; a record
    without personal values gets no sealed value at all."""
    values = {name: _plain(record[name], is_date) for name, is_date in personal.items()
              if record.get(name) is not None}
    sealed = dict(record)
    if not values:
        sealed[SEALED] = None
        return sealed
    for name in values:
        sealed[name] = None
    nonce = os.urandom(NONCE_BYTES)
    text = _JSON.encode(values)
    body = cipher(key).encrypt(nonce, text.encode("utf-8", "surrogatepass"), _bound_to(record))
    sealed[SEALED] = FORMAT + nonce + body
    return sealed


def unseal(
    record: dict[str, Any], personal: Personal, key: Key | None, *, days: bool = False
) -> dict[str, Any]:
    """`record` with its personal fields back (in place), when `key` opens its sealed value;
    with no key they stay null. Dates come back as `date`, or as day numbers with `days`
    (for readers that skip Avro's logical types). SealError if the key does not open it."""
    blob = record.pop(SEALED, None)
    if blob is None or key is None:
        return record
    blob = bytes(blob)
    if blob[:1] != FORMAT or len(blob) < 1 + NONCE_BYTES + 16:
        raise SealError(f"sealed value of event {record.get('event_id')} has an unknown format")
    try:
        text = cipher(key).decrypt(blob[1 : 1 + NONCE_BYTES], blob[1 + NONCE_BYTES :], _bound_to(record))
    except InvalidTag:
        raise SealError(
            f"sealed value of event {record.get('event_id')} does not open with customer "
            f"{record.get('customer_id')!r}'s key: damaged, or copied from another event"
        ) from None
    for name, value in json.loads(text.decode("utf-8", "surrogatepass")).items():
        if name in personal:
            is_date = personal[name]
            record[name] = value if days or not is_date else date.fromordinal(value + _EPOCH)
    return record


def seal_bytes(data: bytes, key: Key, bound: str) -> bytes:
    """Whole bytes (a dead letter's value) sealed under `key`, bound to the text `bound`."""
    nonce = os.urandom(NONCE_BYTES)
    return FORMAT + nonce + cipher(key).encrypt(nonce, data, bound.encode("utf-8", "surrogatepass"))


def open_bytes(blob: bytes, key: Key, bound: str) -> bytes:
    """What `seal_bytes` sealed; SealError if `key` and `bound` do not open it."""
    try:
        if blob[:1] != FORMAT:
            raise InvalidTag
        return cipher(key).decrypt(blob[1 : 1 + NONCE_BYTES], blob[1 + NONCE_BYTES :],
                                   bound.encode("utf-8", "surrogatepass"))
    except (InvalidTag, ValueError):
        raise SealError(f"a value sealed for {bound!r} does not open with its key: damaged") from None


def _plain(value: Any, is_date: bool) -> Any:
    if is_date and isinstance(value, date):
        return value.toordinal() - _EPOCH
    return value


def _bound_to(record: Mapping[str, Any]) -> bytes:
    # Lower case: readers that apply Avro's uuid type read the event id back in lower case.
    return f"{str(record['event_id']).lower()}\x1f{record['customer_id']}".encode("utf-8", "surrogatepass")
