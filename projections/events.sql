-- The timeline: one row per event, flattened; fields another event type has are NULL.
-- All times are UTC.
-- The columns are `EVENT_COLUMNS` (src/ledger/projection/decode.py): a test keeps them equal.
-- depends:

-- section: schema
CREATE TABLE events (
    event_id          VARCHAR NOT NULL,
    event_type        VARCHAR NOT NULL,
    customer_id       VARCHAR NOT NULL,
    occurred_at       TIMESTAMP NOT NULL,
    recorded_at       TIMESTAMP NOT NULL,
    source            VARCHAR NOT NULL,
    source_event_id   VARCHAR,
    name              VARCHAR,
    email             VARCHAR,
    phone             VARCHAR,
    country           VARCHAR,
    city              VARCHAR,
    birth_date        DATE,
    attributes        MAP(VARCHAR, VARCHAR),
    purpose           VARCHAR,
    granted           BOOLEAN,
    contact_id        VARCHAR,
    channel           VARCHAR,
    direction         VARCHAR,
    reason            VARCHAR,
    outcome           VARCHAR,
    is_complaint      BOOLEAN,
    agent_id          VARCHAR,
    duration_s        INTEGER,
    order_id          VARCHAR,
    currency          VARCHAR,
    total_minor       BIGINT,
    amount_minor      BIGINT,
    lines             STRUCT(sku VARCHAR, quantity INTEGER, unit_price_minor BIGINT)[],
    kind              VARCHAR,
    score             INTEGER,
    comment           VARCHAR,
    about_contact_id  VARCHAR,
    about_order_id    VARCHAR
);

-- section: apply
INSERT INTO events BY NAME SELECT * FROM batch_events;

-- Erasure: the personal data of an erased customer leaves the timeline too. These are the
-- columns of the fields the schemas mark "pii" (a test keeps them equal); their values come
-- from the sealed field while the customer's key exists, and read NULL once it is destroyed,
-- so a replay after the erasure gives the same rows. The file is then rewritten
-- (ReadModels.shred_if_erased), so no freed block keeps the old values.
UPDATE events SET name = NULL, email = NULL, phone = NULL, city = NULL, birth_date = NULL,
                  attributes = NULL, reason = NULL, agent_id = NULL, comment = NULL
WHERE customer_id IN (SELECT customer_id FROM batch_events WHERE event_type = 'CustomerErased');

-- An event that arrives after its customer's erasure was applied (any arrival order) loses its
-- personal data too.
UPDATE events SET name = NULL, email = NULL, phone = NULL, city = NULL, birth_date = NULL,
                  attributes = NULL, reason = NULL, agent_id = NULL, comment = NULL
WHERE event_id IN (SELECT event_id FROM batch_events)
  AND customer_id IN (SELECT customer_id FROM events WHERE event_type = 'CustomerErased');
