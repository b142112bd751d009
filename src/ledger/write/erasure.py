"""Erasing a customer: one CustomerErased event, after which the ledger accepts nothing more
about them (the aggregate refuses), and read models show them erased, without personal data.
"""

from __future__ import annotations

from dataclasses import dataclass

from ledger.contract.facts import check_text
from ledger.errors import InputError
from ledger.write.application import Ledger

ERASE_SOURCE = "ledger-cli"


@dataclass(frozen=True)
class Erasure:
    customer_id: str
    event_id: str | None
    """The CustomerErased event recorded now; None when the customer was already erased."""

    @property
    def already(self) -> bool:
        return self.event_id is None


def erase(ledger: Ledger, customer_id: str, reason: str | None = None) -> Erasure:
    """Record CustomerErased for a known customer, once; refuse one the ledger never saw.

    The idempotency key ``erase:<customer_id>`` makes two operators erasing at once record
    one event.
    """
    check_text({"customer_id": customer_id})
    customer = ledger.customer(customer_id)
    if customer is None:
        raise InputError(
            f"no customer {customer_id!r} is recorded in {ledger.settings.store_shown}; nothing to erase"
        )
    if customer.erased:
        return Erasure(customer_id, None)
    outcome = ledger.record({
        "type": "CustomerErased", "customer_id": customer_id, "occurred_at": ledger.clock(),
        "source": ERASE_SOURCE, "source_event_id": f"erase:{customer_id}", "reason": reason,
    })
    return Erasure(customer_id, None if outcome.status == "duplicate" else outcome.event_id)
