"""The demo generator: deterministic, accepted whole by a real ledger, and realistic enough
that every event type, late delivery and every lifecycle stage shows up."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta

import pytest

from ledger.contract.amendments import AMENDMENTS
from ledger.contract.codec import default_codec
from ledger.ops.demo import SOURCES, generate
from ledger.settings import Settings
from ledger.write.application import Ledger

END = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def facts() -> list[dict]:
    return list(generate(customers=2000, seed=7, end=END))


def test_same_arguments_give_the_same_facts() -> None:
    assert list(generate(150, 3, END)) == list(generate(150, 3, END))


def test_another_seed_gives_other_facts() -> None:
    assert list(generate(150, 3, END)) != list(generate(150, 4, END))


def test_end_must_be_aware() -> None:
    with pytest.raises(ValueError):
        generate(10, 7, datetime(2026, 3, 1))


def test_every_fact_is_recorded_and_a_rerun_only_duplicates(tmp_path) -> None:
    facts = list(generate(customers=200, seed=11, end=END))
    assert any(f["type"] == "CustomerErased" for f in facts)
    ledger = Ledger(Settings(data_dir=tmp_path), clock=lambda: END)
    outcomes = ledger.record_many(facts)
    rejected = [(o.event_type, str(o.error)) for o in outcomes if o.status != "recorded"]
    assert rejected == []
    assert {o.status for o in ledger.record_many(list(generate(200, 11, END)))} == {"duplicate"}


def test_facts_have_the_adapter_shape(facts) -> None:
    assert all("event_id" not in f and "recorded_at" not in f for f in facts)
    assert all(f["occurred_at"].tzinfo is not None and f["occurred_at"] <= END for f in facts)
    assert {f["source"] for f in facts} <= set(SOURCES)
    keys = [(f["source"], f["source_event_id"]) for f in facts]
    assert len(keys) == len(set(keys))


def test_all_event_types_appear(facts) -> None:
    # Amendments are the operators' (ledger correct, merge...), not a history's: the demo records none.
    assert {f["type"] for f in facts} == set(default_codec().event_types) - set(AMENDMENTS)
    assert 10 <= len(facts) / 2000 <= 16


def test_nothing_follows_an_erasure(facts) -> None:
    erased: set[str] = set()
    for fact in facts:
        assert fact["customer_id"] not in erased
        if fact["type"] == "CustomerErased":
            erased.add(fact["customer_id"])
    assert 10 <= len(erased) <= 30


def test_some_purchases_arrive_late(facts) -> None:
    latest = facts[0]["occurred_at"]
    late = 0
    for fact in facts:
        if fact["occurred_at"] < latest - timedelta(days=1):
            assert fact["type"] == "PurchaseMade"
            late += 1
        latest = max(latest, fact["occurred_at"])
    purchases = sum(f["type"] == "PurchaseMade" for f in facts)
    assert 0.003 * purchases < late < 0.03 * purchases


def test_money_adds_up(facts) -> None:
    orders = {f["order_id"]: f for f in facts if f["type"] == "PurchaseMade"}
    for order in orders.values():
        assert 1 <= len(order["lines"]) <= 6  # up to four items and their two accessories
        lines = order["lines"]
        assert order["total_minor"] == sum(x["quantity"] * x["unit_price_minor"] for x in lines)
    refunds = [f for f in facts if f["type"] == "PurchaseRefunded"]
    assert 0.03 < len(refunds) / len(orders) < 0.1
    for refund in refunds:
        order = orders[refund["order_id"]]
        assert refund["currency"] == order["currency"]
        assert 0 < refund["amount_minor"] <= order["total_minor"]
        assert refund["occurred_at"] > order["occurred_at"]
    currencies = Counter(o["currency"] for o in orders.values())
    assert currencies.most_common(1)[0][0] == "EUR" and {"GBP", "USD"} <= set(currencies)


def test_feedback_is_about_earlier_contacts_and_complaints_score_lower(facts) -> None:
    contacts = {f["contact_id"]: f for f in facts if f["type"] == "ContactLogged"}
    complaint_share = sum(c["is_complaint"] for c in contacts.values()) / len(contacts)
    assert 0.05 < complaint_share < 0.12
    csat: dict[bool, list[int]] = defaultdict(list)
    for f in facts:
        if f["type"] == "FeedbackGiven" and f["about_contact_id"] is not None:
            contact = contacts[f["about_contact_id"]]
            assert contact["customer_id"] == f["customer_id"]
            assert contact["channel"] == f["channel"]
            assert contact["occurred_at"] < f["occurred_at"]
            if f["kind"] == "csat":
                csat[contact["is_complaint"]].append(f["score"])
    mean = {k: sum(v) / len(v) for k, v in csat.items()}
    assert mean[True] < mean[False] - 1
    assert {f["kind"] for f in facts if f["type"] == "FeedbackGiven"} == {"csat", "nps", "ces"}


def stage(purchases: list[datetime]) -> str:
    """A plain reading of lifecycle stages (the read models own the real definition)."""
    if not purchases:
        return "prospect"
    purchases = sorted(purchases)
    since_last = END - purchases[-1]
    if since_last > timedelta(days=365):
        return "churned"
    if since_last > timedelta(days=180):
        return "at_risk"
    if len(purchases) > 1 and purchases[-1] - purchases[-2] > timedelta(days=365):
        return "reactivated"
    if END - purchases[0] <= timedelta(days=90):
        return "new"
    return "active"


def test_every_lifecycle_stage_occurs(facts) -> None:
    purchases: dict[str, list[datetime]] = {
        f["customer_id"]: [] for f in facts if f["type"] == "CustomerRegistered"
    }
    for f in facts:
        if f["type"] == "PurchaseMade":
            purchases[f["customer_id"]].append(f["occurred_at"])
    stages = Counter(stage(times) for times in purchases.values())
    assert set(stages) == {"new", "active", "at_risk", "churned", "reactivated", "prospect"}
    assert min(stages.values()) >= 50, stages


def test_most_customers_but_not_all_hold_profiling_consent_at_the_end(facts) -> None:
    latest: dict[str, tuple[datetime, bool]] = {}
    for f in facts:
        if f["type"] == "ConsentChanged" and f["purpose"] == "profiling":
            if f["customer_id"] not in latest or f["occurred_at"] >= latest[f["customer_id"]][0]:
                latest[f["customer_id"]] = (f["occurred_at"], f["granted"])
    customers = {f["customer_id"] for f in facts if f["type"] == "CustomerRegistered"}
    profiled = sum(granted for _, granted in latest.values()) / len(customers)
    assert 0.6 < profiled < 0.85
