"""Files of facts for `ledger ingest`: JSON Lines or CSV, read as a stream.

Both readers yield ``(line number, fact)`` or ``(line number, InputError)`` one row at a
time, so a file of any size is read in bounded memory, and a bad row is reported without
stopping the rest.

JSON Lines: one JSON object per line, with its ``type``.

CSV: a header row naming schema fields; one file per event type (give the type, or a
``type`` column). A cell is read by the type of its field in the newest schema: whole
numbers for int/long, decimal numbers for float/double (``-0.25``, ``1e-3``),
``true``/``false`` for booleans, JSON for ``lines`` and
``attributes``, text for the rest (timestamps and dates as ISO-8601). An empty cell means
"not given" (null, or the field's default).
"""

from __future__ import annotations

import codecs
import io
import json
import re
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from ledger.contract.codec import Codec, default_codec
from ledger.errors import InputError, LedgerError, SchemaError
from ledger.intake.csv_records import MB, CsvRecords

Row = tuple[int, dict[str, Any] | InputError]

MAX_LINE = 8 * MB
"""The longest JSON line read; longer ones are refused without being held in memory."""
_TRUE = frozenset({"true", "t", "yes", "y", "1"})
_FALSE = frozenset({"false", "f", "no", "n", "0"})
_WHOLE = re.compile(r"[+-]?[0-9]+")
_DECIMAL = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")
"""A number as a spreadsheet writes it; not Python's float() syntax, which also takes ``nan``,
``inf`` and ``1_000``."""
_NUL = "contains a NUL byte (CSV files are read as UTF-8: is this one UTF-16?)"


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
            found = path.stat()
        except OSError as exc:
            raise InputError(f"cannot read {path}: {exc.strerror}") from exc
        mode, self.size = found.st_mode, found.st_size
        if not (stat.S_ISREG(mode) or stat.S_ISFIFO(mode)):
            # A device (/dev/zero, /dev/urandom) never ends; a directory has no lines.
            kind = "a directory" if stat.S_ISDIR(mode) else "a device or socket"
            raise InputError(f"cannot read {path}: it is {kind}, not a file (or a pipe) of facts")
        self._raw: _Counted | None = None

    def position(self) -> int:
        """Bytes read so far (a pipe has no position to ask for, so they are counted)."""
        return 0 if self._raw is None else self._raw.count

    def __iter__(self) -> Iterator[Row]:
        try:
            self._raw = _Counted(self.path)
        except OSError as exc:
            raise InputError(f"cannot read {self.path}: {exc.strerror}") from exc
        with io.BufferedReader(self._raw) as handle:
            if self.is_csv:
                yield from _csv_rows(handle, self.event_type, self.codec)
            else:
                yield from _json_lines(handle)


class _Counted(io.FileIO):
    """A file read for its bytes, counting them as they come (a file or a pipe alike)."""

    def __init__(self, path: Path):
        super().__init__(path, "rb")
        self.count = 0

    def readinto(self, buffer: Any) -> int | None:
        read = super().readinto(buffer)
        self.count += read or 0
        return read


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
    for number, raw in _physical_lines(handle):
        if raw is None:
            yield number, InputError(f"line longer than {MAX_LINE // MB} MB")
            continue
        if number == 1:
            raw = raw.removeprefix(codecs.BOM_UTF8)
        if raw.strip():
            yield number, json_fact(raw)


def _physical_lines(handle: BinaryIO) -> Iterator[tuple[int, bytes | None]]:
    """(line number, bytes) per line; None for a line over `MAX_LINE`, which is skipped
    without holding it in memory."""
    number = 0
    while True:
        raw = _read(handle, MAX_LINE + 1)
        if not raw:
            return
        number += 1
        if len(raw) > MAX_LINE and not raw.endswith(b"\n"):
            while raw and not raw.endswith(b"\n"):
                raw = _read(handle, MAX_LINE)
            yield number, None
            continue
        yield number, raw


def _read(handle: BinaryIO, limit: int) -> bytes:
    try:
        return handle.readline(limit)
    except OSError as exc:
        raise InputError(f"cannot read on: {exc.strerror or exc}") from exc


