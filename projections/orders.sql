-- Orders as of a time T (getvariable('as_of')): what the lifecycle and RFM count as purchases.
-- Rebuilt in full at each refresh; see docs/read-models.md.
-- An order's total is one BIGINT amount; its refunds are a sum, kept as HUGEINT so any number
-- of them cannot overflow.
-- Each order is also given in the reporting currency (getvariable('reporting_currency')): as it
-- is when the order is in it, else converted at the rate in force on its purchase date (the
-- latest `exchange_rates` row of its currency with valid_from on or before that date, UTC), its
-- refunds at that same rate, so that a full refund nets to 0 whatever the rates did since. The
-- conversion is exact integer arithmetic rounded half to even to whole reporting minor units
-- (see projection/rates.py for why it cannot overflow); an order with no rate in force stays
-- unconverted (NULL), never 0.
-- depends: facts, exchange_rates

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
    as_of             TIMESTAMP NOT NULL,
    reporting_currency VARCHAR NOT NULL,
    rate              DECIMAL(38, 12),
    rate_from         DATE,
    total_reporting_minor HUGEINT,
    net_reporting_minor   HUGEINT
);

-- section: refresh
-- amount * num / den rounded half to even, in HUGEINT without overflow for amount >= 0 below 2^63:
-- amount * (num // den) + amount * (num % den) / den, the remainder deciding the rounding.
CREATE OR REPLACE TEMP MACRO half_even(whole, rem, den) AS
    whole + CASE WHEN 2 * rem > den OR (2 * rem = den AND whole % 2 = 1) THEN 1 ELSE 0 END;
CREATE OR REPLACE TEMP MACRO converted_minor(amount, num, den) AS
    half_even(amount::HUGEINT * (num // den) + (amount::HUGEINT * (num % den)) // den,
              (amount::HUGEINT * (num % den)) % den, den);

DELETE FROM orders;
INSERT INTO orders
WITH made AS (
    SELECT customer_id, order_id,
           arg_min({'ts': occurred_at, 'channel': channel, 'currency': currency, 'total': total_minor},
                   {'o': occurred_at, 'r': recorded_at, 'e': event_id}) AS first_made
    FROM facts
    WHERE event_type = 'PurchaseMade' AND occurred_at <= getvariable('as_of')
    GROUP BY customer_id, order_id
),
refunds AS (
    SELECT customer_id, order_id, currency, sum(amount_minor) AS refunded, count(*) AS refunds
    FROM facts
    WHERE event_type = 'PurchaseRefunded' AND occurred_at <= getvariable('as_of')
    GROUP BY customer_id, order_id, currency
),
known AS (
    SELECT m.customer_id, m.order_id, m.first_made.ts AS purchased_at, m.first_made.channel AS channel,
           m.first_made.currency AS currency, m.first_made.total AS total_minor,
           coalesce(r.refunded, 0) AS refunded_minor,
           greatest(m.first_made.total - coalesce(r.refunded, 0), 0) AS net_minor,
           coalesce(r.refunds, 0) > 0 AND r.refunded >= m.first_made.total AS fully_refunded
    FROM made m
    LEFT JOIN refunds r
           ON r.customer_id = m.customer_id AND r.order_id = m.order_id
          AND r.currency = m.first_made.currency
),
-- The rate in force is looked up once per (currency, purchase date), then joined by hash: an
-- ASOF join of every order sorted them all and tripled the refresh's time.
days AS (
    SELECT DISTINCT currency, purchased_at::DATE AS day
    FROM known WHERE currency <> getvariable('reporting_currency')
),
in_force AS (
    SELECT d.currency, d.day, x.rate, x.valid_from, x.minor_numerator AS num, x.minor_denominator AS den
    FROM days d
    ASOF JOIN exchange_rates x ON x.currency = d.currency AND d.day >= x.valid_from
),
priced AS (
    SELECT k.*, k.currency = getvariable('reporting_currency') AS same, f.rate, f.valid_from, f.num, f.den
    FROM known k
    LEFT JOIN in_force f ON f.currency = k.currency AND f.day = k.purchased_at::DATE
)
SELECT customer_id, order_id, purchased_at, channel, currency, total_minor, refunded_minor, net_minor,
       fully_refunded, getvariable('as_of'), getvariable('reporting_currency'),
       CASE WHEN same THEN 1 ELSE rate END,
       CASE WHEN NOT same THEN valid_from END,
       CASE WHEN same THEN total_minor ELSE converted_minor(total_minor, num, den) END,
       CASE WHEN same THEN net_minor ELSE converted_minor(net_minor, num, den) END
FROM priced;
