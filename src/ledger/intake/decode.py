"""What an intake record carries: one fact, already typed, as `Ledger.record_typed` takes it.

The bytes are decoded with the newest reader schema of their type, so the record fits the
contract by construction and goes to the store without a second validation. The adapter's
``recorded_at`` is overwritten (the ledger sets it when it records); its ``event_id`` is
kept, and stands in for a missing ``source_event_id``, so that any intake record, read or
re-driven twice, is recorded once.

Whatever the bytes, the answer is a fact or a SchemaError (which dead-letters the record):
the codec turns every decoder failure into one, and a timestamp or date that Avro holds
but the ledger does not accept (see `ledger.contract.facts.FIRST_YEAR`) is refused here.
"""

from __future__ import annotations

from typing import Any

from ledger.contract.codec import MARKER, Codec
from ledger.contract.facts import check_moments
from ledger.errors import SchemaError


def intake_fact(value: bytes | None, codec: Codec) -> tuple[str, dict[str, Any]]:
    """``(event_type, record)``; a SchemaError says what is wrong with the bytes, and how
    to send them right."""
    if value is None:
        raise SchemaError("no value: an intake record carries one Avro event")
    try:
        event_type, record = codec.decode(value)
    except SchemaError as error:
        raise SchemaError(_with_hint(str(error), value), error.field) from error
    check_moments(record)
    record["event_id"] = str(record["event_id"])
    if record.get("source_event_id") is None:
        record["source_event_id"] = record["event_id"]
    return event_type, record


def _with_hint(reason: str, value: bytes) -> str:
    if reason.startswith("unknown schema fingerprint"):
        return f"{reason}: not a schema version this ledger knows (see `ledger schemas`)"
    if value[:2] != MARKER and value.lstrip()[:1] in (b"{", b"["):
        return f"{reason}; this looks like JSON, but the intake takes Avro single-object encoding"
    if value[:2] != MARKER:
        return f"{reason}; the intake takes Avro single-object encoding (C3 01, fingerprint, body)"
    return reason
