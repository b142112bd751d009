"""Avro schema resolution, decided from two schemas (ledger.contract.compat): the rules of the
Avro 1.11 specification ("Schema Resolution"), case by case, each also put to the Apache Avro
project's own checker and to a fastavro round trip, which must agree."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType
from avro.schema import parse

from ledger.contract.codec import default_codec, load_schema_version
from ledger.contract.compat import ROUND_TRIP, check, resolve, round_trip, union_defaults


def record(*fields: dict[str, Any], name: str = "Thing", **extra: Any) -> dict[str, Any]:
    return {"type": "record", "name": name, "namespace": "test", "fields": list(fields), **extra}


def f(name: str, kind: Any, **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": kind, **extra}


def enum(*symbols: str, **extra: Any) -> dict[str, Any]:
    return {"type": "enum", "name": "Colour", "symbols": list(symbols), **extra}


def fixed(size: int, name: str = "Hash") -> dict[str, Any]:
    return {"type": "fixed", "name": name, "size": size}


FIXTURE = Path(__file__).parent / "fixtures" / "incompatible"
"""ContactLogged v1 and v2 as shipped, and a v3 that breaks both ways: `priority` added without
a default, `duration_s` changed from [null, int] to [null, string]."""
ID = f("id", "string")
LIST = record(f("value", "int"), f("next", ["null", "List"], default=None), name="List")

# (case, reader, writer, the rule broken at which path, or None if data written with `writer`
# reads with `reader`)
CASES = [
    ("the same schema", record(ID), record(ID), None),
    *((f"{w} is promoted to {r}", record(f("n", r)), record(f("n", w)), None) for w, r in [
        ("int", "long"), ("int", "float"), ("int", "double"), ("long", "float"), ("long", "double"),
        ("float", "double"), ("string", "bytes"), ("bytes", "string"),
    ]),
    *((f"{w} is not promoted to {r}", record(f("n", r)), record(f("n", w)), ("n", "promote")) for w, r in [
        ("long", "int"), ("double", "float"), ("float", "long"), ("string", "int"), ("boolean", "int"),
        ("null", "string"),
    ]),
    ("a writer's field the reader lacks is ignored", record(ID), record(ID, f("extra", "long")), None),
    ("a reader's field the writer lacks takes its default",
     record(ID, f("extra", ["null", "string"], default=None)), record(ID), None),
    ("a reader's field the writer lacks needs a default", record(ID, f("extra", "string")), record(ID),
     ("extra", "must have a default")),
    ("a reader's field matches a writer's by alias", record(f("key", "string", aliases=["id"])), record(ID), None),
    ("records match by unqualified name", record(ID), {**record(ID), "namespace": "elsewhere"}, None),
    ("a renamed record does not match", record(ID, name="Other"), record(ID), ("", "same unqualified name")),
    ("a renamed record matches by the reader's alias", record(ID, name="Other", aliases=["test.Thing"]),
     record(ID), None),
    ("the reader has every symbol the writer writes", record(f("c", enum("red", "green", "blue"))),
     record(f("c", enum("red", "green"))), None),
    ("a symbol the reader lacks is refused", record(f("c", enum("red"))), record(f("c", enum("red", "green"))),
     ("c", "enum symbol")),
    ("a symbol the reader lacks reads as its enum's default",
     record(f("c", enum("red", "other", default="other"))), record(f("c", enum("red", "green"))), None),
    ("a value of a writer's type lands in a reader's union branch", record(f("n", ["null", "long"])),
     record(f("n", "int")), None),
    ("a reader's union without the writer's type", record(f("n", ["null", "string"])), record(f("n", "int")),
     ("n", "union of the reader")),
    ("each branch of a writer's union must resolve", record(f("n", "string")), record(f("n", ["null", "string"])),
     ("n", "promote")),
    ("unions resolve branch by branch", record(f("n", ["null", "string", "long"])),
     record(f("n", ["int", "null"])), None),
    ("arrays resolve by their items", record(f("xs", {"type": "array", "items": "long"})),
     record(f("xs", {"type": "array", "items": "int"})), None),
    ("an array's items must resolve", record(f("xs", {"type": "array", "items": "int"})),
     record(f("xs", {"type": "array", "items": "string"})), ("xs[]", "promote")),
    ("a map's values must resolve", record(f("m", {"type": "map", "values": "int"})),
     record(f("m", {"type": "map", "values": "long"})), ("m{}", "promote")),
    ("an array is not a map", record(f("m", {"type": "map", "values": "int"})),
     record(f("m", {"type": "array", "items": "int"})), ("m", "promote")),
    ("fixed types of one name and size match", record(f("h", fixed(16))), record(f("h", fixed(16))), None),
    ("fixed types must have the same size", record(f("h", fixed(16))), record(f("h", fixed(32))),
     ("h", "same size")),
    ("fixed types must have the same name", record(f("h", fixed(16, "Digest"))), record(f("h", fixed(16))),
     ("h", "same unqualified name")),
    ("a record inside resolves field by field",
     record(f("line", record(f("sku", "string"), f("qty", "long"), name="Line"))),
     record(f("line", record(f("sku", "string"), name="Line"))), ("line.qty", "must have a default")),
    ("logical types resolve as their underlying types",
     record(f("id", "string"), f("at", "long")),
     record(f("id", {"type": "string", "logicalType": "uuid"}), f("at", {"type": "long", "logicalType":
                                                                         "timestamp-micros"})), None),
    ("a named type is used by its name", record(f("a", enum("red")), f("b", "Colour")),
     record(f("a", enum("red")), f("b", "Colour")), None),
    ("a recursive type resolves", LIST, LIST, None),
]


@pytest.mark.parametrize(("reader", "writer", "broken"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_schema_resolution_follows_the_avro_specification(reader: dict, writer: dict, broken: Any) -> None:
    problems = resolve(reader, writer)
    if broken is None:
        assert problems == []
    else:
        path, rule = broken
        assert [p.path for p in problems] == [path], problems
        assert rule in problems[0].rule, problems


@pytest.mark.parametrize(("reader", "writer", "broken"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_the_apache_avro_checker_and_a_round_trip_agree_on_each_case(reader: dict, writer: dict, broken: Any) -> None:
    apache = ReaderWriterCompatibilityChecker().get_compatibility(parse(json.dumps(reader)), parse(json.dumps(writer)))
    assert (apache.compatibility is SchemaCompatibilityType.compatible) == (broken is None), apache.messages
    if broken is None:
        assert round_trip(reader, writer) == []


def test_a_round_trip_fails_where_fastavro_cannot_resolve() -> None:
    (problem,) = round_trip(record(ID, f("extra", "string")), record(ID))
    assert problem.rule == ROUND_TRIP and "extra" in problem.detail


def test_the_shipped_schemas_are_compatible_both_ways_version_by_version() -> None:
    report = check(default_codec().versions)
    assert report.failures == ()
    contact = next(t for t in report.types if t.event_type == "ContactLogged")
    assert contact.versions == (1, 2, 3) and contact.pairs == 3


def test_a_v3_with_a_field_without_default_and_a_changed_type_fails_naming_each() -> None:
    versions = [load_schema_version(p.name, p.read_text()) for p in sorted(FIXTURE.glob("*.avsc"))]
    failures = check(versions).failures
    shown = sorted(str(failure) for failure in failures)
    assert {(x.newer, x.older, x.direction, x.problem.path) for x in failures} == {
        (3, older, direction, path)
        for older in (1, 2) for direction, path in (
            ("backward", "priority"), ("backward", "duration_s"), ("forward", "duration_s"))
    }
    assert ("ContactLogged v3 against v1, backward (v3 reading data written with v1): priority: a reader's "
            "field missing from the writer must have a default (ContactLogged written without 'priority', "
            "which has no default)") in shown
    assert ("ContactLogged v3 against v2, forward (v2 reading data written with v3): duration_s: a union of the "
            "reader must have a branch matching the writer's type (no branch of [null, int] matches string)") in shown



def test_a_union_default_must_be_of_the_unions_first_type_at_any_depth() -> None:
    line = record(f("sku", ["string", "null"], default=None), f("qty", ["null", "int"], default=None), name="Line")
    schema = record(f("n", ["null", "long"], default=None), f("c", ["int", "null"], default=3),
                    f("bad", ["string", "null"], default=None), f("lines", {"type": "array", "items": line}))
    assert sorted(union_defaults(schema)) == [
        "bad: a union's default must be of its first type, string, not None",
        "lines[].sku: a union's default must be of its first type, string, not None",
    ]
    assert all(union_defaults(v.schema) == [] for v in default_codec().versions)
