-- Consent as of T (getvariable('as_of')): one row per customer in `lifecycle` (any event at or
-- before T) and consent purpose. A purpose is granted by the customer's latest ConsentChanged
-- for it with occurred_at <= T (ties by recorded_at, then event_id); without such an event it
-- is not granted. A customer erased at any time holds no consent, for every T: erasure is final.
-- Rebuilt in full at each refresh. `rfm` scores only customers with `profiling`; a segment's
-- members must hold the consent its rule declares (see segments.sql).
-- depends: events, lifecycle

-- section: schema
CREATE TABLE consent (
    customer_id       VARCHAR NOT NULL,
    purpose           VARCHAR NOT NULL,
    granted           BOOLEAN NOT NULL,
    as_of             TIMESTAMP NOT NULL
);

-- section: refresh
DELETE FROM consent;
INSERT INTO consent
WITH latest AS (
    SELECT customer_id, purpose,
           arg_max(granted, {'o': occurred_at, 'r': recorded_at, 'e': event_id}) AS granted
    FROM events
    WHERE event_type = 'ConsentChanged' AND occurred_at <= getvariable('as_of')
    GROUP BY customer_id, purpose
),
erased AS (
    SELECT DISTINCT customer_id FROM events WHERE event_type = 'CustomerErased'
)
SELECT l.customer_id, p.purpose,
       coalesce(c.granted, false) AND l.customer_id NOT IN (SELECT customer_id FROM erased),
       getvariable('as_of')
FROM lifecycle l
CROSS JOIN (VALUES ('marketing_email'), ('marketing_sms'), ('marketing_phone'), ('profiling')) p(purpose)
LEFT JOIN latest c ON c.customer_id = l.customer_id AND c.purpose = p.purpose;
