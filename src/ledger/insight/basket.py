"""Items bought together (association rules over order lines) and the next best offer.

A pair (sku, with_sku) is kept when the orders holding both are at least `min_support` of all
orders and at least `min_confidence` of the orders holding `sku`; lift is the confidence over
`with_sku`'s own share of orders (above 1: bought together more often than by chance). Orders
are every PurchaseMade by `as_of` of customers not erased (an aggregate, identifying no one).
A profiled customer's offers are the items that go with what they bought, by confidence,
leaving out everything they bought (refunded items included: they were bought), then the most
popular items, up to `offers`. The backtest: of the customers who bought again in the horizon,
how many had an offer in their next order, against offering the most popular items.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import duckdb
import pyarrow as pa

from ledger.insight.population import PROFILED, Result, naive, quiet_days, require_history

METHOD = "basket-rules-1"

MAX_ITEMS = 100
"""Orders with more distinct items than this (a wholesale order, a hostile one) count as orders
but give no pairs: pairs grow with the square of an order's items."""
POPULAR = 50
"""How many of the most popular items are candidates for filling a customer's offers."""

PAIRS_SQL = f"""
WITH items_of AS (  -- the orders filtered first, then unnested (DuckDB unnests before a WHERE beside it)
    SELECT DISTINCT f.event_id AS order_key, l.sku
    FROM (SELECT event_id, lines FROM facts
          WHERE event_type = 'PurchaseMade' AND occurred_at <= $at
            AND customer_id NOT IN (SELECT customer_id FROM customer_profile WHERE erased)) f,
         unnest(f.lines) AS u(l)
),
total AS (SELECT count(DISTINCT order_key) AS orders FROM items_of),
items AS (SELECT sku, count(*) AS orders FROM items_of GROUP BY sku),
baskets AS (  -- a pair is never more frequent than its items: rarer items cannot make one (Apriori)
    SELECT * FROM items_of
    WHERE sku IN (SELECT sku FROM items, total WHERE items.orders / total.orders >= $min_support)
    QUALIFY count(*) OVER (PARTITION BY order_key) <= {MAX_ITEMS}
),
together AS (
    SELECT a.sku, b.sku AS with_sku, count(*) AS orders_together
    FROM baskets a JOIN baskets b ON a.order_key = b.order_key AND a.sku <> b.sku
    GROUP BY a.sku, b.sku
)
SELECT t.sku, t.with_sku, t.orders_together,
       t.orders_together / total.orders AS support,
       t.orders_together / i.orders AS confidence,
       (t.orders_together / i.orders) / (w.orders / total.orders) AS lift
FROM together t, total
JOIN items i ON i.sku = t.sku
JOIN items w ON w.sku = t.with_sku
WHERE t.orders_together / total.orders >= $min_support AND t.orders_together / i.orders >= $min_confidence
ORDER BY t.sku, t.with_sku
"""

OFFERS_SQL = f"""
WITH bought AS (
    SELECT DISTINCT f.customer_id, l.sku
    FROM (SELECT customer_id, lines FROM facts
          WHERE event_type = 'PurchaseMade' AND occurred_at <= $at AND customer_id IN ({PROFILED})) f,
         unnest(f.lines) AS u(l)
),
buyers AS (SELECT DISTINCT customer_id FROM bought),
ruled AS (
    SELECT b.customer_id, p.with_sku AS sku,
           arg_max({{'c': p.confidence, 'why': p.sku, 'lift': p.lift}}, (p.confidence, p.sku)) AS best
    FROM bought b JOIN pairs p ON p.sku = b.sku AND p.lift > 1
    GROUP BY b.customer_id, p.with_sku
),
everyone AS (  -- popularity, like the pairs, counts every customer not erased: an aggregate
    SELECT DISTINCT f.customer_id, l.sku
    FROM (SELECT customer_id, lines FROM facts
          WHERE event_type = 'PurchaseMade' AND occurred_at <= $at
            AND customer_id NOT IN (SELECT customer_id FROM customer_profile WHERE erased)) f,
         unnest(f.lines) AS u(l)
),
popular AS (
    SELECT sku, count(*) / (SELECT count(DISTINCT customer_id) FROM everyone) AS share FROM everyone GROUP BY sku
    ORDER BY share DESC, sku LIMIT {POPULAR}
),
candidates AS (
    SELECT customer_id, sku, 1 AS tier, best.c AS score,
           printf('bought with %s by %.0f%% of its buyers (lift %.1f)', best.why, 100 * best.c, best.lift) AS why
    FROM ruled
    UNION ALL
    SELECT c.customer_id, p.sku, 2, p.share, printf('popular: bought by %.0f%% of customers', 100 * p.share)
    FROM buyers c CROSS JOIN popular p
)
SELECT customer_id, sku, score, why, tier
FROM candidates c
WHERE NOT EXISTS (SELECT 1 FROM bought b WHERE b.customer_id = c.customer_id AND b.sku = c.sku)
QUALIFY row_number() OVER (PARTITION BY customer_id, sku ORDER BY tier) = 1
"""

