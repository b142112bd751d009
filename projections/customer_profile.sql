-- The customer 360: one row per customer, recomputed from `events` for every customer a
-- batch touches, so arrival order and batch boundaries never change the result.
-- "Last known" fields come from the event with the latest occurred_at that set them
-- (ties broken by recorded_at, then event_id). Money is never summed across currencies.
-- lifecycle_stage and rfm_segment depend on an "as of" time: the refresh section copies them
-- from `lifecycle` and `rfm`; between refreshes a recomputed row keeps the last refreshed values.

-- section: schema
CREATE TABLE customer_profile (
    customer_id       VARCHAR PRIMARY KEY,
    erased            BOOLEAN NOT NULL,
    name              VARCHAR,
    email             VARCHAR,
    phone             VARCHAR,
    country           VARCHAR,
    city              VARCHAR,
    registered_at     TIMESTAMP,
    first_seen_at     TIMESTAMP NOT NULL,
    last_seen_at      TIMESTAMP NOT NULL,
    contacts          BIGINT NOT NULL,
    complaints        BIGINT NOT NULL,
    purchases         BIGINT NOT NULL,
    refunds           BIGINT NOT NULL,
    feedbacks         BIGINT NOT NULL,
    net_spend         MAP(VARCHAR, BIGINT) NOT NULL,
    last_contact_at   TIMESTAMP,
    last_purchase_at  TIMESTAMP,
    last_feedback_at  TIMESTAMP,
    latest_csat       INTEGER,
    latest_nps        INTEGER,
    latest_ces        INTEGER,
    consent_marketing_email BOOLEAN NOT NULL,
    consent_marketing_sms   BOOLEAN NOT NULL,
    consent_marketing_phone BOOLEAN NOT NULL,
    consent_profiling       BOOLEAN NOT NULL,
    lifecycle_stage   VARCHAR,
    rfm_segment       VARCHAR
);

CREATE TABLE customer_spend (
    customer_id       VARCHAR NOT NULL,
    currency          VARCHAR NOT NULL,
    purchased_minor   BIGINT NOT NULL,
    refunded_minor    BIGINT NOT NULL,
    net_minor         BIGINT NOT NULL,
    PRIMARY KEY (customer_id, currency)
);

-- section: apply
CREATE OR REPLACE TEMP TABLE touched AS SELECT DISTINCT customer_id FROM batch_events;

DELETE FROM customer_spend WHERE customer_id IN (SELECT customer_id FROM touched);
INSERT INTO customer_spend
SELECT customer_id, currency,
       coalesce(sum(total_minor), 0) AS purchased_minor,
       coalesce(sum(amount_minor), 0) AS refunded_minor,
       coalesce(sum(total_minor), 0) - coalesce(sum(amount_minor), 0) AS net_minor
FROM events
WHERE customer_id IN (SELECT customer_id FROM touched)
  AND event_type IN ('PurchaseMade', 'PurchaseRefunded')
GROUP BY customer_id, currency;

