"""Insight: models trained on the ledger's own history as of a stated time.

Churn risk with reasons (churn.py), items bought together and next best offers (basket.py),
behavioural clusters (clusters.py); runs.py writes their tables into the read models and
records each run so that a replay writes the same rows again. Every model reads `facts` and
`customer_profile` only up to its `as_of`, so a run as of a past date sees what was known then
and can be scored on what happened after it (the backtests). The methods, features and limits
are in docs/insight.md. Churn and clusters need scikit-learn (``pip install
'customer-ledger[insight]'``); basket is SQL only.
"""
