"""Behavioural clusters: k-means on standardised RFM, satisfaction and channel-mix features.

Every profiled customer who bought by `as_of` gets a cluster. The features (FEATURES) are
standardised, so that days and money weigh alike; k-means (scikit-learn, k-means++ starts from
the model seed, 10 of them) groups them. Clusters are numbered by size, largest first, so the
numbers mean the same from run to run, and each is described by the features that set its
centre apart (more than half a standard deviation from the average), in words. Stability: the
same customers clustered as of `as_of` and 90 days before are compared with the adjusted Rand
index (1: the same grouping; 0: no better than chance).
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

import duckdb
import pyarrow as pa

from ledger.errors import InsightError
from ledger.insight.population import PROFILED, Result, naive, quiet_days, require_history, sklearn

METHOD = "clusters-kmeans-1"
FEATURES = ("recency_days", "orders_365d", "spend_365d_log", "satisfaction", "complaint_share", "store_share",
            "online_share", "phone_share")
WORDS = {  # feature: (words when the centre is high, words when low)
    "recency_days": ("has not bought for long", "bought recently"),
    "orders_365d": ("buys often", "buys seldom"),
    "spend_365d_log": ("spends much", "spends little"),
    "satisfaction": ("satisfied", "detractor"),
    "complaint_share": ("complains often", "rarely complains"),
    "store_share": ("mostly in store", "seldom in store"),
    "online_share": ("mostly online", "seldom online"),
    "phone_share": ("orders by phone", "seldom by phone"),
}
APART = 0.5
"""How far (in standard deviations) a centre must be from the average for a feature to describe it."""

FEATURE_SQL = f"""
WITH f AS (SELECT * FROM facts WHERE occurred_at <= $at AND customer_id IN ({PROFILED})),
o AS (
    SELECT customer_id, max(occurred_at) AS last_purchase,
           count(*) FILTER (WHERE occurred_at > $at - INTERVAL 365 DAY) AS orders_365d,
           count(*) FILTER (WHERE channel = 'store') / count(*) AS store_share,
           count(*) FILTER (WHERE channel IN ('web', 'app')) / count(*) AS online_share,
           count(*) FILTER (WHERE channel = 'phone') / count(*) AS phone_share
    FROM f WHERE event_type = 'PurchaseMade' GROUP BY customer_id
),
money AS (  -- in the reporting currency at the rate in force on the purchase date, else at face value
    SELECT f.customer_id, sum(f.total_minor * coalesce(x.minor_numerator / x.minor_denominator, 1)) AS spend
    FROM f ASOF LEFT JOIN insight_rates x ON x.currency = f.currency AND f.occurred_at::DATE >= x.valid_from
    WHERE f.event_type = 'PurchaseMade' AND f.occurred_at > $at - INTERVAL 365 DAY GROUP BY f.customer_id
),
s AS (
    SELECT customer_id,
           avg(CASE kind WHEN 'csat' THEN (score - 1) / 4 WHEN 'ces' THEN (score - 1) / 6 ELSE score / 10 END)
               FILTER (WHERE event_type = 'FeedbackGiven') AS satisfaction,
           count(*) FILTER (WHERE event_type = 'ContactLogged' AND is_complaint)
               / greatest(1, count(*) FILTER (WHERE event_type = 'ContactLogged')) AS complaint_share
    FROM f GROUP BY customer_id
)
SELECT o.customer_id, date_diff('second', o.last_purchase, $at) / 86400.0 AS recency_days, o.orders_365d,
       ln(1 + coalesce(m.spend, 0) / 100) AS spend_365d_log, s.satisfaction, s.complaint_share,
       o.store_share, o.online_share, o.phone_share
