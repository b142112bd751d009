"""Why a record does not fit its Avro schema: the first field that does not, with its path
(``lines[2].quantity``) and a reason a person can act on. fastavro's `validate` only says
yes or no."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from uuid import UUID


@dataclass(frozen=True)
class _Problem:
    path: str
    reason: str
    direct: bool
    """The value itself has the wrong type (not something inside it): a union around it
    then names all its branches."""


INT_RANGES = {"int": (32, -(2**31), 2**31 - 1), "long": (64, -(2**63), 2**63 - 1)}


def explain_record(
    record: Any, schema: dict[str, Any], named: dict[str, Any], path: str
) -> _Problem | None:
    fields = schema["fields"]
    if path:
        if not isinstance(record, dict):
            return _mismatch(record, schema, path)
        unknown = sorted(set(record) - {f["name"] for f in fields}, key=str)
        if unknown:
            return _Problem(path, f"{path}: {schema['name']} has no field {shown_name(unknown[0])}", False)
    for f in fields:
        name = f["name"]
        where = f"{path}.{name}" if path else name
        if record.get(name) is None and "default" not in f:
            return _Problem(where, f"{where}: required field missing", False)
        if name in record:
            problem = _explain(record[name], f["type"], named, where)
            if problem is not None:
                return problem
    return None


def _explain(value: Any, avro: Any, named: dict[str, Any], path: str) -> _Problem | None:
    """The first thing in `value` that does not fit `avro`, with its path; None if nothing.

    Recursion follows the schema (a few levels), never the depth of the value, which is
    cut off at the first level that does not fit.
    """
    if isinstance(avro, list):
        if value is None and "null" in avro:
            return None
        branches = [branch for branch in avro if branch != "null"]
        if len(branches) == 1:
            problem = _explain(value, branches[0], named, path)
            if problem is not None and problem.direct and problem.path == path:
                return _mismatch(value, avro, path)
            return problem
        if any(_explain(value, branch, named, path) is None for branch in branches):
            return None
        return _mismatch(value, avro, path)
    if isinstance(avro, str):
        if avro in named:
            return _explain(value, named[avro], named, path)
        return _explain_primitive(value, avro, path)
    kind, logical = avro.get("type"), avro.get("logicalType")
    if logical in ("timestamp-micros", "timestamp-millis") and isinstance(value, datetime):
        return None
    if logical == "date" and isinstance(value, date):
        return None
    if logical == "uuid" and isinstance(value, UUID):
        return None
    if kind == "enum":
        if isinstance(value, str) and value in avro["symbols"]:
            return None
        return _mismatch(value, avro, path)
    if kind == "array":
        if not isinstance(value, list | tuple):
            return _mismatch(value, avro, path)
        for i, item in enumerate(value):
            problem = _explain(item, avro["items"], named, f"{path}[{i}]")
            if problem is not None:
                return problem
        return None
    if kind == "map":
        if not isinstance(value, dict):
            return _mismatch(value, avro, path)
        for key, item in value.items():
            if not isinstance(key, str):
                return _Problem(path, f"{path}: key {_describe(key)} is not text", False)
            problem = _explain(item, avro["values"], named, f"{path}[{shown_name(key)}]")
            if problem is not None:
                return problem
        return None
    if kind == "record":
        return explain_record(value, avro, named, path)
    return _explain(value, kind, named, path) if isinstance(kind, str) else None


def _explain_primitive(value: Any, kind: str, path: str) -> _Problem | None:
    if kind in INT_RANGES:
        if isinstance(value, int) and not isinstance(value, bool):
            bits, low, high = INT_RANGES[kind]
            if low <= value <= high:
                return None
            return _Problem(
                path, f"{path}: {_describe(value)} is out of range for a {bits}-bit integer", False
            )
        return _mismatch(value, kind, path)
    fits = {
        "null": value is None,
        "boolean": isinstance(value, bool),
        "string": isinstance(value, str),
        "bytes": isinstance(value, bytes),
        "float": isinstance(value, int | float) and not isinstance(value, bool),
        "double": isinstance(value, int | float) and not isinstance(value, bool),
    }.get(kind, True)
    return None if fits else _mismatch(value, kind, path)


def _mismatch(value: Any, avro: Any, path: str) -> _Problem:
    return _Problem(path, f"{path}: {_describe(value)} does not fit {_type_text(avro)}", True)


def _describe(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**40:
        return f"int of {value.bit_length()} bits"
    text = safe_text(value, repr)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type(value).__name__} {text}"


def shown_name(name: Any) -> str:
    """A field name or key as a message quotes it (repr), at most 60 characters: names are
    data too, and a 10 MB one must not make a 10 MB message, path or Kafka header."""
    return cut(safe_text(name, repr))


def cut(text: str, limit: int = 60) -> str:
    """`text` up to `limit` characters, "..." marking a cut: reasons stay one readable line."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def safe_text(value: Any, show: Any = str) -> str:
    """`show(value)`, or the type's name when the value cannot be shown (nested too deep for
    repr, an int too long to print)."""
    try:
        text = show(value)
    except Exception:  # RecursionError, ValueError (int digits), a __repr__ that fails
        return f"<{type(value).__name__}>"
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _type_text(avro_type: Any) -> str:
    if isinstance(avro_type, list):
        return " or ".join(_type_text(t) for t in avro_type)
    if isinstance(avro_type, dict):
        if avro_type.get("type") == "enum":
            return "one of " + ", ".join(avro_type["symbols"])
        if avro_type.get("type") == "record":
            return f"a {avro_type['name']} record"
        return str(avro_type.get("logicalType") or avro_type.get("type"))
    return str(avro_type)
