"""The write-side domain: the Customer aggregate and the events it records.

No I/O here. A fact is ``(event_type, record)`` where `record` is the Avro record of that
type (envelope included). The aggregate holds only what decisions need: erased or not,
consents, and its version. Idempotency is not the aggregate's: every event id is kept in the
store's index of event ids (write/recorders.py), without limit and across customers. The rules
a fact must keep are the contract's (ledger.contract.rules).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from ledger.errors import CustomerErasedError

_CUSTOMER_NAMESPACE = uuid5(NAMESPACE_URL, "ledger:customer")


@lru_cache(maxsize=200_000)
def customer_uuid(customer_id: str) -> UUID:
    """The aggregate id of a customer key: stable, so every writer finds the same aggregate."""
    return uuid5(_CUSTOMER_NAMESPACE, customer_id)


@dataclass(frozen=True)
class Recorded:
    """One fact about a customer, as the event store keeps it.

    `data` is the Avro single-object encoding of `record`; it is what the store and Kafka
    carry, so the fact is encoded exactly once.
    """

    originator_id: UUID
    originator_version: int
    event_type: str
    record: dict[str, Any]
    data: bytes

    def mutate(self, aggregate: Customer | None) -> Customer:
        if aggregate is None:
            aggregate = Customer(self.originator_id, self.record["customer_id"])
        aggregate.apply(self)
        return aggregate


@dataclass(frozen=True)
class CustomerSnapshot:
    """Snapshot of a Customer, stored through eventsourcing's JSON transcoder."""

    originator_id: UUID
    originator_version: int
    state: dict[str, Any]

    @classmethod
    def take(cls, aggregate: Customer) -> CustomerSnapshot:
        return cls(
            originator_id=aggregate.id,
            originator_version=aggregate.version,
            state={
                "customer_id": aggregate.customer_id,
                "erased": aggregate.erased,
                "consents": dict(aggregate.consents),
                "merged_into": aggregate.merged_into,
                "merge_event_id": aggregate.merge_event_id,
                "retracted": sorted(aggregate.retracted),
            },
        )

    def mutate(self, _: Customer | None) -> Customer:
        customer = Customer(self.originator_id, self.state["customer_id"])
        customer.version = self.originator_version
        customer.erased = self.state["erased"]
        customer.consents = dict(self.state["consents"])
        customer.merged_into = self.state.get("merged_into")
        customer.merge_event_id = self.state.get("merge_event_id")
        customer.retracted = set(self.state.get("retracted", ()))
        return customer  # snapshots of earlier versions also hold "seen" ids: no longer needed


STATE_EVENTS = ("CustomerErased", "ConsentChanged", "CustomersMerged", "CustomerSplit", "FactRetracted")
"""The only event types `Customer.apply` reads beyond their version: a customer's state is its
version and these events, applied in order."""


@dataclass
class Customer:
    """What the ledger must know about a customer to accept or refuse a fact."""

    id: UUID
    customer_id: str
    version: int = 0
    erased: bool = False
    consents: dict[str, bool] = field(default_factory=dict)
    merged_into: str | None = None
    """The customer this one is counted as (CustomersMerged), until a CustomerSplit."""
    merge_event_id: str | None = None
    """The CustomersMerged in force, which a CustomerSplit names."""
    retracted: set[str] = field(default_factory=set)
    """The event ids of this customer's facts that were retracted (FactRetracted)."""
    _pending: list[Recorded] = field(default_factory=list, repr=False)

    Snapshot = CustomerSnapshot

    def refuse_if_erased(self) -> None:
        """Nothing more is accepted about an erased customer (asked before their key is made)."""
        if self.erased:
            raise CustomerErasedError(self.customer_id)

    def record(self, event_type: str, record: dict[str, Any], data: bytes) -> Recorded:
        self.refuse_if_erased()
        event = Recorded(self.id, self.version + 1, event_type, record, data)
        event.mutate(self)
        self._pending.append(event)
        return event

    def apply(self, event: Recorded) -> None:
        record = event.record
        self.version = event.originator_version
        if event.event_type == "CustomerErased":
            self.erased = True
        elif event.event_type == "ConsentChanged":
            self.consents[record["purpose"]] = record["granted"]
        elif event.event_type == "CustomersMerged":
            self.merged_into, self.merge_event_id = record["survivor_id"], str(record["event_id"])
        elif event.event_type == "CustomerSplit":
            self.merged_into = self.merge_event_id = None
        elif event.event_type == "FactRetracted":
            self.retracted.add(str(record["target_event_id"]))

    def collect_events(self) -> list[Recorded]:
        events, self._pending = self._pending, []
        return events