FROM o JOIN s USING (customer_id) LEFT JOIN money m USING (customer_id)
ORDER BY o.customer_id
"""


def features(con: duckdb.DuckDBPyConnection, at: datetime, rates: pa.Table | None = None) -> list[dict[str, Any]]:
    """One row per profiled customer who bought by `at`; no feedback: the average satisfaction.
    `rates`: the exchange rates as the projector reads them from their file (a replay's new file
    has no `exchange_rates` rows before its first refresh); None: the `exchange_rates` table."""
    if rates is None:
        rates = con.sql("SELECT currency, valid_from, minor_numerator, minor_denominator FROM exchange_rates")\
            .to_arrow_table()
    con.register("insight_rates", rates)
    try:
        rows = con.sql(FEATURE_SQL, params={"at": naive(at)}).to_arrow_table().to_pylist()
    finally:
        con.unregister("insight_rates")
    known = [r["satisfaction"] for r in rows if r["satisfaction"] is not None]
    average = sum(known) / len(known) if known else 0.5
    for row in rows:
        row["satisfaction"] = average if row["satisfaction"] is None else row["satisfaction"]
    return rows


def _fit(rows: list[dict[str, Any]], k: int, seed: int) -> tuple[list[int], list[list[float]], Any]:
    """Cluster numbers (by size, largest first), the centres in standard deviations, the scaler."""
    preprocessing, cluster = sklearn("sklearn.preprocessing"), sklearn("sklearn.cluster")
    if len(rows) < k:
        raise InsightError(f"cannot make {k} clusters of {len(rows)} customers: lower insight.cluster_count "
                           "(LEDGER_CLUSTER_COUNT) or record more history")
    scaler = preprocessing.StandardScaler()
    z = scaler.fit_transform([[float(r[name]) for name in FEATURES] for r in rows])
    fitted = cluster.KMeans(n_clusters=k, n_init=10, random_state=seed).fit(z)
    labels = [int(label) for label in fitted.labels_]
    centres = [[float(x) for x in c] for c in fitted.cluster_centers_]
    order = sorted(range(k), key=lambda c: (-labels.count(c), centres[c]))
    number = {old: new for new, old in enumerate(order)}
    return [number[label] for label in labels], [centres[old] for old in order], scaler


def describe(centre: list[float]) -> str:
    """What sets a centre apart: its features furthest from the average, in words."""
    apart = sorted(((abs(z), name, z) for name, z in zip(FEATURES, centre, strict=True) if abs(z) > APART),
                   reverse=True)[:3]
    return ", ".join(WORDS[name][0 if z > 0 else 1] for _, name, z in apart) or "about average on every feature"


def compute(con: duckdb.DuckDBPyConnection, as_of: datetime, k: int, seed: int,
            rates: pa.Table | None = None) -> Result:
    """Clusters as of `as_of`, described, with their stability against 90 days before."""
    require_history(con, None, "clusters")
    rows = features(con, as_of, rates)
    labels, centres, scaler = _fit(rows, k, seed)
    version = f"{METHOD}/k{k}-seed{seed}"
    at = naive(as_of)
    members = pa.table({"customer_id": [r["customer_id"] for r in rows], "cluster": pa.array(labels, pa.int32()),
                        "model_version": [version] * len(rows), "as_of": [at] * len(rows)})
    real = scaler.inverse_transform(centres)
    groups = pa.table({
        "cluster": pa.array(range(k), pa.int32()), "customers": [labels.count(c) for c in range(k)],
        "description": [describe(c) for c in centres],
        "centre": pa.array([[(name, round(float(v), 4)) for name, v in zip(FEATURES, centre, strict=True)]
                            for centre in real], pa.map_(pa.string(), pa.float64())),
        "model_version": [version] * k, "as_of": [at] * k})
    summary = {"customers": len(rows), "days_since_last_fact": round(quiet_days(con, as_of), 1),
               "sizes": [labels.count(c) for c in range(k)],
               "descriptions": [describe(c) for c in centres],
               "stability_ari_90d": stability(con, as_of, rows, labels, k, seed, rates)}
    return Result(version, {"customer_clusters": members, "clusters": groups}, summary)


def stability(con: duckdb.DuckDBPyConnection, as_of: datetime, rows: list[dict[str, Any]], labels: list[int],
              k: int, seed: int, rates: pa.Table | None) -> float | None:
    """The adjusted Rand index between these clusters and those as of 90 days before, over the
    customers in both (None if too few were there then)."""
    before = features(con, as_of - timedelta(days=90), rates)
    if len(before) < k:
        return None
    earlier, _, _ = _fit(before, k, seed)
    then = {r["customer_id"]: label for r, label in zip(before, earlier, strict=True)}
    both = [(then[r["customer_id"]], label) for r, label in zip(rows, labels, strict=True) if r["customer_id"] in then]
    if len(both) < k:
        return None
    index = sklearn("sklearn.metrics").adjusted_rand_score([a for a, _ in both], [b for _, b in both])
    return round(float(index), 4) if math.isfinite(index) else None
