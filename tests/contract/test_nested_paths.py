"""A field inside a record that does not fit is refused by its path (``lines[2].sku``, indexes
counted from 0, and the message says so), as a SchemaError whose `field` is that path; the
messages of top-level fields stay as they were."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from ledger.contract.codec import default_codec
from ledger.contract.facts import to_record
from ledger.errors import SchemaError, ValidationError, counted_from_zero

CODEC = default_codec()
NOW = datetime(2026, 1, 1, tzinfo=UTC)
LINE = {"sku": "A", "quantity": 1, "unit_price_minor": 100}


def purchase(**fields: Any) -> dict[str, Any]:
    return {"type": "PurchaseMade", "customer_id": "C1", "occurred_at": "2026-01-01T00:00:00Z", "source": "shop",
            "order_id": "O1", "channel": "web", "currency": "EUR", "total_minor": 300, **fields}


def refusal(fact: dict[str, Any]) -> SchemaError:
    with pytest.raises(SchemaError) as caught:
        CODEC.check(*to_record(fact, NOW))
    return caught.value


@pytest.mark.parametrize(
    ("lines", "field", "message"),
    [
        ([LINE, LINE, {"quantity": 1, "unit_price_minor": 1}], "lines[2].sku",
         "lines[2].sku: required field missing (lines[0] is the first)"),
        ([LINE, {**LINE, "quantity": "2"}], "lines[1].quantity",
         "lines[1].quantity: str '2' does not fit int (lines[0] is the first)"),
        ([{**LINE, "sku": 7}], "lines[0].sku", "lines[0].sku: int 7 does not fit string (lines[0] is the first)"),
        ([{**LINE, "sku": None}], "lines[0].sku", "lines[0].sku: required field missing (lines[0] is the first)"),
        ([LINE, {**LINE, "colour": "red"}], "lines[1].colour",
         "lines[1]: PurchaseLine has no field 'colour' (lines[0] is the first)"),
        ([LINE, "A"], "lines[1]", "lines[1]: str 'A' does not fit a PurchaseLine record (lines[0] is the first)"),
        ({"sku": "A"}, "lines", "lines: dict {'sku': 'A'} does not fit null or array"),
        ("A", "lines", "lines: str 'A' does not fit null or array"),
    ],
    ids=["missing", "text for an int", "int for text", "null", "unknown field", "not an object", "an object",
         "a string"],
)
def test_a_nested_field_is_refused_by_its_path(lines: Any, field: str, message: str) -> None:
    error = refusal(purchase(lines=lines))
    assert (error.field, str(error)) == (field, message)


def test_top_level_messages_are_unchanged() -> None:
    assert (refusal(purchase(total_minor="1")).field, str(refusal(purchase(total_minor="1")))) == (
        "total_minor", "total_minor: str '1' does not fit long")
    assert str(refusal(purchase(colour="red"))) == "PurchaseMade has no field 'colour'"
    assert str(refusal(purchase(order_id=None))) == "order_id: required field missing"


def test_the_hundred_thousandth_line_is_named() -> None:
    error = refusal(purchase(lines=[LINE] * 99_999 + [{"sku": "A", "quantity": 1}]))
    assert str(error) == "lines[99999].unit_price_minor: required field missing (lines[0] is the first)"


@pytest.mark.parametrize(
    "fact",
    [
        purchase(lines=[{**LINE, "K" * 10_000_000: 1}]),
        purchase(**{"Z" * 10_000_000: 1}),
        purchase(lines=[{**LINE, "quantity": "Q" * 10_000_000}]),
        purchase(lines="L" * 10_000_000),
        purchase(type="T" * 10_000_000),
    ],
    ids=["10 MB field name in a line", "10 MB field name", "10 MB string for an int", "10 MB string for lines",
         "10 MB type"],
)
def test_huge_names_and_values_make_a_short_reason(fact: dict[str, Any]) -> None:
    error = refusal(fact)
    assert len(str(error)) < 300 and len(error.field or "") <= 80


def test_a_broken_rule_inside_a_line_says_how_lines_are_counted() -> None:
    error = ValidationError("lines[3].quantity", "must be positive, got 0")
    assert str(error) == "lines[3].quantity: must be positive, got 0 (lines[0] is the first)"
    assert (counted_from_zero("attributes['a[1]']"), counted_from_zero(None), counted_from_zero("score")) == ("",) * 3


def test_a_schema_error_raised_again_with_its_message_and_field_keeps_one_note() -> None:
    first = SchemaError("lines[1].sku: required field missing", "lines[1].sku")
    again = SchemaError(f"{first}; a hint", first.field)
    assert str(again) == "lines[1].sku: required field missing (lines[0] is the first); a hint"
