-- Customers we may call: marketing_phone consent as of the refresh, and a phone number on file.
-- consent: marketing_phone
SELECT customer_id FROM customer_profile WHERE phone IS NOT NULL AND NOT erased
