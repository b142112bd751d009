"""A small harness for read-model tests: a real SQLite ledger, a real DuckDB file, real SQL.

Facts are written as adapters would send them; the ledger's clock sits far in the future so
any `occurred_at` is accepted, and each test picks its own "as of" time.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import count
from pathlib import Path
from typing import Any

from ledger.projection.engine import Projector, RunStats
from ledger.projection.readmodels import ReadModels
from ledger.settings import Settings
from ledger.write.application import Ledger
from ledger.write.log import NotificationLogSource

CLOCK = datetime(2030, 1, 1, tzinfo=UTC)
T0 = datetime(2026, 1, 1, tzinfo=UTC)
DAY = timedelta(days=1)

_DEFAULTS: dict[str, dict[str, Any]] = {
    "CustomerRegistered": {"name": "Ada Lovelace", "email": "ada@example.com", "country": "GB"},
    "ProfileUpdated": {},
    "ConsentChanged": {"purpose": "marketing_email", "granted": True},
    "ContactLogged": {"channel": "phone", "direction": "inbound", "is_complaint": False},
    "PurchaseMade": {"channel": "web", "currency": "EUR", "total_minor": 1000},
    "PurchaseRefunded": {"currency": "EUR", "amount_minor": 1000},
    "FeedbackGiven": {"kind": "csat", "score": 5, "channel": "email"},
    "CustomerErased": {},
}
_ids = count(1)


def fact(event_type: str, customer_id: str, at: datetime, **fields: Any) -> dict[str, Any]:
    """A valid fact of `event_type` for `customer_id` that occurred at `at`."""
    base: dict[str, Any] = {
        "type": event_type,
        "customer_id": customer_id,
        "occurred_at": at,
        "source": "test",
        "source_event_id": f"t{next(_ids)}",
    }
    if event_type == "ContactLogged":
        base["contact_id"] = f"K{next(_ids)}"
    if event_type in ("PurchaseMade", "PurchaseRefunded"):
        base["order_id"] = f"O{next(_ids)}"
    base.update(_DEFAULTS[event_type])
    base.update(fields)
    return base


def buy(customer_id: str, at: datetime, **fields: Any) -> dict[str, Any]:
    return fact("PurchaseMade", customer_id, at, **fields)


class Harness:
    """Record facts, project them, read tables back."""

    def __init__(self, tmp_path: Path, settings: Settings | None = None, batch_size: int = 1000):
        self.settings = settings or Settings(data_dir=tmp_path / "data")
        self.ledger = Ledger(self.settings, clock=lambda: CLOCK)
        self.models = ReadModels(tmp_path / "readmodels.duckdb", settings=self.settings)
        self.projector = Projector(
            self.models, NotificationLogSource(self.ledger), batch_size=batch_size
        )

    def record(self, *facts: dict[str, Any]) -> None:
        outcomes = self.ledger.record_many(facts)
        rejected = [o.error for o in outcomes if not o.ok]
        assert not rejected, rejected

    def project(self, as_of: datetime) -> RunStats:
        return self.projector.catch_up(as_of)

    def rows(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        return self.models.con.execute(sql, list(params)).fetchall()

    def close(self) -> None:
        self.models.close()
        self.ledger.close()


def naive(moment: datetime) -> datetime:
    """How DuckDB returns a UTC TIMESTAMP: without a time zone."""
    return moment.astimezone(UTC).replace(tzinfo=None)
