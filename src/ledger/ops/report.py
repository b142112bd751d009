"""`ledger report`: one self-contained HTML file of charts over the read models.

Plotly draws the charts; its JavaScript is inlined once, so the file opens offline, from an
e-mail or a shared drive, with nothing fetched. Every label that comes from data (a channel,
a segment's name) is escaped, since Plotly reads a little HTML in labels.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ledger.contract.currencies import minor_unit_exponent
from ledger.ops.report_data import STAGES, ReportData, gather
from ledger.projection.answers import output_file
from ledger.projection.query import open_for_reading, published, snapshot
from ledger.settings import Settings


def _label(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _major(amount: int, currency: str) -> float:
    """`amount` minor units in major units (ISO 4217's minor unit; 2 decimals if it has none)."""
    exponent = minor_unit_exponent(currency)
    return amount / 10 ** (2 if exponent is None else exponent)


Chart = tuple[str, str, Any]
"""(title, what it shows, a Plotly figure)."""


def _funnel(data: ReportData) -> Chart:
    import plotly.graph_objects as go

    counts = {r["stage"]: r["customers"] for r in data.tables["stages"]}
    stages = [s for s in STAGES if s in counts] + sorted(set(counts) - set(STAGES))
    figure = go.Figure(go.Funnel(y=[_label(s) for s in stages], x=[counts[s] for s in stages],
                                 textinfo="value+percent total"))
    return "Lifecycle stages", "Customers in each lifecycle stage at T.", figure


def _transitions(data: ReportData) -> Chart:
    import plotly.graph_objects as go

    figure = go.Figure(layout={"barmode": "stack"})
    for stage in sorted({r["to_stage"] for r in data.tables["transitions"]}):
        rows = [r for r in data.tables["transitions"] if r["to_stage"] == stage]
        figure.add_bar(x=[r["month"] for r in rows], y=[r["customers"] for r in rows], name=_label(stage))
    return "Lifecycle transitions by month", "Customers entering each stage, by month of the transition.", figure


def _by_channel(data: ReportData, value: str, count: str, title: str, what: str, axis: str) -> Chart:
    import plotly.graph_objects as go

    figure = go.Figure(layout={"yaxis": {"title": {"text": axis}}})
    rows = [r for r in data.tables["satisfaction"] if r[count]]
    for channel in sorted({r["channel"] for r in rows}):
        mine = [r for r in rows if r["channel"] == channel]
        figure.add_scatter(
            x=[r["month"] for r in mine], y=[r[value] for r in mine], name=_label(channel), mode="lines+markers",
            customdata=[r[count] for r in mine], hovertemplate="%{y:.1f} from %{customdata} responses",
        )
    return title, what, figure


def _complaints(data: ReportData) -> Chart:
    import plotly.graph_objects as go

    rows = data.tables["complaints"]
    figure = go.Figure(go.Scatter(
        x=[r["month"] for r in rows], y=[100 * (r["complaint_rate"] or 0) for r in rows], mode="lines+markers",
        customdata=[[r["complaints"], r["contacts"]] for r in rows],
        hovertemplate="%{y:.1f}%: %{customdata[0]} of %{customdata[1]} contacts",
    ), layout={"yaxis": {"title": {"text": "% of contacts"}}})
    return "Complaint rate by month", "Share of contacts that were complaints.", figure


def _segments(data: ReportData) -> Chart:
    import plotly.graph_objects as go

    figure = go.Figure()
    rows = data.tables["segment_sizes"]
    if len({r["at"] for r in rows}) <= 1:  # one refresh (a replay, say): sizes now, as bars
        figure.add_bar(x=[_label(r["segment"]) for r in rows], y=[r["members"] for r in rows])
    for segment in sorted({r["segment"] for r in rows}) if figure.data == () else ():
        mine = [r for r in rows if r["segment"] == segment]
        figure.add_scatter(x=[r["at"] for r in mine], y=[r["members"] for r in mine], name=_label(segment),
                           mode="lines+markers", line={"shape": "hv"})
    return ("Segment sizes over time", "Members of each segment at each refresh of the read models "
            "(membership history is kept at the first of each month and the last refresh).", figure)


def _rfm(data: ReportData) -> Chart:
    import plotly.graph_objects as go

    cells = {(r["r_score"], r["fm_score"]): r for r in data.tables["rfm_grid"]}
    scores = [1, 2, 3, 4, 5]
    z = [[cells.get((r, fm), {}).get("customers", 0) for fm in scores] for r in scores]
    text = [[_label(cells.get((r, fm), {}).get("segment") or "") for fm in scores] for r in scores]
    figure = go.Figure(go.Heatmap(
        z=z, x=scores, y=scores, text=text, texttemplate="%{text}<br>%{z}", colorscale="Blues",
        hovertemplate="R %{y}, FM %{x}: %{z} customers (%{text})<extra></extra>",
    ), layout={"xaxis": {"title": {"text": "FM score"}}, "yaxis": {"title": {"text": "R score"}}})
    return "RFM grid", "Profiled customers by recency score and frequency-monetary score, with their segment.", figure


def _money(data: ReportData) -> Chart:
    import plotly.graph_objects as go

    figure = go.Figure(layout={"barmode": "relative", "yaxis": {"title": {"text": "major units"}}})
    rows = data.tables["money"]
    for currency in sorted({r["currency"] for r in rows}):
        mine = [r for r in rows if r["currency"] == currency]
        months = [r["month"] for r in mine]
        figure.add_bar(x=months, y=[_major(int(r["revenue_minor"]), currency) for r in mine],
                       name=f"revenue {_label(currency)}")
        figure.add_bar(x=months, y=[-_major(int(r["refunds_minor"]), currency) for r in mine],
                       name=f"refunds {_label(currency)}")
    return ("Revenue and refunds by month", "Purchases (up) and refunds (down) per currency, by month of the "
            "event; currencies are never added together.", figure)


def _money_reporting(data: ReportData) -> Chart:
    import plotly.graph_objects as go

    rows = data.tables["money_reporting"]
    currency = rows[0]["currency"] if rows else "the reporting currency"
    figure = go.Figure(layout={"barmode": "relative", "yaxis": {"title": {"text": f"{_label(currency)}"}}})
    months = [r["month"] for r in rows]
    figure.add_bar(x=months, y=[_major(int(r["revenue_minor"]), currency) for r in rows], name="revenue")
    figure.add_bar(x=months, y=[-_major(int(r["refunds_minor"]), currency) for r in rows], name="refunds")
    figure.add_scatter(x=months, y=[r["unconverted_orders"] for r in rows], name="orders without a rate",
                       yaxis="y2", mode="lines+markers")
    figure.update_layout(yaxis2={"overlaying": "y", "side": "right", "title": {"text": "orders"},
                                 "rangemode": "tozero"})
    return (f"Revenue in {currency} by month", "Every order in the reporting currency, converted at the rate of its "
            "purchase date (setting exchange_rates), by month of purchase; its refunds are counted in the month it "
            "was bought. Orders without a rate are left out and counted on the right.", figure)


def _cohorts(data: ReportData) -> Chart:
    import plotly.graph_objects as go

    rows = data.tables["cohorts"]
    cohorts = sorted({r["cohort"] for r in rows})
    longest = max((r["months_after"] for r in rows), default=0)
    cells = {(r["cohort"], r["months_after"]): r for r in rows}
    z = [[100 * cells[(c, k)]["retention"] if (c, k) in cells else None for k in range(longest + 1)] for c in cohorts]
    figure = go.Figure(go.Heatmap(
        z=z, x=list(range(longest + 1)), y=[c.isoformat() for c in cohorts], colorscale="Greens",
        hovertemplate="cohort %{y}, month %{x}: %{z:.0f}% bought<extra></extra>",
    ), layout={"xaxis": {"title": {"text": "months after the first purchase"}}})
    return ("Cohort retention", "Of the customers whose first purchase was in a month, the share who bought "
            "again k months later.", figure)


def _insight(data: ReportData) -> Chart:
    """The latest insight runs (`ledger insight`): churn bands, pairs bought together, clusters."""
    from plotly.subplots import make_subplots

    figure = make_subplots(rows=1, cols=3, subplot_titles=("Churn risk", "Bought together (lift)", "Clusters"))
    bands, pairs, groups = data.tables["churn_bands"], data.tables["basket_pairs"], data.tables["clusters"]
    figure.add_bar(x=[_label(b["band"]) for b in bands], y=[b["customers"] for b in bands], row=1, col=1,
                   name="customers", hovertemplate="%{x}: %{y} customers<extra></extra>")
    figure.add_bar(y=[f"{_label(p['sku'])} + {_label(p['with_sku'])}" for p in pairs], x=[p["lift"] for p in pairs],
                   orientation="h", row=1, col=2, name="lift")
    figure.add_bar(x=[f"{g['cluster']}" for g in groups], y=[g["customers"] for g in groups], row=1, col=3,
                   name="customers", hovertext=[_label(g["description"]) for g in groups])
    figure.update_layout(showlegend=False)
    runs = [r["as_of"] for r in bands[:1] + groups[:1]]
    when = f" (as of {_label(min(runs))})" if runs else ""
    what = ("Customers by churn risk band, the item pairs with the highest lift, and the size of each behavioural "
            f"cluster, from the latest `ledger insight` runs made as of the report's time or before{when}; empty "
            "until they are run (docs/insight.md).")
    return "Insight", what, figure


CHARTS: list[Callable[[ReportData], Chart]] = [
    _funnel, _transitions,
    lambda d: _by_channel(d, "csat_pct", "csat_responses", "CSAT by month and channel",
                          "Share of CSAT answers of 4 or 5.", "% satisfied"),
    lambda d: _by_channel(d, "nps", "nps_responses", "NPS by month and channel",
                          "Promoters minus detractors, as a share of NPS answers.", "NPS"),
    lambda d: _by_channel(d, "ces_avg", "ces_responses", "CES by month and channel",
                          "Average customer effort score (1 = easy, 7 = hard).", "average CES"),
    _complaints, _segments, _rfm, _money, _money_reporting, _cohorts, _insight,
]


def render(data: ReportData) -> str:
    """The whole report as one HTML document."""
    from plotly.offline import get_plotlyjs

    sections = []
    for number, make in enumerate(CHARTS, 1):
        title, what, figure = make(data)
        figure.update_layout(margin={"t": 30, "b": 40, "l": 60, "r": 20}, height=380, template="plotly_white")
        body = figure.to_html(full_html=False, include_plotlyjs=False, div_id=f"chart-{number}",
                              config={"displaylogo": False, "responsive": True})
        sections.append(f'<section class="chart"><h2>{html.escape(title)}</h2><p>{html.escape(what)}</p>{body}'
                        "</section>")
    positions = ", ".join(f"{_label(s)} {_label(k)} at {p}" for s, k, p in data.positions) or "none"
    totals = " · ".join(f"{v:,} {k}" for k, v in data.totals.items())
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Customer ledger report as of {_label(data.as_of.isoformat())}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{font-family:system-ui,sans-serif;margin:2rem auto;max-width:1100px;color:#222}}
section.chart{{margin:2rem 0}} h2{{margin-bottom:.2rem}} p{{margin-top:0;color:#555}} .meta{{color:#555}}</style>
<script>{get_plotlyjs()}</script></head>
<body><h1>Customer ledger report</h1>
<p class="meta">As of {_label(data.as_of.isoformat())} (UTC) · {totals} · read models published
{_label(data.published_at or "never")} · positions: {positions}. Aggregates only: no personal data.</p>
{"".join(sections)}
</body></html>
"""


def report(
    settings: Settings, target: Path, as_of: datetime | None = None, known_at: datetime | None = None
) -> Path:
    """Write the report of the published read models (as of the event time `as_of`, or as
    known at `known_at`, if given) to `target`, whole or not at all; return its path."""
    with output_file(target, settings.data_dir, "--to") as scratch:  # checked before the work
        with snapshot(published(settings), as_of, settings, known_at) as readable:
            con = open_for_reading(readable)
            try:
                data = gather(con, as_of or known_at)
            finally:
                con.close()
        scratch.write_text(render(data), encoding="utf-8")
    return target.expanduser().absolute()


def default_target() -> Path:
    return Path(f"ledger-report-{datetime.now(UTC):%Y-%m-%d}.html")
