-- Customers we may text: marketing_sms consent as of the refresh, and a phone number on file.
-- consent: marketing_sms
SELECT DISTINCT customer_id FROM facts
WHERE phone IS NOT NULL AND occurred_at <= getvariable('as_of')
