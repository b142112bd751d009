"""The `events` columns are written once in code (EVENT_COLUMNS): the Avro schemas and
projections/events.sql must agree with it, or a field silently goes missing or shifts."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from ledger.contract.codec import default_codec
from ledger.contract.sealing import SEALED
from ledger.projection.catalogue import load_models
from ledger.projection.decode import EVENT_COLUMNS
from ledger.projection.readmodels import ReadModels

ENVELOPE = ("event_id", "customer_id", "occurred_at", "recorded_at", "source", "source_event_id")
_PRIMITIVES = {
    "string": pa.string(), "int": pa.int32(), "long": pa.int64(), "boolean": pa.bool_(), "double": pa.float64(),
}


def arrow_type(avro: Any) -> pa.DataType:
    """The Arrow type a decoded Avro value of type `avro` lands in."""
    if isinstance(avro, list):
        (inner,) = [t for t in avro if t != "null"]
        return arrow_type(inner)
    if isinstance(avro, str):
        return _PRIMITIVES[avro]
    logical, kind = avro.get("logicalType"), avro["type"]
    if logical == "timestamp-micros":
        return pa.timestamp("us")
    if logical == "date":
        return pa.date32()
    if kind == "enum":
        return pa.string()
    if kind == "map":
        return pa.map_(pa.string(), arrow_type(avro["values"]))
    if kind == "array":
        return pa.list_(arrow_type(avro["items"]))
    if kind == "record":
        return pa.struct([(f["name"], arrow_type(f["type"])) for f in avro["fields"]])
    return arrow_type(kind)


def test_event_columns_are_the_envelope_the_type_and_every_field_of_the_newest_schemas() -> None:
    codec = default_codec()
    # `status` is the projector's own: what amended the event since (facts.sql).
    expected: dict[str, pa.DataType] = {"event_type": pa.string(), "status": pa.string()}
    for event_type in codec.event_types:
        fields = codec.newest(event_type).schema["fields"]
        assert [f["name"] for f in fields[: len(ENVELOPE)]] == list(ENVELOPE), event_type
        for f in fields:
            if f["name"] == SEALED:  # opened into the personal fields' columns, never a column itself
                continue
            wanted = arrow_type(f["type"])
            assert expected.setdefault(f["name"], wanted) == wanted, (event_type, f["name"])
    assert len(EVENT_COLUMNS.names) == len(set(EVENT_COLUMNS.names))
    assert sorted(EVENT_COLUMNS.names) == sorted(expected)
    assert {f.name: f.type for f in EVENT_COLUMNS} == expected


def test_the_events_table_has_exactly_the_event_columns_with_matching_duckdb_types() -> None:
    (events,) = [m for m in load_models() if m.name == "events"]
    con = duckdb.connect()
    con.execute(events.sections["schema"])
    con.register("decoded", EVENT_COLUMNS.empty_table())
    want = {name: kind for name, kind, *_ in con.execute("DESCRIBE SELECT * FROM decoded").fetchall()}
    got = {name: kind for name, kind, *_ in con.execute("DESCRIBE events").fetchall()}
    assert got == want
    assert want["lines"] == "STRUCT(sku VARCHAR, quantity INTEGER, unit_price_minor BIGINT)[]"
    assert want["occurred_at"] == "TIMESTAMP" and want["birth_date"] == "DATE"


def test_a_batch_whose_columns_come_in_another_order_lands_in_the_right_columns(
    tmp_path: Path,
) -> None:
    row = {name: None for name in EVENT_COLUMNS.names}
    row.update(
        event_id="00000000-0000-0000-0000-000000000001", event_type="ContactLogged",
        customer_id="C1", occurred_at=datetime(2026, 1, 1), recorded_at=datetime(2026, 1, 2),
        source="shop", contact_id="K1", channel="chat", direction="inbound", reason="late box",
        is_complaint=True, duration_s=42,
    )
    reversed_schema = pa.schema(list(EVENT_COLUMNS)[::-1])
    batch = pa.Table.from_pylist([row], schema=reversed_schema)
    with ReadModels(tmp_path / "rm.duckdb") as models:
        models.apply(batch, "test", {"n": 1})
        got = models.con.execute(
            "SELECT customer_id, source, channel, reason, is_complaint, duration_s, occurred_at FROM events"
        ).fetchall()
    assert got == [("C1", "shop", "chat", "late box", True, 42, datetime(2026, 1, 1))]
