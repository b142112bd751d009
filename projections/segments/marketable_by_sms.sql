-- Customers we may text: marketing_sms consent as of the refresh, and a phone number on file.
-- consent: marketing_sms
SELECT customer_id FROM customer_profile WHERE phone IS NOT NULL AND NOT erased
