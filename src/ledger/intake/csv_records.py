"""Splitting a CSV file into records without trusting its quotes (see `CsvRecords`)."""

from __future__ import annotations

import csv
import io
from collections import deque
from collections.abc import Iterator

from ledger.errors import InputError

MB = 1024 * 1024
MAX_CSV_FIELD = 8 * MB
"""The largest record (and so cell) read; a larger one is refused, not held in memory."""


class CsvRecords:
    """CSV records found line by line, so that one bad quote costs one row, not the file.

    Python's csv reader, given a quote that never closes, reads the rest of the file into
    one cell. Here a record is the physical lines up to the one that leaves no quoted cell
    open; a quoted cell may hold line breaks (a comment over several lines), but a record
    of several lines counts only if it has as many cells as the header and no line inside it
    is a whole row by itself (`_spanning_problem`). Otherwise, and when
    the quote is still open at the end of the file or after `MAX_CSV_FIELD` characters, the
    line where the record began is refused and reading resumes on the line after it: the
    lines read ahead are read again as records of their own.
    """

    def __init__(self, text: io.TextIOWrapper):
        if csv.field_size_limit() < MAX_CSV_FIELD:
            csv.field_size_limit(MAX_CSV_FIELD)
        self._text = text
        self._number = 0
        self._again: deque[tuple[int, str]] = deque()

    def header(self) -> list[str] | None:
        first = self._line()
        if first is None:
            return None
        number, line = first
        if _ends_quoted(line, quoted=False):
            raise InputError(f"line {number}: a quote in the header never closes")
        cells = _parse(line)
        if isinstance(cells, InputError):
            raise InputError(f"line {number}: cannot read the CSV header ({cells})")
        return cells

    def rows(self, width: int) -> Iterator[tuple[int, list[str] | InputError]]:
        while (first := self._line()) is not None:
            start, line = first
            if len(line) > MAX_CSV_FIELD:
                yield start, InputError(f"a row is larger than {MAX_CSV_FIELD // MB} MB")
                continue
            taken, size = [first], len(line)
            quoted = _ends_quoted(line, quoted=False)
            while quoted and size <= MAX_CSV_FIELD and (more := self._line()) is not None:
                taken.append(more)
                size += len(more[1])
                quoted = _ends_quoted(more[1], quoted=True)
            if quoted:
                self._again.extendleft(reversed(taken[1:]))
                where = "the end of the file" if size <= MAX_CSV_FIELD else f"{MAX_CSV_FIELD // MB} MB"
                yield start, InputError(
                    f"a quoted cell opens on this line and does not close before {where}; "
                    "the lines after it are read as rows of their own"
                )
                continue
            cells = _parse("".join(text for _, text in taken))
            problem = _spanning_problem(taken, cells, width) if len(taken) > 1 else None
            if problem:
                self._again.extendleft(reversed(taken[1:]))
                yield start, InputError(
                    f"a quoted cell opens on this line and runs to line {taken[-1][0]}, "
                    f"{problem}; the lines after this one are read as rows of their own"
                )
                continue
            yield start, cells

    def _line(self) -> tuple[int, str] | None:
        if self._again:
            return self._again.popleft()
        try:
            line = self._text.readline(MAX_CSV_FIELD + 1)
        except OSError as exc:
            raise InputError(f"cannot read on: {exc.strerror or exc}") from exc
        if not line:
            return None
        self._number += 1
        if len(line) > MAX_CSV_FIELD and not line.endswith(("\n", "\r")):
            rest = line
            while rest and not rest.endswith(("\n", "\r")):
                rest = self._text.readline(MAX_CSV_FIELD)
        return self._number, line


def _ends_quoted(line: str, quoted: bool) -> bool:
    """Whether a record is inside a quoted cell at the end of `line`, read as Python's csv
    reader reads it: a quote opens a cell only as its first character, ``""`` inside a
    quoted cell is a quote, and after the closing quote the cell runs on unquoted."""
    if not quoted and '"' not in line:
        return False
    i, at_start = 0, True
    while True:
        if quoted:
            close = line.find('"', i)
            if close < 0:
                return True
            if line.startswith('"', close + 1):
                i = close + 2
                continue
            quoted, at_start, i = False, False, close + 1
        elif at_start and line.startswith('"', i):
            quoted, i = True, i + 1
            continue
        comma = line.find(",", i)
        if comma < 0:
            return False
        i, at_start = comma + 1, True


def _spanning_problem(
    taken: list[tuple[int, str]], cells: list[str] | InputError, width: int
) -> str | None:
    """Why a record over several lines is more likely a quote left open than a cell with
    line breaks: it is not CSV, has the wrong number of cells, or runs over a line that is
    a whole row by itself (which a comment's lines would hardly be)."""
    if isinstance(cells, InputError):
        return f"which is not CSV ({str(cells).removeprefix('not CSV: ')})"
    if len(cells) != width:
        return f"giving {len(cells)} cells where the header names {width}"
    for number, line in taken[1:]:  # the last line too: its stray quote may close the cell
        if not _ends_quoted(line, quoted=False):
            alone = _parse(line)
            if isinstance(alone, list) and len(alone) == width:
                return f"taking in line {number}, which is a row by itself"
    return None


def _parse(record: str) -> list[str] | InputError:
    try:
        return next(csv.reader((record,), strict=True))
    except StopIteration:
        return []
    except csv.Error as exc:
        return InputError(_csv_error(exc))


def _csv_error(exc: csv.Error) -> str:
    text = str(exc)
    if "field larger than field limit" in text:
        return f"a cell is larger than {MAX_CSV_FIELD // MB} MB"
    return f"not CSV: {text}"
