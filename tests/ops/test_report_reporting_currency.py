"""The report gives revenue in the reporting currency too: orders converted at the rate of
their purchase date, with the orders that had no rate counted rather than added as 0."""

from __future__ import annotations

from pathlib import Path

from ledger.ops.report import render
from ledger.ops.report_data import gather
from ledger.settings import Settings
from tests.support.facts import DAY, T0, buy, fact
from tests.support.readmodels import Harness


def test_revenue_by_month_is_given_in_the_reporting_currency_with_unconverted_orders_counted(tmp_path: Path) -> None:
    rates = tmp_path / "rates.csv"
    rates.write_text("date,currency,rate\n2026-01-01,USD,0.9\n2026-01-01,JPY,0.0062\n", encoding="utf-8")
    h = Harness(tmp_path, Settings(data_dir=tmp_path / "data", exchange_rates=rates))
    try:
        h.record(
            buy("C1", T0 + DAY, currency="EUR", total_minor=1000),
            buy("C2", T0 + 2 * DAY, currency="USD", total_minor=1000, order_id="U"),
            fact("PurchaseRefunded", "C2", T0 + 40 * DAY, currency="USD", amount_minor=500, order_id="U"),
            buy("C3", T0 + 3 * DAY, currency="JPY", total_minor=10_000),
            buy("C4", T0 + 4 * DAY, currency="GBP", total_minor=999),
            buy("C5", T0 + 33 * DAY, currency="EUR", total_minor=250),
        )
        h.project(T0 + 60 * DAY)
        data = gather(h.models.con, T0 + 60 * DAY)
        months = [(str(r["month"]), r["currency"], r["revenue_minor"], r["refunds_minor"], r["unconverted_orders"])
                  for r in data.tables["money_reporting"]]
        assert months == [("2026-01-01", "EUR", 1000 + 900 + 6200, 450, 1), ("2026-02-01", "EUR", 250, 0, 0)]
        assert "Revenue in EUR by month" in render(data)
    finally:
        h.close()
