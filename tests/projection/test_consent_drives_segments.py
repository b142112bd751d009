"""Consent drives segments: only customers with profiling consent as of T are scored and in
profiling segments (the others are counted as not profiled), each marketing segment needs its
own consent and a way to reach the customer, and erased customers are in none."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from ledger.projection.segments import CONSENT_PURPOSES
from ledger.settings import Settings
from tests.support.facts import DAY, T0, buy, consent, fact, naive
from tests.support.readmodels import Harness

AS_OF = T0 + 100 * DAY
PHONE = "+44 20 7946 0000"


@pytest.fixture
def h(tmp_path: Path) -> Iterator[Harness]:
    harness = Harness(tmp_path)
    yield harness
    harness.close()


def big_spender(customer_id: str) -> list[dict]:
    """Five orders of 90.00 in the last weeks: high value and champion, if profiled."""
    return [buy(customer_id, AS_OF - (i + 1) * DAY, total_minor=9000) for i in range(5)]


def crowd() -> list[dict]:
    """Four profiled customers who bought once, long ago and little, so that a big spender
    among five profiled customers scores 5."""
    return [
        f
        for n in range(4)
        for f in (consent(f"S{n}", T0), buy(f"S{n}", AS_OF - (60 + n) * DAY, total_minor=100 + n))
    ]


def members(h: Harness) -> set[tuple[str, str]]:
    return set(h.rows("SELECT segment, customer_id FROM segment_membership WHERE left_at IS NULL"))


def scores(h: Harness, customer_id: str) -> tuple:
    return h.rows(
        "SELECT profiled, r_score, f_score, m_score, fm_score, rfm_cell, segment FROM rfm "
        "WHERE customer_id = ?",
        customer_id,
    )[0]


def not_profiled(h: Harness, segment: str = "high_value") -> int:
    return h.rows("SELECT without_consent FROM segments WHERE segment = ?", segment)[0][0]


def test_without_profiling_consent_a_customer_has_no_scores_no_rfm_segment_and_counts_as_not_profiled(
    h: Harness,
) -> None:
    h.record(
        *crowd(),
        consent("YES", T0),
        *big_spender("YES"),
        *big_spender("NO"),
        consent("NO", T0, purpose="marketing_email"),
    )
    h.project(AS_OF)

    assert scores(h, "NO") == (False, None, None, None, None, None, None)
    # Had NO been ranked too, YES would share the top with them and score 4s.
    assert scores(h, "YES") == (True, 5, 5, 5, 5, "555", "champions")
    assert h.rows("SELECT frequency, monetary FROM rfm WHERE customer_id = 'NO'") == [(5, 45000)]
    assert ("high_value", "YES") in members(h) and {c for _, c in members(h)} == {"YES"}
    assert h.rows("SELECT rfm_segment FROM customer_profile WHERE customer_id = 'NO'") == [(None,)]
    assert h.rows("SELECT count(*) FILTER (WHERE NOT profiled), count(*) FROM rfm") == [(1, 6)]
    assert not_profiled(h) == not_profiled(h, "lapsed_vip") == not_profiled(h, "complainers") == 1


def test_the_unprofiled_take_no_part_in_the_quintiles_of_the_others(h: Harness) -> None:
    h.record(consent("A", T0), *big_spender("A"), buy("B", AS_OF - 50 * DAY, total_minor=100))
    h.project(AS_OF)
    assert scores(h, "A") == (True, 1, 1, 1, 1, "111", "lost")  # the only one scored
    h.record(consent("B", T0))
    h.project(AS_OF)
    assert scores(h, "A") == (True, 3, 3, 3, 3, "333", "need_attention")  # better of two


def test_consent_granted_then_withdrawn_before_as_of_leaves_the_customer_out(h: Harness) -> None:
    h.record(
        consent("C1", T0),
        consent("C1", T0 + 10 * DAY, granted=False),
        *big_spender("C1"),
        fact("ContactLogged", "C1", AS_OF - DAY, is_complaint=True),
        fact("ContactLogged", "C1", AS_OF - DAY, is_complaint=True),
    )
    h.project(AS_OF)
    assert scores(h, "C1")[0] is False
    assert members(h) == set()
    assert not_profiled(h, "complainers") == 1


def test_a_late_grant_that_happened_before_the_withdrawal_does_not_win(h: Harness) -> None:
    h.record(consent("C1", T0 + 10 * DAY, granted=False), *big_spender("C1"))
    h.record(consent("C1", T0))  # arrives last, happened first
    h.project(AS_OF)
    assert scores(h, "C1")[0] is False
    assert h.rows("SELECT granted FROM consent WHERE customer_id = 'C1' AND purpose = 'profiling'") == [
        (False,)
    ]


def test_as_of_before_the_grant_leaves_the_customer_out_and_after_it_in(h: Harness) -> None:
    h.record(
        consent("C1", AS_OF - 3 * DAY),
        *big_spender("C1"),
        fact("ContactLogged", "C1", AS_OF - 10 * DAY, is_complaint=True),
        fact("ContactLogged", "C1", AS_OF - 9 * DAY, is_complaint=True),
    )
    h.project(AS_OF - 4 * DAY)
    assert scores(h, "C1") == (False, None, None, None, None, None, None)
    assert members(h) == set() and not_profiled(h, "complainers") == 1

    h.project(AS_OF)
    assert scores(h, "C1") == (True, 1, 1, 1, 1, "111", "lost")
    assert members(h) == {("complainers", "C1")} and not_profiled(h, "complainers") == 0
    assert h.rows("SELECT joined_at FROM segment_membership") == [(naive(AS_OF),)]

    h.project(AS_OF - 4 * DAY)  # back before the grant: out again
    assert scores(h, "C1")[0] is False and members(h) == set()


def test_marketable_by_sms_and_by_phone_each_need_their_own_consent_and_a_phone(h: Harness) -> None:
    h.record(
        fact("CustomerRegistered", "SMS", T0, phone=PHONE),
        consent("SMS", T0, "marketing_sms"),
        fact("CustomerRegistered", "CALL", T0, phone=PHONE),
        consent("CALL", T0, "marketing_phone"),
        fact("CustomerRegistered", "BOTH", T0, phone=PHONE),
        consent("BOTH", T0, "marketing_sms"),
        consent("BOTH", T0, "marketing_phone"),
        fact("CustomerRegistered", "NOPHONE", T0),
        consent("NOPHONE", T0, "marketing_sms"),
        consent("NOPHONE", T0, "marketing_phone"),
        fact("CustomerRegistered", "WITHDRAWN", T0, phone=PHONE),
        consent("WITHDRAWN", T0, "marketing_sms"),
        consent("WITHDRAWN", T0 + DAY, "marketing_sms", granted=False),
        fact("CustomerRegistered", "EMAIL", T0, phone=PHONE),
        consent("EMAIL", T0, "marketing_email"),
        consent("EMAIL", T0, "profiling"),
    )
    h.project(AS_OF)
    marketable = {m for m in members(h) if m[0].startswith("marketable_by_")}
    assert marketable == {
        ("marketable_by_sms", "SMS"),
        ("marketable_by_sms", "BOTH"),
        ("marketable_by_phone", "CALL"),
        ("marketable_by_phone", "BOTH"),
        ("marketable_by_email", "EMAIL"),
    }
    without = dict(h.rows("SELECT segment, without_consent FROM segments"))
    assert without["marketable_by_sms"] == 3  # CALL, WITHDRAWN, EMAIL
    assert without["marketable_by_phone"] == 3  # SMS, WITHDRAWN, EMAIL
    assert without["marketable_by_email"] == 5


def test_erased_customers_are_in_no_segment_and_never_profiled(h: Harness) -> None:
    everything = ("marketing_email", "marketing_sms", "marketing_phone", "profiling")
    for customer in ("GONE", "LATER"):
        h.record(
            fact("CustomerRegistered", customer, T0, phone=PHONE),
            *(consent(customer, T0, purpose) for purpose in everything),
            *big_spender(customer),
            fact("ContactLogged", customer, AS_OF - 2 * DAY, is_complaint=True),
            fact("ContactLogged", customer, AS_OF - 2 * DAY, is_complaint=True),
        )
    h.record(
        fact("CustomerErased", "GONE", AS_OF - DAY),
        fact("CustomerErased", "LATER", AS_OF + DAY),  # after T: erasure is final all the same
    )
    h.project(AS_OF)
    assert members(h) == set()
    assert h.rows("SELECT count(*) FROM consent WHERE granted") == [(0,)]
    assert h.rows("SELECT customer_id, profiled, segment FROM rfm") == [("LATER", False, None)]
    assert not_profiled(h) == 1  # LATER: GONE, erased by T, is left out as erased


def test_a_rule_declares_the_consent_its_members_need(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "texted.sql").write_text(
        "-- Everyone we may text.\n-- consent: marketing_sms\nSELECT customer_id FROM lifecycle\n"
    )
    (rules / "everyone.sql").write_text("-- Everyone known.\nSELECT customer_id FROM lifecycle\n")
    (rules / "typo.sql").write_text("-- consent: marketing_fax\nSELECT customer_id FROM lifecycle\n")
    h = Harness(tmp_path, Settings(data_dir=tmp_path / "data", segments_dir=rules))
    try:
        h.record(
            consent("SMS", T0, "marketing_sms"),
            consent("PROFILED", T0),
            fact("CustomerRegistered", "NEITHER", T0),
        )
        [error] = h.project(AS_OF).segment_errors
        assert "typo.sql: consent 'marketing_fax' is not a purpose" in str(error)
        assert members(h) == {("texted", "SMS"), ("everyone", "PROFILED")}
        assert h.rows(
            "SELECT segment, description, consent, members, without_consent FROM segments "
            "WHERE segment IN ('texted', 'everyone') ORDER BY 1"
        ) == [
            ("everyone", "Everyone known.", "profiling", 1, 2),
            ("texted", "Everyone we may text.", "marketing_sms", 1, 2),
        ]
    finally:
        h.close()


def test_the_purposes_are_those_of_the_contract(h: Harness) -> None:
    schemas = sorted((Path(__file__).resolve().parents[2] / "schemas").glob("consent_changed.v*.avsc"))
    newest = json.loads(schemas[-1].read_text("utf-8"))
    [purpose] = [f for f in newest["fields"] if f["name"] == "purpose"]
    assert list(CONSENT_PURPOSES) == purpose["type"]["symbols"]
    h.record(fact("CustomerRegistered", "C1", T0))
    h.project(AS_OF)
    assert h.rows("SELECT purpose FROM consent ORDER BY 1") == sorted((p,) for p in CONSENT_PURPOSES)
