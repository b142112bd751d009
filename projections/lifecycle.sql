-- Lifecycle: the stage of every customer as of a time T (getvariable('as_of')), and the full
-- history of stage changes up to T, computed from event times only (never arrival order).
-- Rebuilt in full at each refresh, set-based; see docs/read-models.md for the rules.
--
-- Variables (set by ReadModels.refresh from the settings): as_of (TIMESTAMP, UTC),
-- new_days, active_days, churn_days (INTEGER days of 24 hours).
-- depends: facts, orders

-- section: schema
CREATE TABLE lifecycle (
    customer_id       VARCHAR NOT NULL,
    stage             VARCHAR NOT NULL,
    stage_since       TIMESTAMP NOT NULL,
    first_purchase_at TIMESTAMP,
    last_purchase_at  TIMESTAMP,
    as_of             TIMESTAMP NOT NULL
);

CREATE TABLE lifecycle_transitions (
    customer_id       VARCHAR NOT NULL,
    seq               INTEGER NOT NULL,
    from_stage        VARCHAR,
    to_stage          VARCHAR NOT NULL,
    "at"              TIMESTAMP NOT NULL,
    cause             VARCHAR NOT NULL
);

-- section: refresh
-- Purchase moments: orders that count, one row per distinct instant, with the one before.
CREATE OR REPLACE TEMP TABLE lc_moments AS
SELECT customer_id, purchased_at AS ts,
       lag(purchased_at) OVER (PARTITION BY customer_id ORDER BY purchased_at) AS prev_at
FROM (SELECT DISTINCT customer_id, purchased_at FROM orders WHERE NOT fully_refunded);

CREATE OR REPLACE TEMP TABLE lc_customers AS
WITH seen AS (
    SELECT customer_id, min(occurred_at) AS first_seen_at,
           min(occurred_at) FILTER (WHERE event_type = 'CustomerErased') AS erased_at
    FROM facts
    WHERE occurred_at <= getvariable('as_of')
    GROUP BY customer_id
),
firsts AS (SELECT customer_id, min(ts) AS first_purchase_at FROM lc_moments GROUP BY customer_id)
SELECT s.customer_id, s.first_seen_at, s.erased_at, f.first_purchase_at
FROM seen s LEFT JOIN firsts f USING (customer_id);

-- Candidate change points up to T. sub = 0: the stage AT that instant (a purchase, the first
-- event, an erasure, T itself); sub = 1: the stage just AFTER it (a threshold crossing: "at most
-- N days" still holds at exactly N days and stops holding right after).
CREATE OR REPLACE TEMP TABLE lc_candidates AS
WITH raw AS (
    SELECT customer_id, first_seen_at AS ts, 0 AS sub, 'first_seen' AS cause, 3 AS priority
    FROM lc_customers
    UNION ALL
    SELECT customer_id, ts, 0, 'purchase', 2 FROM lc_moments
    UNION ALL
    SELECT customer_id, erased_at, 0, 'erasure', 1 FROM lc_customers WHERE erased_at IS NOT NULL
    UNION ALL
    SELECT customer_id, getvariable('as_of'), 0, 'as_of', 5 FROM lc_customers
    UNION ALL
    SELECT customer_id, first_purchase_at + to_days(getvariable('new_days')), 1, 'time', 4
    FROM lc_customers WHERE first_purchase_at IS NOT NULL
    UNION ALL
    SELECT customer_id, ts + to_days(getvariable('active_days')), 1, 'time', 4 FROM lc_moments
    UNION ALL
    SELECT customer_id, ts + to_days(getvariable('churn_days')), 1, 'time', 4 FROM lc_moments
)
SELECT r.customer_id, r.ts, r.sub, arg_min(r.cause, r.priority) AS cause
FROM raw r JOIN lc_customers c USING (customer_id)
WHERE (r.sub = 0 OR r.ts < getvariable('as_of'))
  AND (c.erased_at IS NULL OR r.ts <= c.erased_at)
GROUP BY r.customer_id, r.ts, r.sub;

CREATE OR REPLACE TEMP TABLE lc_timeline AS
-- Each candidate with the last purchase at or before it (and the one before that): the moments
-- and candidates in one window, moments first at equal times. An ASOF join says the same, but
-- DuckDB 1.5 runs it 60 times slower on tables made in the same transaction, as these are.
WITH both_sides AS (
    SELECT customer_id, ts, sub, cause, NULL::TIMESTAMP AS moment, NULL::TIMESTAMP AS moment_prev, 1 AS side
    FROM lc_candidates
    UNION ALL
    SELECT customer_id, ts, 0, NULL, ts, prev_at, 0 FROM lc_moments
),
placed AS (
    SELECT b.customer_id, b.ts, b.sub, b.cause, b.last_at, b.prev_at, c.first_purchase_at, c.erased_at
    FROM (
        SELECT *, last_value(moment IGNORE NULLS) OVER upto AS last_at,
                  last_value(moment_prev IGNORE NULLS) OVER upto AS prev_at
        FROM both_sides
        WINDOW upto AS (PARTITION BY customer_id ORDER BY ts, side ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
    ) b
    JOIN lc_customers c ON c.customer_id = b.customer_id
    WHERE b.side = 1
),
staged AS (
    SELECT customer_id, ts, sub, cause, last_at,
           CASE
               WHEN erased_at <= ts THEN 'erased'
               WHEN last_at IS NULL THEN 'prospect'
               WHEN ts < first_purchase_at + to_days(getvariable('new_days'))
                    OR (sub = 0 AND ts = first_purchase_at + to_days(getvariable('new_days')))
                   THEN 'new'
               WHEN ts < last_at + to_days(getvariable('active_days'))
                    OR (sub = 0 AND ts = last_at + to_days(getvariable('active_days')))
                   THEN CASE WHEN last_at > prev_at + to_days(getvariable('churn_days'))
                             THEN 'reactivated' ELSE 'active' END
               WHEN ts < last_at + to_days(getvariable('churn_days'))
                    OR (sub = 0 AND ts = last_at + to_days(getvariable('churn_days')))
                   THEN 'at_risk'
               ELSE 'churned'
           END AS stage
    FROM placed
)
SELECT *, lag(stage) OVER (PARTITION BY customer_id ORDER BY ts, sub) AS prev_stage
FROM staged;

DELETE FROM lifecycle_transitions;
INSERT INTO lifecycle_transitions
SELECT customer_id,
       row_number() OVER (PARTITION BY customer_id ORDER BY ts, sub)::INTEGER,
       prev_stage, stage, ts, cause
FROM lc_timeline
WHERE prev_stage IS DISTINCT FROM stage;

DELETE FROM lifecycle;
INSERT INTO lifecycle
SELECT t.customer_id, t.to_stage, t."at", c.first_purchase_at, l.last_purchase_at,
       getvariable('as_of')
FROM (SELECT * FROM lifecycle_transitions QUALIFY row_number() OVER (PARTITION BY customer_id ORDER BY seq DESC) = 1) t
JOIN lc_customers c USING (customer_id)
LEFT JOIN (SELECT customer_id, max(ts) AS last_purchase_at FROM lc_moments GROUP BY customer_id) l
       USING (customer_id);
