-- Customers we may e-mail: marketing_email consent granted by their latest ConsentChanged for
-- that purpose up to as_of, and an e-mail address on file.
SELECT c.customer_id
FROM events c
JOIN customer_profile p ON p.customer_id = c.customer_id
WHERE c.event_type = 'ConsentChanged' AND c.purpose = 'marketing_email'
  AND c.occurred_at <= getvariable('as_of')
  AND p.email IS NOT NULL AND NOT p.erased
GROUP BY c.customer_id
HAVING arg_max(c.granted, {'o': c.occurred_at, 'r': c.recorded_at, 'e': c.event_id})
