-- RFM: recency, frequency and monetary value of every customer with at least one purchase
-- as of T (getvariable('as_of')), scored 1-5 by quintiles and named by `rfm_segment_map`.
-- Rebuilt in full at each refresh from `orders`, `lifecycle` and `consent` (refreshed just
-- before). monetary is a sum of amounts, so HUGEINT (it cannot overflow).
--
-- Scoring is profiling: only customers with `profiling` consent as of T (`consent`) are scored
-- (profiled = true). The others keep their row, with profiled = false and NULL scores, cell and
-- segment, so they are counted but no rule on the scores can pick them, and they take no part
-- in anyone else's quintiles.
--
-- Tie rule: a score is computed from the value shown in the row (recency_days, frequency,
-- monetary). Customers with equal values always get the same score: the score of the lowest
-- position their group occupies, score = 1 + floor(5 * (rank - 1) / n), where rank is 1 + the
-- number of profiled customers with a strictly worse value and n the number of profiled
-- customers.
-- Worse means: more recency_days, fewer orders, less monetary.
-- monetary is the net spend (order total minus its refunds) of the counted orders in the
-- reporting currency: `orders.net_reporting_minor`, so with an exchange-rates file a customer
-- paying in CNY or USD is scored like one paying in EUR. An order with no rate in force is left
-- out and counted in other_currency_orders (without a file: every order in another currency).
-- monetary_by_currency keeps the net spend of the counted orders in each original currency.
-- depends: orders, lifecycle, consent

-- section: schema
-- The score map: (r_score, fm_score) -> segment, fm_score = ceil((f_score + m_score) / 2).
CREATE TABLE rfm_segment_map (
    r_score           INTEGER NOT NULL,
    fm_score          INTEGER NOT NULL,
    segment           VARCHAR NOT NULL,
    PRIMARY KEY (r_score, fm_score)
);
INSERT INTO rfm_segment_map
SELECT r, fm,
       CASE
           WHEN r = 5 AND fm >= 4 THEN 'champions'
           WHEN r IN (3, 4) AND fm >= 4 THEN 'loyal'
           WHEN r IN (4, 5) AND fm IN (2, 3) THEN 'potential_loyalist'
           WHEN r = 5 AND fm = 1 THEN 'new_customer'
           WHEN r = 4 AND fm = 1 THEN 'promising'
           WHEN r = 3 AND fm = 3 THEN 'need_attention'
           WHEN r = 3 AND fm <= 2 THEN 'about_to_sleep'
           WHEN r <= 2 AND fm = 5 THEN 'cant_lose'
           WHEN r <= 2 AND fm IN (3, 4) THEN 'at_risk'
           WHEN r = 2 AND fm <= 2 THEN 'hibernating'
           WHEN r = 1 AND fm <= 2 THEN 'lost'
       END
FROM range(1, 6) rs(r), range(1, 6) fs(fm);

CREATE TABLE rfm (
    customer_id       VARCHAR NOT NULL,
    last_purchase_at  TIMESTAMP NOT NULL,
    recency_days      BIGINT NOT NULL,
    frequency         BIGINT NOT NULL,
    monetary          HUGEINT NOT NULL,
    currency          VARCHAR NOT NULL,
    other_currency_orders BIGINT NOT NULL,
    r_score           INTEGER,
    f_score           INTEGER,
    m_score           INTEGER,
    fm_score          INTEGER,
    rfm_cell          VARCHAR,
    segment           VARCHAR,
    as_of             TIMESTAMP NOT NULL,
    profiled          BOOLEAN NOT NULL,
    monetary_by_currency MAP(VARCHAR, HUGEINT) NOT NULL
);

-- section: refresh
DELETE FROM rfm;
INSERT INTO rfm
WITH per_currency AS (
    SELECT o.customer_id, o.currency,
           max(o.purchased_at) AS last_purchase_at,
           count(*) AS orders,
           sum(o.net_reporting_minor) AS monetary,
           count(*) FILTER (WHERE o.net_reporting_minor IS NULL) AS unconverted,
           sum(o.net_minor) AS net_minor
    FROM orders o
    JOIN lifecycle l ON l.customer_id = o.customer_id AND l.stage <> 'erased'
    WHERE NOT o.fully_refunded
    GROUP BY o.customer_id, o.currency
),
base AS (
    SELECT customer_id,
           max(last_purchase_at) AS last_purchase_at,
           sum(orders)::BIGINT AS frequency,
           coalesce(sum(monetary), 0)::HUGEINT AS monetary,
           sum(unconverted)::BIGINT AS other_currency_orders,
           map(list(currency ORDER BY currency), list(net_minor ORDER BY currency)) AS monetary_by_currency
    FROM per_currency
    GROUP BY customer_id
),
valued AS (
    SELECT b.*,
           (epoch_us(getvariable('as_of')) - epoch_us(b.last_purchase_at)) // 86400000000 AS recency_days,
           coalesce(c.granted, false) AS profiled
    FROM base b
    LEFT JOIN consent c ON c.customer_id = b.customer_id AND c.purpose = 'profiling'
),
scored AS (
    SELECT customer_id,
           (1 + (5 * (rank() OVER (ORDER BY recency_days DESC) - 1)) // count(*) OVER ())::INTEGER AS r_score,
           (1 + (5 * (rank() OVER (ORDER BY frequency) - 1)) // count(*) OVER ())::INTEGER AS f_score,
           (1 + (5 * (rank() OVER (ORDER BY monetary) - 1)) // count(*) OVER ())::INTEGER AS m_score
    FROM valued
    WHERE profiled
),
named AS (
    SELECT s.*, m.fm_score, concat(s.r_score, s.f_score, s.m_score) AS rfm_cell, m.segment
    FROM scored s
    JOIN rfm_segment_map m ON m.r_score = s.r_score AND m.fm_score = (s.f_score + s.m_score + 1) // 2
)
SELECT v.customer_id, v.last_purchase_at, v.recency_days, v.frequency, v.monetary,
       getvariable('reporting_currency'), v.other_currency_orders,
       n.r_score, n.f_score, n.m_score, n.fm_score, n.rfm_cell, n.segment,
       getvariable('as_of'), v.profiled, v.monetary_by_currency
FROM valued v
LEFT JOIN named n USING (customer_id);
