-- Customers who made at least two complaints in the 90 days up to the refresh's as_of.
SELECT customer_id
FROM facts
WHERE event_type = 'ContactLogged' AND is_complaint
  AND occurred_at <= getvariable('as_of')
  AND occurred_at > getvariable('as_of') - INTERVAL 90 DAY
GROUP BY customer_id
HAVING count(*) >= 2
