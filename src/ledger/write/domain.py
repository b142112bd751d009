"""The write-side domain: the Customer aggregate and the events it records.

No I/O here. A fact is ``(event_type, record)`` where `record` is the Avro record of that
type (envelope included). The aggregate holds only what decisions need: erased or not,
consents, its orders (what refunds are checked against), and its version.
Idempotency is not the aggregate's: every event id is kept in the
store's index of event ids (write/recorders.py), without limit and across customers. The rules
a fact must keep are the contract's (ledger.contract.rules).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
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


SNAPSHOT_SHAPE = 3
"""The shape of a snapshot's state. Shape 1 (no "shape" key) had no orders, shape 2 not each
purchase and refund by event id: such a snapshot cannot say what refunds may be taken or what
an amendment moves, so a customer read from one is rebuilt from events (`Customer.incomplete`),
never decided on."""


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
                "merged_into": aggregate.merged_into,
                "merge_event_id": aggregate.merge_event_id,
                "retracted": sorted(aggregate.retracted),
                "orders": {k: [o.currency, o.total_minor, o.refunded_minor] for k, o in aggregate.orders.items()},
                "money": {k: list(v) for k, v in aggregate.money.items()},
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
        if self.state.get("shape") != SNAPSHOT_SHAPE:
            customer.incomplete = True
        else:
            customer.orders = {k: Order(c, t, r) for k, (c, t, r) in self.state["orders"].items()}
            customer.money = {k: (t, o, a) for k, (t, o, a) in self.state["money"].items()}
        return customer  # snapshots of earlier versions also hold "seen" ids: no longer needed


STATE_EVENTS = ("CustomerErased", "ConsentChanged", "PurchaseMade", "PurchaseRefunded",
                "CustomersMerged", "CustomerSplit", "FactRetracted", "FactCorrected")
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
    orders: dict[str, Order] = field(default_factory=dict)
    money: dict[str, tuple[str, str, int]] = field(default_factory=dict)
    """Each purchase and refund in force by event id: (event type, order id, amount), so that a
    correction or a retraction of one moves its order's figures."""
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
        if event_type in ("FactRetracted", "FactCorrected"):
            self._check_amended_money(event_type, record)
            return
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

    def _check_amended_money(self, event_type: str, record: dict[str, Any]) -> None:
        """An amended purchase or refund keeps its order whole: a purchase with refunds is not
        retracted before them, a total is not corrected below what was refunded, a refund not
        above what is left."""
        held = self.money.get(str(record["target_event_id"]))
        if held is None:
            return
        kind, order_id, before = held
        order = self.orders[order_id]
        if event_type == "FactRetracted":
            if kind == "PurchaseMade" and order.refunded_minor > 0:
                raise InvariantError("target_event_id", f"order {order_id!r} has {order.refunded_minor:,} "
                                     f"{order.currency} refunded; retract its refunds first")
            return
        amount = _new_amount(record)
        if amount is None:
            return
        if kind == "PurchaseMade" and amount < order.refunded_minor:
            raise InvariantError("changes.total_minor", f"{amount:,} is less than the {order.refunded_minor:,} "
                                 f"{order.currency} already refunded of order {order_id!r}")
        refunded = order.refunded_minor - before + amount
        if kind == "PurchaseRefunded" and refunded > order.total_minor:
            raise InvariantError("changes.amount_minor", f"{amount:,} would make the refunds of order {order_id!r} "
                                 f"{refunded:,}, more than its total of {order.total_minor:,} {order.currency}")

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
            self._move_money(str(record["target_event_id"]), None)
        elif event.event_type == "FactCorrected" and (amount := _new_amount(record)) is not None:
            self._move_money(str(record["target_event_id"]), amount)
        elif event.event_type == "PurchaseMade":
            # The first only: a store from before the invariants may hold an order id twice.
            if record["order_id"] not in self.orders:
                self.orders[record["order_id"]] = Order(record["currency"], record["total_minor"])
                self.money[str(record["event_id"])] = ("PurchaseMade", record["order_id"], record["total_minor"])
        elif event.event_type == "PurchaseRefunded" and record["order_id"] in self.orders:
            order = self.orders[record["order_id"]]
            self.orders[record["order_id"]] = replace(
                order, refunded_minor=order.refunded_minor + record["amount_minor"])
            self.money[str(record["event_id"])] = ("PurchaseRefunded", record["order_id"], record["amount_minor"])

    def _move_money(self, target: str, amount: int | None) -> None:
        """A purchase or refund retracted (`amount` None) or corrected to `amount`."""
        if target not in self.money:
            return
        event_type, order_id, before = self.money[target]
        order = self.orders.get(order_id)
        if order is None:
            return
        if event_type == "PurchaseMade":
            if amount is None:
                del self.orders[order_id], self.money[target]
                return
            self.orders[order_id] = replace(order, total_minor=amount)
        else:
            after = 0 if amount is None else amount
            self.orders[order_id] = replace(order, refunded_minor=order.refunded_minor - before + after)
            if amount is None:
                del self.money[target]
                return
        self.money[target] = (event_type, order_id, amount)

    def collect_events(self) -> list[Recorded]:
        events, self._pending = self._pending, []
        return events


def _new_amount(record: dict[str, Any]) -> int | None:
    """The amount a FactCorrected sets (a purchase's total or a refund's amount), if any."""
    for name in ("total_minor", "amount_minor"):
        if name in (record.get("changes") or {}):
            return int(json.loads(record["changes"][name]))
    return None
