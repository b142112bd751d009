"""What an amendment may not do, on every store: correct or retract what is not there, not
theirs, not amendable or already withdrawn; correct into a fact no rule allows; merge into
itself, into nobody, into a merged id, twice; split what is not merged. Each is refused with
the field and the reason, records nothing, and the valid fact after it is still recorded.
And erasing one id of a merged person erases them all."""

from __future__ import annotations

from typing import Any

import pytest

from ledger.errors import ValidationError
from ledger.write.application import Ledger
from tests.support.facts import fact


def refused(call: Any, field: str, words: str) -> None:
    with pytest.raises(ValidationError) as raised:
        call()
    assert raised.value.field == field and words in raised.value.reason, raised.value


def recorded(ledger: Ledger, *facts: dict[str, Any]) -> list[str]:
    outcomes = ledger.record_many(facts)
    assert all(o.status == "recorded" for o in outcomes), [o.error for o in outcomes]
    return [str(o.event_id) for o in outcomes]


def test_a_correction_is_checked_like_a_new_fact_and_the_next_one_still_counts(ledger: Ledger) -> None:
    (score, consent) = recorded(ledger, fact("FeedbackGiven", "C1", kind="nps", score=3),
                                fact("ConsentChanged", "C1"))
    refused(lambda: ledger.correct(score, {"score": 11}, "typo"), "score", "nps score must be 0 to 10, got 11")
    refused(lambda: ledger.correct(score, {"comment": "nice"}, "typo"), "changes.comment", "cannot be corrected")
    refused(lambda: ledger.correct(score, {}, "typo"), "changes", "at least one field")
    refused(lambda: ledger.correct(consent, {"granted": False}, "typo"), "target_event_id",
            "record a ConsentChanged with the right value")
    refused(lambda: ledger.correct("3f2504e0-4f89-11d3-9a0c-0305e82c3301", {"score": 1}, "x"), "target_event_id",
            "is recorded")
    assert ledger.correct(score, {"score": 9}, "typo", "ops").status == "recorded"
    before = ledger.head()
    outcomes = ledger.record_many([
        {"type": "FactCorrected", "customer_id": "C2", "occurred_at": "2026-06-02T00:00:00Z", "source": "x",
         "target_event_id": score, "target_type": "FeedbackGiven", "changes": {"score": "1"}, "reason": "r"},
        {"type": "FactCorrected", "customer_id": "C1", "occurred_at": "2026-06-02T00:00:00Z", "source": "x",
         "target_event_id": score, "target_type": "FeedbackGiven", "changes": {"score": "not json"}, "reason": "r"},
        fact("ContactLogged", "C1"),
    ])
    assert [o.status for o in outcomes] == ["rejected", "rejected", "recorded"]
    assert "is about customer 'C1', not 'C2'" in str(outcomes[0].error)
    assert "is not JSON" in str(outcomes[1].error)
    assert ledger.head() == before + 1


def test_a_retracted_fact_can_be_neither_corrected_nor_retracted_again(ledger: Ledger) -> None:
    (contact,) = recorded(ledger, fact("ContactLogged", "C1"))
    assert ledger.retract(contact, "logged twice").status == "recorded"
    refused(lambda: ledger.retract(contact, "again"), "target_event_id", "was retracted already")
    refused(lambda: ledger.correct(contact, {"channel": "chat"}, "x"), "target_event_id", "was retracted already")
    (retraction,) = [e for e in ledger.log(0, 100) if e.topic.endswith("FactRetracted")]
    assert retraction is not None


