-- Customers we may call: marketing_phone consent as of the refresh, and a phone number on file.
-- consent: marketing_phone
SELECT DISTINCT customer_id FROM facts
WHERE phone IS NOT NULL AND occurred_at <= getvariable('as_of')
