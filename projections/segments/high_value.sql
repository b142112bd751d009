-- Customers in the top monetary quintile (RFM m_score 5) as of the refresh.
SELECT customer_id FROM rfm WHERE m_score = 5
