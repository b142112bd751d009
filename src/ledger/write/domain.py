"""The write-side domain: the Customer aggregate and the events it records.

No I/O here. A fact is ``(event_type, record)`` where `record` is the Avro record of that
type (envelope included). The aggregate holds only what decisions need: erased or not,
consents, its orders (what refunds are checked against), and its version.
Idempotency is not the aggregate's: every event id is kept in the
store's index of event ids (write/recorders.py), without limit and across customers. The rules
a fact must keep are the contract's (ledger.contract.rules).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from ledger.errors import CustomerErasedError, InvariantError

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
class Order:
    """What a customer's refunds are checked against: an order's currency, its total and
    how much of it was refunded so far (minor units)."""

    currency: str
    total_minor: int
    refunded_minor: int = 0

    @property
    def left_minor(self) -> int:
        return self.total_minor - self.refunded_minor


SNAPSHOT_SHAPE = 2
"""The shape of a snapshot's state. Shape 1 (no "shape" key) had no orders: such a snapshot
cannot say what refunds may be taken, so a customer read from one is rebuilt from events
(`Customer.incomplete`), never decided on."""


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
                "shape": SNAPSHOT_SHAPE,
                "customer_id": aggregate.customer_id,
                "erased": aggregate.erased,
                "consents": dict(aggregate.consents),
                "orders": {k: [o.currency, o.total_minor, o.refunded_minor] for k, o in aggregate.orders.items()},
            },
        )

    def mutate(self, _: Customer | None) -> Customer:
        customer = Customer(self.originator_id, self.state["customer_id"])
        customer.version = self.originator_version
        customer.erased = self.state["erased"]
        customer.consents = dict(self.state["consents"])
        if self.state.get("shape") != SNAPSHOT_SHAPE:
            customer.incomplete = True
        else:
            customer.orders = {k: Order(c, t, r) for k, (c, t, r) in self.state["orders"].items()}
        return customer  # snapshots of earlier versions also hold "seen" ids: no longer needed


STATE_EVENTS = ("CustomerErased", "ConsentChanged", "PurchaseMade", "PurchaseRefunded")
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
    orders: dict[str, Order] = field(default_factory=dict)
    incomplete: bool = False
    """Read from a snapshot of an older shape, without orders: to be read again from events."""
    _pending: list[Recorded] = field(default_factory=list, repr=False)

    Snapshot = CustomerSnapshot

    def refuse_if_erased(self) -> None:
        """Nothing more is accepted about an erased customer (asked before their key is made)."""
        if self.erased:
            raise CustomerErasedError(self.customer_id)

    def waits(self, event_type: str, record: dict[str, Any]) -> bool:
        """Whether this fact is a refund of an order the customer does not have (yet).

        Adapters do not deliver in order: a shop's refund webhook may beat its order webhook.
        Such a refund is neither refused nor recorded; it waits for its order (the ledger
        keeps it, and decides it when the order arrives)."""
        return event_type == "PurchaseRefunded" and record["order_id"] not in self.orders

    def record(self, event_type: str, record: dict[str, Any], data: bytes) -> Recorded:
        self.refuse_if_erased()
        self.check_orders(event_type, record)
        event = Recorded(self.id, self.version + 1, event_type, record, data)
        event.mutate(self)
        self._pending.append(event)
        return event

    def check_orders(self, event_type: str, record: dict[str, Any]) -> None:
        """InvariantError if the fact breaks what the customer's orders allow: an order id
        is one order; a refund is of one of this customer's orders, in its currency, and an
        order's refunds never add up to more than its total. A refund of an unknown order is
        not refused here: it waits (`waits`)."""
        order_id = record.get("order_id")
        if event_type == "PurchaseMade" and order_id in self.orders:
            known = self.orders[order_id]
            raise InvariantError(
                "order_id", f"order {order_id!r} was already recorded for customer {self.customer_id!r} "
                f"({known.total_minor:,} {known.currency}); one order id means one order"
            )
        if event_type != "PurchaseRefunded" or order_id not in self.orders:
            return
        order = self.orders[order_id]
        if record["currency"] != order.currency:
            raise InvariantError(
                "currency", f"{record['currency']} is not the currency of order {order_id!r} ({order.currency}); "
                "a refund is in its order's currency"
            )
        if record["amount_minor"] > order.left_minor:
            raise InvariantError(
                "amount_minor", f"{record['amount_minor']:,} exceeds what is left of order {order_id!r} "
                f"({order.left_minor:,} of {order.total_minor:,} {order.currency})"
            )

    def apply(self, event: Recorded) -> None:
        record = event.record
        self.version = event.originator_version
        if event.event_type == "CustomerErased":
            self.erased = True
        elif event.event_type == "ConsentChanged":
            self.consents[record["purpose"]] = record["granted"]
        elif event.event_type == "PurchaseMade":
            # setdefault: a store from before the invariants may hold an order id twice.
            self.orders.setdefault(record["order_id"], Order(record["currency"], record["total_minor"]))
        elif event.event_type == "PurchaseRefunded" and record["order_id"] in self.orders:
            order = self.orders[record["order_id"]]
            self.orders[record["order_id"]] = Order(
                order.currency, order.total_minor, order.refunded_minor + record["amount_minor"]
            )

    def collect_events(self) -> list[Recorded]:
        events, self._pending = self._pending, []
        return events