DELETE FROM customer_profile WHERE customer_id IN (SELECT customer_id FROM touched);
INSERT INTO customer_profile
WITH ordered AS (
    SELECT *, {'o': occurred_at, 'r': recorded_at, 'e': event_id} AS at_key,
           event_type IN ('CustomerRegistered', 'ProfileUpdated') AS sets_profile
    FROM events
    WHERE customer_id IN (SELECT customer_id FROM touched)
),
erasures AS (SELECT DISTINCT customer_id FROM ordered WHERE event_type = 'CustomerErased'),
profile AS (
    SELECT customer_id,
           arg_max(name, at_key) FILTER (WHERE sets_profile AND name IS NOT NULL) AS name,
           arg_max(email, at_key) FILTER (WHERE sets_profile AND email IS NOT NULL) AS email,
           arg_max(phone, at_key) FILTER (WHERE sets_profile AND phone IS NOT NULL) AS phone,
           arg_max(country, at_key) FILTER (WHERE sets_profile AND country IS NOT NULL) AS country,
           arg_max(city, at_key) FILTER (WHERE sets_profile AND city IS NOT NULL) AS city,
           min(occurred_at) FILTER (WHERE event_type = 'CustomerRegistered') AS registered_at,
           min(occurred_at) AS first_seen_at,
           max(occurred_at) AS last_seen_at,
           count(*) FILTER (WHERE event_type = 'ContactLogged') AS contacts,
           count(*) FILTER (WHERE event_type = 'ContactLogged' AND is_complaint) AS complaints,
           count(*) FILTER (WHERE event_type = 'PurchaseMade') AS purchases,
           count(*) FILTER (WHERE event_type = 'PurchaseRefunded') AS refunds,
           count(*) FILTER (WHERE event_type = 'FeedbackGiven') AS feedbacks,
           max(occurred_at) FILTER (WHERE event_type = 'ContactLogged') AS last_contact_at,
           max(occurred_at) FILTER (WHERE event_type = 'PurchaseMade') AS last_purchase_at,
           max(occurred_at) FILTER (WHERE event_type = 'FeedbackGiven') AS last_feedback_at,
           arg_max(score, at_key) FILTER (WHERE event_type = 'FeedbackGiven' AND kind = 'csat') AS latest_csat,
           arg_max(score, at_key) FILTER (WHERE event_type = 'FeedbackGiven' AND kind = 'nps') AS latest_nps,
           arg_max(score, at_key) FILTER (WHERE event_type = 'FeedbackGiven' AND kind = 'ces') AS latest_ces,
           arg_max(granted, at_key) FILTER (WHERE event_type = 'ConsentChanged' AND purpose = 'marketing_email')
               AS consent_marketing_email,
           arg_max(granted, at_key) FILTER (WHERE event_type = 'ConsentChanged' AND purpose = 'marketing_sms')
               AS consent_marketing_sms,
           arg_max(granted, at_key) FILTER (WHERE event_type = 'ConsentChanged' AND purpose = 'marketing_phone')
               AS consent_marketing_phone,
           arg_max(granted, at_key) FILTER (WHERE event_type = 'ConsentChanged' AND purpose = 'profiling')
               AS consent_profiling
    FROM ordered
    GROUP BY customer_id
),
spend AS (
    SELECT customer_id, map(list(currency ORDER BY currency), list(net_minor ORDER BY currency)) AS net_spend
    FROM customer_spend
    WHERE customer_id IN (SELECT customer_id FROM touched)
    GROUP BY customer_id
)
SELECT p.customer_id,
       e.customer_id IS NOT NULL AS erased,
       CASE WHEN e.customer_id IS NULL THEN p.name END,
       CASE WHEN e.customer_id IS NULL THEN p.email END,
       CASE WHEN e.customer_id IS NULL THEN p.phone END,
       p.country,
       CASE WHEN e.customer_id IS NULL THEN p.city END,
       p.registered_at, p.first_seen_at, p.last_seen_at,
       p.contacts, p.complaints, p.purchases, p.refunds, p.feedbacks,
       coalesce(s.net_spend, MAP {}::MAP(VARCHAR, BIGINT)),
       p.last_contact_at, p.last_purchase_at, p.last_feedback_at,
       p.latest_csat, p.latest_nps, p.latest_ces,
       e.customer_id IS NULL AND coalesce(p.consent_marketing_email, false),
       e.customer_id IS NULL AND coalesce(p.consent_marketing_sms, false),
       e.customer_id IS NULL AND coalesce(p.consent_marketing_phone, false),
       e.customer_id IS NULL AND coalesce(p.consent_profiling, false),
       l.stage, r.segment
FROM profile p
LEFT JOIN erasures e USING (customer_id)
LEFT JOIN spend s USING (customer_id)
LEFT JOIN lifecycle l USING (customer_id)
LEFT JOIN rfm r USING (customer_id);

-- section: refresh
UPDATE customer_profile
SET lifecycle_stage = (SELECT l.stage FROM lifecycle l WHERE l.customer_id = customer_profile.customer_id),
    rfm_segment = (SELECT r.segment FROM rfm r WHERE r.customer_id = customer_profile.customer_id);
