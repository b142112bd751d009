"""The projector's decoder sets each bad payload of a batch aside with its reason and decodes
the others: truncated bytes, a foreign marker, an unknown schema fingerprint, bytes after the
body, and data the reader schema cannot resolve."""

from __future__ import annotations

import io
import json

import fastavro
import pytest

from ledger.contract.codec import MARKER, Codec, default_codec, load_schema_version
from ledger.contract.facts import to_record
from ledger.errors import SchemaError
from ledger.projection.decode import RawDecoder
from tests.support.facts import CLOCK, event_id, fact

CODEC = default_codec()


def payload(**fields: object) -> tuple[bytes, str]:
    contact = fact("ContactLogged", **fields)
    event_type, record = to_record(contact, CLOCK)
    return CODEC.encode(event_type, record), event_id(contact)


def test_each_bad_payload_is_set_aside_with_its_reason_and_the_good_ones_decoded() -> None:
    (first, first_id), (last, last_id) = payload(), payload()
    foreign = b"\x00\x01" + first[2:]
    unknown = MARKER + b"\xff" * 8 + first[10:]
    batch = [first, first[:6], foreign, first[:-3], unknown, first + b"\x00\x00", last]

    decoded = RawDecoder(CODEC).batch(batch)

    assert decoded.table.column("event_id").to_pylist() == [first_id, last_id]
    assert decoded.indexes == [0, 6]
    reasons = {u.index: (u.reason, u.event_type) for u in decoded.undecodable}
    assert reasons == {
        1: ("truncated: 6 bytes is shorter than the 10-byte header", None),
        2: ("not Avro single-object encoding: marker is 0001", None),
        3: (reasons[3][0], "ContactLogged"),
        4: (f"unknown schema fingerprint {'ff' * 8}", None),
        5: ("ContactLogged: 2 unexpected bytes after the body", "ContactLogged"),
    }
    assert reasons[3][0].startswith("ContactLogged: corrupt body (")


def test_data_the_reader_schema_cannot_resolve_is_set_aside() -> None:
    v1 = {"type": "record", "name": "Probe", "namespace": "ledger.events",
          "fields": [{"name": "event_id", "type": "string"}]}
    v2 = {**v1, "fields": [*v1["fields"], {"name": "required_later", "type": "string"}]}
    codec = Codec([load_schema_version("probe.v1.avsc", json.dumps(v1)),
                   load_schema_version("probe.v2.avsc", json.dumps(v2))])
    body = io.BytesIO()
    fastavro.schemaless_writer(body, fastavro.parse_schema(v1), {"event_id": "e1"})
    old = MARKER + codec.versions[0].fingerprint + body.getvalue()

    decoded = RawDecoder(codec).batch([old])

    assert decoded.table.num_rows == 0
    [undecodable] = decoded.undecodable
    assert (undecodable.index, undecodable.event_type) == (0, "Probe")
    assert "required_later" in undecodable.reason


def test_the_strict_table_still_refuses_the_first_bad_payload() -> None:
    good, _ = payload()
    with pytest.raises(SchemaError, match="truncated"):
        RawDecoder(CODEC).table([good, good[:4]])


def test_a_record_that_does_not_fit_the_events_columns_is_set_aside_with_its_envelope() -> None:
    """A writer whose `duration_s` is a long (an int in ours): a value past 2^31 decodes but
    has no place in the column."""
    schema = {"type": "record", "name": "ContactLogged", "namespace": "ledger.events", "fields": [
        {"name": "event_id", "type": "string"}, {"name": "customer_id", "type": "string"},
        {"name": "duration_s", "type": "long"},
    ]}
    codec = Codec([load_schema_version("contact_logged.v1.avsc", json.dumps(schema))])

    def encoded(event: str, duration: int) -> bytes:
        body = io.BytesIO()
        record = {"event_id": event, "customer_id": "C7", "duration_s": duration}
        fastavro.schemaless_writer(body, fastavro.parse_schema(schema), record)
        return MARKER + codec.versions[0].fingerprint + body.getvalue()

    decoded = RawDecoder(codec).batch([encoded("e1", 60), encoded("e2", 2**40), encoded("e3", 5)])

    assert decoded.table.column("event_id").to_pylist() == ["e1", "e3"]
    assert decoded.indexes == [0, 2]
    [misfit] = decoded.undecodable
    assert (misfit.index, misfit.event_type, misfit.event_id, misfit.customer_id) == (1, "ContactLogged", "e2", "C7")
    assert misfit.reason.startswith("ContactLogged: does not fit the events columns (")
