"""`ledger report` writes one HTML file that a real browser (headless Chromium) opens offline,
with every chart drawn, no console error, no request beyond the file, and no personal data."""

from __future__ import annotations

import json
import re
from pathlib import Path

import duckdb
import pytest

from ledger.cli.main import app
from ledger.ops.report import CHARTS
from tests.support.browser import visit, wait_for_charts
from tests.support.cli import StrictRunner


def ledger(*args: str):
    return StrictRunner().invoke(app, list(args))


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("report") / "data"
    result = ledger("demo", "--customers", "80", "--seed", "11", "--data-dir", str(data))
    assert result.exit_code == 0, result.output
    for kind in ("churn", "basket", "clusters"):
        result = ledger("insight", kind, "--data-dir", str(data))
        assert result.exit_code == 0, result.output
    return data


def published(data: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(data / "readmodels.published.duckdb"), read_only=True) as con:
        return con.execute(sql).fetchall()


def test_every_chart_renders_in_a_real_browser_with_no_error_and_nothing_fetched(data: Path, tmp_path: Path) -> None:
    target = tmp_path / "report.html"
    result = ledger("report", "--to", str(target), "--data-dir", str(data))
    assert result.exit_code == 0, result.output
    with visit(target) as seen:
        assert wait_for_charts(seen, len(CHARTS)) == len(CHARTS)
        drawn = seen.page.evaluate(
            "[...document.querySelectorAll('.js-plotly-plot')].map(d => d.querySelectorAll('.main-svg').length)"
        )
        titles = seen.page.evaluate("[...document.querySelectorAll('section.chart h2')].map(h => h.textContent)")
    assert all(n > 0 for n in drawn), drawn
    page = target.read_text(encoding="utf-8")
    strongest = published(data, "SELECT sku, with_sku FROM basket_pairs WHERE sku < with_sku "
                                "ORDER BY lift DESC LIMIT 1")
    assert f"{strongest[0][0]} + {strongest[0][1]}" in page  # the insight chart holds the latest run
    assert "Cohort retention" in titles and "NPS by month and channel" in titles and "Insight" in titles
    assert seen.errors == []
    assert {url.split(":", 1)[0] for url in seen.requests} <= {"file", "data", "blob"}


def test_the_report_holds_no_personal_data(data: Path, tmp_path: Path) -> None:
    target = tmp_path / "report.html"
    assert ledger("report", "--to", str(target), "--data-dir", str(data)).exit_code == 0
    page = target.read_text(encoding="utf-8")
    personal = published(data, "SELECT name, email, phone FROM customer_profile WHERE name IS NOT NULL")
    assert personal
    for values in personal:
        for value in values:
            if value:
                assert value not in page


def test_a_report_as_of_a_past_time_leaves_out_what_came_after(data: Path, tmp_path: Path) -> None:
    (cut,) = published(data, "SELECT min(occurred_at) + (max(occurred_at) - min(occurred_at)) / 2 FROM events")[0]
    target = tmp_path / "past.html"
    result = ledger("report", "--to", str(target), "--as-of", cut.isoformat() + "Z", "--data-dir", str(data))
    assert result.exit_code == 0, result.output
    (before,) = published(data, f"SELECT count(*) FROM events WHERE occurred_at <= '{cut.isoformat()}'")[0]
    (everything,) = published(data, "SELECT count(*) FROM events")[0]
    assert before < everything
    meta = re.search(r'<p class="meta">(.*?)</p>', target.read_text(encoding="utf-8"), re.DOTALL).group(1)
    assert f"{before:,} events" in meta
    months = json.dumps(cut.strftime("%Y-%m"))[1:-1]
    assert months in target.read_text(encoding="utf-8")


def test_a_ledger_with_one_customer_still_gives_a_report_that_renders(tmp_path: Path) -> None:
    data = tmp_path / "data"
    fact = {"type": "ContactLogged", "customer_id": "<b>C1</b>", "occurred_at": "2026-01-05T10:00:00Z",
            "source": "desk", "contact_id": "k1", "channel": "phone", "direction": "inbound"}
    assert ledger("record", json.dumps(fact), "--data-dir", str(data)).exit_code == 0
    target = tmp_path / "small.html"
    assert ledger("report", "--to", str(target), "--data-dir", str(data)).exit_code == 0
    with visit(target) as seen:
        assert wait_for_charts(seen, len(CHARTS)) == len(CHARTS)
    assert seen.errors == []


def test_a_report_needs_read_models_and_a_file_outside_the_data_directory(data: Path, tmp_path: Path) -> None:
    empty = ledger("report", "--to", str(tmp_path / "r.html"), "--data-dir", str(tmp_path / "none"))
    assert empty.exit_code == 1 and "no read models" in empty.stderr
    inside = ledger("report", "--to", str(data / "r.html"), "--data-dir", str(data))
    assert inside.exit_code == 2 and "data directory" in inside.stderr
    folder = ledger("report", "--to", str(tmp_path), "--data-dir", str(data))
    assert folder.exit_code == 2 and "is a directory" in folder.stderr
    assert not (data / "r.html").exists()
