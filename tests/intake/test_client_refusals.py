"""The SDK never drops a fact without a word: a fact that breaks the contract raises at
once; one that only the ledger can refuse (an erased customer) is named when the `with`
block ends, with everything else that block sent recorded."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from ledger.errors import SchemaError, ValidationError
from ledger.intake.client import FactsRefusedError, LedgerClient
from ledger.write.application import Ledger
from tests.support.kafka import recorded

WHEN = "2026-05-01T09:30:00Z"


def erase(client: LedgerClient, customer_id: str) -> str:
    return client.customer_erased(customer_id=customer_id, occurred_at=WHEN,
                                  source_event_id=f"erase-{customer_id}")


def contact(client: LedgerClient, customer_id: str, n: int) -> str:
    return client.contact_logged(customer_id=customer_id, occurred_at=WHEN, contact_id=f"K{n}",
                                 channel="phone", direction="inbound", source_event_id=f"k{n}")


def test_leaving_the_block_raises_for_every_fact_the_ledger_refused(ledger: Ledger) -> None:
    with pytest.raises(FactsRefusedError) as raised:  # noqa: PT012 - the block is the subject
        with LedgerClient.embedded(ledger, source="crm") as client:
            erase(client, "GONE")
            refused = [contact(client, "GONE", n) for n in range(2)]
            kept = contact(client, "C1", 3)

    error = raised.value
    assert [event_id for event_id, _ in error.rejected] == refused
    assert all("customer 'GONE' was erased" in str(problem) for _, problem in error.rejected)
    assert (error.delivery.recorded, error.delivery.duplicates) == (2, 0)
    assert all(event_id in str(error) for event_id in refused)
    assert "refused 2 facts (2 recorded, 0 duplicates)" in str(error)
    counts = recorded(ledger)
    assert counts[kept] == 1 and not any(counts[event_id] for event_id in refused)


def test_refusals_already_returned_by_flush_are_not_raised_again(ledger: Ledger) -> None:
    with LedgerClient.embedded(ledger, source="crm") as client:
        erase(client, "GONE")
        late = contact(client, "GONE", 1)
        delivery = client.flush()
        contact(client, "C1", 2)

    assert [event_id for event_id, _ in delivery.rejected] == [late]
    assert ledger.head() == 2


def test_refusals_in_a_full_batch_recorded_before_the_end_are_raised_too(ledger: Ledger) -> None:
    with pytest.raises(FactsRefusedError) as raised:  # noqa: PT012 - the block is the subject
        with LedgerClient.embedded(ledger, source="crm", batch_size=2) as client:
            erase(client, "GONE")
            late = contact(client, "GONE", 1)  # the batch of two is recorded here
            contact(client, "C1", 2)

    assert [event_id for event_id, _ in raised.value.rejected] == [late]
    assert ledger.head() == 2


def test_an_error_in_the_block_goes_on_with_the_refusals_noted(ledger: Ledger) -> None:
    with pytest.raises(RuntimeError, match="the adapter broke") as raised:  # noqa: PT012
        with LedgerClient.embedded(ledger, source="crm") as client:
            erase(client, "GONE")
            late = contact(client, "GONE", 1)
            raise RuntimeError("the adapter broke")

    (note,) = raised.value.__notes__
    assert late in note and "was erased" in note
    assert ledger.head() == 1  # what the block sent before the error is recorded


@pytest.mark.parametrize(
    ("fields", "error", "words"),
    [
        ({"customer_id": "\ud800"}, SchemaError, "customer_id: not valid Unicode"),
        ({"agent_id": "a\udfff"}, SchemaError, "agent_id: not valid Unicode"),
        ({"source_event_id": "\ud800"}, SchemaError, "source_event_id: not valid Unicode"),
        ({"duration_s": 2**31}, SchemaError, "duration_s: int 2147483648 is out of range for a 32-bit"),
        ({"duration_s": 1.5}, SchemaError, "duration_s: float 1.5 does not fit null or int"),
        ({"occurred_at": datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1)))}, SchemaError,
         "occurred_at: 0001-01-01T00:00:00+01:00 is before 1900"),
        ({"occurred_at": datetime(9999, 12, 31, 23, tzinfo=timezone(timedelta(hours=-2)))},
         SchemaError, "cannot be put in UTC"),
        ({"occurred_at": datetime(2999, 1, 1, tzinfo=UTC)}, ValidationError, "in the future"),
    ],
    ids=["surrogate id", "surrogate text", "surrogate key", "int past 32 bits", "float",
         "year 1", "year 9999", "year 2999"],
)
def test_a_hostile_value_raises_its_typed_error_at_send(ledger, fields, error, words) -> None:
    client = LedgerClient.embedded(ledger, source="cc")
    values = {"customer_id": "C1", "occurred_at": WHEN, "contact_id": "K1", "channel": "phone",
              "direction": "inbound", **fields}

    with pytest.raises(error) as raised:
        client.contact_logged(**values)

    assert words in str(raised.value)
    assert client.close().recorded == 0
    assert ledger.head() == 0


def test_changing_the_lines_after_sending_does_not_change_what_is_recorded(ledger: Ledger) -> None:
    lines = [{"sku": "A", "quantity": 1, "unit_price_minor": 500}]
    attributes = {"tier": "gold"}
    with LedgerClient.embedded(ledger, source="shop") as client:
        client.customer_registered(customer_id="C1", occurred_at=WHEN, attributes=attributes)
        client.purchase_made(customer_id="C1", occurred_at=WHEN, order_id="O1", channel="web",
                             currency="EUR", total_minor=500, lines=lines)
        lines[0]["quantity"] = None  # unchecked, it would fail the ledger's rules at the end
        lines.append({"sku": "B" * 20_000, "quantity": 7, "unit_price_minor": 1})
        attributes["tier"] = "x" * 20_000
    facts = [ledger.opened(n.state)[1] for n in ledger.notifications(0, 10)]
    assert facts[0]["attributes"] == {"tier": "gold"}
    assert facts[1]["lines"] == [{"sku": "A", "quantity": 1, "unit_price_minor": 500}]
