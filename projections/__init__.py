"""Read models, each defined in SQL (one file per model), applied in this order.

Each file has named sections, each a ``-- section: NAME`` line followed by statements:

- ``schema``: creates the model's tables (run once, recorded in ``readmodel_migrations``);
- ``apply``: set-based SQL run inside every micro-batch transaction. It sees the temporary
  table ``batch_events`` (this batch's new events, duplicates already removed, columns as
  ``events``) after they were inserted into ``events``;
- ``refresh``: optional, run once the projector has caught up, for models that depend on an
  "as of" time, in one transaction with the other refresh work. It may use the variables
  ``getvariable('as_of')`` (a TIMESTAMP, UTC, no time zone), ``new_days``, ``active_days``,
  ``churn_days`` (INTEGER) and ``reporting_currency`` (VARCHAR), all set from the settings;
- ``segments``: optional, run in the same refresh transaction after every model's ``refresh``
  and after the segment rule files (``segments/NAME.sql``) were run into the temp tables
  ``segment_results(segment, customer_id)`` and
  ``segment_runs(segment, file, description, error)``.

The order matters: ``apply`` and ``refresh`` sections run in ``MODELS`` order, so a model comes
after the models it reads (``rfm`` reads ``lifecycle``; the profile copies the stage and the
RFM segment; segment rules may read everything). Columns are documented in
docs/read-models.md.
"""

MODELS = ("events", "lifecycle", "rfm", "customer_profile", "satisfaction", "segments")
