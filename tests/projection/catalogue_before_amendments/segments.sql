-- Segments: named groups of customers, one rule file per segment (projections/segments/NAME.sql,
-- plus any NAME.sql in the `segments_dir` setting), each a query returning customer_id.
--
-- At each refresh the engine runs every rule file into the temp table
-- segment_results(segment, customer_id) and lists the files in
-- segment_runs(segment, file, description, consent, error); then the `segments` section below
-- keeps only the customers holding the segment's consent and updates the membership history.
-- A rule that fails leaves its segment's membership as it was and records the error in
-- `segments.last_error`.
--
-- Consent: every segment is for one consent purpose, `profiling` unless the rule file declares
-- another in its header (`-- consent: marketing_email`). Its members are the rule's customers
-- whose consent for that purpose is granted as of T (`consent`); `segments.without_consent`
-- counts the customers known by T and not erased by T who lack it: left out of the segment
-- whatever its rule says (for a profiling segment: the customers not profiled).
--
-- Membership history is kept at calendar points: joined_at and left_at are the first point
-- that saw the customer in (and then out of) the segment. The points are the boundaries of the
-- `segment_history` setting (the first of each month, 00:00 UTC, by default) and the last
-- refresh's T, so a replay rebuilds the history the projector built (history.py). A member at
-- point P has joined_at <= P and (left_at IS NULL or left_at > P). A point replaces whatever
-- was recorded at or after it, so refreshing twice at the same time changes nothing. A rule
-- evaluated at a past point must read what held then: the as-of models and `events` up to
-- getvariable('as_of'), not current-state tables (customer_profile, customer_spend), or its
-- history depends on when refreshes ran.
-- depends: consent, lifecycle

-- section: schema
CREATE TABLE segments (
    segment           VARCHAR PRIMARY KEY,
    file              VARCHAR NOT NULL,
    description       VARCHAR,
    members           BIGINT,
    as_of             TIMESTAMP,
    last_error        VARCHAR,
    last_error_as_of  TIMESTAMP,
    consent           VARCHAR,
    without_consent   BIGINT
);

CREATE TABLE segment_membership (
    segment           VARCHAR NOT NULL,
    customer_id       VARCHAR NOT NULL,
    joined_at         TIMESTAMP NOT NULL,
    left_at           TIMESTAMP
);

-- section: segments
-- Whatever a rule selected, only customers holding its segment's consent at T are members.
DELETE FROM segment_results
WHERE NOT EXISTS (
    SELECT 1 FROM segment_runs s JOIN consent c ON c.purpose = s.consent
    WHERE s.segment = segment_results.segment AND c.customer_id = segment_results.customer_id
      AND c.granted
);

CREATE OR REPLACE TEMP TABLE segment_ok AS
SELECT segment FROM segment_runs WHERE error IS NULL;

-- Rewind what earlier refreshes recorded at or after this as_of (at a refresh's first point:
-- at or after where the history may have changed, `rewind_from`; see history.py).
DELETE FROM segment_membership
WHERE joined_at >= coalesce(getvariable('rewind_from'), getvariable('as_of'))
  AND segment IN (SELECT segment FROM segment_ok);
UPDATE segment_membership SET left_at = NULL
WHERE left_at >= coalesce(getvariable('rewind_from'), getvariable('as_of'))
  AND segment IN (SELECT segment FROM segment_ok);
-- An erased customer holds no consent at any T (consent.sql), so no point ever had them in a
-- segment: their whole history goes, as a replay would leave it.
DELETE FROM segment_membership
WHERE customer_id IN (SELECT customer_id FROM events WHERE event_type = 'CustomerErased');
-- History older than the first boundary kept is cut, as a replay's would be.
DELETE FROM segment_membership WHERE left_at <= getvariable('history_cut');
UPDATE segment_membership SET joined_at = getvariable('history_cut') WHERE joined_at < getvariable('history_cut');

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

CREATE OR REPLACE TEMP TABLE consent_missing AS
SELECT c.purpose, count(*) FILTER (WHERE NOT c.granted) AS without_consent
FROM consent c
JOIN lifecycle l ON l.customer_id = c.customer_id AND l.stage <> 'erased'
GROUP BY c.purpose;

CREATE OR REPLACE TEMP TABLE segments_next AS
SELECT r.segment, r.file, r.description,
       CASE WHEN r.error IS NULL
            THEN (SELECT count(*) FROM segment_results x WHERE x.segment = r.segment)
            ELSE s.members END AS members,
       CASE WHEN r.error IS NULL THEN getvariable('as_of') ELSE s.as_of END AS as_of,
       r.error AS last_error,
       CASE WHEN r.error IS NOT NULL THEN getvariable('as_of') END AS last_error_as_of,
       r.consent,
       CASE WHEN r.error IS NULL THEN coalesce(m.without_consent, 0)
            ELSE s.without_consent END AS without_consent
FROM segment_runs r
LEFT JOIN segments s USING (segment)
LEFT JOIN consent_missing m ON m.purpose = r.consent;

DELETE FROM segments;
INSERT INTO segments BY NAME SELECT * FROM segments_next;
