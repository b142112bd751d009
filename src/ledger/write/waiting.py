"""Refunds that arrive before their order: parked, then decided when the order arrives.

Adapters do not deliver in order (a shop's refund webhook may beat its order webhook, an
intake partition may lag another), so a refund of an order the customer does not have yet is
neither refused nor recorded: it waits in the store (write/waiting_table.py), and its Outcome
says ``waiting``. The batch that records the order decides the refunds waiting for it right
after it, in the order they arrived, in the same transaction: each is recorded, or, if it now
breaks an invariant (another currency, more than is left of the order), kept as a rejected
row with its reason, which `ledger waiting` lists. A late rejection cannot go back to a
sender who was told "waiting" long ago; the row is where an operator finds it.

A refund that names an order of another customer waits too: orders are per customer, and
the ledger cannot tell "not yet" from "never". `ledger status` shows how many wait and since
when, so one that waits for days is seen.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from ledger.errors import LedgerError
from ledger.write.domain import Customer
from ledger.write.waiting_table import WaitingRow

Index = Callable[[str, dict[str, Any], bytes], None]
"""What the application does with a fact it records: add it to the batch's index of event ids."""


@dataclass
class WaitingBatch:
    """What one batch does to the waiting facts: parks some, records or rejects others."""

    known: list[WaitingRow]
    """The store's waiting rows this batch may meet (its refunds' ids, its orders)."""
    next_stamp: datetime
    """The `recorded_at` of the next fact recorded from the waiting ones."""
    added: list[WaitingRow] = field(default_factory=list)
    done: list[str] = field(default_factory=list)
    rejected: list[tuple[str, str]] = field(default_factory=list)
    holders: dict[UUID, Customer] = field(default_factory=dict)
    """Customers with a fact parked by this batch: their new data key is saved with it."""
    _by_id: dict[str, WaitingRow] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._by_id = {row.event_id: row for row in self.known}

    def parked(self, event_id: str) -> WaitingRow | None:
        """The waiting row of this fact, if it waits already (sent again: it waits once)."""
        row = self._by_id.get(event_id)
        return None if row is None or event_id in self.done else row

    def park(self, customer: Customer, record: dict[str, Any], data: bytes) -> None:
        row = WaitingRow(record["event_id"], record["customer_id"], record["order_id"], record["source"],
                         record.get("source_event_id"), record["recorded_at"], data)
        self.added.append(row)
        self._by_id[row.event_id] = row
        self.holders[customer.id] = customer

    def due(self, customer_id: str, order_id: str) -> list[WaitingRow]:
        """The facts waiting for this order, in the order they arrived."""
        settled = {*self.done, *(event_id for _, event_id in self.rejected)}
        return [row for row in (*self.known, *self.added)
                if row.customer_id == customer_id and row.order_id == order_id and row.event_id not in settled]

    @property
    def changes(self) -> bool:
        return bool(self.added or self.done or self.rejected)

    def stored(self) -> dict[str, Any]:
        """The recorders' arguments for this batch's changes (write/waiting_table.py)."""
        return {"waiting": self.added, "waiting_done": self.done, "waiting_rejected": self.rejected}


class WaitingFacts:
    """The ledger application's side of waiting facts (mixed into it)."""

    codec: Any
    recorder: Any

    def _waiting_batch(self, records: list[dict[str, Any]], types: list[str], now: datetime) -> WaitingBatch:
        """The waiting rows a batch may meet, read in one query, and only for a batch with
        refunds or orders in it."""
        refunds = [r["event_id"] for t, r in zip(types, records, strict=True) if t == "PurchaseRefunded"]
        orders = list({(r["customer_id"], r["order_id"]) for t, r in zip(types, records, strict=True)
                       if t == "PurchaseMade" and isinstance(r["customer_id"], str)
                       and isinstance(r.get("order_id"), str) and "\x00" not in r["customer_id"] + r["order_id"]})
        refunds = [i for i in refunds if "\x00" not in i]
        known = self.recorder.select_waiting(refunds, orders) if refunds or orders else []
        return WaitingBatch(known, now + timedelta(microseconds=len(records)))

    def _decide_waiting(self, customer: Customer, order_id: str, batch: WaitingBatch, index: Index) -> None:
        """Decide the refunds waiting for an order the customer now has: record each that
        keeps the invariants, reject the others (kept, with their reason)."""
        for row in batch.due(customer.customer_id, order_id):
            event_type, record = self.codec.decode(row.data)
            record["recorded_at"] = batch.next_stamp  # when the ledger accepted it: now, not when it came
            batch.next_stamp += timedelta(microseconds=1)
            try:
                data = self.codec.encode(event_type, record, checked=True)
                customer.record(event_type, record, data)
            except LedgerError as error:
                batch.rejected.append((str(error), row.event_id))
                continue
            batch.done.append(row.event_id)
            index(event_type, record, data)

    def waiting(self, limit: int = 1000) -> list[dict[str, Any]]:
        """The facts waiting (or rejected once their order came), oldest first, as plain
        data: no personal field (a refund's reason stays sealed)."""
        return [{"event_id": r.event_id, "customer_id": r.customer_id, "order_id": r.order_id, "source": r.source,
                 "source_event_id": r.source_event_id, "since": r.since, "status": r.status, "reason": r.reason}
                for r in self.recorder.list_waiting(limit)]

    def waiting_summary(self) -> dict[str, Any]:
        """How many facts wait, since when the oldest, and how many were rejected late."""
        return dict(self.recorder.waiting_summary())
