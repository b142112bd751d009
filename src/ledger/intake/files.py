"""Files of facts for `ledger ingest`: JSON Lines or CSV, read as a stream.

Both readers yield ``(line number, fact)`` or ``(line number, InputError)`` one row at a
time, so a file of any size is read in bounded memory, and a bad row is reported without
stopping the rest.

JSON Lines: one JSON object per line, with its ``type``.

CSV: a header row naming schema fields; one file per event type (give the type, or a
``type`` column). A cell is read by the type of its field in the newest schema: whole
numbers for int/long, ``true``/``false`` for booleans, JSON for ``lines`` and
``attributes``, text for the rest (timestamps and dates as ISO-8601). An empty cell means
"not given" (null, or the field's default).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from ledger.contract.codec import Codec, default_codec
from ledger.errors import InputError, LedgerError, SchemaError

Row = tuple[int, dict[str, Any] | InputError]

MAX_CSV_FIELD = 8 * 1024 * 1024
_TRUE = frozenset({"true", "t", "yes", "y", "1"})
_FALSE = frozenset({"false", "f", "no", "n", "0"})


class FactFile:
    """A file of facts, JSON Lines or CSV (by its ``.csv`` extension), read once as a stream.

    `size` and `position()` (bytes read so far) drive a progress bar.
    """

    def __init__(self, path: Path, event_type: str | None = None, codec: Codec | None = None):
        self.path = path
        self.is_csv = path.suffix.lower() == ".csv"
        self.event_type = event_type
        self.codec = codec or default_codec()
        if event_type is not None:
            self.codec.newest(event_type)  # an unknown --type fails before any reading
        if event_type is not None and not self.is_csv:
            raise InputError("--type applies to CSV files; JSON Lines name the type on each line")
        try:
            self.size = path.stat().st_size
        except OSError as exc:
            raise InputError(f"cannot read {path}: {exc.strerror}") from exc
        self._handle: BinaryIO | None = None

    def position(self) -> int:
        handle = self._handle
        if handle is None or handle.closed:
            return self.size if handle is not None else 0
        return handle.tell()

    def __iter__(self) -> Iterator[Row]:
        try:
            handle = self.path.open("rb")
        except OSError as exc:
            raise InputError(f"cannot read {self.path}: {exc.strerror}") from exc
        self._handle = handle
        with handle:
            if self.is_csv:
                yield from _csv_rows(handle, self.event_type, self.codec)
            else:
                yield from _json_lines(handle)


def read_json_lines(path: Path) -> Iterator[Row]:
    """(line number, fact or the error that line has), streaming; blank lines are skipped."""
    return iter(FactFile(path))


def read_csv(
    path: Path, event_type: str | None = None, codec: Codec | None = None
) -> Iterator[Row]:
    """(line number, fact or the error that row has), streaming, whatever the file's name."""
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from exc
    with handle:
        yield from _csv_rows(handle, event_type, codec or default_codec())


def _json_lines(handle: BinaryIO) -> Iterator[Row]:
    for number, raw in enumerate(handle, start=1):
        if raw.strip():
            yield number, json_fact(raw)


def json_fact(raw: bytes) -> dict[str, Any] | InputError:
    """One event as a JSON object with its `type`, or the InputError saying why it is not."""
    try:
        fact = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        return InputError(f"not valid UTF-8 at byte {exc.start}")
    except json.JSONDecodeError as exc:
        return InputError(f"not JSON: {exc.msg} at column {exc.colno}")
    if not isinstance(fact, dict):
        return InputError(f"expected a JSON object, got {_json_kind(fact)}")
    return fact


