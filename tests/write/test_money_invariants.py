"""Money invariants of the customer aggregate: lines sum to the total, an order id is one
order, a refund is of an order of the same customer, in its currency, never more than what
is left of it; a refund before its order waits, and is decided when the order arrives.

Each refusal is followed by a valid fact in the same batch, which is still recorded. Every
test runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import pytest

from ledger.errors import InvariantError, ValidationError
from ledger.settings import Settings
from ledger.write.application import Ledger
from ledger.write.domain import CustomerSnapshot, customer_uuid
from ledger.write.erasure import erase
from tests.support.facts import DAY, NOW, OCCURRED, FactFactory


def refund(fact: FactFactory, order_id: str, amount: int, customer_id: str = "C1", **fields: object) -> dict:
    return fact("PurchaseRefunded", customer_id, OCCURRED + DAY, order_id=order_id, amount_minor=amount, **fields)


def events(ledger: Ledger) -> list[tuple[str, dict]]:
    return [ledger.opened(entry.state) for entry in ledger.log(0, 1000)]


def test_purchase_lines_that_do_not_sum_to_the_total_are_refused_with_both_numbers(
    ledger: Ledger, fact: FactFactory
) -> None:
    lines = [{"sku": "A", "quantity": 2, "unit_price_minor": 999}]
    bad, good = fact("PurchaseMade", total_minor=2000, lines=lines), fact("PurchaseMade", total_minor=1998, lines=lines)

    refused, recorded = ledger.record_many([bad, good])

    assert isinstance(refused.error, ValidationError) and refused.error.field == "total_minor"
    assert "lines sum to 1,998, total_minor is 2,000" in str(refused.error)
    assert recorded.status == "recorded"
    assert [t for t, _ in events(ledger)] == ["PurchaseMade"]


def test_a_purchase_without_lines_has_no_sum_to_keep(ledger: Ledger, fact: FactFactory) -> None:
    assert ledger.record(fact("PurchaseMade", total_minor=2000, lines=None)).status == "recorded"


def test_a_second_order_under_a_used_order_id_is_refused_and_its_resend_is_a_duplicate(
    ledger: Ledger, fact: FactFactory
) -> None:
    first = fact("PurchaseMade", order_id="O1", total_minor=1000)
    ledger.record(first)

    again, other, resent = ledger.record_many([fact("PurchaseMade", order_id="O1", total_minor=500),
                                               fact("PurchaseMade", order_id="O2"), first])

    assert isinstance(again.error, InvariantError) and again.error.field == "order_id"
    assert "order 'O1' was already recorded for customer 'C1' (1,000 EUR)" in str(again.error)
    assert (other.status, resent.status) == ("recorded", "duplicate")


def test_a_refund_in_another_currency_than_its_order_is_refused(ledger: Ledger, fact: FactFactory) -> None:
    ledger.record(fact("PurchaseMade", order_id="O1", currency="EUR", total_minor=1000))

    refused, recorded = ledger.record_many([refund(fact, "O1", 100, currency="USD"), refund(fact, "O1", 100)])

    assert isinstance(refused.error, InvariantError) and refused.error.field == "currency"
    assert "USD is not the currency of order 'O1' (EUR)" in str(refused.error)
    assert recorded.status == "recorded"


def test_refunds_of_an_order_never_exceed_its_total(ledger: Ledger, fact: FactFactory) -> None:
    ledger.record(fact("PurchaseMade", order_id="O1", total_minor=1000))
    ledger.record(refund(fact, "O1", 500))

    refused, recorded, last, over = ledger.record_many(
        [refund(fact, "O1", 600), refund(fact, "O1", 300), refund(fact, "O1", 200), refund(fact, "O1", 1)]
    )

    assert isinstance(refused.error, InvariantError) and refused.error.field == "amount_minor"
    assert str(refused.error) == "amount_minor: 600 exceeds what is left of order 'O1' (500 of 1,000 EUR)"
    assert (recorded.status, last.status) == ("recorded", "recorded")
    assert "0 of 1,000 EUR" in str(over.error)


def test_the_limit_holds_for_a_new_writer_that_reads_the_customer_from_the_store(
    settings: Settings, fact: FactFactory
) -> None:
    first = Ledger(settings, clock=lambda: NOW)
    first.record(fact("PurchaseMade", order_id="O1", total_minor=1000))
    first.record(refund(fact, "O1", 900))
    first.close()
    second = Ledger(settings, clock=lambda: NOW)
    try:
        with pytest.raises(InvariantError, match="100 of 1,000 EUR"):
            second.record(refund(fact, "O1", 101))
        assert second.customer("C1").orders["O1"].refunded_minor == 900
    finally:
        second.close()


def test_a_refund_before_its_order_waits_then_is_recorded_when_the_order_arrives(
    ledger: Ledger, fact: FactFactory
) -> None:
    early = refund(fact, "O1", 400, reason="broken on arrival")

    waited = ledger.record(early)

    assert (waited.status, waited.waits_for, waited.ok) == ("waiting", "O1", True)
    assert ledger.head() == 0 and ledger.waiting_summary()["waiting"] == 1
    assert ledger.record(early).status == "waiting"  # sent again while it waits: it waits once
    assert ledger.waiting_summary()["waiting"] == 1

    ledger.record(fact("PurchaseMade", order_id="O1", total_minor=1000))

    assert [(t, r.get("order_id"), r.get("reason")) for t, r in events(ledger)] == [
        ("PurchaseMade", "O1", None), ("PurchaseRefunded", "O1", "broken on arrival")]
    assert ledger.waiting() == []
    assert ledger.record(early).status == "duplicate"  # now recorded: a resend is a duplicate
    assert ledger.customer("C1").orders["O1"].refunded_minor == 400


def test_a_refund_and_its_order_in_one_batch_are_both_recorded_whatever_their_order(
    ledger: Ledger, fact: FactFactory
) -> None:
    outcomes = ledger.record_many([refund(fact, "O1", 400), fact("PurchaseMade", order_id="O1", total_minor=1000),
                                   refund(fact, "O1", 600)])

    assert [o.status for o in outcomes] == ["waiting", "recorded", "recorded"]
    assert [(t, r.get("amount_minor")) for t, r in events(ledger)] == [
        ("PurchaseMade", None), ("PurchaseRefunded", 400), ("PurchaseRefunded", 600)]
    assert ledger.waiting_summary()["waiting"] == 0


def test_a_waiting_refund_that_breaks_an_invariant_once_its_order_arrives_is_kept_as_rejected(
    ledger: Ledger, fact: FactFactory
) -> None:
    ledger.record_many([refund(fact, "O1", 300, currency="USD"), refund(fact, "O1", 900), refund(fact, "O1", 200)])

    ledger.record(fact("PurchaseMade", order_id="O1", total_minor=1000))

    assert [r.get("amount_minor") for t, r in events(ledger) if t == "PurchaseRefunded"] == [900]
    rows = ledger.waiting()
    assert [(r["status"], r["order_id"]) for r in rows] == [("rejected", "O1"), ("rejected", "O1")]
    assert "USD is not the currency of order 'O1' (EUR)" in rows[0]["reason"]
    assert "200 exceeds what is left of order 'O1' (100 of 1,000 EUR)" in rows[1]["reason"]
    assert ledger.waiting_summary() == {"waiting": 0, "oldest": None, "rejected": 2}


def test_a_refund_of_another_customers_order_is_not_taken_against_it(ledger: Ledger, fact: FactFactory) -> None:
    ledger.record(fact("PurchaseMade", "C2", order_id="O1", total_minor=1000))

    assert ledger.record(refund(fact, "O1", 100, customer_id="C1")).status == "waiting"
    assert ledger.customer("C2").orders["O1"].refunded_minor == 0


def test_erasing_a_customer_drops_their_waiting_refunds(ledger: Ledger, fact: FactFactory) -> None:
    ledger.record(fact("ContactLogged", "C1"))
    ledger.record_many([refund(fact, "O1", 100, reason="secret"), refund(fact, "O2", 100, customer_id="C2")])

    erase(ledger, "C1")

    assert [r["customer_id"] for r in ledger.waiting()] == ["C2"]


def test_a_customer_read_from_a_snapshot_without_orders_is_read_again_from_events(
    settings: Settings, fact: FactFactory
) -> None:
    first = Ledger(settings, clock=lambda: NOW)
    first.record(fact("PurchaseMade", order_id="O1", total_minor=1000))
    old_shape = {"customer_id": "C1", "erased": False, "consents": {}}
    first.snapshots.put([CustomerSnapshot(customer_uuid("C1"), 1, old_shape)])
    first.close()
    second = Ledger(settings, clock=lambda: NOW)
    try:
        customer = second.customer("C1")
        assert (customer.incomplete, customer.orders["O1"].total_minor) == (False, 1000)
    finally:
        second.close()


def test_snapshots_carry_orders(settings: Settings, fact: FactFactory) -> None:
    first = Ledger(settings, clock=lambda: NOW)
    facts = [fact("PurchaseMade", order_id=f"O{n}", total_minor=100) for n in range(200)]
    first.record_many(facts)
    first.close()
    second = Ledger(settings, clock=lambda: NOW)
    try:
        (snapshot,) = list(second.snapshots.get(customer_uuid("C1")))
        assert snapshot.state["orders"]["O7"] == ["EUR", 100, 0]
        with pytest.raises(InvariantError, match="order 'O7' was already recorded"):
            second.record(fact("PurchaseMade", order_id="O7", total_minor=100))
    finally:
        second.close()


def test_a_customer_known_only_by_a_waiting_refund_can_be_erased_and_it_goes_with_them(
    ledger: Ledger, fact: FactFactory
) -> None:
    ledger.record(refund(fact, "O1", 100, customer_id="C9", reason="my address is ..."))

    erase(ledger, "C9")

    assert ledger.waiting() == []
    (after,) = ledger.record_many([fact("PurchaseMade", "C9", order_id="O1")])
    assert after.status == "rejected" and ledger.waiting() == []


def test_an_erasure_in_the_batch_that_parks_a_refund_drops_it(ledger: Ledger, fact: FactFactory) -> None:
    ledger.record(fact("ContactLogged", "C1"))

    ledger.record_many([refund(fact, "O1", 100, reason="secret"), fact("CustomerErased", "C1")])

    assert ledger.waiting() == []
