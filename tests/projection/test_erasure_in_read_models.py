"""An erased customer's personal data leaves the timeline: every personal column of every
one of their events is NULL, whether the erasure is projected after their events or an event
of theirs is projected after the erasure. Other customers keep theirs."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa

from ledger.projection.decode import EVENT_COLUMNS
from ledger.projection.readmodels import ReadModels
from tests.support.facts import DAY, T0, fact
from tests.support.readmodels import Harness

PERSONAL = ("name", "email", "phone", "city", "birth_date", "attributes", "comment")
COUNT_PERSONAL = "SELECT " + ", ".join(f"count({c})" for c in PERSONAL) + " FROM events WHERE customer_id = ?"
PERSONAL_DATA = {
    "name": "Ada Lovelace", "email": "ada@example.com", "phone": "+44 20 7946 0000",
    "city": "London", "birth_date": date(1815, 12, 10), "attributes": {"tier": "gold"},
}


def personal_history(customer_id: str) -> list[dict[str, Any]]:
    return [
        fact("CustomerRegistered", customer_id, T0, **PERSONAL_DATA),
        fact("ProfileUpdated", customer_id, T0 + DAY, phone="+44 1225 000000", city="Bath",
             attributes={"tier": "platinum"}),
        fact("FeedbackGiven", customer_id, T0 + 2 * DAY, comment="my neighbour Bob was rude"),
        fact("ContactLogged", customer_id, T0 + 3 * DAY),
    ]


def test_an_erasure_projected_after_the_customers_events_clears_them(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    try:
        h.record(*personal_history("ada"), *personal_history("bo"))
        h.project(T0 + 10 * DAY)
        assert h.rows(COUNT_PERSONAL, "ada") == [(1, 1, 2, 2, 1, 2, 1)]
        h.record(fact("CustomerErased", "ada", T0 + 4 * DAY))
        h.project(T0 + 10 * DAY)
        assert h.rows(COUNT_PERSONAL, "ada") == [(0, 0, 0, 0, 0, 0, 0)]
        assert h.rows(COUNT_PERSONAL, "bo") == [(1, 1, 2, 2, 1, 2, 1)]
        assert h.rows("SELECT erased, name, email, phone, city FROM customer_profile WHERE customer_id = 'ada'") == [
            (True, None, None, None, None)
        ]
    finally:
        h.close()


def row(number: int, event_type: str, customer_id: str, **fields: Any) -> dict[str, Any]:
    event = {name: None for name in EVENT_COLUMNS.names}
    event.update(
        event_id=f"00000000-0000-0000-0000-{number:012d}", event_type=event_type,
        customer_id=customer_id, occurred_at=datetime(2026, 1, 1) + timedelta(hours=number),
        recorded_at=datetime(2026, 2, 1) + timedelta(seconds=number), source="test", **fields,
    )
    return event


def test_an_event_projected_after_its_customers_erasure_arrives_without_personal_data(
    tmp_path: Path,
) -> None:
    """Arrival order is not event order (a Kafka consumer may apply partitions' batches in any
    interleaving, a replay may split differently), so the erasure can be applied first."""
    def later_batch(customer_id: str, first: int) -> list[dict[str, Any]]:
        return [
            row(first, "CustomerRegistered", customer_id, **PERSONAL_DATA),
            row(first + 1, "FeedbackGiven", customer_id, kind="csat", score=2, channel="email",
                comment="call me on my mobile"),
        ]

    with ReadModels(tmp_path / "rm.duckdb") as models:
        models.apply(pa.Table.from_pylist([row(1, "CustomerErased", "ada")], schema=EVENT_COLUMNS), "test", {"n": 1})
        batch = later_batch("ada", 10) + later_batch("bo", 20)
        models.apply(pa.Table.from_pylist(batch, schema=EVENT_COLUMNS), "test", {"n": 5})
        assert models.con.execute(COUNT_PERSONAL, ["ada"]).fetchall() == [(0, 0, 0, 0, 0, 0, 0)]
        assert models.con.execute(COUNT_PERSONAL, ["bo"]).fetchall() == [(1, 1, 1, 1, 1, 1, 1)]
        assert models.con.execute("SELECT count(*) FROM events WHERE customer_id = 'ada'").fetchall() == [(3,)]
