"""Exchange rates: with a rates file, orders in CNY, USD or JPY are converted into the reporting
currency at the rate of their purchase date, with each currency's minor unit, so that RFM
scores them like EUR ones; an order with no rate is left unconverted and counted; without a
file nothing changes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from decimal import Decimal, localcontext
from pathlib import Path

import pytest

from ledger.cli.main import app
from ledger.errors import RatesError
from ledger.projection.engine import Projector
from ledger.projection.readmodels import ReadModels
from ledger.settings import Settings
from ledger.write.log import NotificationLogSource
from tests.projection.tables import snapshot
from tests.support.cli import StrictRunner
from tests.support.facts import DAY, T0, buy, consent, fact, naive
from tests.support.readmodels import Harness

AS_OF = T0 + 100 * DAY
RATES = """date,currency,rate
2026-01-01,CNY,0.125
2026-01-01,USD,0.9
2026-01-01,JPY,0.0062
2026-01-01,BHD,2.45
"""


def harness(tmp_path: Path, rates: str | None) -> Harness:
    path = None
    if rates is not None:
        path = tmp_path / "rates.csv"
        path.write_text(rates, encoding="utf-8")
    return Harness(tmp_path, Settings(data_dir=tmp_path / "data", exchange_rates=path))


@pytest.fixture
def h(tmp_path: Path) -> Iterator[Harness]:
    harness_ = harness(tmp_path, RATES)
    yield harness_
    harness_.close()


def order(h: Harness, customer_id: str) -> tuple:
    return h.rows(
        "SELECT currency, total_minor, rate, rate_from, total_reporting_minor, net_reporting_minor "
        "FROM orders WHERE customer_id = ?", customer_id)[0]


def rfm(h: Harness, customer_id: str) -> tuple:
    return h.rows(
        "SELECT monetary, currency, other_currency_orders, monetary_by_currency, m_score FROM rfm "
        "WHERE customer_id = ?", customer_id)[0]


def test_amounts_are_converted_with_each_currencys_minor_unit(h: Harness) -> None:
    h.record(
        buy("JP", T0 + DAY, currency="JPY", total_minor=1000),  # 1,000 yen, no minor unit
        buy("BH", T0 + DAY, currency="BHD", total_minor=1000),  # 1.000 dinar, 1,000 fils
        buy("EU", T0 + DAY, currency="EUR", total_minor=1234),
    )
    h.project(AS_OF)
    assert order(h, "JP") == ("JPY", 1000, Decimal("0.0062"), date(2026, 1, 1), 620, 620)
    assert order(h, "BH") == ("BHD", 1000, Decimal("2.45"), date(2026, 1, 1), 245, 245)
    assert order(h, "EU") == ("EUR", 1234, Decimal(1), None, 1234, 1234)


def test_conversion_rounds_half_to_even_to_whole_reporting_minor_units(h: Harness) -> None:
    # 0.125 EUR per CNY: 1 fen is 0.125 cent, 4 fen 0.5 cent, 12 fen 1.5 cents, 20 fen 2.5 cents.
    h.record(*(buy(f"C{n}", T0 + DAY, currency="CNY", total_minor=n) for n in (1, 4, 12, 20)))
    h.project(AS_OF)
    got = dict(h.rows("SELECT total_minor, total_reporting_minor FROM orders"))
    assert got == {1: 0, 4: 0, 12: 2, 20: 2}


def test_the_largest_order_a_bigint_holds_converts_exactly_without_overflow(tmp_path: Path) -> None:
    biggest = 2**63 - 1
    rates = "date,currency,rate\n2026-01-01,CLF,999999999.999999999999\n"
    h = harness(tmp_path, rates)
    try:
        h.record(buy("C1", T0 + DAY, currency="CLF", total_minor=biggest))
        h.project(AS_OF)
        # CLF has 4 decimals, EUR 2: one CLF minor unit is rate / 100 cents.
        with localcontext(prec=60):  # exact: the product has 40 digits
            expected = (Decimal(biggest) * Decimal("999999999.999999999999") / 100).to_integral_value()
        assert h.rows("SELECT total_reporting_minor FROM orders") == [(int(expected),)]
    finally:
        h.close()


def test_a_cny_customer_with_a_large_spend_ranks_above_a_small_eur_spender(h: Harness) -> None:
    h.record(
        consent("CN", T0), buy("CN", AS_OF - 5 * DAY, currency="CNY", total_minor=800_000),  # 8,000 CNY: 1,000 EUR
        consent("US", T0), buy("US", AS_OF - 5 * DAY, currency="USD", total_minor=50_000),  # 500 USD: 450 EUR
        consent("EU", T0), buy("EU", AS_OF - 5 * DAY, currency="EUR", total_minor=2_000),  # 20 EUR
    )
    h.project(AS_OF)
    assert rfm(h, "CN")[:4] == (100_000, "EUR", 0, {"CNY": 800_000})
    assert rfm(h, "US")[:4] == (45_000, "EUR", 0, {"USD": 50_000})
    assert rfm(h, "CN")[4] > rfm(h, "US")[4] > rfm(h, "EU")[4]


def test_an_order_before_the_first_rate_of_its_currency_is_unconverted_and_counted(h: Harness) -> None:
    h.record(
        consent("C1", T0 - 30 * DAY),
        buy("C1", T0 - 10 * DAY, currency="USD", total_minor=10_000),  # before 2026-01-01
        buy("C1", T0 + DAY, currency="USD", total_minor=10_000),
        buy("C1", T0 + DAY, currency="GBP", total_minor=500),  # no GBP rate at all
    )
    h.project(AS_OF)
    converted = h.rows("SELECT currency, rate, net_reporting_minor FROM orders ORDER BY purchased_at, currency")
    assert converted == [("USD", None, None), ("GBP", None, None), ("USD", Decimal("0.9"), 9_000)]
    assert rfm(h, "C1")[:4] == (9_000, "EUR", 2, {"GBP": 500, "USD": 20_000})
    assert h.rows("SELECT net_spend_reporting FROM customer_profile WHERE customer_id = 'C1'") == [(9_000,)]


def test_each_order_uses_the_rate_in_force_on_its_purchase_date(tmp_path: Path) -> None:
    rates = "date,currency,rate\n2026-01-01,USD,0.9\n2026-02-01,USD,0.8\n2026-03-01,USD,0.5\n"
    h = harness(tmp_path, rates)
    try:
        january, february = naive(T0 + 31 * DAY - DAY / 24), naive(T0 + 31 * DAY)  # 23:00 on Jan 31, then Feb 1
        h.record(buy("C1", T0 + 31 * DAY - DAY / 24, currency="USD", total_minor=1000),
                 buy("C1", T0 + 31 * DAY, currency="USD", total_minor=1000))
        h.project(AS_OF)
        got = h.rows("SELECT purchased_at, rate_from, total_reporting_minor FROM orders ORDER BY 1")
        assert got == [(january, date(2026, 1, 1), 900), (february, date(2026, 2, 1), 800)]
    finally:
        h.close()


def test_refunds_are_converted_at_the_purchase_dates_rate_so_a_full_refund_nets_to_zero(tmp_path: Path) -> None:
    rates = "date,currency,rate\n2026-01-01,USD,0.9\n2026-02-01,USD,0.5\n"
    h = harness(tmp_path, rates)
    try:
        h.record(
            buy("C1", T0 + DAY, currency="USD", total_minor=1000, order_id="A"),
            fact("PurchaseRefunded", "C1", T0 + 40 * DAY, currency="USD", amount_minor=400, order_id="A"),
            buy("C1", T0 + DAY, currency="USD", total_minor=1000, order_id="B"),
            fact("PurchaseRefunded", "C1", T0 + 40 * DAY, currency="USD", amount_minor=1000, order_id="B"),
        )
        h.project(AS_OF)
        got = h.rows("SELECT order_id, total_reporting_minor, net_reporting_minor FROM orders ORDER BY 1")
        assert got == [("A", 900, 540), ("B", 900, 0)]
    finally:
        h.close()


def test_without_a_rates_file_only_reporting_currency_orders_count_as_before(tmp_path: Path) -> None:
    h = harness(tmp_path, None)
    try:
        h.record(consent("C1", T0), buy("C1", T0 + DAY, currency="EUR", total_minor=700),
                 buy("C1", T0 + DAY, currency="USD", total_minor=5000))
        h.project(AS_OF)
        assert rfm(h, "C1")[:4] == (700, "EUR", 1, {"EUR": 700, "USD": 5000})
        assert h.rows("SELECT count(*) FROM exchange_rates") == [(0,)]
        assert h.rows("SELECT currency, rate, net_reporting_minor FROM orders ORDER BY 1") == [
            ("EUR", Decimal(1), 700), ("USD", None, None)]
    finally:
        h.close()


def test_the_rates_used_are_in_the_read_models_with_their_line(h: Harness) -> None:
    h.project(AS_OF)
    rows = h.rows("SELECT currency, valid_from, rate, reporting_currency, minor_numerator, minor_denominator, line "
                  "FROM exchange_rates ORDER BY line")
    assert rows[2] == ("JPY", date(2026, 1, 1), Decimal("0.0062"), "EUR", 62 * 10**8 * 100, 10**12, 4)
    assert rows[3] == ("BHD", date(2026, 1, 1), Decimal("2.45"), "EUR", 245 * 10**10, 10**13, 5)


def test_a_replay_with_the_same_events_and_rates_gives_the_same_read_models(h: Harness, tmp_path: Path) -> None:
    h.record(consent("C1", T0), buy("C1", T0 + DAY, currency="CNY", total_minor=12_345),
             buy("C2", T0 + 2 * DAY, currency="JPY", total_minor=777))
    h.project(AS_OF)
    with ReadModels(tmp_path / "again.duckdb", settings=h.settings) as again:
        Projector(again, NotificationLogSource(h.ledger)).catch_up(AS_OF)
        skip = frozenset({"projector_state", "parked_events"})
        assert snapshot(again, without=skip) == snapshot(h.models, without=skip)


def test_a_broken_rates_file_fails_the_refresh_naming_the_line_and_changes_nothing(h: Harness) -> None:
    h.record(buy("C1", T0 + DAY, currency="USD", total_minor=1000))
    h.project(AS_OF)
    assert h.settings.projection.exchange_rates is not None
    h.settings.projection.exchange_rates.write_text(RATES + "2026-02-01,USD,abc\n", encoding="utf-8")
    with pytest.raises(RatesError, match="line 6: rate 'abc' is not a decimal number"):
        h.project(AS_OF + DAY)
    assert order(h, "C1")[4] == 900


def test_ledger_project_shows_a_broken_rates_file_as_one_message_with_exit_code_2(tmp_path: Path) -> None:
    rates = tmp_path / "rates.csv"
    rates.write_text("date,currency,rate\n2026-01-01,USD,nan\n", encoding="utf-8")
    config = tmp_path / "ledger.toml"
    config.write_text(f"[projection]\nexchange_rates = {str(rates)!r}\n", encoding="utf-8")
    data = str(tmp_path / "data")
    result = StrictRunner().invoke(app, ["--config", str(config), "project", "--once", "--data-dir", data])
    assert result.exit_code == 2, result.output
    assert "line 2: rate 'nan' is not a number" in result.output
    assert "Traceback" not in result.output


def test_ledger_status_says_which_rates_the_published_models_were_converted_with(tmp_path: Path) -> None:
    rates = tmp_path / "rates.csv"
    rates.write_text(RATES, encoding="utf-8")
    config = tmp_path / "ledger.toml"
    config.write_text(f"[projection]\nexchange_rates = {str(rates)!r}\n", encoding="utf-8")
    data = str(tmp_path / "data")
    runner = StrictRunner()
    assert runner.invoke(app, ["demo", "--customers", "5", "--seed", "1", "--data-dir", data]).exit_code == 0
    assert runner.invoke(app, ["--config", str(config), "project", "--once", "--data-dir", data]).exit_code == 0
    shown = runner.invoke(app, ["status", "--json", "--data-dir", data])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output)["exchange_rates"] == f"{rates}: 4 rates into EUR"
    assert runner.invoke(app, ["project", "--once", "--data-dir", data]).exit_code == 0
    shown = runner.invoke(app, ["status", "--json", "--data-dir", data])
    assert json.loads(shown.output)["exchange_rates"] == "none: only orders in the reporting currency count"
