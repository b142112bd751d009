-- Orders as of a time T (getvariable('as_of')): what the lifecycle and RFM count as purchases.
-- Rebuilt in full at each refresh; see docs/read-models.md.
-- An order's total is one BIGINT amount; its refunds are a sum, kept as HUGEINT so any number
-- of them cannot overflow.
-- depends: events

-- section: schema
-- One row per order known as of T: the first PurchaseMade of (customer_id, order_id) by
-- (occurred_at, recorded_at, event_id), with the refunds in its currency that occurred by T.
CREATE TABLE orders (
    customer_id       VARCHAR NOT NULL,
    order_id          VARCHAR NOT NULL,
    purchased_at      TIMESTAMP NOT NULL,
    channel           VARCHAR NOT NULL,
    currency          VARCHAR NOT NULL,
    total_minor       BIGINT NOT NULL,
    refunded_minor    HUGEINT NOT NULL,
    net_minor         HUGEINT NOT NULL,
    fully_refunded    BOOLEAN NOT NULL,
    as_of             TIMESTAMP NOT NULL
);

-- section: refresh
DELETE FROM orders;
INSERT INTO orders
WITH made AS (
    SELECT customer_id, order_id,
           arg_min({'ts': occurred_at, 'channel': channel, 'currency': currency, 'total': total_minor},
                   {'o': occurred_at, 'r': recorded_at, 'e': event_id}) AS first_made
    FROM events
    WHERE event_type = 'PurchaseMade' AND occurred_at <= getvariable('as_of')
    GROUP BY customer_id, order_id
),
refunds AS (
    SELECT customer_id, order_id, currency, sum(amount_minor) AS refunded, count(*) AS refunds
    FROM events
    WHERE event_type = 'PurchaseRefunded' AND occurred_at <= getvariable('as_of')
    GROUP BY customer_id, order_id, currency
)
SELECT m.customer_id, m.order_id, m.first_made.ts, m.first_made.channel, m.first_made.currency,
       m.first_made.total,
       coalesce(r.refunded, 0),
       greatest(m.first_made.total - coalesce(r.refunded, 0), 0),
       coalesce(r.refunds, 0) > 0 AND r.refunded >= m.first_made.total,
       getvariable('as_of')
FROM made m
LEFT JOIN refunds r
       ON r.customer_id = m.customer_id AND r.order_id = m.order_id
      AND r.currency = m.first_made.currency;
