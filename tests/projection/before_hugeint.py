"""The read models whose sums were BIGINT, as they were before the `sums_in_hugeint` upgrade:
their schema sections verbatim (checked against the upgrades' checksums), to build a file
as that version of the ledger left it. Where a later upgrade changed a model's tables too
(`consent_drives_segments`: rfm, segments; `timeline_index`: events; `feedback_unknown_contact`:
satisfaction), the sections that wrote
them then are kept as well, and the models added since (`consent`) are left out of the whole
old catalogue."""

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


EVENTS = next(m for m in load_models() if m.name == "events").sections["schema"].split("\n\n-- A customer's")[0]
"""The timeline before `timeline_index`: the table without its index on customer_id."""


SATISFACTION = """CREATE VIEW feedback_attributed AS
WITH contacts AS (
    SELECT customer_id, contact_id,
           arg_max(channel, {'o': occurred_at, 'r': recorded_at, 'e': event_id}) AS channel
    FROM events
    WHERE event_type = 'ContactLogged'
    GROUP BY customer_id, contact_id
)
SELECT f.event_id, f.customer_id, f.occurred_at, f.occurred_at::DATE AS day,
       coalesce(c.channel, f.channel) AS channel,
       f.channel AS feedback_channel,
       f.about_contact_id, f.about_order_id,
       c.channel IS NOT NULL AS attributed_to_contact,
       f.kind, f.score
FROM events f
LEFT JOIN contacts c ON c.customer_id = f.customer_id AND c.contact_id = f.about_contact_id
WHERE f.event_type = 'FeedbackGiven';

CREATE TABLE satisfaction_daily (
    day               DATE NOT NULL,
    channel           VARCHAR NOT NULL,
    csat_responses    BIGINT NOT NULL,
    csat_satisfied    BIGINT NOT NULL,
    csat_pct          DOUBLE,
    nps_responses     BIGINT NOT NULL,
    nps_promoters     BIGINT NOT NULL,
    nps_passives      BIGINT NOT NULL,
    nps_detractors    BIGINT NOT NULL,
    nps               DOUBLE,
    ces_responses     BIGINT NOT NULL,
    ces_sum           BIGINT NOT NULL,
    ces_avg           DOUBLE,
    contacts          BIGINT NOT NULL,
    complaints        BIGINT NOT NULL,
    complaint_rate    DOUBLE,
    PRIMARY KEY (day, channel)
);

CREATE MACRO satisfaction_rollup(grain) AS TABLE
SELECT date_trunc(grain, day)::DATE AS period, channel,
       sum(csat_responses)::BIGINT AS csat_responses,
       sum(csat_satisfied)::BIGINT AS csat_satisfied,
       100.0 * sum(csat_satisfied) / nullif(sum(csat_responses), 0) AS csat_pct,
       sum(nps_responses)::BIGINT AS nps_responses,
       sum(nps_promoters)::BIGINT AS nps_promoters,
       sum(nps_passives)::BIGINT AS nps_passives,
       sum(nps_detractors)::BIGINT AS nps_detractors,
       100.0 * (sum(nps_promoters) - sum(nps_detractors)) / nullif(sum(nps_responses), 0) AS nps,
       sum(ces_responses)::BIGINT AS ces_responses,
       sum(ces_sum)::BIGINT AS ces_sum,
       sum(ces_sum) / nullif(sum(ces_responses), 0) AS ces_avg,
       sum(contacts)::BIGINT AS contacts,
       sum(complaints)::BIGINT AS complaints,
       sum(complaints) / nullif(sum(contacts), 0) AS complaint_rate
FROM satisfaction_daily
GROUP BY ALL;

-- Weeks start on Monday (ISO); `week` and `month` are the first day of the period.
CREATE VIEW satisfaction_weekly AS
SELECT * RENAME (period AS week) FROM satisfaction_rollup('week');

CREATE VIEW satisfaction_monthly AS
SELECT * RENAME (period AS month) FROM satisfaction_rollup('month');

-- By the customer's current RFM segment (as of the last refresh; 'none' without one), per
-- month of the feedback or contact.
CREATE VIEW satisfaction_by_segment AS
WITH fb AS (
    SELECT date_trunc('month', f.day)::DATE AS month, coalesce(r.segment, 'none') AS rfm_segment,
           count(*) FILTER (WHERE f.kind = 'csat') AS csat_responses,
           count(*) FILTER (WHERE f.kind = 'csat' AND f.score >= 4) AS csat_satisfied,
           count(*) FILTER (WHERE f.kind = 'nps') AS nps_responses,
           count(*) FILTER (WHERE f.kind = 'nps' AND f.score >= 9) AS nps_promoters,
           count(*) FILTER (WHERE f.kind = 'nps' AND f.score BETWEEN 7 AND 8) AS nps_passives,
           count(*) FILTER (WHERE f.kind = 'nps' AND f.score <= 6) AS nps_detractors,
           count(*) FILTER (WHERE f.kind = 'ces') AS ces_responses,
           coalesce(sum(f.score) FILTER (WHERE f.kind = 'ces'), 0) AS ces_sum
    FROM feedback_attributed f
    LEFT JOIN rfm r USING (customer_id)
    GROUP BY ALL
),
ct AS (
    SELECT date_trunc('month', e.occurred_at)::DATE AS month, coalesce(r.segment, 'none') AS rfm_segment,
           count(*) AS contacts, count(*) FILTER (WHERE e.is_complaint) AS complaints
    FROM events e
    LEFT JOIN rfm r USING (customer_id)
    WHERE e.event_type = 'ContactLogged'
    GROUP BY ALL
)
SELECT month, rfm_segment,
       coalesce(csat_responses, 0) AS csat_responses,
       coalesce(csat_satisfied, 0) AS csat_satisfied,
       100.0 * csat_satisfied / nullif(csat_responses, 0) AS csat_pct,
       coalesce(nps_responses, 0) AS nps_responses,
       coalesce(nps_promoters, 0) AS nps_promoters,
       coalesce(nps_passives, 0) AS nps_passives,
       coalesce(nps_detractors, 0) AS nps_detractors,
       100.0 * (nps_promoters - nps_detractors) / nullif(nps_responses, 0) AS nps,
       coalesce(ces_responses, 0) AS ces_responses,
       coalesce(ces_sum, 0) AS ces_sum,
       ces_sum / nullif(ces_responses, 0) AS ces_avg,
       coalesce(contacts, 0) AS contacts,
       coalesce(complaints, 0) AS complaints,
       complaints / nullif(contacts, 0) AS complaint_rate
FROM fb FULL OUTER JOIN ct USING (month, rfm_segment);"""
"""Satisfaction before `feedback_unknown_contact`: no count of feedback about unknown contacts."""