def json_fact(raw: bytes) -> dict[str, Any] | InputError:
    """One event as a JSON object with its `type`, or the InputError saying why it is not."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return InputError(f"not valid UTF-8 at byte {exc.start}")
    try:
        fact = strict_json(text)
    except InputError as error:
        return error
    if not isinstance(fact, dict):
        return InputError(f"expected a JSON object, got {_json_kind(fact)}")
    return fact


def strict_json(text: str) -> Any:
    """JSON as RFC 8259 has it, or InputError saying why not: no NaN or Infinity, no key
    twice in an object (which would keep one value and drop the other unseen), and no
    crash on input Python's reader cannot hold (nesting past the recursion limit, an
    integer of more digits than Python converts)."""
    try:
        return _DECODER.decode(text)
    except json.JSONDecodeError as exc:
        return _raise(f"not JSON: {exc.msg} at column {exc.colno}")
    except _NotJSON as exc:
        return _raise(f"not JSON: {exc}")
    except RecursionError:
        return _raise("not JSON the ledger reads: nested too deeply")
    except ValueError as exc:
        if "digits" in str(exc):
            limit = sys.get_int_max_str_digits()
            return _raise(f"not JSON the ledger reads: a number of more than {limit} digits")
        return _raise(f"not JSON: {exc}")


class _NotJSON(ValueError):
    pass


def _no_constant(name: str) -> Any:
    raise _NotJSON(f"{name} is not a JSON number")


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    value = dict(pairs)
    if len(value) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _NotJSON(f"key {key!r} appears twice in an object")
            seen.add(key)
    return value


def _raise(reason: str) -> Any:
    raise InputError(reason)


_DECODER = json.JSONDecoder(parse_constant=_no_constant, object_pairs_hook=_object)
"""Built once: `json.loads` with options builds a decoder on every call."""


def _csv_rows(handle: BinaryIO, event_type: str | None, codec: Codec) -> Iterator[Row]:
    # surrogateescape keeps a bad byte in one row from ending the whole file; the row with
    # it is refused below.
    text = io.TextIOWrapper(handle, encoding="utf-8-sig", errors="surrogateescape", newline="")
    records = CsvRecords(text)
    header = records.header()
    if header is None:
        return
    columns = [name.strip().lstrip("\ufeff").strip() for name in header]
    problem = _header_problem(columns, event_type)
    if problem:
        raise InputError(f"line 1: {problem}")
    for number, cells in records.rows(len(columns)):
        if isinstance(cells, InputError):
            yield number, cells
            continue
        if not any(cell.strip() for cell in cells):
            continue
        try:
            yield number, _csv_fact(columns, cells, event_type, codec)
        except LedgerError as error:
            yield number, InputError(str(error))
        except Exception as exc:  # a cell no rule foresaw: refuse the row, read on
            yield number, InputError(f"cannot read this row ({type(exc).__name__}: {exc})")


def _header_problem(columns: list[str], event_type: str | None) -> str | None:
    if not columns or not any(columns):
        return "the first row must name the columns (schema fields)"
    if any(_has_bad_bytes(name) for name in columns):
        return "the header is not valid UTF-8"
    if any("\x00" in name for name in columns):
        return f"the header {_NUL}"
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
        if "\x00" in cell:
            raise InputError(f"{name}: {_NUL}")
    row = dict(zip(columns, cells, strict=True))
    row_type = row.pop("type", "").strip() or event_type
    if not row_type:
        raise SchemaError("type: missing; say which event this is, e.g. \"ContactLogged\"", "type")
    if event_type is not None and row_type != event_type:
        raise SchemaError(f"type: {_shown(row_type)} in a file of {event_type}", "type")
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
        digits = cell.strip()
        if not _WHOLE.fullmatch(digits) or len(digits) > 100:
            raise SchemaError(f"{name}: {_shown(cell)} is not a whole number", name)
        return int(digits)
    if kind in ("float", "double"):
        number = cell.strip()
        if not _DECIMAL.fullmatch(number) or len(number) > 100:
            raise SchemaError(f"{name}: {_shown(cell)} is not a number", name)
        return float(number)
    if kind == "boolean":
        word = cell.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
        raise SchemaError(f"{name}: {_shown(cell)} is not true or false", name)
    if kind in ("array", "map"):
        try:
            return strict_json(cell)
        except InputError as error:
            raise SchemaError(f"{name}: {error}", name) from None
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


def _has_bad_bytes(text: str) -> bool:
    """Whether `text` holds bytes that were not UTF-8 (kept as lone surrogates by the
    surrogateescape reader)."""
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _shown(cell: str) -> str:
    text = repr(cell)
    return text if len(text) <= 60 else text[:57] + "..."


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
