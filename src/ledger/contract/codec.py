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
from fastavro.validation import ValidationError as AvroValidationError
from fastavro.validation import validate

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
            raise SchemaError(f"unknown event type {event_type!r} (known: {known})", "type") from None

    def check(self, event_type: str, record: dict[str, Any]) -> None:
        """Raise SchemaError naming the first field that does not fit the newest schema.

        Unknown fields are refused rather than dropped: a misspelt optional field would
        otherwise vanish without a word.
        """
        version = self.newest(event_type)
        unknown = sorted(set(record) - version.field_names)
        if unknown:
            raise SchemaError(f"{event_type} has no field {unknown[0]!r}", unknown[0])
        try:
            if validate(record, version.parsed, raise_errors=False):
                return
        except Exception:  # noqa: S110 - the field-by-field pass below names the culprit
            pass
        for f in version.schema["fields"]:
            name = f["name"]
            if record.get(name) is None and "default" not in f:
                raise SchemaError(f"{name}: required field missing", name)
            if name in record:
                try:
                    validate(record[name], _field_schema(version, name), raise_errors=True)
                except AvroValidationError as exc:
                    raise SchemaError(
                        f"{name}: {_describe(record[name])} does not fit {_type_text(f['type'])}",
                        name,
                    ) from exc
                except Exception as exc:  # fastavro raises plain errors on odd values
                    raise SchemaError(f"{name}: invalid value ({exc})", name) from exc
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


def _describe(value: Any) -> str:
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type(value).__name__} {text}"


def _type_text(avro_type: Any) -> str:
    if isinstance(avro_type, list):
        return " or ".join(_type_text(t) for t in avro_type)
    if isinstance(avro_type, dict):
        if avro_type.get("type") == "enum":
            return "one of " + ", ".join(avro_type["symbols"])
        return str(avro_type.get("logicalType") or avro_type.get("type"))
    return str(avro_type)
