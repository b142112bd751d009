"""The one fact factory of the tests: valid facts as adapters send them, each with fresh ids.

Every default lives here once; a test names the values it asserts on.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from itertools import count
from typing import Any

from ledger.contract.facts import event_id_for

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
"""The ledger's clock in tests that record facts of the recent past."""
OCCURRED = datetime(2026, 5, 1, 9, 30, tzinfo=UTC)
"""When a fact happened, unless a test says otherwise."""
CLOCK = datetime(2030, 1, 1, tzinfo=UTC)
"""A clock far in the future, so that any `occurred_at` of a read-model test is accepted."""
T0 = datetime(2026, 1, 1, tzinfo=UTC)
DAY = timedelta(days=1)

DEFAULTS: dict[str, dict[str, Any]] = {
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

FactFactory = Callable[..., dict[str, Any]]


def fact(event_type: str, customer_id: str = "C1", at: datetime = OCCURRED, **fields: Any) -> dict[str, Any]:
    """A valid fact of `event_type` for `customer_id` that occurred `at`, with a fresh
    source_event_id (and contact or order id); `fields` override, a field given as ``...``
    is left out. A PurchaseRefunded names a fresh order unless given one: the ledger keeps it
    waiting until that order is recorded (ledger.write.waiting), so name the order bought."""
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
    base.update(DEFAULTS[event_type])
    base.update(fields)
    return {k: v for k, v in base.items() if v is not ...}


def buy(customer_id: str, at: datetime, **fields: Any) -> dict[str, Any]:
    return fact("PurchaseMade", customer_id, at, **fields)


def consent(customer_id: str, at: datetime, purpose: str = "profiling", granted: bool = True) -> dict[str, Any]:
    """A ConsentChanged fact: `customer_id` grants (or withdraws) `purpose` at `at`."""
    return fact("ConsentChanged", customer_id, at, purpose=purpose, granted=granted)


def contact(customer_id: str, n: int, **fields: Any) -> dict[str, Any]:
    """A ContactLogged fact numbered `n`: source_event_id ``k<n>``, contact ``K<n>``, so the
    same `n` is the same fact (a resend)."""
    return fact("ContactLogged", customer_id, source="callcentre", source_event_id=f"k{n}",
                contact_id=f"K{n}", **fields)


def event_id(fact: dict[str, Any]) -> str:
    """The event_id the ledger gives a fact with a source_event_id."""
    return str(event_id_for(fact["source"], fact["source_event_id"]))


def naive(moment: datetime) -> datetime:
    """How DuckDB returns a UTC TIMESTAMP: without a time zone."""
    return moment.astimezone(UTC).replace(tzinfo=None)
