"""The exchange-rates file is read strictly: anything that is not a clean rate is refused with
its line and the reason, and nothing of the file is used."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from ledger.contract.currencies import minor_unit_exponent
from ledger.contract.rules import CURRENCIES
from ledger.errors import RatesError, SettingsError
from ledger.projection import rates
from ledger.projection.rates import RatesSource, read_rates


def written(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / "rates.csv"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def test_a_clean_file_gives_exact_decimal_rates_with_their_lines(tmp_path: Path) -> None:
    path = written(tmp_path, "\ufeffdate,currency,rate\r\n2026-01-01,USD,0.9\r\n\r\n2026-02-01, USD ,1.000000000001\r\n"
                             "2026-01-01,EUR,1\r\n")
    got = read_rates(path, "EUR")
    assert [(r.line, r.valid_from, r.currency, r.rate) for r in got] == [
        (2, date(2026, 1, 1), "USD", Decimal("0.9")),
        (4, date(2026, 2, 1), "USD", Decimal("1.000000000001")),
        (5, date(2026, 1, 1), "EUR", Decimal(1)),
    ]


def test_a_file_with_only_its_header_has_no_rates(tmp_path: Path) -> None:
    assert read_rates(written(tmp_path, "date,currency,rate\n"), "EUR") == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "line 1: the first line must be the header 'date,currency,rate'"),
        ("currency,date,rate\n", "line 1: the first line must be the header"),
        ("date,currency,rate\n2026-01-01,USD\n", "line 2: expected 3 fields"),
        ("date,currency,rate\n2026-01-01,USD,0.9,x\n", "line 2: expected 3 fields"),
        ("date,currency,rate\n01/02/2026,USD,0.9\n", "line 2: date '01/02/2026' is not a date YYYY-MM-DD"),
        ("date,currency,rate\n20260101,USD,0.9\n", "line 2: date '20260101' is not a date YYYY-MM-DD"),
        ("date,currency,rate\n2026-02-30,USD,0.9\n", "line 2: date '2026-02-30' is not a date"),
        ("date,currency,rate\n2026-01-01,usd,0.9\n", r"line 2: currency 'usd' is not an ISO 4217 code \(codes are"),
        ("date,currency,rate\n2026-01-01,XYZ,0.9\n", "line 2: currency 'XYZ' is not an ISO 4217 code"),
        ("date,currency,rate\n2026-01-01,USD,0\n", "line 2: rate '0' must be positive"),
        ("date,currency,rate\n2026-01-01,USD,-0.9\n", "line 2: rate '-0.9' must be positive"),
        ("date,currency,rate\n2026-01-01,USD,NaN\n", "line 2: rate 'NaN' is not a number"),
        ("date,currency,rate\n2026-01-01,USD,Infinity\n", "line 2: rate 'Infinity' is not a number"),
        ("date,currency,rate\n2026-01-01,USD,abc\n", "line 2: rate 'abc' is not a decimal number"),
        ("date,currency,rate\n2026-01-01,USD,9e-1\n", "line 2: rate '9e-1' is not a decimal number"),
        ("date,currency,rate\n2026-01-01,USD,0,9\n", "line 2: expected 3 fields"),
        ("date,currency,rate\n2026-01-01,USD,1_000\n", "line 2: rate '1_000' is not a decimal number"),
        ("date,currency,rate\n2026-01-01,USD,0.0000000000001\n", "line 2: rate '0.0000000000001' has more than 12"),
        ("date,currency,rate\n2026-01-01,USD,0.0000000001\n", "line 2: rate '0.0000000001' is outside"),
        ("date,currency,rate\n2026-01-01,USD,1000000001\n", "line 2: rate '1000000001' is outside"),
        ("date,currency,rate\n2026-01-01,USD,0.9\n2026-01-01,USD,0.91\n",
         r"line 3: a second rate for USD from 2026-01-01 \(the first is on line 2\)"),
        ("date,currency,rate\n2026-01-01,EUR,1.01\n", "line 2: EUR is the reporting currency: its rate can only be 1"),
        ("date,currency,rate\n2026-01-01,USD,\"0.9\n", "not valid CSV"),
        (b"date,currency,rate\n2026-01-01,USD,0.9\n2026-01-01,CNY,\xff\n", "line 3: not UTF-8 text"),
    ],
)
def test_a_bad_file_is_refused_naming_the_line_and_the_reason(tmp_path: Path, text: str | bytes, message: str) -> None:
    path = written(tmp_path, text)
    with pytest.raises(RatesError, match=message) as refused:
        read_rates(path, "EUR")
    assert str(path) in str(refused.value)
    assert isinstance(refused.value, SettingsError)  # shown by the CLI as a message, exit code 2


def test_a_huge_file_is_refused_before_it_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rates, "MAX_BYTES", 100)
    path = written(tmp_path, "date,currency,rate\n" + "2026-01-01,USD,0.9\n" * 10)
    with pytest.raises(RatesError, match="more than the 0 MiB a rates file may have"):
        read_rates(path, "EUR")


def test_a_file_with_too_many_rates_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rates, "MAX_RATES", 2)
    path = written(tmp_path, "date,currency,rate\n2026-01-01,USD,0.9\n2026-01-02,USD,0.9\n2026-01-03,USD,0.9\n")
    with pytest.raises(RatesError, match="line 4: more than 2 rates"):
        read_rates(path, "EUR")


def test_a_missing_file_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(RatesError, match=r"cannot read the exchange rates .*nowhere.csv \(LEDGER_EXCHANGE_RATES\)"):
        RatesSource(tmp_path / "nowhere.csv", "EUR").table()


def test_a_changed_file_is_read_again(tmp_path: Path) -> None:
    path = written(tmp_path, "date,currency,rate\n2026-01-01,USD,0.9\n")
    source = RatesSource(path, "EUR")
    assert source.table().column("rate").to_pylist() == [Decimal("0.9")]
    written(tmp_path, "date,currency,rate\n2026-01-01,USD,0.85\n2026-01-01,GBP,1.15\n")
    assert source.table().column("rate").to_pylist() == [Decimal("0.85"), Decimal("1.15")]


@pytest.mark.parametrize(("code", "exponent"), [("JPY", 0), ("EUR", 2), ("USD", 2), ("BHD", 3), ("KWD", 3),
                                                 ("CLF", 4), ("BGN", 2)])
def test_minor_units_follow_iso_4217(code: str, exponent: int) -> None:
    assert minor_unit_exponent(code) == exponent


def test_every_currency_the_ledger_accepts_has_a_minor_unit() -> None:
    assert {code for code in CURRENCIES if minor_unit_exponent(code) is None} == set()
    assert minor_unit_exponent("XAU") is None and minor_unit_exponent("ABC") is None