def _csv_rows(handle: BinaryIO, event_type: str | None, codec: Codec) -> Iterator[Row]:
    if csv.field_size_limit() < MAX_CSV_FIELD:
        csv.field_size_limit(MAX_CSV_FIELD)
    # surrogateescape keeps a bad byte in one row from ending the whole file; the row with
    # it is refused below.
    text = io.TextIOWrapper(handle, encoding="utf-8-sig", errors="surrogateescape", newline="")
    reader = csv.reader(text)
    try:
        header = next(reader)
    except StopIteration:
        return
    except csv.Error as exc:
        raise InputError(f"line 1: cannot read the CSV header ({exc})") from exc
    columns = [name.strip() for name in header]
    problem = _header_problem(columns, event_type)
    if problem:
        raise InputError(f"line 1: {problem}")
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield reader.line_num, InputError(_csv_error(exc))
            continue
        if not any(cell.strip() for cell in cells):
            continue
        try:
            yield reader.line_num, _csv_fact(columns, cells, event_type, codec)
        except LedgerError as error:
            yield reader.line_num, InputError(str(error))


def _header_problem(columns: list[str], event_type: str | None) -> str | None:
    if not columns or not any(columns):
        return "the first row must name the columns (schema fields)"
    if "" in columns:
        return f"column {columns.index('') + 1} has no name"
    seen: set[str] = set()
    for name in columns:
        if name in seen:
            return f"column {name!r} appears twice"
        seen.add(name)
    if event_type is None and "type" not in seen:
        return "say which event the rows are: give --type EventType or add a `type` column"
    return None


def _csv_fact(
    columns: list[str], cells: list[str], event_type: str | None, codec: Codec
) -> dict[str, Any]:
    if len(cells) != len(columns):
        raise InputError(f"{len(cells)} cells, but the header names {len(columns)} columns")
    for name, cell in zip(columns, cells, strict=True):
        if _has_bad_bytes(cell):
            raise InputError(f"{name}: not valid UTF-8")
    row = dict(zip(columns, cells, strict=True))
    row_type = row.pop("type", "").strip() or event_type
    if not row_type:
        raise SchemaError("type: missing; say which event this is, e.g. \"ContactLogged\"", "type")
    if event_type is not None and row_type != event_type:
        raise SchemaError(f"type: {row_type!r} in a file of {event_type}", "type")
    fields = {f["name"]: f["type"] for f in codec.newest(row_type).schema["fields"]}
    fact: dict[str, Any] = {"type": row_type}
    for name, cell in row.items():
        if cell == "":
            continue
        fact[name] = _cell(name, cell, fields.get(name))
    return fact


def _cell(name: str, cell: str, avro_type: Any) -> Any:
    kind = _base_type(avro_type)
    if kind in ("int", "long"):
        try:
            return int(cell.strip())
        except ValueError:
            raise SchemaError(f"{name}: {cell!r} is not a whole number", name) from None
    if kind == "boolean":
        word = cell.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
        raise SchemaError(f"{name}: {cell!r} is not true or false", name)
    if kind in ("array", "map"):
        try:
            return json.loads(cell)
        except json.JSONDecodeError as exc:
            raise SchemaError(f"{name}: not JSON ({exc.msg} at column {exc.colno})", name) from None
    return cell


def _base_type(avro_type: Any) -> str | None:
    """The Avro type of a field as a CSV cell sees it: unions with null stripped; a logical
    type (timestamp, date) is read as text and parsed by the fact reader."""
    if isinstance(avro_type, list):
        others = [t for t in avro_type if t != "null"]
        return _base_type(others[0]) if len(others) == 1 else None
    if isinstance(avro_type, dict):
        if "logicalType" in avro_type:
            return "string"
        return avro_type.get("type")
    return avro_type


def _has_bad_bytes(cell: str) -> bool:
    return any("\udc80" <= ch <= "\udcff" for ch in cell)


def _csv_error(exc: csv.Error) -> str:
    text = str(exc)
    if "field larger than field limit" in text:
        return f"a cell is larger than {MAX_CSV_FIELD // (1024 * 1024)} MB"
    return f"not CSV: {text}"


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return f"a number ({value})"
    if isinstance(value, str):
        return "a string"
    return type(value).__name__  # list: what the JSON reader made of an array
