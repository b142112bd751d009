"""Turn a fact as adapters write it (plain JSON-like data) into an Avro record.

Adapters send ``{"type": "ContactLogged", "customer_id": ..., "occurred_at": "2026-...Z", ...}``.
Timestamps may be ISO-8601 strings (a naive one is taken as UTC) or aware datetimes; dates
may be ISO strings. The ledger fills in ``event_id`` (derived from ``(source,
source_event_id)`` when given, so a resend gets the same id) and ``recorded_at``.

This is the door for data from outside (files, the command line, the SDK), so `to_record`
is total: whatever it is given, it returns a record or raises SchemaError naming the field.
Text that UTF-8 cannot carry (a lone surrogate, which JSON's ``"\\ud800"`` escape makes) is
refused here, before it can reach the Avro encoder, a Kafka key or the store.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid4, uuid5

from ledger.errors import LedgerError, SchemaError

_EVENT_ID_NAMESPACE = uuid5(NAMESPACE_URL, "ledger:event")
_TIMESTAMPS = ("occurred_at",)
_DATES = ("birth_date",)
ENVELOPE_SET_BY_LEDGER = ("event_id", "recorded_at")

FIRST_YEAR = 1900
LAST_BIRTH_YEAR = 2199
EARLIEST = datetime(FIRST_YEAR, 1, 1, tzinfo=UTC)
"""No fact before 1900 is taken: far earlier than any customer fact, and it
keeps time zone conversions and date arithmetic downstream away from year 1, where they
overflow. The latest `occurred_at` is the ledger's rule (not more than `max_future` ahead,
`ledger.contract.rules`); the parser only refuses a time that cannot be put in UTC."""


def event_id_for(source: str, source_event_id: str | None) -> UUID:
    if source_event_id is None:
        return uuid4()
    if _has_surrogate(source) or _has_surrogate(source_event_id):
        check_text({"source": source, "source_event_id": source_event_id})
    return uuid5(_EVENT_ID_NAMESPACE, f"{source}\x1f{source_event_id}")


def to_record(fact: Mapping[str, Any], recorded_at: datetime) -> tuple[str, dict[str, Any]]:
    """Return ``(event_type, record)``; raise SchemaError naming the field that cannot be read."""
    if not isinstance(fact, Mapping):
        raise SchemaError(f"an event must be an object, got {type(fact).__name__}")
    try:
        check_text(fact)
        return _to_record(fact, recorded_at)
    except LedgerError:
        raise
    except Exception as exc:  # a value no rule foresaw: refuse the fact, never crash the batch
        raise SchemaError(f"cannot read this event ({type(exc).__name__}: {exc})") from exc


def _to_record(fact: Mapping[str, Any], recorded_at: datetime) -> tuple[str, dict[str, Any]]:
    event_type = fact.get("type")
    if event_type is not None and not isinstance(event_type, str):
        raise SchemaError(
            f"type: expected the event's name as text, e.g. \"ContactLogged\", got "
            f"{type(event_type).__name__}",
            "type",
        )
    if not event_type:
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
    changes = record.get("changes")
    if event_type == "FactCorrected" and isinstance(changes, Mapping):
        # A correction's values are JSON text in Avro; a JSON fact may give them as values.
        record["changes"] = {k: v if isinstance(v, str) else json.dumps(v, allow_nan=False) for k, v in changes.items()}
    source = record.get("source")
    source_event_id = record.get("source_event_id")
    if "event_id" in record:
        record["event_id"] = _parse_uuid(record["event_id"])
    elif isinstance(source, str) and (source_event_id is None or isinstance(source_event_id, str)):
        record["event_id"] = event_id_for(source, source_event_id)
    record["event_id"] = str(record.get("event_id", uuid4()))
    record["recorded_at"] = recorded_at
    return event_type, record


def check_text(value: Any) -> None:
    """Raise SchemaError naming the first text (a value or a key, at any depth) that is not
    valid Unicode. Walks with a stack, not recursion, so any depth of nesting is safe.

    Most facts are plain JSON of valid text: the C encoder writes them out in one go, and if
    that text is valid UTF-8 so is every piece of it; only the rest is walked to name the
    culprit (or because it holds values JSON does not know, such as datetimes)."""
    try:
        if _JSON_TEXT(value).encode("utf-8"):
            return
    except (TypeError, ValueError, RecursionError):  # UnicodeEncodeError is a ValueError
        pass
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, str):
            if _has_surrogate(item):
                raise SchemaError(f"{path or 'the event'}: {_NOT_UNICODE}", _top(path))
        elif isinstance(item, Mapping):
            for key, inner in item.items():
                if isinstance(key, str) and _has_surrogate(key):
                    where = f"{path}: a key" if path else "a field name"
                    raise SchemaError(f"{where} is {_NOT_UNICODE}", _top(path))
                name = key if isinstance(key, str) else repr(key)
                stack.append((f"{path}.{name}" if path else name, inner))
        elif isinstance(item, list | tuple):
            stack.extend((f"{path}[{i}]", inner) for i, inner in enumerate(item))


_JSON_TEXT = json.JSONEncoder(ensure_ascii=False, check_circular=False, allow_nan=True).encode
_NOT_UNICODE = "not valid Unicode (a lone surrogate, which UTF-8 cannot carry)"


def _has_surrogate(text: str) -> bool:
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _top(path: str) -> str | None:
    return path.split(".")[0].split("[")[0] or None


def parse_timestamp(name: str, value: Any) -> datetime:
    """An aware UTC datetime from ISO-8601 text or a datetime, from `FIRST_YEAR` on;
    SchemaError naming `name` otherwise."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise SchemaError(f"{name}: {_shown(value)} is not an ISO-8601 timestamp", name) from None
    else:
        raise SchemaError(f"{name}: expected an ISO-8601 timestamp, got {type(value).__name__}", name)
    try:
        moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except OverflowError:  # year 1 with a positive offset, year 9999 with a negative one
        if moment.year > FIRST_YEAR:
            raise SchemaError(f"{name}: {_shown(value)} cannot be put in UTC (past the year "
                              "9999)", name) from None
        raise _too_early(name, value) from None
    except Exception as exc:  # a tzinfo of the caller's whose utcoffset fails
        raise SchemaError(f"{name}: its time zone cannot be read ({_shown(exc)})", name) from exc
    if moment < EARLIEST:
        raise _too_early(name, value)
    return moment


