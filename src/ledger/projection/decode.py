"""Decode a micro-batch of Avro payloads into one Arrow table (the flattened timeline row).

Decoding skips Avro logical types (timestamps stay integer microseconds, UUIDs strings,
dates day numbers): Arrow takes those as they are, which keeps the per-event Python work to
one fastavro call.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import fastavro
import pyarrow as pa

from ledger.contract.codec import HEADER_LEN, Codec
from ledger.contract.sealing import SEALED, SealError, cipher, unseal
from ledger.errors import SchemaError

Keys = Callable[[list[str]], dict[str, bytes]]
"""Customer ids -> the data keys of those who have one."""

TS = pa.timestamp("us")
LINE = pa.struct([("sku", pa.string()), ("quantity", pa.int32()), ("unit_price_minor", pa.int64())])

# The columns of `events`, in order. Every event type fills the envelope and its own fields;
# every field of each type's newest schema has its typed column (test_event_columns.py), so a
# field added in a new version is a new column here, in events.sql and in descriptions.toml.
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
        ("language", pa.string()),
        ("sentiment", pa.float64()),
        ("target_event_id", pa.string()),
        ("target_type", pa.string()),
        ("changes", pa.map_(pa.string(), pa.string())),
        ("survivor_id", pa.string()),
        ("actor", pa.string()),
        ("status", pa.string()),
    ]
)
_ROW = pa.struct(list(EVENT_COLUMNS))


@dataclass(frozen=True)
class Undecodable:
    """A payload of a batch that cannot become a row of `events`."""

    index: int
    """Its place in the batch's payloads."""
    reason: str
    event_type: str | None = None
    """Known when the header names a known schema and only the body is bad."""
    event_id: str | None = None
    customer_id: str | None = None
    """Known when the body decoded but does not fit the columns."""


@dataclass
class DecodedBatch:
    table: pa.Table
    """One row per decodable payload, in payload order, columns as `EVENT_COLUMNS`."""
    indexes: list[int] = field(default_factory=list)
    """The payload index of each row of `table`."""
    undecodable: list[Undecodable] = field(default_factory=list)


DECODE_CHUNK = 10_000
"""Payloads decoded and turned into Arrow at a time (RawDecoder.batch)."""


