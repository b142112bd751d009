"""RFM scores and segments, rule segments and their membership history, broken rule files."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from ledger.errors import SegmentError
from ledger.ops.projecting import project
from ledger.projection.query import query
from ledger.settings import Settings
from tests.support.facts import DAY, T0, buy, consent, fact, naive
from tests.support.readmodels import Harness

AS_OF = T0 + 100 * DAY
HOUR = timedelta(hours=1)
SEGMENTS = {
    "champions",
    "loyal",
    "potential_loyalist",
    "new_customer",
    "promising",
    "need_attention",
    "about_to_sleep",
    "at_risk",
    "cant_lose",
    "hibernating",
    "lost",
}
COMPLAINERS = (
    "SELECT joined_at, left_at FROM segment_membership WHERE segment = 'complainers' "
    "ORDER BY joined_at"
)
SHIPPED = {
    "complainers": "profiling",
    "detractors": "profiling",
    "high_value": "profiling",
    "lapsed_vip": "profiling",
    "marketable_by_email": "marketing_email",
    "marketable_by_phone": "marketing_phone",
    "marketable_by_sms": "marketing_sms",
}


@pytest.fixture
def h(tmp_path: Path) -> Iterator[Harness]:
    harness = Harness(tmp_path)
    yield harness
    harness.close()


def orders(
    customer_id: str, last_days_ago: float, count: int, each_minor: int = 1000
) -> list[dict]:
    """`count` daily orders of a customer who agreed to profiling (so RFM scores them)."""
    last = AS_OF - timedelta(days=last_days_ago)
    return [consent(customer_id, T0)] + [
        buy(customer_id, last - i * DAY, total_minor=each_minor) for i in range(count)
    ]


def rfm(h: Harness) -> dict[str, tuple]:
    rows = h.rows(
        "SELECT customer_id, recency_days, frequency, monetary, "
        "r_score, f_score, m_score, fm_score, "
        "rfm_cell, segment FROM rfm ORDER BY customer_id"
    )
    return {r[0]: r[1:] for r in rows}


def test_the_score_map_names_every_cell_once_with_the_eleven_segments(h: Harness) -> None:
    rows = h.rows("SELECT r_score, fm_score, segment FROM rfm_segment_map")
    assert len(rows) == 25 and len({(r, fm) for r, fm, _ in rows}) == 25
    assert {segment for *_, segment in rows} == SEGMENTS


def test_distinct_values_give_quintile_scores_and_named_segments(h: Harness) -> None:
    h.record(
        *orders("A", 1, 5),
        *orders("B", 10, 4),
        *orders("C", 20, 3),
        *orders("D", 30, 2),
        *orders("E", 40, 1),
    )
    h.project(AS_OF)
    assert rfm(h) == {
        "A": (1, 5, 5000, 5, 5, 5, 5, "555", "champions"),
        "B": (10, 4, 4000, 4, 4, 4, 4, "444", "loyal"),
        "C": (20, 3, 3000, 3, 3, 3, 3, "333", "need_attention"),
        "D": (30, 2, 2000, 2, 2, 2, 2, "222", "hibernating"),
        "E": (40, 1, 1000, 1, 1, 1, 1, "111", "lost"),
    }


def test_ties_get_the_score_of_the_lowest_position_of_their_group(h: Harness) -> None:
    h.record(
        *(consent(customer, T0) for customer in ("P1", "P2", "P3")),
        buy("P1", AS_OF - 5 * DAY + 8 * HOUR),  # recency 4 days (4d 16h)
        buy("P2", AS_OF - 5 * DAY + 20 * HOUR),  # recency 4 days (4d 4h): a tie in whole days
        buy("P3", AS_OF - 50 * DAY, total_minor=3000),
        *orders("P4", 60, 2),
        *orders("P5", 10, 3),
        *orders("P6", 80, 3),
    )
    h.project(AS_OF)
    # n = 6, score = 1 + (5 * (rank - 1)) // 6
    # recency  80 60 50 10 4 4 -> ranks 1 2 3 4 5 5 -> R 1 1 2 3 4 4 (nobody gets 5)
    # frequency 1 1 1 2 3 3    -> ranks 1 1 1 4 5 5 -> F 1 1 1 3 4 4
    # monetary  1000 1000 2000 3000 3000 3000 -> ranks 1 1 3 4 4 4 -> M 1 1 2 3 3 3
    assert rfm(h) == {
        "P1": (4, 1, 1000, 4, 1, 1, 1, "411", "promising"),
        "P2": (4, 1, 1000, 4, 1, 1, 1, "411", "promising"),
        "P3": (50, 1, 3000, 2, 1, 3, 2, "213", "hibernating"),
        "P4": (60, 2, 2000, 1, 3, 2, 3, "132", "at_risk"),
        "P5": (10, 3, 3000, 3, 4, 3, 4, "343", "loyal"),
        "P6": (80, 3, 3000, 1, 4, 3, 4, "143", "at_risk"),
    }


def test_monetary_is_net_in_the_reporting_currency_and_refunded_orders_do_not_count(
    h: Harness,
) -> None:
    h.record(
        buy("C1", AS_OF - 10 * DAY, order_id="A", total_minor=1000),
        fact("PurchaseRefunded", "C1", AS_OF - 9 * DAY, order_id="A", amount_minor=300),
        buy("C1", AS_OF - 8 * DAY, order_id="B", total_minor=500),
        fact("PurchaseRefunded", "C1", AS_OF - 7 * DAY, order_id="B", amount_minor=500),
        buy("C1", AS_OF - 20 * DAY, order_id="C", currency="GBP", total_minor=2000),
    )
    h.project(AS_OF)
    assert h.rows(
        "SELECT recency_days, frequency, monetary, currency, other_currency_orders FROM rfm"
    ) == [(10, 2, 700, "EUR", 1)]


def test_the_reporting_currency_is_a_setting(tmp_path: Path) -> None:
    h = Harness(tmp_path, Settings(data_dir=tmp_path / "data", reporting_currency="GBP"))
    try:
        h.record(buy("C1", T0, currency="GBP", total_minor=2000), buy("C1", T0, currency="EUR"))
        h.project(AS_OF)
        assert h.rows("SELECT monetary, currency, other_currency_orders FROM rfm") == [
            (2000, "GBP", 1)
        ]
    finally:
        h.close()


def test_prospects_and_erased_customers_have_no_rfm_row(h: Harness) -> None:
    h.record(
        fact("CustomerRegistered", "P", T0),
        buy("X", T0),
        fact("CustomerErased", "X", T0 + DAY),
        consent("C", T0),
        buy("C", T0),
    )
    h.project(AS_OF)
    assert list(rfm(h)) == ["C"] and rfm(h)["C"][-1] is not None
    assert h.rows("SELECT customer_id, rfm_segment FROM customer_profile ORDER BY 1") == [
        ("C", rfm(h)["C"][-1]),
        ("P", None),
        ("X", None),
    ]


def test_shipped_segments_are_listed_with_their_descriptions_and_consents(h: Harness) -> None:
    h.record(buy("C1", T0))
    h.project(AS_OF)
    rows = h.rows(
        "SELECT segment, file, description IS NOT NULL, consent, last_error FROM segments "
        "ORDER BY 1"
    )
    assert rows == [
        (name, f"projections/segments/{name}.sql", True, purpose, None)
        for name, purpose in sorted(SHIPPED.items())
    ]
    assert not any("consent:" in d for (d,) in h.rows("SELECT description FROM segments"))


def test_membership_history_by_refresh_survives_leaving_and_rejoining(tmp_path: Path) -> None:
    """segment_history = refresh: the points are the refreshes that happened (the calendar's
    points are in test_segment_history.py)."""
    h = Harness(tmp_path, Settings(data_dir=tmp_path / "data", segment_history="refresh"))
    try:
        _leaving_and_rejoining(h)
    finally:
        h.close()


def _leaving_and_rejoining(h: Harness) -> None:
    complaint = {"is_complaint": True}
    h.record(
        consent("C1", T0),
        fact("ContactLogged", "C1", T0, **complaint),
        fact("ContactLogged", "C1", T0 + DAY, **complaint),
    )
    h.project(T0 + 2 * DAY)
    h.project(T0 + 100 * DAY)  # the complaints are older than 90 days now
    h.record(
        fact("ContactLogged", "C1", T0 + 150 * DAY, **complaint),
        fact("ContactLogged", "C1", T0 + 151 * DAY, **complaint),
    )
    h.project(T0 + 152 * DAY)
    history = h.rows(COMPLAINERS)
    assert history == [
        (naive(T0 + 2 * DAY), naive(T0 + 100 * DAY)),
        (naive(T0 + 152 * DAY), None),
    ]
    h.project(T0 + 152 * DAY)  # the same refresh again changes nothing
    assert h.rows(COMPLAINERS) == history
    h.project(T0 + 50 * DAY)  # an earlier as_of rewinds what was recorded after it
    assert h.rows(COMPLAINERS) == [(naive(T0 + 2 * DAY), None)]


def test_marketable_by_email_respects_consent_and_erasure(h: Harness) -> None:
    h.record(
        fact("CustomerRegistered", "YES", T0),
        fact("ConsentChanged", "YES", T0, granted=True),
        fact("CustomerRegistered", "NO", T0),
        fact("ConsentChanged", "NO", T0, granted=True),
        fact("ConsentChanged", "NO", T0 + 2 * DAY, granted=False),
        fact("CustomerRegistered", "LATE", T0),
        fact("ConsentChanged", "LATE", T0 + 20 * DAY, granted=True),
        fact("CustomerRegistered", "SMS", T0),
        fact("ConsentChanged", "SMS", T0, purpose="marketing_sms", granted=True),
        fact("CustomerRegistered", "GONE", T0),
        fact("ConsentChanged", "GONE", T0, granted=True),
        fact("CustomerErased", "GONE", T0 + DAY),
        fact("ConsentChanged", "NOMAIL", T0, granted=True),
    )
    h.project(T0 + 10 * DAY)
    assert h.rows(
        "SELECT customer_id FROM segment_membership "
        "WHERE segment = 'marketable_by_email' AND left_at IS NULL"
    ) == [("YES",)]


def test_detractors_and_lapsed_vips(h: Harness) -> None:
    h.record(
        consent("D", T0),
        consent("N", T0),
        fact("FeedbackGiven", "D", T0, kind="nps", score=9),
        fact("FeedbackGiven", "D", T0 + DAY, kind="nps", score=6),
        fact("FeedbackGiven", "N", T0 + DAY, kind="nps", score=2),
        fact("FeedbackGiven", "N", T0 + 2 * DAY, kind="nps", score=10),
        *orders("VIP", 120, 6, each_minor=9000),
        *orders("A", 1, 1),
        *orders("B", 2, 1),
        *orders("C", 3, 1),
        *orders("E", 4, 1),
    )
    h.project(AS_OF)
    members = h.rows(
        "SELECT segment, customer_id FROM segment_membership WHERE left_at IS NULL ORDER BY ALL"
    )
    assert ("detractors", "D") in members and ("detractors", "N") not in members
    assert ("lapsed_vip", "VIP") in members and ("high_value", "VIP") in members


def write_rule(folder: Path, name: str, sql: str) -> None:
    folder.mkdir(exist_ok=True)
    (folder / f"{name}.sql").write_text(sql)


def test_a_broken_rule_is_reported_by_file_and_the_others_still_update(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    write_rule(rules, "everyone", "-- All known customers.\nSELECT customer_id FROM lifecycle;\n")
    write_rule(rules, "typo", "SELECT customer_id\nFROM lifecycel")
    write_rule(rules, "no_id", "SELECT stage FROM lifecycle")
    write_rule(rules, "fails_late", "SELECT customer_id FROM lifecycle WHERE stage::INTEGER = 1")
    write_rule(rules, "high_value", "SELECT customer_id FROM lifecycle")
    write_rule(rules, "Bad-Name", "SELECT customer_id FROM lifecycle")
    write_rule(rules, "sneaky", "DELETE FROM events; SELECT customer_id FROM lifecycle")
    settings = Settings(data_dir=tmp_path / "data", segments_dir=rules)
    h = Harness(tmp_path, settings)
    try:
        h.record(
            buy("C1", T0),
            fact("CustomerRegistered", "C2", T0),
            consent("C1", T0),
            consent("C2", T0),
        )
        stats = h.project(AS_OF)
        messages = sorted(str(e) for e in stats.segment_errors)
        assert [m.split(":")[0] for m in messages] == [
            f"segment file {rules / name}.sql"
            for name in ("Bad-Name", "fails_late", "high_value", "no_id", "sneaky", "typo")
        ]
        by_file = dict(
            zip(["bad", "fails", "dup", "no_id", "sneaky", "typo"], messages, strict=True)
        )
        assert "exactly one SELECT" in by_file["sneaky"]
        assert h.rows("SELECT count(*) FROM events") == [(4,)]
        assert "lower case" in by_file["bad"]
        assert "Could not convert" in by_file["fails"] or "Conversion" in by_file["fails"]
        assert "already defined" in by_file["dup"]
        assert "must return a customer_id column (it returns stage)" in by_file["no_id"]
        assert "lifecycel does not exist" in by_file["typo"] and "SELECT *" not in by_file["typo"]
        segments = dict(h.rows("SELECT segment, members FROM segments WHERE last_error IS NULL"))
        assert segments["everyone"] == 2 and set(SHIPPED) <= set(segments)
        assert h.rows("SELECT consent FROM segments WHERE segment = 'everyone'") == [("profiling",)]
        # The duplicate high_value.sql is reported but the shipped high_value stays in use.
        assert h.rows("SELECT count(*) FROM segments WHERE last_error LIKE 'segment file %'") == [
            (5,)
        ]
        assert h.rows("SELECT description FROM segments WHERE segment = 'everyone'") == [
            ("All known customers.",)
        ]
        assert h.rows("SELECT stage FROM lifecycle WHERE customer_id = 'C1'") == [("at_risk",)]
        assert (
            "typo.sql"
            in h.rows("SELECT value FROM projector_state WHERE key = 'segment_errors'")[0][0]
        )

        for name in ("typo", "no_id", "fails_late", "high_value", "Bad-Name", "sneaky"):
            (rules / f"{name}.sql").unlink()
        assert h.project(AS_OF).segment_errors == []
        assert h.rows("SELECT count(*) FROM segments WHERE last_error IS NOT NULL") == [(0,)]
        assert h.rows("SELECT count(*) FROM projector_state WHERE key = 'segment_errors'") == [(0,)]
    finally:
        h.close()


def test_a_broken_segment_keeps_its_last_good_membership(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    write_rule(rules, "buyers", "SELECT customer_id FROM rfm")
    h = Harness(tmp_path, Settings(data_dir=tmp_path / "data", segments_dir=rules))
    try:
        h.record(consent("C1", T0), buy("C1", T0))
        h.project(AS_OF)
        write_rule(rules, "buyers", "SELECT customer_id FROM rfmm")
        h.record(consent("C2", T0), buy("C2", T0))
        assert len(h.project(AS_OF + DAY).segment_errors) == 1
        assert h.rows(
            "SELECT members, as_of, last_error IS NOT NULL, last_error_as_of "
            "FROM segments WHERE segment = 'buyers'"
        ) == [(1, naive(AS_OF), True, naive(AS_OF + DAY))]
        assert h.rows(
            "SELECT customer_id, left_at FROM segment_membership WHERE segment = 'buyers'"
        ) == [("C1", None)]
    finally:
        h.close()


def test_project_publishes_then_fails_naming_the_broken_file(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    write_rule(rules, "broken", "SELEC customer_id")
    settings = Settings(data_dir=tmp_path / "data", segments_dir=rules)
    h = Harness(tmp_path, settings)
    h.record(buy("C1", T0))
    h.models.close()
    with pytest.raises(
        SegmentError, match=r"(?s)broken\.sql: Parser Error.*were updated and published"
    ):
        project(settings, AS_OF, ledger=h.ledger)
    assert query(settings.published_path, "SELECT count(*) FROM rfm") == (["count_star()"], [(1,)])
    h.ledger.close()


def test_a_missing_segments_dir_is_a_settings_error(tmp_path: Path) -> None:
    from ledger.errors import SettingsError
    from ledger.projection.readmodels import ReadModels

    with pytest.raises(SettingsError, match="not a directory"):
        ReadModels(tmp_path / "rm.duckdb", settings=Settings(segments_dir=tmp_path / "nowhere"))
