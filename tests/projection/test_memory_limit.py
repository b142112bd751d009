"""A batch that needs more memory than the read models are given fails with an error naming
the settings to change, applies nothing, and leaves the file usable for smaller batches."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from ledger.errors import ReadModelError
from ledger.projection.decode import EVENT_COLUMNS
from ledger.projection.readmodels import ReadModels
from ledger.settings import Settings


def feedback(count: int) -> pa.Table:
    """`count` CSAT answers, each from a customer of its own (every one a profile row)."""
    columns = {name: pa.nulls(count, EVENT_COLUMNS.field(name).type) for name in EVENT_COLUMNS.names}
    columns.update(
        event_id=pa.array([f"00000000-0000-0000-0000-{i:012d}" for i in range(count)]),
        event_type=pa.array(["FeedbackGiven"] * count),
        customer_id=pa.array([f"C{i}" for i in range(count)]),
        occurred_at=pa.array([datetime(2026, 1, 1) + timedelta(seconds=i) for i in range(count)], pa.timestamp("us")),
        recorded_at=pa.array([datetime(2026, 2, 1)] * count, pa.timestamp("us")),
        source=pa.array(["test"] * count),
        kind=pa.array(["csat"] * count),
        score=pa.array([4] * count, pa.int32()),
        channel=pa.array(["email"] * count),
    )
    return pa.table(columns, schema=EVENT_COLUMNS)


def test_a_batch_too_big_for_the_memory_limit_names_the_settings_and_applies_nothing(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    settings = dataclasses.replace(settings, projection=dataclasses.replace(settings.projection, memory_limit="64MiB"))
    events = feedback(150_000)

    with ReadModels(tmp_path / "rm.duckdb", settings=settings) as models:
        with pytest.raises(ReadModelError) as failed:
            models.apply(events, "test", {"n": 150_000})
        message = str(failed.value)
        assert "LEDGER_MEMORY_LIMIT" in message and "'64MiB'" in message
        assert "LEDGER_CATCH_UP_BATCH_SIZE" in message and "Out of Memory" in message
        assert "SET memory_limit" not in message  # DuckDB's advice, which an operator cannot follow
        assert models.con.execute("SELECT count(*) FROM events").fetchall() == [(0,)]
        assert models.positions("test") == {}

        models.apply(events.slice(0, 2_000), "test", {"n": 2_000})
        models.apply(events.slice(2_000, 2_000), "test", {"n": 4_000})
        assert models.con.execute("SELECT count(*) FROM customer_profile").fetchall() == [(4_000,)]
        assert models.positions("test") == {"n": 4_000}
