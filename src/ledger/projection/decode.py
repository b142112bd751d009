"""Decode a micro-batch of Avro payloads into one Arrow table (the flattened timeline row).

Decoding skips Avro logical types (timestamps stay integer microseconds, UUIDs strings,
dates day numbers): Arrow takes those as they are, which keeps the per-event Python work to
one fastavro call.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from typing import Any

import fastavro
import pyarrow as pa

from ledger.contract.codec import HEADER_LEN, Codec
from ledger.errors import SchemaError

TS = pa.timestamp("us")
LINE = pa.struct([("sku", pa.string()), ("quantity", pa.int32()), ("unit_price_minor", pa.int64())])

# The columns of `events`, in order. Every event type fills the envelope and its own fields.
EVENT_COLUMNS = pa.schema(
    [
        ("event_id", pa.string()),
        ("event_type", pa.string()),
        ("customer_id", pa.string()),
        ("occurred_at", TS),
        ("recorded_at", TS),
        ("source", pa.string()),
        ("source_event_id", pa.string()),
        ("name", pa.string()),
        ("email", pa.string()),
        ("phone", pa.string()),
        ("country", pa.string()),
        ("city", pa.string()),
        ("birth_date", pa.date32()),
        ("attributes", pa.map_(pa.string(), pa.string())),
        ("purpose", pa.string()),
        ("granted", pa.bool_()),
        ("contact_id", pa.string()),
        ("channel", pa.string()),
        ("direction", pa.string()),
        ("reason", pa.string()),
        ("outcome", pa.string()),
        ("is_complaint", pa.bool_()),
        ("agent_id", pa.string()),
        ("duration_s", pa.int32()),
        ("order_id", pa.string()),
        ("currency", pa.string()),
        ("total_minor", pa.int64()),
        ("amount_minor", pa.int64()),
        ("lines", pa.list_(LINE)),
        ("kind", pa.string()),
        ("score", pa.int32()),
        ("comment", pa.string()),
        ("about_contact_id", pa.string()),
        ("about_order_id", pa.string()),
    ]
)
_NAMES = EVENT_COLUMNS.names


class RawDecoder:
    """Decodes payloads with logical types left as their underlying Avro values."""

    def __init__(self, codec: Codec):
        self.codec = codec
        self._plain: dict[bytes, tuple[str, Any, Any]] = {}
        for version in codec.versions:
            newest = codec.newest(version.event_type)
            writer = fastavro.parse_schema(_strip_logical(version.schema))
            reader = None if newest is version else fastavro.parse_schema(_strip_logical(newest.schema))
            self._plain[version.fingerprint] = (version.event_type, writer, reader)

    def decode(self, data: bytes) -> dict[str, Any]:
        event_type, writer, reader = self._plain[self.codec.writer_of(data).fingerprint]
        body = io.BytesIO(data)
        body.seek(HEADER_LEN)
        try:
            record = fastavro.schemaless_reader(body, writer, reader)
        except Exception as exc:
            raise SchemaError(f"{event_type}: corrupt body ({type(exc).__name__}: {exc})") from exc
        record["event_type"] = event_type  # type: ignore[index]
        return record  # type: ignore[return-value]

    def table(self, payloads: Iterable[bytes]) -> pa.Table:
        """One row per payload, columns as `EVENT_COLUMNS`."""
        columns: dict[str, list[Any]] = {name: [] for name in _NAMES}
        for data in payloads:
            record = self.decode(data)
            for name in _NAMES:
                columns[name].append(record.get(name))
        return pa.Table.from_pydict(columns, schema=EVENT_COLUMNS)


def _strip_logical(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {k: _strip_logical(v) for k, v in schema.items() if k != "logicalType"}
    if isinstance(schema, list):
        return [_strip_logical(v) for v in schema]
    return schema
