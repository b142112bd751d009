-- Facts: the events as the read models count them. `events` keeps every event as it was
-- recorded; `facts` is that timeline with the ledger's amendments applied:
--   * a FactCorrected replaces the fields it names in its target (a later correction of the
--     same field wins, by occurred_at, recorded_at, event_id);
--   * a FactRetracted removes its target;
--   * a CustomersMerged counts the merged customer's facts under its survivor (the root of a
--     chain of merges) until a CustomerSplit undoes it;
--   * the amendments themselves are not facts.
-- Every model but the timeline reads `facts` (and `batch_facts` in a micro-batch), so a
-- correction, a retraction, a merge or a split gives exactly the read models a replay of the
-- amended history gives. Arrival order does not matter: an amendment that arrives before its
-- target is kept here and applied when the target comes.
-- depends: events

-- section: schema
-- One row per amended event: the latest value of each corrected field, and whether it was
-- retracted. Small: one row per amendment target, whatever the size of the timeline.
CREATE TABLE fact_amendments (
    target_event_id   VARCHAR PRIMARY KEY,
    target_type       VARCHAR NOT NULL,
    changes           MAP(VARCHAR, VARCHAR),
    retracted         BOOLEAN NOT NULL,
    amended_at        TIMESTAMP NOT NULL
);

