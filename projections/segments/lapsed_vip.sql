-- Former best customers slipping away: RFM frequency or monetary score 5, lifecycle at_risk or
-- churned.
SELECT r.customer_id
FROM rfm r
JOIN lifecycle l USING (customer_id)
WHERE (r.f_score = 5 OR r.m_score = 5) AND l.stage IN ('at_risk', 'churned')
