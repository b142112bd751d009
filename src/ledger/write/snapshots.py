"""Snapshots of customers that never carry an older shape's gaps into a decision.

A snapshot of an older shape lacks the orders, or each purchase and refund by event id
(write/domain.py, `SNAPSHOT_SHAPE`): a customer read from one is marked incomplete and read
again from their events. New snapshots are taken from the
aggregate just saved, never from a replay that may start at such a snapshot.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from ledger.write.domain import Customer


class FreshSnapshots:
    """Mixed into the ledger application, which provides the attributes below."""

    snapshots: Any
    snapshotting_intervals: Any
    repository: Any
    _read_customers: Any

    def _take_snapshots(self, processing: Any) -> None:
        """A snapshot of each customer whose new events passed a multiple of the interval,
        taken from the aggregate just saved, not from eventsourcing's replay of the store
        (which would start from an older snapshot, perhaps of a shape without orders)."""
        interval = self.snapshotting_intervals[Customer]
        passed: set[UUID] = {e.originator_id for e in processing.events if e.originator_version % interval == 0}
        if self.snapshots is not None and passed:
            self.snapshots.put([Customer.Snapshot.take(processing.aggregates[i]) for i in passed])

    def _complete(self, customer: Customer) -> Customer:
        """`customer`, or, if it was read from a snapshot of an older shape, the customer
        read again from their events (and cached so)."""
        if not customer.incomplete:
            return customer
        read = self._read_customers([{"customer_id": customer.customer_id}], cached=False)
        complete = read.get(customer.id) or customer
        if self.repository.cache is not None:
            self.repository.cache.put(complete.id, complete)
        return complete
