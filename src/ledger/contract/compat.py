"""Every new schema version must read the data of every older one, and be readable by it.

Events are kept forever and read by consumers the ledger does not control: a projector built
last year reads this year's events (forward), and today's projector reads the first year's
(backward). Avro makes both possible only when the two schemas *resolve* (Avro 1.11
specification, "Schema Resolution"); this module decides that from the schemas alone, naming
the field and the rule of each failure, and then proves it once more by writing a sample
record with one schema and reading it with the other through fastavro.

Why its own rules rather than a library: fastavro resolves only while reading data (it has no
schema-against-schema check), and the Apache ``avro`` package's checker reports its failures as
unordered sets of messages and index paths (``/fields/3/type``) that cannot be paired with each
other, so it could not say which field broke which rule. The tests hold this module to the
specification's examples and to the Apache checker's verdicts on the same pairs.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import fastavro

from ledger.contract.codec import SchemaVersion

PROMOTIONS = {
    "int": {"long", "float", "double"},
    "long": {"float", "double"},
    "float": {"double"},
    "string": {"bytes"},
    "bytes": {"string"},
}
"""Writer type -> the reader types it is promoted to (the specification's list)."""

PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
NAMED = frozenset({"record", "enum", "fixed"})


@dataclass(frozen=True)
class Incompatibility:
    """One place where data written with the writer schema cannot be read with the reader's."""

    path: str
    """The field path from the top record: ``channel``, ``lines[].sku``, ``attributes{}``;
    empty for the record itself."""
    rule: str
    """The resolution rule broken, in the specification's words."""
    detail: str


class _Names:
    """A schema's named types by full and short name, so that a reference resolves."""

    def __init__(self, schema: Any):
        self.types: dict[str, dict[str, Any]] = {}
        self._collect(schema, "")

    def _collect(self, node: Any, namespace: str) -> None:
        if isinstance(node, list):
            for branch in node:
                self._collect(branch, namespace)
        elif isinstance(node, dict):
            kind = node.get("type")
            if kind in NAMED:
                name = node["name"]
                namespace = node.get("namespace", name.rpartition(".")[0] or namespace)
                short = name.rpartition(".")[2]
                self.types[short] = node
                self.types[f"{namespace}.{short}" if namespace else short] = node
            for f in node.get("fields", ()):
                self._collect(f["type"], namespace)
            for key in ("items", "values"):
                if key in node:
                    self._collect(node[key], namespace)
            if isinstance(kind, dict | list):
                self._collect(kind, namespace)

    def resolve(self, node: Any) -> Any:
        """`node` with a reference to a named type replaced by its definition, and the
        ``{"type": "string"}`` spelling of a primitive (logical types too) by its name:
        logical types resolve as their underlying types."""
        while True:
            if isinstance(node, str) and node not in PRIMITIVES:
                if node not in self.types:
                    raise KeyError(node)
                node = self.types[node]
            elif isinstance(node, dict) and not isinstance(node.get("type"), str | None):
                node = node["type"]
            elif isinstance(node, dict) and (node["type"] in PRIMITIVES or node["type"] in self.types):
                node = node["type"]
            else:
                return node


def kind_of(node: Any) -> str:
    return "union" if isinstance(node, list) else node if isinstance(node, str) else node["type"]


def short_name(node: dict[str, Any]) -> str:
    return node["name"].rpartition(".")[2]


@dataclass
class _Resolver:
    """Resolves one reader schema against one writer schema, collecting every failure."""

    reader_names: _Names
    writer_names: _Names
    found: list[Incompatibility] = field(default_factory=list)
    _in_progress: set[tuple[str, str]] = field(default_factory=set)

    def fail(self, path: str, rule: str, detail: str) -> None:
        self.found.append(Incompatibility(path, rule, detail))

    def resolve(self, reader: Any, writer: Any, path: str) -> None:
        reader, writer = self.reader_names.resolve(reader), self.writer_names.resolve(writer)
        r_kind, w_kind = kind_of(reader), kind_of(writer)
        if w_kind == "union":
            # Any branch may be written, so each must resolve against the reader.
            for branch in writer:
                self.resolve(reader, branch, path)
            return
        if r_kind == "union":
            chosen = self._first_match(reader, writer)
            if chosen is None:
                self.fail(path, "a union of the reader must have a branch matching the writer's type",
                          f"no branch of {_shown(reader)} matches {_shown(writer)}")
            else:
                self.resolve(chosen, writer, path)
            return
        if r_kind == w_kind == "array":
            self.resolve(reader["items"], writer["items"], f"{path}[]")
        elif r_kind == w_kind == "map":
            self.resolve(reader["values"], writer["values"], f"{path}{{}}")
        elif not self._matches(reader, writer):
            self._mismatch(reader, writer, path)
        elif r_kind == "record":
            self._records(reader, writer, path)
        elif r_kind == "enum":
            missing = [s for s in writer["symbols"] if s not in reader["symbols"]]
            if missing and "default" not in reader:
                self.fail(path, "a writer's enum symbol must be one of the reader's, or the reader's enum "
                                "must have a default", f"{short_name(reader)} lacks {', '.join(missing)}")

    def _records(self, reader: dict[str, Any], writer: dict[str, Any], path: str) -> None:
        key = (short_name(reader), short_name(writer))
        if key in self._in_progress:  # a recursive type: its fields are being resolved already
            return
        self._in_progress.add(key)
        written = {f["name"]: f for f in writer["fields"]}
        for f in reader["fields"]:
            inner = f"{path}.{f['name']}" if path else f["name"]
            names = [f["name"], *f.get("aliases", ())]
            source = next((written[n] for n in names if n in written), None)
            if source is not None:
                self.resolve(f["type"], source["type"], inner)
            elif "default" not in f:
                self.fail(inner, "a reader's field missing from the writer must have a default",
                          f"{short_name(writer)} written without {f['name']!r}, which has no default")
        self._in_progress.discard(key)

    def _matches(self, reader: Any, writer: Any) -> bool:
        """The specification's "match": same primitive or a promotion, same named type by
        unqualified name or alias (fixed also by size), arrays and maps of matching types."""
        r_kind, w_kind = kind_of(reader), kind_of(writer)
        if w_kind in PRIMITIVES:
            return r_kind == w_kind or r_kind in PROMOTIONS.get(w_kind, ())
        if r_kind != w_kind:
            return False
        if r_kind in NAMED:
            named = short_name(reader) == short_name(writer) or writer["name"] in reader.get("aliases", ()) or (
                short_name(writer) in {a.rpartition(".")[2] for a in reader.get("aliases", ())})
            return named and (r_kind != "fixed" or reader["size"] == writer["size"])
        if r_kind == "array":
            return self._matches(self.reader_names.resolve(reader["items"]), self.writer_names.resolve(writer["items"]))
        if r_kind == "map":
            return self._matches(self.reader_names.resolve(reader["values"]),
                                 self.writer_names.resolve(writer["values"]))
        return False

    def _first_match(self, union: list[Any], writer: Any) -> Any:
        """The reader's branch a written value lands in: the first of the same type, else the
        first the writer's type is promoted to."""
        branches = [self.reader_names.resolve(b) for b in union]
        same = [b for b in branches if kind_of(b) == kind_of(writer) and self._matches(b, writer)]
        promoted = [b for b in branches if self._matches(b, writer)]
        return (same or promoted or [None])[0]

    def _mismatch(self, reader: Any, writer: Any, path: str) -> None:
        r_kind, w_kind = kind_of(reader), kind_of(writer)
        if r_kind == w_kind == "fixed" and reader["size"] != writer["size"]:
            self.fail(path, "fixed types must have the same size", f"{writer['size']} bytes read as {reader['size']}")
        elif r_kind == w_kind and r_kind in NAMED:
            self.fail(path, "named types must have the same unqualified name (or the reader an alias of it)",
                      f"{short_name(writer)} read as {short_name(reader)}")
        else:
            targets = sorted(PROMOTIONS.get(w_kind, ()))
            promoted = f" (it is promoted to {', '.join(targets)} only)" if targets else ""
            self.fail(path, "the writer's type must be the reader's or promote to it",
                      f"{_shown(writer)} read as {_shown(reader)}{promoted}")


def resolve(reader: dict[str, Any], writer: dict[str, Any]) -> list[Incompatibility]:
    """Every reason data written with `writer` cannot be read with `reader`; empty if it can."""
    resolver = _Resolver(_Names(reader), _Names(writer))
    resolver.resolve(reader, writer, "")
    return resolver.found


def _shown(node: Any) -> str:
    kind = kind_of(node)
    if kind == "union":
        return "[" + ", ".join(_shown(b) for b in node) + "]"
    return f"{kind} {short_name(node)}" if kind in NAMED else kind


@dataclass(frozen=True)
class Failure:
    """A pair of versions of one event type that do not resolve in one direction."""

    event_type: str
    newer: int
    older: int
    direction: str
    """``backward``: the newer version reads data written with the older one; ``forward``:
    the older version reads data written with the newer one."""
    problem: Incompatibility

    @property
    def reader(self) -> int:
        return self.newer if self.direction == "backward" else self.older

    @property
    def writer(self) -> int:
        return self.older if self.direction == "backward" else self.newer

    def __str__(self) -> str:
        where = self.problem.path or "the record"
        return (f"{self.event_type} v{self.newer} against v{self.older}, {self.direction} (v{self.reader} reading "
                f"data written with v{self.writer}): {where}: {self.problem.rule} ({self.problem.detail})")


@dataclass(frozen=True)
class TypeReport:
    event_type: str
    versions: tuple[int, ...]
    failures: tuple[Failure, ...]

    @property
    def pairs(self) -> int:
        """(newer, older) pairs checked, each in both directions."""
        return len(self.versions) * (len(self.versions) - 1) // 2


@dataclass(frozen=True)
class Report:
    types: tuple[TypeReport, ...]
    unsound: tuple[str, ...] = ()
    """What is wrong with a file on its own: a name that does not say the type it holds (a
    record renamed by mistake would otherwise pass as a new type with one version, checked
    against nothing), or a union's default that is not of its first type."""

    @property
    def failures(self) -> tuple[Failure, ...]:
        return tuple(f for t in self.types for f in t.failures)

    @property
    def ok(self) -> bool:
        return not self.failures and not self.unsound


ROUND_TRIP = "a record written with the writer schema must read with the reader schema (fastavro)"


def check(versions: Iterable[SchemaVersion]) -> Report:
    """Each version of every event type against each earlier one, both ways: by the rules,
    and by a round trip of sample records. A round trip's failure is reported only where the
    rules found none, as then the two proofs disagree and the rules are what is wrong."""
    by_type: dict[str, list[SchemaVersion]] = {}
    unsound = []
    for version in versions:
        stem = re.sub(r"(?<!^)(?=[A-Z])", "_", version.event_type).lower()
        if version.file_name.partition(".")[0] != stem:
            unsound.append(f"{version.file_name}: holds {version.event_type}, so it must be named {stem}.v<N>.avsc")
        unsound += [f"{version.file_name}: {problem}" for problem in union_defaults(version.schema)]
        by_type.setdefault(version.event_type, []).append(version)
    reports = []
    for event_type, found in sorted(by_type.items()):
        ordered = sorted(found, key=lambda v: v.version)
        failures: list[Failure] = []
        for i, newer in enumerate(ordered):
            for older in ordered[:i]:
                for direction, reader, writer in (("backward", newer, older), ("forward", older, newer)):
                    problems = resolve(reader.schema, writer.schema) or round_trip(reader.schema, writer.schema)
                    failures += [Failure(event_type, newer.version, older.version, direction, p) for p in problems]
        reports.append(TypeReport(event_type, tuple(v.version for v in ordered), tuple(failures)))
    return Report(tuple(reports), tuple(unsound))


_DEFAULT_TYPES: dict[str, Any] = {
    "null": type(None), "boolean": bool, "int": int, "long": int, "float": (int, float), "double": (int, float),
    "bytes": str, "string": str, "fixed": str, "enum": str, "array": list, "map": dict, "record": dict,
}
"""The JSON value a default of each type is written as (a bool is no number)."""


def union_defaults(schema: dict[str, Any]) -> list[str]:
    """Each field (at any depth) whose type is a union and whose default is not of the union's
    first type, as the specification requires: fastavro takes a default of any branch, but
    Avro's Java and C# libraries refuse such a schema, so an adapter in those could not load it."""
    names, found = _Names(schema), []
    stack: list[tuple[str, Any]] = [("", schema)]
    seen: set[int] = set()
    while stack:
        path, node = stack.pop()
        node = names.resolve(node)
        if isinstance(node, list):
            stack += [(path, branch) for branch in node]
        elif isinstance(node, dict) and id(node) not in seen:
            seen.add(id(node))
            for f in node.get("fields", ()):
                inner = f"{path}.{f['name']}" if path else f["name"]
                first = names.resolve(f["type"][0]) if isinstance(f["type"], list) and f["type"] else None
                if first is not None and "default" in f and not _fits(kind_of(first), f["default"]):
                    found.append(f"{inner}: a union's default must be of its first type, "
                                 f"{_shown(first)}, not {f['default']!r}")
                stack.append((inner, f["type"]))
            stack += [(f"{path}[]", node["items"])] if "items" in node else []
            stack += [(f"{path}{{}}", node["values"])] if "values" in node else []
    return found


def _fits(kind: str, default: Any) -> bool:
    return isinstance(default, _DEFAULT_TYPES[kind]) and (kind == "boolean" or not isinstance(default, bool))


def round_trip(reader: dict[str, Any], writer: dict[str, Any]) -> list[Incompatibility]:
    """Write sample records with `writer` (every union's first branch, then every union's
    last: with ``null`` first, both the absent and the present value) and read each with
    `reader`, as a consumer would; fastavro raises SchemaResolutionError where they do not
    resolve. Logical types are left out: they resolve as their underlying types."""
    plain_writer, plain_reader = _without_logical(writer), _without_logical(reader)
    try:
        parsed_writer = fastavro.parse_schema(plain_writer)
        parsed_reader = fastavro.parse_schema(plain_reader)
    except Exception as exc:  # fastavro's own errors for a schema it cannot take
        return [Incompatibility("", ROUND_TRIP, f"{type(exc).__name__}: {exc}")]
    names = _Names(plain_writer)
    for pick in (0, -1):
        record = _sample(plain_writer, names, pick, 0)
        buffer = io.BytesIO()
        try:
            fastavro.schemaless_writer(buffer, parsed_writer, record)
            buffer.seek(0)
            fastavro.schemaless_reader(buffer, parsed_writer, parsed_reader)
        except Exception as exc:  # SchemaResolutionError, and whatever else a bad pair raises
            return [Incompatibility("", ROUND_TRIP, f"{type(exc).__name__}: {exc}")]
    return []


_SAMPLES = {"null": None, "boolean": True, "int": 7, "long": 7, "float": 0.5, "double": 0.5,
            "bytes": b"x", "string": "x"}


def _sample(node: Any, names: _Names, pick: int, depth: int) -> Any:
    """A value of `node`, taking branch `pick` of each union (the null branch, if any, once
    past a depth where a recursive type could go on for ever)."""
    node = names.resolve(node)
    kind = kind_of(node)
    if kind == "union":
        branches = node
        if depth > 8 and "null" in branches:
            return None
        return _sample(branches[pick], names, pick, depth + 1)
    if kind in _SAMPLES:
        return _SAMPLES[kind]
    if kind == "enum":
        return node["symbols"][pick]
    if kind == "fixed":
        return b"\0" * node["size"]
    if kind == "array":
        return [_sample(node["items"], names, pick, depth + 1)]
    if kind == "map":
        return {"k": _sample(node["values"], names, pick, depth + 1)}
    return {f["name"]: _sample(f["type"], names, pick, depth + 1) for f in node["fields"]}


def _without_logical(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {k: _without_logical(v) for k, v in schema.items() if k != "logicalType"}
    if isinstance(schema, list):
        return [_without_logical(v) for v in schema]
    return schema