SATISFACTION_APPLY = """CREATE OR REPLACE TEMP TABLE satisfaction_days AS
SELECT occurred_at::DATE AS day
FROM batch_events
WHERE event_type IN ('FeedbackGiven', 'ContactLogged')
UNION
SELECT f.occurred_at::DATE
FROM events f
JOIN batch_events c
  ON c.event_type = 'ContactLogged' AND f.customer_id = c.customer_id
 AND f.about_contact_id = c.contact_id
WHERE f.event_type = 'FeedbackGiven';

DELETE FROM satisfaction_daily WHERE day IN (SELECT day FROM satisfaction_days);
INSERT INTO satisfaction_daily
WITH fb AS (
    SELECT day, channel,
           count(*) FILTER (WHERE kind = 'csat') AS csat_responses,
           count(*) FILTER (WHERE kind = 'csat' AND score >= 4) AS csat_satisfied,
           count(*) FILTER (WHERE kind = 'nps') AS nps_responses,
           count(*) FILTER (WHERE kind = 'nps' AND score >= 9) AS nps_promoters,
           count(*) FILTER (WHERE kind = 'nps' AND score BETWEEN 7 AND 8) AS nps_passives,
           count(*) FILTER (WHERE kind = 'nps' AND score <= 6) AS nps_detractors,
           count(*) FILTER (WHERE kind = 'ces') AS ces_responses,
           coalesce(sum(score) FILTER (WHERE kind = 'ces'), 0) AS ces_sum
    FROM feedback_attributed
    WHERE day IN (SELECT day FROM satisfaction_days)
    GROUP BY day, channel
),
ct AS (
    SELECT occurred_at::DATE AS day, channel,
           count(*) AS contacts, count(*) FILTER (WHERE is_complaint) AS complaints
    FROM events
    WHERE event_type = 'ContactLogged' AND occurred_at::DATE IN (SELECT day FROM satisfaction_days)
    GROUP BY day, channel
)
SELECT day, channel,
       coalesce(csat_responses, 0),
       coalesce(csat_satisfied, 0),
       100.0 * csat_satisfied / nullif(csat_responses, 0),
       coalesce(nps_responses, 0),
       coalesce(nps_promoters, 0),
       coalesce(nps_passives, 0),
       coalesce(nps_detractors, 0),
       100.0 * (nps_promoters - nps_detractors) / nullif(nps_responses, 0),
       coalesce(ces_responses, 0),
       coalesce(ces_sum, 0),
       ces_sum / nullif(ces_responses, 0),
       coalesce(contacts, 0),
       coalesce(complaints, 0),
       complaints / nullif(contacts, 0)
FROM fb FULL OUTER JOIN ct USING (day, channel);"""


SCHEMAS = {
    "events": EVENTS,
    "customer_spend": CUSTOMER_SPEND, "orders": ORDERS, "rfm": RFM, "customer_profile": CUSTOMER_PROFILE,
    "segments": SEGMENTS, "satisfaction": SATISFACTION,
}
SECTIONS = {"rfm": {"refresh": RFM_REFRESH}, "segments": {"segments": SEGMENTS_SEGMENTS},
            "satisfaction": {"apply": SATISFACTION_APPLY}}
"""The sections that wrote the old tables, where the ones of now would not fit them."""
DEPENDS = {"rfm": ("orders", "lifecycle"), "segments": ()}
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
        [with_old_schema(m) if m.name in chosen else m for m in load_models() if m.name not in left_out]
    )