class RawDecoder:
    """Decodes payloads with logical types left as their underlying Avro values."""

    def __init__(self, codec: Codec, keys: Keys | None = None):
        self.codec = codec
        self.keys = keys
        """Customers' data keys, to open sealed personal fields; without, they read null."""
        self._personal = {t: codec.newest(t).personal for t in codec.event_types}
        self._plain: dict[bytes, tuple[str, Any, Any]] = {}
        for version in codec.versions:
            newest = codec.newest(version.event_type)
            writer = fastavro.parse_schema(_strip_logical(version.schema))
            reader = None if newest is version else fastavro.parse_schema(_strip_logical(newest.schema))
            self._plain[version.fingerprint] = (version.event_type, writer, reader)

    def decode(self, data: bytes) -> dict[str, Any]:
        """The record of `data`; SchemaError when the header, the schema resolution or the
        body fails (each says which)."""
        event_type, writer, reader = self._plain[self.codec.writer_of(data).fingerprint]
        body = io.BytesIO(data)
        body.seek(HEADER_LEN)
        try:
            record = fastavro.schemaless_reader(body, writer, reader)
        except Exception as exc:
            raise SchemaError(f"{event_type}: corrupt body ({type(exc).__name__}: {exc})") from exc
        if body.tell() != len(data):
            raise SchemaError(f"{event_type}: {len(data) - body.tell()} unexpected bytes after the body")
        record["event_type"] = event_type  # type: ignore[index]
        return record  # type: ignore[return-value]

    def table(self, payloads: Iterable[bytes]) -> pa.Table:
        """One row per payload, columns as `EVENT_COLUMNS`; SchemaError on the first bad one."""
        records = [self.decode(data) for data in payloads]
        for failed in self._unseal(records):
            if failed:
                raise SchemaError(failed)
        return _to_table(records)

    def _unseal(self, records: list[dict[str, Any]]) -> list[str | None]:
        """Open the sealed personal fields of `records` in place, with the keys of their
        customers (one lookup for the batch); per record, why it could not be opened, if so."""
        sealed = [r["customer_id"] for r in records if r.get(SEALED) is not None]
        keys = {c: cipher(k) for c, k in self.keys(sealed).items()} if sealed and self.keys is not None else {}
        failed: list[str | None] = []
        for record in records:
            try:
                unseal(record, self._personal.get(record["event_type"], {}), keys.get(record["customer_id"]), days=True)
                failed.append(None)
            except SealError as exc:
                failed.append(str(exc))
        return failed

    def batch(self, payloads: Sequence[bytes]) -> DecodedBatch:
        """Every payload that decodes as a row, and the reason of each one that does not, so
        that one bad payload never holds back the others.

        Decoded `DECODE_CHUNK` payloads at a time: a decoded record as a Python dict takes
        some 1.5 KB, ten times its Arrow row, so a catch-up batch of 100,000 held as dicts
        until the end took 150 MB more at the peak than it needs."""
        if len(payloads) <= DECODE_CHUNK:
            return self._chunk(payloads)
        starts = range(0, len(payloads), DECODE_CHUNK)
        chunks = [self._chunk(payloads[start:start + DECODE_CHUNK]) for start in starts]
        merged = DecodedBatch(pa.concat_tables([chunk.table for chunk in chunks]))
        for start, chunk in zip(starts, chunks, strict=True):
            merged.indexes += [start + index for index in chunk.indexes]
            merged.undecodable += [replace(u, index=start + u.index) for u in chunk.undecodable]
        return merged

    def _chunk(self, payloads: Sequence[bytes]) -> DecodedBatch:
        records: list[dict[str, Any]] = []
        decoded = DecodedBatch(_to_table([]))
        for index, data in enumerate(payloads):
            try:
                records.append(self.decode(data))
            except SchemaError as exc:
                decoded.undecodable.append(Undecodable(index, str(exc), self._event_type_of(data)))
            else:
                decoded.indexes.append(index)
        failed = self._unseal(records)
        if any(failed):
            for index, why, record in zip(decoded.indexes, failed, records, strict=True):
                if why:
                    decoded.undecodable.append(Undecodable(index, why, record["event_type"], _text(record.get(
                        "event_id")), _text(record.get("customer_id"))))
            kept = [(i, r) for i, r, why in zip(decoded.indexes, records, failed, strict=True) if not why]
            decoded.indexes, records = [i for i, _ in kept], [r for _, r in kept]
            decoded.undecodable.sort(key=lambda u: u.index)
        try:
            decoded.table = _to_table(records)
        except (pa.ArrowException, TypeError, ValueError, OverflowError):
            decoded.table, decoded.indexes = self._rows_one_by_one(records, decoded)
        return decoded

    def _rows_one_by_one(
        self, records: list[dict[str, Any]], decoded: DecodedBatch
    ) -> tuple[pa.Table, list[int]]:
        """The slow path, taken only when some record does not fit the Arrow columns (a value
        out of a column's range, say): convert each alone and set the misfits aside."""
        rows, indexes = [], []
        for index, record in zip(decoded.indexes, records, strict=True):
            try:
                rows.append(_to_table([record]))
            except (pa.ArrowException, TypeError, ValueError, OverflowError) as exc:
                event_type = record["event_type"]
                decoded.undecodable.append(Undecodable(
                    index, f"{event_type}: does not fit the events columns ({exc})", event_type,
                    _text(record.get("event_id")), _text(record.get("customer_id")),
                ))
            else:
                indexes.append(index)
        decoded.undecodable.sort(key=lambda u: u.index)
        table = pa.concat_tables(rows) if rows else _to_table([])
        return table, indexes

    def _event_type_of(self, data: bytes) -> str | None:
        try:
            return self.codec.writer_of(data).event_type
        except SchemaError:
            return None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _to_table(records: list[dict[str, Any]]) -> pa.Table:
    """Arrow's converter reads the records as rows of one struct, in C++ (a field a record
    lacks is null, a key the columns lack is left out): 1.6× the rate of building a Python
    list per column first."""
    return pa.Table.from_struct_array(pa.array(records, type=_ROW))


def _strip_logical(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {k: _strip_logical(v) for k, v in schema.items() if k != "logicalType"}
    if isinstance(schema, list):
        return [_strip_logical(v) for v in schema]
    return schema
