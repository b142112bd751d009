"""The Avro single-object codec: every type round-trips; corrupt input fails clearly."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.contract.codec import MARKER, Codec, default_codec, load_schema_version
from ledger.errors import SchemaError
from ledger.projection.decode import RawDecoder

CODEC = default_codec()
TEXT = st.text(max_size=20)
MOMENTS = st.datetimes(
    min_value=datetime(1970, 1, 2), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)


def strategy_for(avro: Any, named: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Hypothesis values for an Avro type, as fastavro reads them back."""
    if isinstance(avro, list):
        return st.one_of(*(strategy_for(branch, named) for branch in avro))
    if isinstance(avro, str):
        if avro in named:
            return strategy_for(named[avro], named)
        return {
            "null": st.none(),
            "string": TEXT,
            "boolean": st.booleans(),
            "int": st.integers(-(2**31), 2**31 - 1),
            "long": st.integers(-(2**63), 2**63 - 1),
            "bytes": st.binary(max_size=64),
            "double": st.floats(allow_nan=False),
        }[avro]
    logical = avro.get("logicalType")
    if logical == "uuid":
        return st.uuids()
    if logical == "timestamp-micros":
        return MOMENTS
    if logical == "date":
        return st.dates(min_value=date(1900, 1, 1), max_value=date(2100, 1, 1))
    kind = avro["type"]
    if kind == "enum":
        named[avro["name"]] = avro
        return st.sampled_from(avro["symbols"])
    if kind == "map":
        return st.dictionaries(TEXT, strategy_for(avro["values"], named), max_size=3)
    if kind == "array":
        return st.lists(strategy_for(avro["items"], named), max_size=3)
    if kind == "record":
        named[avro["name"]] = avro
        return st.fixed_dictionaries(
            {f["name"]: strategy_for(f["type"], named) for f in avro["fields"]}
        )
    return strategy_for(kind, named)


def record_strategy(event_type: str) -> st.SearchStrategy[dict[str, Any]]:
    return strategy_for(CODEC.newest(event_type).schema, {})


@pytest.mark.parametrize("event_type", CODEC.event_types)
@settings(max_examples=40, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_every_event_type_round_trips(event_type: str, data: st.DataObject) -> None:
    record = data.draw(record_strategy(event_type))
    decoded_type, decoded = CODEC.decode(CODEC.encode(event_type, record))
    assert decoded_type == event_type
    assert decoded == record


def test_raw_decoder_matches_the_codec() -> None:
    now = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    record = {
        "event_id": str(uuid.uuid4()), "customer_id": "C1", "occurred_at": now,
        "recorded_at": now, "source": "s", "source_event_id": None, "name": "Ada",
        "email": None, "phone": None, "country": "GB", "city": None,
        "birth_date": date(1990, 5, 17), "attributes": {"tier": "gold"},
    }
    raw = RawDecoder(CODEC).decode(CODEC.encode("CustomerRegistered", record))
    assert raw["occurred_at"] == int((now - datetime(1970, 1, 1, tzinfo=UTC)) / timedelta(microseconds=1))
    assert raw["birth_date"] == (date(1990, 5, 17) - date(1970, 1, 1)).days
    assert raw["event_id"] == record["event_id"]
    assert raw["event_type"] == "CustomerRegistered"


def valid_bytes() -> bytes:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    return CODEC.encode(
        "ContactLogged",
        {"event_id": str(uuid.uuid4()), "customer_id": "C1", "occurred_at": now,
         "recorded_at": now, "source": "s", "contact_id": "K1", "channel": "chat",
         "direction": "inbound"},
    )


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "truncated"),
        (MARKER + b"\x00\x01", "truncated"),
        (b"\x00\x01" + valid_bytes()[2:], "marker"),
        (MARKER + b"\xff" * 8 + valid_bytes()[10:], "unknown schema fingerprint"),
        (valid_bytes()[:-6], "corrupt body"),
        (valid_bytes() + b"\x00", "unexpected bytes"),
        (valid_bytes()[:10] + b"\xff" * 40, "corrupt body"),
    ],
    ids=["empty", "short header", "wrong magic", "unknown fingerprint", "truncated body",
         "trailing bytes", "garbage body"],
)
def test_corrupt_input_is_a_schema_error(data: bytes, message: str) -> None:
    with pytest.raises(SchemaError, match=message):
        CODEC.decode(data)


@given(st.binary(max_size=200))
def test_random_bytes_never_crash_the_decoder(data: bytes) -> None:
    try:
        CODEC.decode(data)
    except SchemaError:
        pass


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("channel", "fax", "channel: str 'fax' does not fit one of phone"),
        ("duration_s", "long", "duration_s: str 'long' does not fit null or int"),
        ("is_complaint", "yes", "is_complaint"),
        ("contact_id", None, "contact_id: required field missing"),
        ("shoe_size", 42, "has no field 'shoe_size'"),
    ],
)
def test_wrong_types_name_the_field(field: str, value: Any, message: str) -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    record = {"event_id": str(uuid.uuid4()), "customer_id": "C1", "occurred_at": now,
              "recorded_at": now, "source": "s", "contact_id": "K1", "channel": "chat",
              "direction": "inbound", field: value}
    with pytest.raises(SchemaError, match=message) as caught:
        CODEC.encode("ContactLogged", record)
    assert caught.value.field == field


def test_a_newer_version_reads_data_written_with_an_older_one() -> None:
    v1 = CODEC.newest("CustomerErased")
    v2_schema = dict(v1.schema)
    v2_schema["fields"] = [*v1.schema["fields"], {"name": "requested_by", "type": "string", "default": "customer"}]
    v2 = load_schema_version("customer_erased.v2.avsc", __import__("json").dumps(v2_schema))
    old_and_new = Codec([*CODEC.versions, v2])
    now = datetime(2026, 1, 1, tzinfo=UTC)
    old_bytes = CODEC.encode("CustomerErased", {"event_id": str(uuid.uuid4()), "customer_id": "C1",
                                                "occurred_at": now, "recorded_at": now, "source": "s"})
    _, record = old_and_new.decode(old_bytes)
    assert record["requested_by"] == "customer"
    assert v2.fingerprint != v1.fingerprint


@pytest.mark.parametrize("event_type", CODEC.event_types)
@settings(max_examples=20, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_every_shipped_version_is_read_by_the_newest(event_type: str, data: st.DataObject) -> None:
    """The evolution rule: data written with any shipped version resolves to the newest."""
    import io

    import fastavro

    newest = CODEC.newest(event_type)
    for version in (v for v in CODEC.versions if v.event_type == event_type):
        record = data.draw(strategy_for(version.schema, {}))
        body = io.BytesIO()
        fastavro.schemaless_writer(body, version.parsed, record)
        decoded_type, decoded = CODEC.decode(MARKER + version.fingerprint + body.getvalue())
        assert decoded_type == event_type
        shared = {f["name"] for f in newest.schema["fields"]} & set(record)
        assert {k: decoded[k] for k in shared} == {k: record[k] for k in shared}


def test_schema_file_names_are_checked() -> None:
    with pytest.raises(SchemaError, match="named <event>.v<N>.avsc"):
        load_schema_version("contact.avsc", "{}")
