"""customer_profile and customer_spend hold the values a person computes by hand from the
facts, whatever the batches and however late an event arrives."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.facts import DAY, T0, buy, fact, naive
from tests.support.readmodels import Harness

AS_OF = T0 + 30 * DAY


@pytest.fixture
def h(tmp_path: Path):
    # Two events per batch, so every history below spans several batches.
    harness = Harness(tmp_path, batch_size=2)
    yield harness
    harness.close()


def record_ada_and_bo(h: Harness) -> None:
    """Ada's second round arrives late: each of its batches holds an event older than what
    came before, and none holds the newest of everything. Bo: one feedback, an order and its
    refund."""
    h.record(
        fact("ContactLogged", "ada", T0 + 1 * DAY),
        fact("CustomerRegistered", "ada", T0 + 2 * DAY),
        buy("ada", T0 + 3 * DAY, order_id="A1", currency="EUR", total_minor=1000),
        fact("FeedbackGiven", "ada", T0 + 4 * DAY, kind="csat", score=4),
        fact("PurchaseRefunded", "ada", T0 + 5 * DAY, order_id="A1", currency="EUR", amount_minor=300),
        fact("ContactLogged", "ada", T0 + 6 * DAY),
        buy("ada", T0 + 7 * DAY, currency="GBP", total_minor=500),
        fact("FeedbackGiven", "bo", T0 + 1 * DAY, kind="nps", score=9),
        buy("bo", T0 + DAY + DAY / 2, order_id="B1", currency="GBP", total_minor=200),
        fact("PurchaseRefunded", "bo", T0 + 2 * DAY, order_id="B1", currency="GBP", amount_minor=200),
    )
    h.project(AS_OF)
    h.record(
        fact("ContactLogged", "ada", T0),
        fact("CustomerRegistered", "ada", T0 + 12 * DAY, source="crm"),
        fact("FeedbackGiven", "ada", T0 + 9 * DAY, kind="ces", score=6),
        fact("FeedbackGiven", "ada", T0 + DAY / 2, kind="nps", score=3),
        buy("ada", T0 + 8 * DAY, currency="EUR", total_minor=250),
        fact("FeedbackGiven", "ada", T0 + DAY + DAY / 2, kind="csat", score=3),
    )
    h.project(AS_OF)


def test_profile_counts_and_times_are_the_hand_computed_ones(h: Harness) -> None:
    record_ada_and_bo(h)
    got = h.rows(
        "SELECT customer_id, contacts, feedbacks, purchases, refunds, registered_at, "
        "first_seen_at, last_seen_at, last_contact_at, last_purchase_at, last_feedback_at, "
        "latest_csat, latest_nps, latest_ces, net_spend "
        "FROM customer_profile ORDER BY customer_id"
    )
    assert got == [
        (
            "ada", 3, 4, 3, 1,
            naive(T0 + 2 * DAY),  # the first registration, not the earlier contacts
            naive(T0),  # the late contact
            naive(T0 + 12 * DAY),
            naive(T0 + 6 * DAY), naive(T0 + 8 * DAY), naive(T0 + 9 * DAY),
            4, 3, 6,  # the late CSAT of 3 is older than the CSAT of 4
            {"EUR": 950, "GBP": 500},
        ),
        ("bo", 0, 1, 1, 1, None, naive(T0 + DAY), naive(T0 + 2 * DAY), None, naive(T0 + DAY + DAY / 2),
         naive(T0 + DAY), None, 9, None, {"GBP": 0}),
    ]


def test_spend_per_currency_adds_up_across_batches(h: Harness) -> None:
    record_ada_and_bo(h)
    assert h.rows("SELECT * FROM customer_spend ORDER BY customer_id, currency") == [
        ("ada", "EUR", 1250, 300, 950),
        ("ada", "GBP", 500, 0, 500),
        ("bo", "GBP", 200, 200, 0),
    ]
