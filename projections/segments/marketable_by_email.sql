-- Customers we may e-mail: marketing_email consent as of the refresh, and an e-mail address on
-- file.
-- consent: marketing_email
SELECT DISTINCT customer_id FROM facts
WHERE email IS NOT NULL AND occurred_at <= getvariable('as_of')
