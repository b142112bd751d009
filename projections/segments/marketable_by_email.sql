-- Customers we may e-mail: marketing_email consent as of the refresh, and an e-mail address on
-- file.
-- consent: marketing_email
SELECT customer_id FROM customer_profile WHERE email IS NOT NULL AND NOT erased
