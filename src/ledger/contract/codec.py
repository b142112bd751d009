"""Avro single-object codec for ledger events.

Wire format (Avro spec, "single object encoding"): the marker ``C3 01``, the 8-byte
little-endian CRC-64-AVRO fingerprint of the writer schema, then the Avro binary body.
A reader finds the writer schema by its fingerprint and reads with the newest schema of the
same event type, so data written under any older version resolves to the newest one.

The same bytes are stored in the event store, published on Kafka and decoded by projectors:
one contract, one decoder.
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass
from functools import cache, cached_property
from importlib import resources
from typing import Any

import fastavro
from fastavro.schema import fingerprint, to_parsing_canonical_form
from fastavro.validation import validate

from ledger.contract.explain import cut, explain_record, safe_text, shown_name
from ledger.contract.sealing import personal_fields
from ledger.errors import SchemaError

MARKER = b"\xc3\x01"
HEADER_LEN = len(MARKER) + 8
_FILE_NAME = re.compile(r"^(?P<stem>[a-z_]+)\.v(?P<version>\d+)\.avsc$")


@dataclass(frozen=True)
class SchemaVersion:
    event_type: str
    version: int
    file_name: str
    schema: dict[str, Any]
    parsed: Any
    fingerprint: bytes

    @cached_property
    def field_names(self) -> frozenset[str]:
        return frozenset(f["name"] for f in self.schema["fields"])

    @cached_property
    def named_types(self) -> dict[str, Any]:
        return _named_types(self.schema)

    @cached_property
    def defaults(self) -> dict[str, Any]:
        """Each field's default, for the fields that have one."""
        return {f["name"]: f["default"] for f in self.schema["fields"] if "default" in f}

    @cached_property
    def personal(self) -> dict[str, bool]:
        """Its personal fields (``"pii": true``), sealed by the ledger: name -> holds a date."""
        return personal_fields(self.schema)

    @cached_property
    def nested_records(self) -> dict[str, tuple[str, frozenset[str]]]:
        """The fields that hold records (a purchase's lines), with the record's name and its
        field names: fastavro's `validate` passes unknown fields there, `Codec.check` does not."""
        nested = {}
        for f in self.schema["fields"]:
            branches = f["type"] if isinstance(f["type"], list) else [f["type"]]
            for branch in branches:
                node = self.named_types.get(branch, branch) if isinstance(branch, str) else branch
                if isinstance(node, dict) and node.get("type") == "array":
                    items = node["items"]
                    node = self.named_types.get(items, items) if isinstance(items, str) else items
                if isinstance(node, dict) and node.get("type") == "record":
                    nested[f["name"]] = (node["name"], frozenset(n["name"] for n in node["fields"]))
        return nested


class Codec:
    """Encodes and decodes events; one instance holds every known schema version."""

    def __init__(self, versions: list[SchemaVersion]):
        self._by_fingerprint = {v.fingerprint: v for v in versions}
        newest: dict[str, SchemaVersion] = {}
        for v in versions:
            if v.event_type not in newest or v.version > newest[v.event_type].version:
                newest[v.event_type] = v
        self._newest = newest

    @property
    def event_types(self) -> tuple[str, ...]:
        return tuple(sorted(self._newest))

    @property
    def versions(self) -> tuple[SchemaVersion, ...]:
        return tuple(sorted(self._by_fingerprint.values(), key=lambda v: (v.event_type, v.version)))

    def newest(self, event_type: str) -> SchemaVersion:
        try:
            return self._newest[event_type]
        except KeyError:
            known = ", ".join(self.event_types)
            raise SchemaError(f"unknown event type {shown_name(event_type)} (known: {known})", "type") from None

    def check(self, event_type: str, record: dict[str, Any]) -> None:
        """Raise SchemaError naming the first field that does not fit the newest schema.

        Unknown fields are refused rather than dropped: a misspelt optional field would
        otherwise vanish without a word.
        """
        version = self.newest(event_type)
        unknown = sorted(set(record) - version.field_names)
        if unknown:
            raise SchemaError(f"{event_type} has no field {shown_name(unknown[0])}", cut(unknown[0]))
        try:
            valid = validate(record, version.parsed, raise_errors=False)
        except Exception:  # the explanation below names the culprit
            valid = False
        if valid:
            unknown_inside = _unknown_nested(record, version.nested_records)
            if unknown_inside is None:
                return
            raise SchemaError(unknown_inside[1], unknown_inside[0])
        problem = explain_record(record, version.schema, version.named_types, "")
        if problem is not None:
            raise SchemaError(problem.reason, problem.path or None)
        for f in version.schema["fields"]:
            name = f["name"]
            if name in record:
                try:
                    validate(record[name], _field_schema(version, name), raise_errors=True)
                except Exception as exc:  # fastavro raises plain errors on odd values
                    raise SchemaError(f"{name}: invalid value ({safe_text(exc)})", name) from exc
        raise SchemaError(f"{event_type}: the record does not fit the schema")

    def encode(self, event_type: str, record: dict[str, Any], *, checked: bool = False) -> bytes:
        version = self.newest(event_type)
        if not checked:
            self.check(event_type, record)
        buffer = io.BytesIO()
        buffer.write(MARKER)
        buffer.write(version.fingerprint)
        try:
            fastavro.schemaless_writer(buffer, version.parsed, record)
        except Exception as exc:
            raise SchemaError(f"{event_type}: cannot encode ({exc})") from exc
        return buffer.getvalue()

    def writer_of(self, data: bytes) -> SchemaVersion:
        """The schema version that wrote `data`, from its header."""
        if len(data) < HEADER_LEN:
            raise SchemaError(f"truncated: {len(data)} bytes is shorter than the 10-byte header")
        if data[:2] != MARKER:
            raise SchemaError(f"not Avro single-object encoding: marker is {data[:2].hex()}")
        try:
            return self._by_fingerprint[data[2:HEADER_LEN]]
        except KeyError:
            raise SchemaError(f"unknown schema fingerprint {data[2:HEADER_LEN].hex()}") from None

    def decode(self, data: bytes) -> tuple[str, dict[str, Any]]:
        """Return (event type, record) read with the newest schema of that type."""
        writer = self.writer_of(data)
        reader = self._newest[writer.event_type]
        body = io.BytesIO(data)
        body.seek(HEADER_LEN)
        try:
            record = fastavro.schemaless_reader(
                body, writer.parsed, None if reader is writer else reader.parsed
            )
        except Exception as exc:  # EOFError, UnicodeDecodeError, IndexError, ValueError...
            raise SchemaError(
                f"{writer.event_type}: corrupt body ({type(exc).__name__}: {exc})"
            ) from exc
        if body.tell() != len(data):
            raise SchemaError(
                f"{writer.event_type}: {len(data) - body.tell()} unexpected bytes after the body"
            )
        return writer.event_type, record  # type: ignore[return-value]


