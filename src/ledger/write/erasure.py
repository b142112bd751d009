"""Erasing a customer, and what the ledger holds about one (the data subject's copy).

Erasing records one CustomerErased; the transaction that records it deletes the customer's
data key (ledger.write.keys), so every sealed copy of their personal data becomes noise. The
ledger accepts nothing more about them (the aggregate refuses), and read models show them
erased, without personal data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ledger.contract.facts import check_text
from ledger.contract.rules import check_customer_id, normal_customer_id
from ledger.contract.sealing import SEALED
from ledger.errors import InputError, ValidationError
from ledger.write.amend import CLI_SOURCE
from ledger.write.application import Ledger
from ledger.write.domain import Recorded, customer_uuid


@dataclass(frozen=True)
class Erasure:
    customer_id: str
    event_id: str | None
    """The CustomerErased event recorded now; None when the customer was already erased."""
    also: tuple[str, ...] = ()
    """The other ids of the same person (merged with this one) erased with it now."""

    @property
    def already(self) -> bool:
        return self.event_id is None and not self.also


def erase(ledger: Ledger, customer_id: str, reason: str | None = None) -> Erasure:
    """Record CustomerErased for a known customer, once; refuse one the ledger never saw.

    A customer known only by a dead letter (a key, no fact yet) is known. The idempotency key
    ``erase:<customer_id>`` makes two operators erasing at once record one event.
    """
    customer_id = _known(ledger, customer_id)
    group = [c for c in ledger.group_of(customer_id) if c != customer_id]
    """The other ids of the same person: the ledger erases them with this one (in its turn)."""
    before = {c for c in group if (known := ledger.customer(c)) is not None and known.erased}
    customer = ledger.customer(customer_id)
    if customer is not None and customer.erased and len(before) == len(group):
        return Erasure(customer_id, None)
    outcome = ledger.record({
        "type": "CustomerErased", "customer_id": customer_id, "occurred_at": ledger.clock(),
        "source": CLI_SOURCE, "source_event_id": f"erase:{customer_id}", "reason": reason,
    })
    also = tuple(c for c in group if c not in before and (known := ledger.customer(c)) is not None and known.erased)
    return Erasure(customer_id, None if outcome.status == "duplicate" else outcome.event_id, also)


def unreadable_after_erasure(ledger: Ledger, customer_id: str) -> tuple[str, list[dict[str, Any]]]:
    """The customer's id as the ledger keeps it, and what erasing them makes unreadable: each
    event of theirs that holds personal data, with the names of those fields (the values are
    not shown). Nothing, for a customer erased already."""
    customer_id = _known(ledger, customer_id)
    rows: list[dict[str, Any]] = []
    customer = ledger.customer(customer_id)
    if customer is not None and customer.erased:
        return customer_id, rows
    for event, record in _history(ledger, customer_id):
        personal = ledger.codec.newest(event.event_type).personal
        held = [name for name in personal if record.get(name) is not None]
        if held or event.record.get(SEALED) is not None:
            rows.append({"event_id": str(record["event_id"]), "event_type": event.event_type,
                         "occurred_at": record["occurred_at"], "personal_fields": held})
    return customer_id, rows


def history(ledger: Ledger, customer_id: str) -> dict[str, Any]:
    """Everything the ledger recorded about a customer, personal fields opened while their
    key exists: the copy a data subject asking for access receives."""
    customer_id = _known(ledger, customer_id)
    customer = ledger.customer(customer_id)
    events = [{"type": event.event_type, **record} for event, record in _history(ledger, customer_id)]
    return {"customer_id": customer_id, "erased": bool(customer and customer.erased), "events": events}


def _known(ledger: Ledger, customer_id: str) -> str:
    check_text({"customer_id": customer_id})
    customer_id = normal_customer_id(customer_id)
    try:
        check_customer_id(customer_id)
    except ValidationError as error:
        raise InputError(f"not a customer id: {error}") from None
    if ledger.customer(customer_id) is None and ledger.data_key(customer_id) is None:
        raise InputError(f"no customer {customer_id!r} is recorded in {ledger.settings.store_shown}")
    return customer_id


def _history(ledger: Ledger, customer_id: str) -> list[tuple[Recorded, dict[str, Any]]]:
    found = []
    for stored in ledger.recorder.select_events(customer_uuid(customer_id)):
        event = ledger.mapper.to_domain_event(stored)
        if isinstance(event, Recorded):
            found.append((event, ledger.opened(stored.state)[1]))
    return found
