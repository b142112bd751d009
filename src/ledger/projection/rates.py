"""Exchange rates: the file that converts orders into the reporting currency, read and checked.

The file (setting ``projection.exchange_rates``, LEDGER_EXCHANGE_RATES) is CSV with the header
``date,currency,rate``: from `date` (00:00 UTC) on, 1 unit of `currency` is worth `rate` units
of the reporting currency, until a later row for the same currency. An order is converted at
the rate in force on its purchase date (orders.sql).

Rates are exact decimals, never floats: a rate is parsed as text into a Decimal, and what the
SQL multiplies by is an integer fraction, `minor_numerator / minor_denominator` reporting minor
units per minor unit of `currency`, with both currencies' ISO 4217 exponents folded in. The
bounds below keep every product of the conversion inside a HUGEINT for any order amount a
BIGINT holds: at most 12 decimal places and a rate of at most 10^9 give a numerator below
10^25 and a denominator at most 10^16, so `amount * (numerator % denominator)` < 9.3e34.

The file is checked whole before anything is used; an error names the line and the reason.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path

import pyarrow as pa

from ledger.contract.currencies import minor_unit_exponent
from ledger.contract.rules import CURRENCIES
from ledger.errors import RatesError

HEADER = ("date", "currency", "rate")
DECIMALS = 12
"""The most decimal places a rate may have (the scale of `exchange_rates.rate`)."""
MIN_RATE = Decimal("0.000000001")
MAX_RATE = Decimal("1000000000")
"""Rates outside these are taken for typos (a rate given the wrong way round, a missing
decimal point): no two ISO 4217 currencies are 10^9 apart."""
MAX_BYTES = 64 * 2**20
MAX_RATES = 1_000_000
"""Daily rates of every ISO 4217 currency for 15 years fit; a larger file is a mistake."""

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_RATE = re.compile(r"\d+(?:\.\d+)?")

SCHEMA = pa.schema([
    ("currency", pa.string()),
    ("valid_from", pa.date32()),
    ("rate", pa.decimal128(38, DECIMALS)),
    ("reporting_currency", pa.string()),
    ("minor_numerator", pa.decimal128(38, 0)),
    ("minor_denominator", pa.decimal128(38, 0)),
    ("source", pa.string()),
    ("line", pa.int64()),
])
"""The table the projector loads into `exchange_rates` at each refresh (empty without a file)."""


@dataclass(frozen=True)
class Rate:
    line: int
    valid_from: date
    currency: str
    rate: Decimal


def read_rates(path: Path, reporting_currency: str) -> list[Rate]:
    """Every rate of the file at `path`, checked; a RatesError names the line and the reason."""
    text = _read_text(path)
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    rates: list[Rate] = []
    seen: dict[tuple[date, str], int] = {}
    try:
        header = next(reader, None)
        if header is None or tuple(h.strip().lower() for h in header) != HEADER:
            raise _refused(path, 1, f"the first line must be the header {','.join(HEADER)!r}, got "
                                    f"{','.join(header or [])!r}")
        for row in reader:
            if not row or (len(row) == 1 and not row[0].strip()):
                continue  # a blank line, such as one at the end
            line = reader.line_num
            if len(rates) == MAX_RATES:
                raise _refused(path, line, f"more than {MAX_RATES:,} rates: a file of rates this large is a mistake")
            rate = _parse_row(path, line, row, reporting_currency)
            first = seen.setdefault((rate.valid_from, rate.currency), line)
            if first != line:
                raise _refused(path, line, f"a second rate for {rate.currency} from {rate.valid_from} "
                                           f"(the first is on line {first})")
            rates.append(rate)
    except csv.Error as exc:
        raise _refused(path, reader.line_num, f"not valid CSV ({exc})") from exc
    if minor_unit_exponent(reporting_currency) is None and any(r.currency != reporting_currency for r in rates):
        raise RatesError(f"the reporting currency {reporting_currency!r} (LEDGER_REPORTING_CURRENCY) has no ISO 4217 "
                         "minor unit, so nothing can be converted into it")
    return rates


def rates_table(rates: list[Rate], reporting_currency: str, source: str) -> pa.Table:
    """`rates` as the rows of `exchange_rates`, each with its integer conversion fraction."""
    to_units = minor_unit_exponent(reporting_currency) or 0
    numerators, denominators = [], []
    for r in rates:
        shift = to_units - (minor_unit_exponent(r.currency) or 0)
        scaled = int(r.rate.scaleb(DECIMALS))  # exact: at most DECIMALS places
        numerators.append(Decimal(scaled * 10 ** max(shift, 0)))
        denominators.append(Decimal(10 ** (DECIMALS + max(-shift, 0))))
    return pa.table({
        "currency": [r.currency for r in rates],
        "valid_from": [r.valid_from for r in rates],
        "rate": [r.rate for r in rates],
        "reporting_currency": [reporting_currency] * len(rates),
        "minor_numerator": numerators,
        "minor_denominator": denominators,
        "source": [source] * len(rates),
        "line": [r.line for r in rates],
    }, schema=SCHEMA)


class RatesSource:
    """The rates a projector refreshes with: the file of `path` (None: no rates, an empty
    table), read again only when its size or modification time changed, so a refresh every
    few seconds does not parse a large file each time, and a fixed file counts at the next."""

    def __init__(self, path: Path | None, reporting_currency: str):
        self.path = path
        self.reporting_currency = reporting_currency
        self._seen: tuple[int, int] | None = None
        self._table = SCHEMA.empty_table()

    def table(self) -> pa.Table:
        if self.path is None:
            return self._table
        try:
            stat = self.path.stat()
        except OSError as exc:
            raise RatesError(f"cannot read the exchange rates {self.path} (LEDGER_EXCHANGE_RATES): "
                             f"{exc.strerror or exc}") from exc
        if self._seen != (stat.st_size, stat.st_mtime_ns):
            rates = read_rates(self.path, self.reporting_currency)
            self._table = rates_table(rates, self.reporting_currency, str(self.path))
            self._seen = (stat.st_size, stat.st_mtime_ns)
        return self._table


def _read_text(path: Path) -> str:
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise RatesError(f"exchange rates {path}: {size:,} bytes, more than the {MAX_BYTES // 2**20} MiB "
                             "a rates file may have")
        data = path.read_bytes()
    except OSError as exc:
        raise RatesError(f"cannot read the exchange rates {path} (LEDGER_EXCHANGE_RATES): "
                         f"{exc.strerror or exc}") from exc
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise _refused(path, line, "not UTF-8 text") from exc


def _parse_row(path: Path, line: int, row: list[str], reporting_currency: str) -> Rate:
    if len(row) != len(HEADER):
        raise _refused(path, line, f"expected 3 fields (date,currency,rate), got {len(row)}")
    day_text, currency, rate_text = (field.strip() for field in row)
    if not _DATE.fullmatch(day_text):
        raise _refused(path, line, f"date {day_text!r} is not a date YYYY-MM-DD")
    try:
        day = date.fromisoformat(day_text)
    except ValueError as exc:
        raise _refused(path, line, f"date {day_text!r} is not a date ({exc})") from exc
    if currency not in CURRENCIES:
        hint = " (codes are upper case)" if currency.upper() in CURRENCIES else ""
        raise _refused(path, line, f"currency {currency!r} is not an ISO 4217 code{hint}")
    if minor_unit_exponent(currency) is None:
        raise _refused(path, line, f"currency {currency} has no minor unit in ISO 4217, so it cannot be converted")
    rate = _parse_rate(path, line, rate_text)
    if currency == reporting_currency and rate != 1:
        raise _refused(path, line, f"{currency} is the reporting currency: its rate can only be 1, got {rate_text}")
    return Rate(line, day, currency, rate)


def _parse_rate(path: Path, line: int, text: str) -> Decimal:
    if not _RATE.fullmatch(text):
        lowered = text.lower().lstrip("+-")
        if lowered in ("nan", "snan", "inf", "infinity"):
            reason = "is not a number"
        elif text.startswith("-") and _RATE.fullmatch(text[1:]):
            reason = "must be positive"
        else:
            reason = "is not a decimal number such as 1.0825 (digits, one '.', no sign or exponent)"
        raise _refused(path, line, f"rate {text!r} {reason}")
    rate = Decimal(text)
    if rate == 0:
        raise _refused(path, line, f"rate {text!r} must be positive")
    if -rate.normalize().as_tuple().exponent > DECIMALS:  # type: ignore[operator]
        raise _refused(path, line, f"rate {text!r} has more than {DECIMALS} decimal places")
    if not MIN_RATE <= rate <= MAX_RATE:
        raise _refused(path, line, f"rate {text!r} is outside {MIN_RATE} to {MAX_RATE:,}: a typo?")
    return rate.quantize(Decimal(1).scaleb(-DECIMALS))


def _refused(path: Path, line: int, reason: str) -> RatesError:
    return RatesError(f"exchange rates {path} (LEDGER_EXCHANGE_RATES) line {line}: {reason}")
