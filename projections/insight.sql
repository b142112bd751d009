-- Insight: what the models of ledger.insight made of the history as of a stated time (churn
-- risk with reasons, items bought together and the offers they suggest, behavioural clusters).
-- The tables are written by `ledger insight churn|basket|clusters` (one run per kind, recorded
-- in insight_runs with its as_of and parameters) and written again by `ledger replay` from the
-- same runs, so a replay gives the same rows. Between runs, the apply section forgets at once
-- every customer who is erased, loses profiling consent (withdrawn, or through a merge or a
-- split) or is merged into another: per-customer insight exists only for customers who hold
-- profiling consent now.
-- depends: customer_profile, facts

-- section: schema
CREATE TABLE insight_runs (
    kind              VARCHAR PRIMARY KEY,
    as_of             TIMESTAMP NOT NULL,
    model_version     VARCHAR NOT NULL,
    parameters        VARCHAR NOT NULL,
    summary           VARCHAR NOT NULL,
    ran_at            TIMESTAMP NOT NULL
);

CREATE TABLE churn_risk (
    customer_id       VARCHAR PRIMARY KEY,
    score             DOUBLE NOT NULL,
    band              VARCHAR NOT NULL,
    reasons           VARCHAR[] NOT NULL,
    model_version     VARCHAR NOT NULL,
    as_of             TIMESTAMP NOT NULL
);

CREATE TABLE basket_pairs (
    sku               VARCHAR NOT NULL,
    with_sku          VARCHAR NOT NULL,
    orders_together   BIGINT NOT NULL,
    support           DOUBLE NOT NULL,
    confidence        DOUBLE NOT NULL,
    lift              DOUBLE NOT NULL,
    model_version     VARCHAR NOT NULL,
    as_of             TIMESTAMP NOT NULL,
    PRIMARY KEY (sku, with_sku)
);

CREATE TABLE next_best_offer (
    customer_id       VARCHAR NOT NULL,
    rank              INTEGER NOT NULL,
    sku               VARCHAR NOT NULL,
    score             DOUBLE NOT NULL,
    why               VARCHAR NOT NULL,
    model_version     VARCHAR NOT NULL,
    as_of             TIMESTAMP NOT NULL,
    PRIMARY KEY (customer_id, rank)
);

CREATE TABLE customer_clusters (
    customer_id       VARCHAR PRIMARY KEY,
    cluster           INTEGER NOT NULL,
    model_version     VARCHAR NOT NULL,
    as_of             TIMESTAMP NOT NULL
);

CREATE TABLE clusters (
    cluster           INTEGER PRIMARY KEY,
    customers         BIGINT NOT NULL,
    description       VARCHAR NOT NULL,
    centre            MAP(VARCHAR, DOUBLE) NOT NULL,
    model_version     VARCHAR NOT NULL,
    as_of             TIMESTAMP NOT NULL
);

-- section: apply
-- Forget, in the batch that may change who may be profiled (an erasure, a consent, a merge or a
-- split, whichever id it was recorded under), everyone who may not be now: customer_profile's
-- apply ran first, so its consent and erasure are this batch's. The insight tables are small
-- (a row per profiled customer), so the whole of them is checked.
CREATE OR REPLACE TEMP TABLE insight_forget AS
SELECT customer_id FROM (
    SELECT customer_id FROM churn_risk UNION SELECT customer_id FROM next_best_offer
    UNION SELECT customer_id FROM customer_clusters
)
WHERE EXISTS (SELECT 1 FROM batch_events
              WHERE event_type IN ('CustomerErased', 'ConsentChanged', 'CustomersMerged', 'CustomerSplit'))
  AND customer_id NOT IN (SELECT customer_id FROM customer_profile WHERE consent_profiling AND NOT erased
                          AND customer_id NOT IN (SELECT customer_id FROM customer_merges));
DELETE FROM churn_risk WHERE customer_id IN (SELECT customer_id FROM insight_forget);
DELETE FROM next_best_offer WHERE customer_id IN (SELECT customer_id FROM insight_forget);
DELETE FROM customer_clusters WHERE customer_id IN (SELECT customer_id FROM insight_forget);
