"""Turn a fact as adapters write it (plain JSON-like data) into an Avro record.

Adapters send ``{"type": "ContactLogged", "customer_id": ..., "occurred_at": "2026-...Z", ...}``.
Timestamps may be ISO-8601 strings (a naive one is taken as UTC) or aware datetimes; dates
may be ISO strings. The ledger fills in ``event_id`` (derived from ``(source,
source_event_id)`` when given, so a resend gets the same id) and ``recorded_at``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid4, uuid5

from ledger.errors import SchemaError

_EVENT_ID_NAMESPACE = uuid5(NAMESPACE_URL, "ledger:event")
_TIMESTAMPS = ("occurred_at",)
_DATES = ("birth_date",)
ENVELOPE_SET_BY_LEDGER = ("event_id", "recorded_at")


def event_id_for(source: str, source_event_id: str | None) -> UUID:
    if source_event_id is None:
        return uuid4()
    return uuid5(_EVENT_ID_NAMESPACE, f"{source}\x1f{source_event_id}")


def to_record(fact: Mapping[str, Any], recorded_at: datetime) -> tuple[str, dict[str, Any]]:
    """Return ``(event_type, record)``; raise SchemaError naming the field that cannot be read."""
    if not isinstance(fact, Mapping):
        raise SchemaError(f"an event must be an object, got {type(fact).__name__}")
    event_type = fact.get("type")
    if not isinstance(event_type, str) or not event_type:
        raise SchemaError("type: missing; say which event this is, e.g. \"ContactLogged\"", "type")
    record = {k: v for k, v in fact.items() if k != "type"}
    for name in ENVELOPE_SET_BY_LEDGER:
        if name in record and name != "event_id":
            raise SchemaError(f"{name}: set by the ledger, do not send it", name)
    for name in _TIMESTAMPS:
        if name in record:
            record[name] = parse_timestamp(name, record[name])
    for name in _DATES:
        if record.get(name) is not None:
            record[name] = _parse_date(name, record[name])
    source = record.get("source")
    source_event_id = record.get("source_event_id")
    if "event_id" in record:
        record["event_id"] = _parse_uuid(record["event_id"])
    elif isinstance(source, str) and (source_event_id is None or isinstance(source_event_id, str)):
        record["event_id"] = event_id_for(source, source_event_id)
    record["event_id"] = str(record.get("event_id", uuid4()))
    record["recorded_at"] = recorded_at
    return event_type, record


def parse_timestamp(name: str, value: Any) -> datetime:
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise SchemaError(f"{name}: {value!r} is not an ISO-8601 timestamp", name) from None
    else:
        raise SchemaError(f"{name}: expected an ISO-8601 timestamp, got {type(value).__name__}", name)
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _parse_date(name: str, value: Any) -> date:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise SchemaError(f"{name}: {value!r} is not an ISO-8601 date (YYYY-MM-DD)", name)


def _parse_uuid(value: Any) -> UUID:
    try:
        return UUID(str(value))
    except ValueError:
        raise SchemaError(f"event_id: {value!r} is not a UUID", "event_id") from None
