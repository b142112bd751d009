-- Customers whose latest NPS answer up to as_of was 0-6 (latest by occurred_at, then
-- recorded_at, then event_id).
SELECT customer_id
FROM facts
WHERE event_type = 'FeedbackGiven' AND kind = 'nps' AND occurred_at <= getvariable('as_of')
GROUP BY customer_id
HAVING arg_max(score, {'o': occurred_at, 'r': recorded_at, 'e': event_id}) <= 6