def test_merges_that_would_lose_track_are_refused(ledger: Ledger) -> None:
    recorded(ledger, fact("ContactLogged", "A"), fact("ContactLogged", "B"), fact("ContactLogged", "C"))
    refused(lambda: ledger.merge("A", "A", "x"), "survivor_id", "cannot be merged into itself")
    refused(lambda: ledger.merge("NOBODY", "A", "x"), "survivor_id", "no customer 'NOBODY' is recorded")
    refused(lambda: ledger.merge("A", "NOBODY", "x"), "customer_id", "no customer 'NOBODY' is recorded")
    refused(lambda: ledger.split("B", "x"), "customer_id", "is not merged")
    assert ledger.merge("A", "B", "same e-mail").status == "recorded"
    refused(lambda: ledger.merge("C", "B", "x"), "customer_id", "merged into 'A' already; split it first")
    refused(lambda: ledger.merge("B", "C", "x"), "survivor_id", "merge into 'A' instead")
    assert ledger.merge("C", "A", "chain").status == "recorded"  # B counts as C, through A
    assert sorted(ledger.group_of("B")) == ["A", "B", "C"]
    assert ledger.split("B", "not the same").status == "recorded"
    assert sorted(ledger.group_of("B")) == ["B"] and sorted(ledger.group_of("C")) == ["A", "C"]
    assert ledger.merge("C", "B", "after all").status == "recorded"


def test_erasing_one_id_of_a_merged_person_erases_every_id(ledger: Ledger) -> None:
    from ledger.write.erasure import erase

    recorded(ledger, fact("CustomerRegistered", "WEB-1"), fact("CustomerRegistered", "CARD-7"),
             fact("CustomerRegistered", "OTHER"))
    ledger.merge("WEB-1", "CARD-7", "same person")
    erasure = erase(ledger, "CARD-7", "request 118")
    assert erasure.event_id is not None and erasure.also == ("WEB-1",)
    assert ledger.customer("WEB-1").erased and ledger.customer("CARD-7").erased
    assert not ledger.customer("OTHER").erased
    refused(lambda: ledger.split("CARD-7", "x"), "customer_id", "was erased")
    assert erase(ledger, "WEB-1").already


def test_an_amended_purchase_or_refund_keeps_its_order_whole(ledger: Ledger) -> None:
    from ledger.errors import InvariantError

    (purchase, refund) = recorded(ledger, fact("PurchaseMade", "C1", order_id="O1", total_minor=1000),
                                  fact("PurchaseRefunded", "C1", order_id="O1", amount_minor=600))
    with pytest.raises(InvariantError, match="500 is less than the 600 EUR already refunded of order 'O1'"):
        ledger.correct(purchase, {"total_minor": 500}, "typo")
    assert ledger.correct(purchase, {"total_minor": 700}, "typo").status == "recorded"
    with pytest.raises(InvariantError, match="800 would make the refunds of order 'O1' 800, more than its total"):
        ledger.correct(refund, {"amount_minor": 800}, "typo")
    with pytest.raises(InvariantError, match="order 'O1' has 600 EUR refunded; retract its refunds first"):
        ledger.retract(purchase, "test order")
    assert ledger.correct(refund, {"amount_minor": 700}, "typo").status == "recorded"
    (more,) = ledger.record_many([fact("PurchaseRefunded", "C1", order_id="O1", amount_minor=1)])
    assert more.status == "rejected" and "exceeds what is left of order 'O1' (0 of 700 EUR)" in str(more.error)
    assert ledger.retract(refund, "refund failed at the bank").status == "recorded"
    assert ledger.retract(purchase, "test order").status == "recorded"
    (late,) = ledger.record_many([fact("PurchaseRefunded", "C1", order_id="O1", amount_minor=1)])
    assert late.status == "waiting"  # the order is gone: a refund of it waits for one


def test_the_orders_a_customer_is_decided_on_survive_a_fresh_ledger(settings) -> None:
    """What corrections and retractions did to the orders is read back from the store by
    another writer (events and snapshots), not only kept in the first one's memory."""
    first = Ledger(settings)
    try:
        (purchase,) = recorded(first, fact("PurchaseMade", "C1", order_id="O1", total_minor=1000))
        first.correct(purchase, {"total_minor": 400}, "typo")
    finally:
        first.close()
    second = Ledger(settings)
    try:
        (refund,) = second.record_many([fact("PurchaseRefunded", "C1", order_id="O1", amount_minor=500)])
        assert refund.status == "rejected" and "(400 of 400 EUR)" in str(refund.error)
    finally:
        second.close()


