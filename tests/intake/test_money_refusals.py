"""The money invariants at the intake and in the SDK: a fact breaking one is dead-lettered
with the reason in its headers (intake) or named at flush (SDK), the facts around it are
recorded, and a refund before its order waits: neither dead-lettered nor refused."""

from __future__ import annotations

from typing import Any

import pytest

from ledger.errors import InvariantError, ValidationError
from ledger.intake.client import FactsRefusedError, LedgerClient
from ledger.intake.consumer import Intake
from ledger.settings import Settings
from ledger.write.application import Ledger
from tests.support.facts import NOW, event_id, fact
from tests.support.kafka import avro, dead_letters, produce, recorded

WHEN = "2026-05-01T09:30:00Z"


def purchase(order_id: str, **fields: Any) -> dict[str, Any]:
    return fact("PurchaseMade", order_id=order_id, total_minor=1000, **fields)


def refund(order_id: str, amount: int, **fields: Any) -> dict[str, Any]:
    return fact("PurchaseRefunded", order_id=order_id, amount_minor=amount, **fields)


@pytest.mark.kafka
def test_the_intake_dead_letters_each_broken_invariant_with_its_reason_and_records_the_rest(
    store_kafka_settings: Settings,
) -> None:
    settings = store_kafka_settings
    facts = [purchase("O1"), refund("O1", 100, currency="USD"), refund("O1", 1500),
             purchase("O2", lines=[{"sku": "A", "quantity": 3, "unit_price_minor": 100}]),
             purchase("O1"), refund("O1", 400), refund("O9", 50)]
    produce(settings, [(b"C1", avro(f), [("event-type", f["type"].encode())]) for f in facts])
    ledger = Ledger(settings, clock=lambda: NOW)
    try:
        stats = Intake(settings, ledger).run_once()

        assert (stats.recorded, stats.waiting, stats.dead_letters) == (2, 1, 4)
        letters = sorted(dead_letters(settings), key=lambda letter: letter.source_offset)
        assert [(letter.field, letter.error_class) for letter in letters] == [
            ("currency", "InvariantError"), ("amount_minor", "InvariantError"),
            ("total_minor", "ValidationError"), ("order_id", "InvariantError")]
        assert letters[1].reason == "amount_minor: 1,500 exceeds what is left of order 'O1' (1,000 of 1,000 EUR)"
        assert letters[2].reason.startswith("total_minor: lines sum to 300, total_minor is 1,000")
        counts = recorded(ledger)
        assert counts[event_id(facts[0])] == counts[event_id(facts[5])] == 1
        assert [row["order_id"] for row in ledger.waiting()] == ["O9"]
        again = Intake(settings, ledger).run_once()  # the position of the waiting one was committed too
        assert (again.read, again.waiting, len(dead_letters(settings))) == (0, 0, 4)
    finally:
        ledger.close()


def test_the_sdk_refuses_lines_that_do_not_sum_to_the_total_before_sending(ledger: Ledger) -> None:
    client = LedgerClient.embedded(ledger, source="shop")
    with pytest.raises(ValidationError, match="lines sum to 1,998, total_minor is 2,000"):
        client.purchase_made(customer_id="C1", occurred_at=WHEN, order_id="O1", channel="web", currency="EUR",
                             total_minor=2000, lines=[{"sku": "A", "quantity": 2, "unit_price_minor": 999}])
    kept = client.purchase_made(customer_id="C1", occurred_at=WHEN, order_id="O1", channel="web", currency="EUR",
                                total_minor=1998, lines=[{"sku": "A", "quantity": 2, "unit_price_minor": 999}])
    assert client.close().recorded == 1
    assert recorded(ledger)[kept] == 1


def test_the_sdk_names_refunds_the_ledger_refused_and_says_which_wait(ledger: Ledger) -> None:
    with pytest.raises(FactsRefusedError) as raised:  # noqa: PT012 - the block is the subject
        with LedgerClient.embedded(ledger, source="shop") as client:
            client.purchase_made(customer_id="C1", occurred_at=WHEN, order_id="O1", channel="web",
                                 currency="EUR", total_minor=1000)
            too_much = client.purchase_refunded(customer_id="C1", occurred_at=WHEN, order_id="O1", currency="EUR",
                                     amount_minor=1001)
            kept = client.purchase_refunded(customer_id="C1", occurred_at=WHEN, order_id="O1", currency="EUR",
                                 amount_minor=1000)
            early = client.purchase_refunded(customer_id="C1", occurred_at=WHEN, order_id="O2", currency="EUR",
                                  amount_minor=10)

    ((refused, problem),) = raised.value.rejected
    assert refused == too_much and isinstance(problem, InvariantError)
    assert "1,001 exceeds what is left of order 'O1' (1,000 of 1,000 EUR)" in str(problem)
    assert raised.value.delivery.waiting == [(early, "O2")]
    assert recorded(ledger)[kept] == 1 and recorded(ledger)[early] == 0
