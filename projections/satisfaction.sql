-- Satisfaction: counts per (day, channel), so that every rollup (week, month, all channels)
-- is an exact sum. Ratios are derived from the counts and are NULL when nothing was counted.
--
-- Feedback counts toward the channel of the contact it is about when that contact is known
-- (same customer_id and contact_id; the latest ContactLogged by occurred_at, recorded_at,
-- event_id), otherwise toward its own channel. Its day is its occurred_at date (UTC).
-- Contacts and complaints count on the contact's own day and channel.
--
-- Feedback about a contact the ledger does not know (about_contact_id set, no ContactLogged
-- with that contact_id for the customer) is accepted: survey tools often send it before the
-- contact reaches the ledger, or without it ever doing so. It counts toward its own channel,
-- and also in feedback_unknown_contact; a contact that arrives later moves it to the
-- contact's channel and out of that count.
--
-- The apply section recomputes whole days: every day with feedback or a contact in the batch,
-- and every day with feedback about a contact in the batch (a late contact can move earlier
-- feedback to another channel).
--
-- Projectors sharing the topic (a consumer group) each count their own partitions' customers,
-- so a day and channel has a row in several partitions: the combine section adds the counts up
-- and derives the ratios from the sums, as the apply section does, never from other ratios.
-- depends: facts, rfm
-- partial: satisfaction_daily

-- section: schema
CREATE VIEW feedback_attributed AS
WITH contacts AS (
    SELECT customer_id, contact_id,
           arg_max(channel, {'o': occurred_at, 'r': recorded_at, 'e': event_id}) AS channel
    FROM facts
    WHERE event_type = 'ContactLogged'
    GROUP BY customer_id, contact_id
)
SELECT f.event_id, f.customer_id, f.occurred_at, f.occurred_at::DATE AS day,
       coalesce(c.channel, f.channel) AS channel,
       f.channel AS feedback_channel,
       f.about_contact_id, f.about_order_id,
       c.channel IS NOT NULL AS attributed_to_contact,
       f.kind, f.score
FROM facts f
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
    feedback_unknown_contact BIGINT NOT NULL,
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
       sum(complaints) / nullif(sum(contacts), 0) AS complaint_rate,
       sum(feedback_unknown_contact)::BIGINT AS feedback_unknown_contact
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
    FROM facts e
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
FROM fb FULL OUTER JOIN ct USING (month, rfm_segment);

-- section: apply
CREATE OR REPLACE TEMP TABLE satisfaction_days AS
SELECT occurred_at::DATE AS day
FROM batch_facts
WHERE event_type IN ('FeedbackGiven', 'ContactLogged')
UNION
SELECT f.occurred_at::DATE
FROM facts f
JOIN batch_facts c
  ON c.event_type = 'ContactLogged' AND f.customer_id = c.customer_id
 AND f.about_contact_id = c.contact_id
WHERE f.event_type = 'FeedbackGiven'
UNION
-- Every day an amended customer had a feedback or a contact on, as recorded or as corrected.
SELECT occurred_at::DATE FROM events
WHERE customer_id IN (SELECT customer_id FROM amended_ids) AND event_type IN ('FeedbackGiven', 'ContactLogged');

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
           coalesce(sum(score) FILTER (WHERE kind = 'ces'), 0) AS ces_sum,
           count(*) FILTER (WHERE about_contact_id IS NOT NULL AND NOT attributed_to_contact) AS unknown_contact
    FROM feedback_attributed
    WHERE day IN (SELECT day FROM satisfaction_days)
    GROUP BY day, channel
),
ct AS (
    SELECT occurred_at::DATE AS day, channel,
           count(*) AS contacts, count(*) FILTER (WHERE is_complaint) AS complaints
    FROM facts
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
       complaints / nullif(contacts, 0),
       coalesce(unknown_contact, 0)
FROM fb FULL OUTER JOIN ct USING (day, channel);

-- section: combine
INSERT INTO satisfaction_daily
WITH summed AS (
    SELECT day, channel,
           sum(csat_responses)::BIGINT AS csat_responses, sum(csat_satisfied)::BIGINT AS csat_satisfied,
           sum(nps_responses)::BIGINT AS nps_responses, sum(nps_promoters)::BIGINT AS nps_promoters,
           sum(nps_passives)::BIGINT AS nps_passives, sum(nps_detractors)::BIGINT AS nps_detractors,
           sum(ces_responses)::BIGINT AS ces_responses, sum(ces_sum)::BIGINT AS ces_sum,
           sum(contacts)::BIGINT AS contacts, sum(complaints)::BIGINT AS complaints,
           sum(feedback_unknown_contact)::BIGINT AS feedback_unknown_contact
    FROM partial_satisfaction_daily
    GROUP BY day, channel
)
SELECT day, channel,
       csat_responses, csat_satisfied, 100.0 * csat_satisfied / nullif(csat_responses, 0),
       nps_responses, nps_promoters, nps_passives, nps_detractors,
       100.0 * (nps_promoters - nps_detractors) / nullif(nps_responses, 0),
       ces_responses, ces_sum, ces_sum / nullif(ces_responses, 0),
       contacts, complaints, complaints / nullif(contacts, 0),
       feedback_unknown_contact
FROM summed;