-- One row per customer id merged now: into whom (survivor_id), and the id its facts count
-- under (root_id: the survivor, or the survivor's own survivor, and so on).
CREATE TABLE customer_merges (
    customer_id       VARCHAR PRIMARY KEY,
    survivor_id       VARCHAR NOT NULL,
    root_id           VARCHAR NOT NULL,
    merged_at         TIMESTAMP NOT NULL,
    merge_event_id    VARCHAR NOT NULL
);

-- The event types that amend others (ledger.contract.amendments.AMENDMENTS): a batch holding
-- one runs every model's `amend` section.
CREATE MACRO is_amendment(event_type) AS
    event_type IN ('FactCorrected', 'FactRetracted', 'CustomersMerged', 'CustomerSplit');

-- The fields a correction may change, read from their JSON text. The write side refuses a
-- correction of any other field (the envelope, identities, personal data).
CREATE MACRO amended_facts(source_table) AS TABLE
SELECT e.event_id, e.event_type, coalesce(m.root_id, e.customer_id) AS customer_id,
       e.* EXCLUDE (event_id, event_type, customer_id, status) REPLACE (
    CASE WHEN map_contains(a.changes, 'occurred_at') THEN (a.changes['occurred_at'])::JSON::TIMESTAMP
         ELSE e.occurred_at END AS occurred_at,
    CASE WHEN map_contains(a.changes, 'channel') THEN (a.changes['channel'])::JSON ->> '$' ELSE e.channel END AS channel,
    CASE WHEN map_contains(a.changes, 'direction') THEN (a.changes['direction'])::JSON ->> '$'
         ELSE e.direction END AS direction,
    CASE WHEN map_contains(a.changes, 'outcome') THEN (a.changes['outcome'])::JSON ->> '$' ELSE e.outcome END AS outcome,
    CASE WHEN map_contains(a.changes, 'is_complaint') THEN (a.changes['is_complaint'])::JSON::BOOLEAN
         ELSE e.is_complaint END AS is_complaint,
    CASE WHEN map_contains(a.changes, 'duration_s') THEN (a.changes['duration_s'])::JSON::INTEGER
         ELSE e.duration_s END AS duration_s,
    CASE WHEN map_contains(a.changes, 'total_minor') THEN (a.changes['total_minor'])::JSON::BIGINT
         ELSE e.total_minor END AS total_minor,
    CASE WHEN map_contains(a.changes, 'amount_minor') THEN (a.changes['amount_minor'])::JSON::BIGINT
         ELSE e.amount_minor END AS amount_minor,
    CASE WHEN map_contains(a.changes, 'lines')
         THEN (a.changes['lines'])::JSON::STRUCT(sku VARCHAR, quantity INTEGER, unit_price_minor BIGINT)[]
         ELSE e.lines END AS lines,
    CASE WHEN map_contains(a.changes, 'kind') THEN (a.changes['kind'])::JSON ->> '$' ELSE e.kind END AS kind,
    CASE WHEN map_contains(a.changes, 'score') THEN (a.changes['score'])::JSON::INTEGER ELSE e.score END AS score,
    CASE WHEN map_contains(a.changes, 'about_contact_id') THEN (a.changes['about_contact_id'])::JSON ->> '$'
         ELSE e.about_contact_id END AS about_contact_id,
    CASE WHEN map_contains(a.changes, 'about_order_id') THEN (a.changes['about_order_id'])::JSON ->> '$'
         ELSE e.about_order_id END AS about_order_id,
    CASE WHEN map_contains(a.changes, 'language') THEN (a.changes['language'])::JSON ->> '$' ELSE e.language END AS language,
    CASE WHEN map_contains(a.changes, 'sentiment') THEN (a.changes['sentiment'])::JSON::DOUBLE
         ELSE e.sentiment END AS sentiment
),
       e.customer_id AS recorded_customer_id,
       a.changes IS NOT NULL AS corrected
FROM query_table(source_table) e
LEFT JOIN fact_amendments a ON a.target_event_id = e.event_id
LEFT JOIN customer_merges m ON m.customer_id = e.customer_id
WHERE NOT is_amendment(e.event_type)
  AND NOT coalesce(a.retracted, false);

-- `facts`: an event that no amendment names (status NULL in `events`, the most of them) is read
-- as it is, so that filters on its columns reach the scan of `events`; a corrected one goes
-- through `amended_facts`. facts.sql keeps `events.status` in step with fact_amendments.
CREATE VIEW corrected_events AS SELECT * FROM events WHERE status = 'corrected';

CREATE VIEW facts AS
SELECT e.event_id, e.event_type, coalesce(m.root_id, e.customer_id) AS customer_id,
       e.* EXCLUDE (event_id, event_type, customer_id, status),
       e.customer_id AS recorded_customer_id,
       false AS corrected
FROM events e
LEFT JOIN customer_merges m ON m.customer_id = e.customer_id
WHERE e.status IS NULL
  AND NOT is_amendment(e.event_type)
UNION ALL BY NAME
SELECT * FROM amended_facts('corrected_events');

-- section: amend
-- Run before `apply` in a batch holding an amendment (the batch is in `events` already).
-- The ids the batch's amendments name, and every id counted with them before or after: the
-- models that keep per-customer rows drop theirs and count these customers again from `facts`.
CREATE OR REPLACE TEMP TABLE amended_named AS
SELECT customer_id FROM batch_events
WHERE is_amendment(event_type)
UNION
SELECT survivor_id FROM batch_events
WHERE event_type IN ('CustomersMerged', 'CustomerSplit') AND survivor_id IS NOT NULL;

CREATE OR REPLACE TEMP TABLE amended_before AS
SELECT coalesce(m.root_id, n.customer_id) AS root_id
FROM amended_named n LEFT JOIN customer_merges m ON m.customer_id = n.customer_id;

-- Amendments of events: the latest value of each field, retracted if any retraction.
INSERT OR REPLACE INTO fact_amendments
WITH targets AS (
    SELECT DISTINCT target_event_id FROM batch_events
    WHERE event_type IN ('FactCorrected', 'FactRetracted')
),
amendments AS (
    SELECT * FROM events
    WHERE event_type IN ('FactCorrected', 'FactRetracted')
      AND target_event_id IN (SELECT target_event_id FROM targets)
),
fields AS (
    SELECT target_event_id, f.key AS field,
           arg_max(f.value, {'o': occurred_at, 'r': recorded_at, 'e': event_id}) AS value
    FROM (SELECT target_event_id, occurred_at, recorded_at, event_id, unnest(map_entries(changes)) AS f
          FROM amendments WHERE event_type = 'FactCorrected')
    GROUP BY target_event_id, f.key
)
SELECT a.target_event_id, any_value(a.target_type),
       (SELECT map_from_entries(list({'key': f.field, 'value': f.value} ORDER BY f.field))
        FROM fields f WHERE f.target_event_id = a.target_event_id),
       bool_or(a.event_type = 'FactRetracted'),
       max(a.occurred_at)
FROM amendments a
GROUP BY a.target_event_id;

-- Merges and splits: a customer is merged while a CustomersMerged of theirs is not undone by a
-- CustomerSplit naming it (target_event_id), whatever order they arrive in; of several such
-- merges (which the write side never records) the latest counts.
CREATE OR REPLACE TEMP TABLE merge_touched AS
SELECT DISTINCT customer_id FROM batch_events WHERE event_type IN ('CustomersMerged', 'CustomerSplit');
DELETE FROM customer_merges WHERE customer_id IN (SELECT customer_id FROM merge_touched);
INSERT INTO customer_merges
WITH theirs AS (
    SELECT * FROM events
    WHERE customer_id IN (SELECT customer_id FROM merge_touched)
      AND event_type IN ('CustomersMerged', 'CustomerSplit')
)
SELECT customer_id,
       arg_max(survivor_id, {'o': occurred_at, 'r': recorded_at, 'e': event_id}),
       arg_max(survivor_id, {'o': occurred_at, 'r': recorded_at, 'e': event_id}),
       max(occurred_at),
       arg_max(event_id, {'o': occurred_at, 'r': recorded_at, 'e': event_id})
FROM theirs
WHERE event_type = 'CustomersMerged'
  AND event_id NOT IN (SELECT target_event_id FROM theirs
                       WHERE event_type = 'CustomerSplit' AND target_event_id IS NOT NULL)
GROUP BY customer_id;

-- Roots: follow survivors until an id not merged. The write side refuses a merge into a
-- merged id, so chains are short and never cycle; the depth bound keeps hostile input finite.
UPDATE customer_merges SET root_id = r.root_id
FROM (
    WITH RECURSIVE walk(customer_id, root_id, depth) AS (
        SELECT customer_id, survivor_id, 1 FROM customer_merges
        UNION ALL
        SELECT w.customer_id, m.survivor_id, w.depth + 1
        FROM walk w JOIN customer_merges m ON m.customer_id = w.root_id
        WHERE w.depth < 64
    )
    SELECT customer_id, arg_max(root_id, depth) AS root_id FROM walk GROUP BY customer_id
) r
WHERE customer_merges.customer_id = r.customer_id;

CREATE OR REPLACE TEMP TABLE amended_roots AS
SELECT root_id FROM amended_before
UNION
SELECT coalesce(m.root_id, n.customer_id)
FROM amended_named n LEFT JOIN customer_merges m ON m.customer_id = n.customer_id;

-- Every recorded id counted under one of those roots, before or after, and the roots.
CREATE OR REPLACE TEMP TABLE amended_ids AS
SELECT root_id AS customer_id FROM amended_roots
UNION
SELECT customer_id FROM customer_merges WHERE root_id IN (SELECT root_id FROM amended_roots)
UNION
SELECT customer_id FROM amended_named;

-- section: apply
-- The timeline marks what was amended: the targets of this batch's amendments, and an event of
-- this batch that an earlier amendment names (amendments may arrive before their target).
UPDATE events SET status = CASE WHEN a.retracted THEN 'retracted' ELSE 'corrected' END
FROM (
    SELECT a.* FROM fact_amendments a
    WHERE a.target_event_id IN (SELECT event_id FROM batch_events)
       OR a.target_event_id IN (SELECT target_event_id FROM batch_events WHERE target_event_id IS NOT NULL)
) a
WHERE events.event_id = a.target_event_id;

-- The batch as the models count it: its facts (read through `amended_facts` only where an
-- amendment names them: most rows pass as they are), and for the customers an amendment of
-- this batch touched (amended_ids, empty otherwise), every fact of theirs, counted again.
CREATE OR REPLACE TEMP VIEW batch_amended AS
SELECT * FROM batch_events WHERE event_id IN (SELECT target_event_id FROM fact_amendments);

CREATE OR REPLACE TEMP TABLE batch_facts AS
SELECT b.event_id, b.event_type, coalesce(m.root_id, b.customer_id) AS customer_id,
       b.* EXCLUDE (event_id, event_type, customer_id, status),
       b.customer_id AS recorded_customer_id,
       false AS corrected
FROM batch_events b
LEFT JOIN customer_merges m ON m.customer_id = b.customer_id
WHERE NOT is_amendment(b.event_type)
  AND b.event_id NOT IN (SELECT target_event_id FROM fact_amendments)
  AND b.customer_id NOT IN (SELECT customer_id FROM amended_ids)
UNION ALL BY NAME
SELECT * FROM amended_facts('batch_amended') WHERE recorded_customer_id NOT IN (SELECT customer_id FROM amended_ids)
UNION ALL BY NAME
SELECT * FROM facts WHERE recorded_customer_id IN (SELECT customer_id FROM amended_ids);
