"""The read models whose sums were BIGINT, as they were before the `sums_in_hugeint` upgrade:
their schema sections verbatim (checked against the upgrades' checksums), to build a file
as that version of the ledger left it. Where a later upgrade changed a model's tables too
(`consent_drives_segments`: rfm, segments; `timeline_index` and `contact_language_sentiment`:
events), the sections that wrote them then are kept as well, and the models added since
(`consent`) are left out of the whole old catalogue."""

from __future__ import annotations

from pathlib import Path

from ledger.projection.catalogue import Model, in_build_order, parse_model

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


RFM_REFRESH = """
DELETE FROM rfm;
INSERT INTO rfm
WITH base AS (
    SELECT o.customer_id,
           max(o.purchased_at) AS last_purchase_at,
           count(*) AS frequency,
           coalesce(sum(o.net_minor) FILTER (WHERE o.currency = getvariable('reporting_currency')), 0)
               AS monetary,
           count(*) FILTER (WHERE o.currency <> getvariable('reporting_currency')) AS other_currency_orders
    FROM orders o
    JOIN lifecycle l ON l.customer_id = o.customer_id AND l.stage <> 'erased'
    WHERE NOT o.fully_refunded
    GROUP BY o.customer_id
),
valued AS (
    SELECT *,
           (epoch_us(getvariable('as_of')) - epoch_us(last_purchase_at)) // 86400000000 AS recency_days
    FROM base
),
scored AS (
    SELECT *,
           (1 + (5 * (rank() OVER (ORDER BY recency_days DESC) - 1)) // count(*) OVER ())::INTEGER AS r_score,
           (1 + (5 * (rank() OVER (ORDER BY frequency) - 1)) // count(*) OVER ())::INTEGER AS f_score,
           (1 + (5 * (rank() OVER (ORDER BY monetary) - 1)) // count(*) OVER ())::INTEGER AS m_score
    FROM valued
)
SELECT s.customer_id, s.last_purchase_at, s.recency_days, s.frequency, s.monetary,
       getvariable('reporting_currency'), s.other_currency_orders,
       s.r_score, s.f_score, s.m_score, (s.f_score + s.m_score + 1) // 2,
       concat(s.r_score, s.f_score, s.m_score),
       m.segment,
       getvariable('as_of')
FROM scored s
JOIN rfm_segment_map m ON m.r_score = s.r_score AND m.fm_score = (s.f_score + s.m_score + 1) // 2;
"""


SEGMENTS = """
CREATE TABLE segments (
    segment           VARCHAR PRIMARY KEY,
    file              VARCHAR NOT NULL,
    description       VARCHAR,
    members           BIGINT,
    as_of             TIMESTAMP,
    last_error        VARCHAR,
    last_error_as_of  TIMESTAMP
);

CREATE TABLE segment_membership (
    segment           VARCHAR NOT NULL,
    customer_id       VARCHAR NOT NULL,
    joined_at         TIMESTAMP NOT NULL,
    left_at           TIMESTAMP
);
"""


SEGMENTS_SEGMENTS = """
CREATE OR REPLACE TEMP TABLE segment_ok AS
SELECT segment FROM segment_runs WHERE error IS NULL;

DELETE FROM segment_membership
WHERE joined_at >= getvariable('as_of') AND segment IN (SELECT segment FROM segment_ok);
UPDATE segment_membership SET left_at = NULL
WHERE left_at >= getvariable('as_of') AND segment IN (SELECT segment FROM segment_ok);

UPDATE segment_membership SET left_at = getvariable('as_of')
WHERE left_at IS NULL
  AND (segment NOT IN (SELECT segment FROM segment_runs)
       OR (segment IN (SELECT segment FROM segment_ok)
           AND NOT EXISTS (SELECT 1 FROM segment_results r
                           WHERE r.segment = segment_membership.segment
                             AND r.customer_id = segment_membership.customer_id)));

INSERT INTO segment_membership
SELECT r.segment, r.customer_id, getvariable('as_of'), NULL
FROM segment_results r
WHERE NOT EXISTS (
    SELECT 1 FROM segment_membership m
    WHERE m.segment = r.segment AND m.customer_id = r.customer_id AND m.left_at IS NULL
);

CREATE OR REPLACE TEMP TABLE segments_next AS
SELECT r.segment, r.file, r.description,
       CASE WHEN r.error IS NULL
            THEN (SELECT count(*) FROM segment_results x WHERE x.segment = r.segment)
            ELSE s.members END AS members,
       CASE WHEN r.error IS NULL THEN getvariable('as_of') ELSE s.as_of END AS as_of,
       r.error AS last_error,
       CASE WHEN r.error IS NOT NULL THEN getvariable('as_of') END AS last_error_as_of
FROM segment_runs r
LEFT JOIN segments s USING (segment);

DELETE FROM segments;
INSERT INTO segments SELECT * FROM segments_next;
"""


RELEASED = Path(__file__).with_name("catalogue_before_amendments")
"""The whole catalogue as the release before amendments left it: the base of an old file."""


def released_models() -> list[Model]:
    return [parse_model(p.stem, p.read_text("utf-8")) for p in sorted(RELEASED.glob("*.sql"))]


EVENTS = next(m for m in released_models() if m.name == "events").sections["schema"].split("\n\n-- A customer's")[0]
"""The timeline before `timeline_index`: the table without its index on customer_id."""


SCHEMAS = {
    "events": EVENTS,
    "customer_spend": CUSTOMER_SPEND, "orders": ORDERS, "rfm": RFM, "customer_profile": CUSTOMER_PROFILE,
    "segments": SEGMENTS,
}
SECTIONS = {"rfm": {"refresh": RFM_REFRESH}, "segments": {"segments": SEGMENTS_SEGMENTS}}
"""The sections that wrote the old tables, where the ones of now would not fit them."""
DEPENDS = {"rfm": ("orders", "lifecycle"), "segments": (), "orders": ("events",)}
NEWER = {"consent"}
"""Models added since."""


def with_old_schema(model: Model) -> Model:
    """`model` with its schema section as it was, and the sections of `SECTIONS`; its other
    sections as they are now."""
    sections = {**model.sections, **SECTIONS.get(model.name, {})}
    others = "".join(f"-- section: {name}\n{sql}\n" for name, sql in sections.items() if name != "schema")
    depends = DEPENDS.get(model.name, model.depends)
    text = f"-- depends: {', '.join(depends)}\n-- section: schema\n{SCHEMAS[model.name]}\n{others}"
    return parse_model(model.name, text)


def models_before(only: set[str] | None = None) -> list[Model]:
    """The catalogue with the BIGINT tables of before (of the models in `only`, default all,
    and then without the models added since)."""
    chosen = set(SCHEMAS) if only is None else only
    left_out = NEWER if only is None else set()
    return in_build_order(
        [with_old_schema(m) if m.name in chosen and m.name in SCHEMAS else m
         for m in released_models() if m.name not in left_out]
    )