NEXT_ORDER_SQL = f"""
SELECT customer_id, list(DISTINCT l.sku ORDER BY l.sku) AS skus
FROM (
    SELECT * FROM facts
    WHERE event_type = 'PurchaseMade' AND occurred_at > $at AND occurred_at <= $until
      AND customer_id IN ({PROFILED})
    QUALIFY row_number() OVER (PARTITION BY customer_id ORDER BY occurred_at, event_id) = 1
) f, unnest(f.lines) AS u(l)
GROUP BY customer_id
"""


def _pairs(con: duckdb.DuckDBPyConnection, at: datetime, min_support: float, min_confidence: float) -> pa.Table:
    return con.sql(PAIRS_SQL, params={"at": naive(at), "min_support": min_support,
                                      "min_confidence": min_confidence}).to_arrow_table()


def _offers(con: duckdb.DuckDBPyConnection, at: datetime, pairs: pa.Table, offers: int,
            popular_only: bool = False) -> pa.Table:
    con.register("pairs", pairs.slice(0, 0) if popular_only else pairs)
    try:
        return con.sql(
            f"SELECT customer_id, row_number() OVER (PARTITION BY customer_id ORDER BY tier, score DESC, sku)::INTEGER "
            f"AS rank, sku, round(score, 6) AS score, why FROM ({OFFERS_SQL}) "
            f"QUALIFY rank <= {int(offers)} ORDER BY customer_id, rank", params={"at": naive(at)}).to_arrow_table()
    finally:
        con.unregister("pairs")


def compute(con: duckdb.DuckDBPyConnection, as_of: datetime, min_support: float, min_confidence: float,
            offers: int, horizon: timedelta) -> Result:
    """The pairs and offers as of `as_of`, and the backtest of offers made `horizon` before it."""
    require_history(con, naive(as_of - horizon), "a basket model")
    version = f"{METHOD}/s{min_support:g}-c{min_confidence:g}"
    pairs = _pairs(con, as_of, min_support, min_confidence)
    made = _offers(con, as_of, pairs, offers)
    stamp = {"model_version": pa.array([version] * made.num_rows), "as_of": pa.array([naive(as_of)] * made.num_rows)}
    pair_stamp = {"model_version": pa.array([version] * pairs.num_rows),
                  "as_of": pa.array([naive(as_of)] * pairs.num_rows)}
    tables = {
        "basket_pairs": _stamped(pairs, pair_stamp),
        "next_best_offer": _stamped(made, stamp),
    }
    summary = {"pairs": pairs.num_rows, "days_since_last_fact": round(quiet_days(con, as_of), 1),
               "customers_offered": len(set(made["customer_id"].to_pylist())),
               "top_pairs": sorted(pairs.to_pylist(), key=lambda p: (-p["lift"], p["sku"], p["with_sku"]))[:5],
               "backtest": evaluate(con, as_of - horizon, horizon, min_support, min_confidence, offers, check=False)}
    return Result(version, tables, summary)


def _stamped(table: pa.Table, columns: dict[str, pa.Array]) -> pa.Table:
    for name, values in columns.items():
        table = table.append_column(name, values)
    return table


def evaluate(con: duckdb.DuckDBPyConnection, as_of: datetime, horizon: timedelta, min_support: float,
             min_confidence: float, offers: int, check: bool = True) -> dict[str, Any]:
    """Offers made as of `as_of` against each customer's next order in the horizon after it
    (with `check`, refused if the history does not reach the horizon's end)."""
    if check:
        require_history(con, naive(as_of + horizon), f"a backtest as of {as_of:%Y-%m-%d} over {horizon.days} days")
    pairs = _pairs(con, as_of, min_support, min_confidence)
    nexts = dict(con.execute(NEXT_ORDER_SQL, {"at": naive(as_of), "until": naive(as_of + horizon)}).fetchall())

    def hit_rates(table: pa.Table) -> tuple[float, float, int]:
        """The share of customers with a next order holding any offer, and holding the first."""
        offered: dict[str, list[str]] = {}
        for row in table.to_pylist():  # in rank order
            offered.setdefault(row["customer_id"], []).append(row["sku"])
        judged = [c for c in nexts if c in offered]
        if not judged:
            return 0.0, 0.0, 0
        hits = sum(1 for c in judged if set(offered[c]) & set(nexts[c]))
        firsts = sum(1 for c in judged if offered[c][0] in nexts[c])
        return round(hits / len(judged), 4), round(firsts / len(judged), 4), len(judged)

    model, model_first, customers = hit_rates(_offers(con, as_of, pairs, offers))
    popular, popular_first, _ = hit_rates(_offers(con, as_of, pairs, offers, popular_only=True))
    return {"as_of": naive(as_of).isoformat(), "horizon_days": horizon.days, "customers": customers,
            "offers": offers, "hit_rate_top": model, "hit_rate_popular": popular,
            "hit_rate_first": model_first, "hit_rate_first_popular": popular_first}