def test_an_erasure_through_any_door_erases_every_id_of_the_merged_person(ledger: Ledger) -> None:
    recorded(ledger, *(fact("CustomerRegistered", c, name=f"name {c}") for c in ("A", "B", "C", "D")))
    ledger.merge("A", "B", "same person")
    ledger.merge("C", "A", "same person")
    (outcome,) = ledger.record_many([fact("CustomerErased", "B")])  # as ingest, the intake or the SDK send it
    assert outcome.status == "recorded"
    assert [ledger.customer(c).erased for c in ("A", "B", "C", "D")] == [True, True, True, False]
    assert [o.status for o in ledger.record_many([fact("ContactLogged", "C"), fact("ContactLogged", "D")])] == [
        "rejected", "recorded"]


def test_a_correction_is_checked_against_the_fact_as_already_corrected(ledger: Ledger) -> None:
    (score,) = recorded(ledger, fact("FeedbackGiven", "C1", kind="nps", score=9))
    assert ledger.correct(score, {"kind": "csat", "score": 5}, "wrong survey").status == "recorded"
    refused(lambda: ledger.correct(score, {"score": 9}, "typo"), "score", "csat score must be 1 to 5, got 9")
    line = {"sku": "a", "quantity": 1, "unit_price_minor": 1000}
    (purchase,) = recorded(ledger, fact("PurchaseMade", "C1", total_minor=1000, lines=[line]))
    assert ledger.correct(purchase, {"total_minor": 2000, "lines": [{**line, "quantity": 2}]}, "two").status == \
        "recorded"
    refused(lambda: ledger.correct(purchase, {"lines": [line]}, "one"), "total_minor", "lines sum to 1,000")


def test_an_adapters_amendment_must_come_after_the_previous_one_of_the_same_fact(ledger: Ledger) -> None:
    (score,) = recorded(ledger, fact("FeedbackGiven", "C1", kind="nps", score=3))

    def correction(at: str, value: str) -> dict[str, Any]:
        return {"type": "FactCorrected", "customer_id": "C1", "occurred_at": at, "source": "survey",
                "target_event_id": score, "target_type": "FeedbackGiven", "changes": {"score": value}}

    outcomes = ledger.record_many([correction("2026-05-10T00:00:00Z", "7"), correction("2026-05-09T00:00:00Z", "8")])
    assert outcomes[0].status == "recorded" and outcomes[1].status == "rejected"
    assert "must be after the previous amendment" in str(outcomes[1].error)
    assert ledger.correct(score, {"score": 10}, "typo").status == "recorded"  # the ledger's own come after


def test_hostile_values_are_refused_without_a_traceback(ledger: Ledger) -> None:
    (purchase,) = recorded(ledger, fact("PurchaseMade", "C1", total_minor=1000))
    deep = "[" * 60_000 + "]" * 60_000
    refused(lambda: ledger.correct(purchase, {"lines": ledger.parse_settings([f"lines={deep}"])["lines"]}, "x"),
            "changes['lines']", "longer than 10000 characters")
    outcomes = ledger.record_many([{"type": "FactCorrected", "customer_id": "C1", "occurred_at": "2026-05-10T00:00:00Z",
                                    "source": "x", "target_event_id": purchase, "target_type": "PurchaseMade",
                                    "changes": {"lines": "[" * 4000 + "]" * 4000}}, fact("ContactLogged", "C1")])
    assert [o.status for o in outcomes] == ["rejected", "recorded"]


def test_two_ids_with_the_same_order_id_are_not_merged(ledger: Ledger) -> None:
    recorded(ledger, fact("PurchaseMade", "A", order_id="O1"), fact("PurchaseMade", "B", order_id="O1"))
    refused(lambda: ledger.merge("A", "B", "same person"), "customer_id", "both have order 'O1'")
