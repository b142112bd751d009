"""Personal fields are the schemas' word: the timeline nulls exactly those on erasure, and the
versions that added the sealed field resolve with the versions before them, both ways."""

from __future__ import annotations

import io
import re
from datetime import date
from itertools import permutations
from pathlib import Path
from typing import Any

import fastavro
import pytest

from ledger.contract.codec import SchemaVersion, default_codec
from ledger.contract.facts import to_record
from ledger.contract.sealing import SEALED
from tests.support.facts import NOW, fact
from tests.support.privacy import personal_columns

CODEC = default_codec()
EVENTS_SQL = Path(__file__).parents[2] / "projections" / "events.sql"


def erasure_updates(sql: str) -> list[dict[str, str]]:
    """The SET clauses of every UPDATE of `events`: column -> value."""
    code = "\n".join(line.split("--")[0] for line in sql.splitlines())
    updates = []
    for clause in re.findall(r"UPDATE\s+events\s+SET\s+(.*?)\s+WHERE\b", code, flags=re.IGNORECASE | re.DOTALL):
        pairs = [part.split("=") for part in clause.split(",")]
        updates.append({column.strip(): value.strip() for column, value in pairs})
    return updates


def test_the_timeline_nulls_on_erasure_exactly_the_fields_the_schemas_mark_personal() -> None:
    updates = erasure_updates(EVENTS_SQL.read_text())
    assert updates, f"{EVENTS_SQL} has no UPDATE of events"
    personal = personal_columns()
    assert personal >= {"name", "email", "phone", "city", "birth_date", "attributes", "comment"}
    for update in updates:
        assert set(update) == personal
        assert set(update.values()) == {"NULL"}


def test_the_personal_fields_are_the_same_in_every_version_of_a_type() -> None:
    for event_type in CODEC.event_types:
        versions = [v for v in CODEC.versions if v.event_type == event_type]
        assert {tuple(sorted(v.personal.items())) for v in versions} == {tuple(sorted(versions[-1].personal.items()))}


SAMPLE_PERSONAL = {"name": "Ada", "email": "ada@example.com", "phone": "+44 1", "city": "London",
                   "birth_date": date(1815, 12, 10), "attributes": {"tier": "gold"}, "reason": "moving house",
                   "agent_id": "agent-7", "comment": "call me back"}


def record_for(version: SchemaVersion) -> dict[str, Any]:
    """A record written with `version`: every field it has, personal ones filled, and a
    sealed value where it has the field."""
    event_type, record = to_record(fact(version.event_type, "C1", **{
        name: SAMPLE_PERSONAL[name] for name in CODEC.newest(version.event_type).personal}), NOW)
    full = {**version.defaults, **record}
    if SEALED in version.field_names:
        full[SEALED] = b"\x01" + bytes(range(40))
    return {name: value for name, value in full.items() if name in version.field_names}


def read(data: bytes, writer: SchemaVersion, reader: SchemaVersion) -> dict[str, Any]:
    body = io.BytesIO(data)
    record = fastavro.schemaless_reader(body, writer.parsed, reader.parsed)
    assert body.tell() == len(data)
    return record  # type: ignore[return-value]


def written(version: SchemaVersion, record: dict[str, Any]) -> bytes:
    body = io.BytesIO()
    fastavro.schemaless_writer(body, version.parsed, record)
    return body.getvalue()


PAIRS = [(a, b) for event_type in CODEC.event_types
         for a, b in permutations([v for v in CODEC.versions if v.event_type == event_type], 2)]


def test_the_sealed_field_came_with_a_new_version_of_every_type_with_personal_fields() -> None:
    for event_type in CODEC.event_types:
        newest = CODEC.newest(event_type)
        assert (SEALED in newest.field_names) == bool(newest.personal), event_type
        if newest.personal:
            assert newest.version >= 2
            assert any(SEALED not in v.field_names for v in CODEC.versions if v.event_type == event_type)
    assert PAIRS


@pytest.mark.parametrize(("writer", "reader"), PAIRS, ids=lambda v: f"{v.event_type}.v{v.version}")
def test_every_version_reads_the_data_of_every_other_version_of_its_type(
    writer: SchemaVersion, reader: SchemaVersion
) -> None:
    """Older readers (a consumer not yet upgraded) read newer data, newer readers older data."""
    record = record_for(writer)
    as_read = read(written(writer, record), writer, reader)

    # What `reader` makes of the same values written with its own version: the fields both
    # have keep their values, a field only the reader has takes its default.
    same = {name: record.get(name, reader.defaults.get(name)) for name in reader.field_names}
    assert as_read == read(written(reader, same), reader, reader)
    assert set(as_read) == reader.field_names
    for name in writer.personal:
        if name in reader.field_names:
            assert as_read[name] is not None, name
    if SEALED in reader.field_names:
        assert as_read[SEALED] == record.get(SEALED)
