"""The figures behind `ledger report`: set-based SQL over the read models, one query a chart.

Every query reads aggregates only (counts, sums, rates): the report holds no customer's name,
address or comment, so it can be mailed around. Event-time data is cut at the report's T, so
a report "as of" a past time does not show what happened after it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import duckdb

from ledger.errors import ReadModelError
from ledger.projection.readmodels import naive_utc

STAGES = ("prospect", "new", "active", "reactivated", "at_risk", "churned", "erased")

QUERIES: dict[str, str] = {
    "churn_bands": """
        SELECT band, count(*) AS customers, avg(score) AS mean_score, max(model_version) AS model_version,
               max(as_of) AS as_of
        FROM churn_risk GROUP BY band ORDER BY min(score) DESC
    """,
    "basket_pairs": """
        SELECT sku, with_sku, lift, confidence, orders_together FROM basket_pairs
        WHERE sku < with_sku ORDER BY lift DESC, sku, with_sku LIMIT 10
    """,
    "clusters": "SELECT cluster, customers, description, as_of FROM clusters ORDER BY cluster",
    "stages": """
        SELECT stage, count(*) AS customers FROM lifecycle GROUP BY stage
    """,
    "transitions": """
        SELECT date_trunc('month', "at")::DATE AS month, to_stage, count(*) AS customers
        FROM lifecycle_transitions WHERE "at" <= getvariable('t') AND from_stage IS NOT NULL
        GROUP BY ALL ORDER BY ALL
    """,
    "satisfaction": """
        SELECT date_trunc('month', day)::DATE AS month, channel,
               sum(csat_responses) AS csat_responses,
               100.0 * sum(csat_satisfied) / nullif(sum(csat_responses), 0) AS csat_pct,
               sum(nps_responses) AS nps_responses,
               100.0 * (sum(nps_promoters) - sum(nps_detractors)) / nullif(sum(nps_responses), 0) AS nps,
               sum(ces_responses) AS ces_responses,
               sum(ces_sum) / nullif(sum(ces_responses), 0) AS ces_avg,
               sum(contacts) AS contacts, sum(complaints) AS complaints
        FROM satisfaction_daily WHERE day <= getvariable('t')::DATE
        GROUP BY ALL ORDER BY ALL
    """,
    "complaints": """
        SELECT date_trunc('month', day)::DATE AS month, sum(contacts) AS contacts, sum(complaints) AS complaints,
               sum(complaints) / nullif(sum(contacts), 0) AS complaint_rate
        FROM satisfaction_daily WHERE day <= getvariable('t')::DATE GROUP BY ALL ORDER BY ALL
    """,
    "segment_sizes": """
        WITH times AS (
            SELECT DISTINCT joined_at AS t FROM segment_membership WHERE joined_at <= getvariable('t')
            UNION SELECT left_at FROM segment_membership WHERE left_at <= getvariable('t')
        )
        SELECT times.t AS "at", s.segment,
               count(m.customer_id) FILTER (m.joined_at <= times.t AND (m.left_at IS NULL OR m.left_at > times.t))
                   AS members
        FROM times CROSS JOIN segments s LEFT JOIN segment_membership m USING (segment)
        GROUP BY ALL ORDER BY ALL
    """,
    "rfm_grid": """
        SELECT r_score, fm_score, any_value(segment) AS segment, count(*) AS customers
        FROM rfm WHERE r_score IS NOT NULL AND fm_score IS NOT NULL GROUP BY ALL ORDER BY ALL
    """,
    "money": """
        SELECT date_trunc('month', occurred_at)::DATE AS month, currency,
               coalesce(sum(total_minor) FILTER (event_type = 'PurchaseMade'), 0) AS revenue_minor,
               coalesce(sum(amount_minor) FILTER (event_type = 'PurchaseRefunded'), 0) AS refunds_minor
        FROM facts
        WHERE event_type IN ('PurchaseMade', 'PurchaseRefunded') AND occurred_at <= getvariable('t')
        GROUP BY ALL ORDER BY ALL
    """,
    "money_reporting": """
        SELECT date_trunc('month', purchased_at)::DATE AS month, any_value(reporting_currency) AS currency,
               coalesce(sum(total_reporting_minor), 0) AS revenue_minor,
               coalesce(sum(total_reporting_minor - net_reporting_minor), 0) AS refunds_minor,
               count(*) FILTER (total_reporting_minor IS NULL) AS unconverted_orders
        FROM orders WHERE purchased_at <= getvariable('t')
        GROUP BY ALL ORDER BY ALL
    """,
    "cohorts": """
        WITH bought AS (
            SELECT customer_id, date_trunc('month', purchased_at)::DATE AS month
            FROM orders WHERE NOT fully_refunded AND purchased_at <= getvariable('t')
        ), cohort AS (
            SELECT customer_id, min(month) AS cohort FROM bought GROUP BY customer_id
        ), sizes AS (
            SELECT cohort, count(*) AS customers FROM cohort GROUP BY cohort
        )
        SELECT c.cohort, datediff('month', c.cohort, b.month) AS months_after, any_value(s.customers) AS cohort_size,
               count(DISTINCT b.customer_id) AS active,
               count(DISTINCT b.customer_id) / any_value(s.customers) AS retention
        FROM cohort c JOIN bought b USING (customer_id) JOIN sizes s USING (cohort)
        GROUP BY ALL ORDER BY ALL
    """,
}


TOTALS = """
    SELECT (SELECT count(*) FROM lifecycle), (SELECT count(*) FROM events WHERE occurred_at <= getvariable('t')),
           (SELECT count(*) FROM orders)
"""


@dataclass(frozen=True)
class ReportData:
    as_of: datetime
    published_at: str | None
    positions: list[tuple[str, str, int]]
    totals: dict[str, int]
    tables: dict[str, list[dict[str, Any]]]


def gather(con: duckdb.DuckDBPyConnection, as_of: datetime | None) -> ReportData:
    """Run every query at T: `as_of`, or the T of the models' last refresh."""
    state = dict(con.execute("SELECT key, value FROM projector_state").fetchall())
    when = as_of or (datetime.fromisoformat(state["as_of"]) if "as_of" in state else datetime.now(UTC))
    con.execute("SET VARIABLE t = ?::TIMESTAMP", [naive_utc(when)])
    tables = {}
    try:
        for name, sql in QUERIES.items():
            result = con.execute(sql)
            columns = [d[0] for d in result.description]
            tables[name] = [dict(zip(columns, row, strict=True)) for row in result.fetchall()]
        counts = con.execute(TOTALS).fetchone() or (0, 0, 0)
        positions = con.execute("SELECT source, key, position FROM projector_positions ORDER BY 1, 2").fetchall()
    except duckdb.Error as exc:
        raise ReadModelError(f"cannot read the read models for the report: {exc}") from exc
    totals = dict(zip(("customers", "events", "orders"), counts, strict=True))
    return ReportData(when, state.get("published_at"), positions, totals, tables)