def _too_early(name: str, value: Any) -> SchemaError:
    shown = value.isoformat() if isinstance(value, date) else _shown(value)
    return SchemaError(f"{name}: {shown} is before {FIRST_YEAR}, the earliest year the ledger "
                       "takes", name)


def check_moments(record: Mapping[str, Any]) -> None:
    """Raise SchemaError if a timestamp or date of a decoded record is outside what the
    ledger takes (Avro itself holds far more)."""
    for name in _TIMESTAMPS:
        moment = record.get(name)
        if isinstance(moment, datetime) and moment < EARLIEST:
            raise _too_early(name, moment)
    for name in _DATES:
        day = record.get(name)
        if isinstance(day, date):
            _check_day(name, day)


def _check_day(name: str, day: date) -> None:
    """A date has no time zone to overflow: any from year 1 on is kept (a genealogy's
    customers may be born in 1815); only the far future is refused."""
    if day.year > LAST_BIRTH_YEAR:
        raise SchemaError(f"{name}: {day.isoformat()} is after {LAST_BIRTH_YEAR}, the latest "
                          "year the ledger takes", name)


def _parse_date(name: str, value: Any) -> date:
    day: date | None = None
    if isinstance(value, date) and not isinstance(value, datetime):
        day = value
    elif isinstance(value, str):
        try:
            day = date.fromisoformat(value)
        except ValueError:
            pass
    if day is None:
        raise SchemaError(f"{name}: {_shown(value)} is not an ISO-8601 date (YYYY-MM-DD)", name)
    _check_day(name, day)
    return day


def _parse_uuid(value: Any) -> UUID:
    if isinstance(value, UUID):
        return value
    if not isinstance(value, str):
        raise SchemaError(f"event_id: {_shown(value)} is not a UUID", "event_id")
    try:
        return UUID(value)
    except ValueError:
        raise SchemaError(f"event_id: {_shown(value)} is not a UUID", "event_id") from None


def _shown(value: Any) -> str:
    """A value as a reason quotes it: repr (so control characters show), at most 60 chars."""
    if isinstance(value, BaseException):
        text = str(value)
    elif isinstance(value, str | int | float | bool | None):
        text = repr(value) if not isinstance(value, int) or abs(value) < 10**40 else "a huge number"
    else:
        text = type(value).__name__
    return text if len(text) <= 60 else text[:57] + "..."
