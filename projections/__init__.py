"""Read models, each defined in SQL: one file per model, named after its table(s).

Each file starts with a header comment holding one ``-- depends: MODEL, ...`` line naming
the models it reads (empty when it reads only the batch); the catalogue
(``ledger.projection.catalogue``) loads every ``*.sql`` here and runs each model's sections
after those of the models it depends on, ties by name. An unknown name or a cycle is an
error naming the file.

Then come named sections, each a ``-- section: NAME`` line followed by statements:

- ``schema``: creates the model's tables (run once, recorded in ``readmodel_migrations``);
- ``apply``: set-based SQL run inside every micro-batch transaction. It sees the temporary
  table ``batch_events`` (this batch's new events, duplicates already removed, columns as
  ``events``) after they were inserted into ``events``;
- ``refresh``: optional, run once the projector has caught up, for models that depend on an
  "as of" time, in one transaction with the other refresh work. It may use the variables
  ``getvariable('as_of')`` (a TIMESTAMP, UTC, no time zone), ``new_days``, ``active_days``,
  ``churn_days`` (INTEGER) and ``reporting_currency`` (VARCHAR), all set from the settings, and
  ``last_point`` (BOOLEAN: this is T itself, not an earlier point of the segment history);
- ``segments``: optional, run in the same refresh transaction after every model's ``refresh``
  and after the segment rule files (``segments/NAME.sql``) were run into the temp tables
  ``segment_results(segment, customer_id)`` and
  ``segment_runs(segment, file, description, error)``.

- ``combine``: for projectors sharing the topic in a consumer group (``ops/group.py``), run
  by the member that combines every partition's slice into the analysts' tables. A table the
  header names in ``-- partial: TABLE, ...`` holds, in each partition, rows for keys other
  partitions have too (satisfaction's days); its slices come in the temporary table
  ``partial_TABLE`` and this section fills TABLE from them.

Segment rules may read every model. Columns are documented in docs/read-models.md.
"""