def load_schema_version(file_name: str, text: str) -> SchemaVersion:
    match = _FILE_NAME.match(file_name)
    if not match:
        raise SchemaError(f"{file_name}: schema files are named <event>.v<N>.avsc")
    try:
        schema = json.loads(text)
        parsed = fastavro.parse_schema(schema)
    except Exception as exc:
        raise SchemaError(f"{file_name}: not a valid Avro schema ({exc})") from exc
    canonical = to_parsing_canonical_form(parsed)
    return SchemaVersion(
        event_type=schema["name"],
        version=int(match["version"]),
        file_name=file_name,
        schema=schema,
        parsed=parsed,
        fingerprint=bytes.fromhex(fingerprint(canonical, "CRC-64-AVRO")),
    )


@cache
def default_codec() -> Codec:
    """The codec for the schemas shipped in ``ledger.schemas``."""
    folder = resources.files("ledger.schemas")
    versions = [
        load_schema_version(entry.name, entry.read_text(encoding="utf-8"))
        for entry in folder.iterdir()
        if entry.name.endswith(".avsc")
    ]
    return Codec(versions)


def _unknown_nested(
    record: dict[str, Any], nested: dict[str, tuple[str, frozenset[str]]]
) -> tuple[str, str] | None:
    """(path, reason) for the first unknown field in a record inside `record`, else None; the
    path names the unknown field (``lines[0].colour``), the reason the record it is not in."""
    for name, (record_name, known) in nested.items():
        value = record.get(name)
        items = value if isinstance(value, list | tuple) else [value] if isinstance(value, dict) else []
        for i, item in enumerate(items):
            if isinstance(item, dict) and not item.keys() <= known:
                unknown = sorted(set(item) - known, key=str)[0]
                where = f"{name}[{i}]" if isinstance(value, list | tuple) else name
                return f"{where}.{cut(str(unknown))}", f"{where}: {record_name} has no field {shown_name(unknown)}"
    return None


def _field_schema(version: SchemaVersion, name: str) -> Any:
    return _field_schemas(version.fingerprint, version)[name]


_FIELD_SCHEMAS: dict[bytes, dict[str, Any]] = {}


def _field_schemas(key: bytes, version: SchemaVersion) -> dict[str, Any]:
    if key not in _FIELD_SCHEMAS:
        named: dict[str, Any] = {}
        fields = {}
        for f in version.parsed["fields"]:
            fields[f["name"]] = fastavro.parse_schema(f["type"], named_schemas=named)
        _FIELD_SCHEMAS[key] = fields
    return _FIELD_SCHEMAS[key]


def _named_types(schema: dict[str, Any]) -> dict[str, Any]:
    """Named types (enums, records) of a schema by full and short name, for `explain_record`."""
    named: dict[str, Any] = {}
    namespace = schema.get("namespace", "")
    stack: list[Any] = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, dict):
            if node.get("type") in ("enum", "record", "fixed") and "name" in node:
                named[node["name"]] = node
                named[f"{node.get('namespace', namespace)}.{node['name']}"] = node
            stack.extend(f["type"] for f in node.get("fields", ()))
            stack.extend(node[key] for key in ("items", "values") if key in node)
    return named
