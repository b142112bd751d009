-- Spend per customer and currency, from every PurchaseMade and PurchaseRefunded whatever its
-- time; money is never summed across currencies. Kept current in every micro-batch.
-- The sums are HUGEINT: one amount is a BIGINT (an Avro long), and two legal amounts near its
-- limit already overflow it (a HUGEINT holds 2^127, more than 10^19 such amounts).
-- depends:

-- section: schema
CREATE TABLE customer_spend (
    customer_id       VARCHAR NOT NULL,
    currency          VARCHAR NOT NULL,
    purchased_minor   HUGEINT NOT NULL,
    refunded_minor    HUGEINT NOT NULL,
    net_minor         HUGEINT NOT NULL,
    PRIMARY KEY (customer_id, currency)
);

-- section: apply
INSERT INTO customer_spend
SELECT customer_id, currency,
       coalesce(sum(total_minor), 0), coalesce(sum(amount_minor), 0),
       coalesce(sum(total_minor), 0) - coalesce(sum(amount_minor), 0)
FROM batch_events
WHERE event_type IN ('PurchaseMade', 'PurchaseRefunded')
GROUP BY customer_id, currency
ON CONFLICT (customer_id, currency) DO UPDATE SET
    purchased_minor = purchased_minor + excluded.purchased_minor,
    refunded_minor = refunded_minor + excluded.refunded_minor,
    net_minor = net_minor + excluded.net_minor;
