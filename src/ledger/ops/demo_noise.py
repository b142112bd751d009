"""A history with nothing to find: the control for the insight models (``ledger demo --no-signal``).

Every customer is the same memoryless shopper: purchases, contacts and feedback come as
Poisson processes with one rate for all, items go into a basket each on its own coin, and
scores are drawn from one distribution whatever happened before. So what a customer did tells
nothing of what they do next (a churn model's AUC is near 0.5 out of sample), no item makes
another likelier (every pair's lift is near 1), and there are no groups to find. Pure and
deterministic, like demo.py, with the same fact shapes.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from ledger.ops import demo_tables as tab

DAY = timedelta(days=1)
PURCHASE_EVERY, CONTACT_EVERY = 60.0, 150.0  # mean days between purchases, between contacts
ITEM_CHANCE, COMPLAINT_CHANCE, FEEDBACK_CHANCE = 0.3, 0.1, 0.3
CHANNELS = ("web", "app", "store", "phone")


def generate(customers: int = 2000, seed: int = 7, end: datetime | None = None,
             years: float = 2.0) -> Iterator[dict[str, Any]]:
    """Fact dicts for `customers` identical customers over the `years` before `end` (aware UTC)."""
    if end is None or end.tzinfo is None:
        raise ValueError("end must be an aware datetime: the demo never reads the clock")
    end = end.astimezone(UTC).replace(microsecond=0)
    start = end - timedelta(days=365.25 * years)
    rng = random.Random(seed)
    facts: list[dict[str, Any]] = []
    for number in range(1, customers + 1):
        facts.extend(_customer(rng, number, start, end))
    facts.sort(key=lambda f: (f["occurred_at"], f["customer_id"], f["source_event_id"]))
    return iter(facts)


def _customer(rng: random.Random, number: int, start: datetime, end: datetime) -> list[dict[str, Any]]:
    customer = f"C{number:06d}"
    count = 0

    def fact(type_: str, at: datetime, source: str, **fields: Any) -> dict[str, Any]:
        nonlocal count
        count += 1
        return {"type": type_, "customer_id": customer, "source": source, "source_event_id": f"{source}-{number:06d}-"
                f"{count:04d}", "occurred_at": at.replace(microsecond=0), **fields}

    registered = start + rng.uniform(0, 10) * DAY
    country = rng.choice(tuple(tab.COUNTRIES))
    currency = tab.COUNTRIES[country][1]
    out = [fact("CustomerRegistered", registered, "crm", name=f"Customer {number}", country=country),
           fact("ConsentChanged", registered + DAY / 24, "crm", purpose="profiling", granted=True)]
    at = registered
    while (at := at + rng.expovariate(1 / PURCHASE_EVERY) * DAY) < end:
        skus = [sku for sku in tab.PRICES if rng.random() < ITEM_CHANCE] or [rng.choice(tuple(tab.PRICES))]
        lines = [{"sku": sku, "quantity": 1, "unit_price_minor": int(tab.PRICES[sku] * tab.FX[currency])}
                 for sku in skus]
        order_id = f"N-{number:06d}-{count:04d}"
        out.append(fact("PurchaseMade", at, "webshop", order_id=order_id, channel=rng.choice(CHANNELS),
                        currency=currency, total_minor=sum(line["unit_price_minor"] for line in lines), lines=lines))
    at = registered
    while (at := at + rng.expovariate(1 / CONTACT_EVERY) * DAY) < end:
        complaint = rng.random() < COMPLAINT_CHANCE
        contact_id = f"NC-{number:06d}-{count:04d}"
        out.append(fact("ContactLogged", at, "helpdesk", contact_id=contact_id, channel=rng.choice(CHANNELS),
                        direction="inbound", reason="complaint" if complaint else "product_question",
                        outcome=rng.choice(("resolved", "unresolved")), is_complaint=complaint))
        if rng.random() < FEEDBACK_CHANCE and at + DAY < end:
            out.append(fact("FeedbackGiven", at + DAY, "survey", kind="nps", score=rng.randint(0, 10),
                            channel=out[-1]["channel"], about_contact_id=contact_id))
    return out
