"""The read models whose sums were BIGINT, as they were before the `sums_in_hugeint` upgrade:
their schema sections verbatim (checked against the upgrade's checksums), to build a file
as that version of the ledger left it."""

from __future__ import annotations

from ledger.projection.catalogue import Model, in_build_order, load_models, parse_model

CUSTOMER_SPEND = """
CREATE TABLE customer_spend (
    customer_id       VARCHAR NOT NULL,
    currency          VARCHAR NOT NULL,
    purchased_minor   BIGINT NOT NULL,
    refunded_minor    BIGINT NOT NULL,
    net_minor         BIGINT NOT NULL,
    PRIMARY KEY (customer_id, currency)
);
"""


ORDERS = """
-- One row per order known as of T: the first PurchaseMade of (customer_id, order_id) by
-- (occurred_at, recorded_at, event_id), with the refunds in its currency that occurred by T.
CREATE TABLE orders (
    customer_id       VARCHAR NOT NULL,
    order_id          VARCHAR NOT NULL,
    purchased_at      TIMESTAMP NOT NULL,
    channel           VARCHAR NOT NULL,
    currency          VARCHAR NOT NULL,
    total_minor       BIGINT NOT NULL,
    refunded_minor    BIGINT NOT NULL,
    net_minor         BIGINT NOT NULL,
    fully_refunded    BOOLEAN NOT NULL,
    as_of             TIMESTAMP NOT NULL
);
"""


RFM = """
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
    monetary          BIGINT NOT NULL,
    currency          VARCHAR NOT NULL,
    other_currency_orders BIGINT NOT NULL,
    r_score           INTEGER NOT NULL,
    f_score           INTEGER NOT NULL,
    m_score           INTEGER NOT NULL,
    fm_score          INTEGER NOT NULL,
    rfm_cell          VARCHAR NOT NULL,
    segment           VARCHAR NOT NULL,
    as_of             TIMESTAMP NOT NULL
);
"""


CUSTOMER_PROFILE = """
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

-- Bookkeeping for the merge: the ordering key ({o: occurred_at, r: recorded_at, e: event_id})
-- of the event each "last known" value of customer_profile came from; NULL if none yet.
CREATE TABLE customer_profile_keys (
    customer_id  VARCHAR NOT NULL,
    name_at STRUCT(o TIMESTAMP, r TIMESTAMP, e VARCHAR),
    email_at STRUCT(o TIMESTAMP, r TIMESTAMP, e VARCHAR),
    phone_at STRUCT(o TIMESTAMP, r TIMESTAMP, e VARCHAR),
    country_at STRUCT(o TIMESTAMP, r TIMESTAMP, e VARCHAR),
    city_at STRUCT(o TIMESTAMP, r TIMESTAMP, e VARCHAR),
    csat_at STRUCT(o TIMESTAMP, r TIMESTAMP, e VARCHAR),
    nps_at STRUCT(o TIMESTAMP, r TIMESTAMP, e VARCHAR),
    ces_at STRUCT(o TIMESTAMP, r TIMESTAMP, e VARCHAR),
    marketing_email_at STRUCT(o TIMESTAMP, r TIMESTAMP, e VARCHAR),
    marketing_sms_at STRUCT(o TIMESTAMP, r TIMESTAMP, e VARCHAR),
    marketing_phone_at STRUCT(o TIMESTAMP, r TIMESTAMP, e VARCHAR),
    profiling_at STRUCT(o TIMESTAMP, r TIMESTAMP, e VARCHAR)
);
"""


SCHEMAS = {
    "customer_spend": CUSTOMER_SPEND, "orders": ORDERS, "rfm": RFM, "customer_profile": CUSTOMER_PROFILE,
}


def with_old_schema(model: Model) -> Model:
    """`model` with its schema section as it was; its other sections as they are now."""
    others = "".join(f"-- section: {name}\n{sql}\n" for name, sql in model.sections.items() if name != "schema")
    text = f"-- depends: {', '.join(model.depends)}\n-- section: schema\n{SCHEMAS[model.name]}\n{others}"
    return parse_model(model.name, text)


def models_before(only: set[str] | None = None) -> list[Model]:
    """The catalogue with the BIGINT tables of before (of the models in `only`, default all)."""
    chosen = set(SCHEMAS) if only is None else only
    return in_build_order([with_old_schema(m) if m.name in chosen else m for m in load_models()])
