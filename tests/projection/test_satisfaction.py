"""Satisfaction per (day, channel): hand-computed counts, ratios, attribution and rollups."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

from ledger.projection.engine import Projector
from ledger.projection.readmodels import ReadModels
from ledger.write.log import NotificationLogSource
from tests.projection.before_hugeint import models_before
from tests.support.facts import DAY, T0, buy, consent, fact
from tests.support.readmodels import Harness

COLUMNS = (
    "csat_responses, csat_satisfied, csat_pct, nps_responses, nps_promoters, nps_passives, "
    "nps_detractors, nps, ces_responses, ces_sum, ces_avg, contacts, complaints, complaint_rate"
)


@pytest.fixture
def h(tmp_path: Path) -> Iterator[Harness]:
    harness = Harness(tmp_path)
    yield harness
    harness.close()


def daily(h: Harness, columns: str = COLUMNS) -> dict[tuple[date, str], tuple]:
    rows = h.rows(f"SELECT day, channel, {columns} FROM satisfaction_daily ORDER BY day, channel")
    return {(r[0], r[1]): tuple(r[2:]) for r in rows}


def feedback(
    kind: str, score: int, at: datetime, channel: str = "email", customer: str = "C1", **fields
):
    return fact("FeedbackGiven", customer, at, kind=kind, score=score, channel=channel, **fields)


def test_counts_and_ratios_of_one_day_are_hand_computed(h: Harness) -> None:
    day = T0 + 3 * DAY
    h.record(
        feedback("csat", 5, day),
        feedback("csat", 4, day),
        feedback("csat", 3, day),
        feedback("nps", 10, day),
        feedback("nps", 9, day),
        feedback("nps", 7, day),
        feedback("nps", 0, day),
        feedback("ces", 2, day),
        feedback("ces", 7, day),
        fact("ContactLogged", "C1", day, channel="email", is_complaint=True),
        fact("ContactLogged", "C1", day, channel="email"),
        fact("ContactLogged", "C1", day, channel="email"),
        fact("ContactLogged", "C1", day, channel="email"),
    )
    h.project(T0 + 10 * DAY)
    assert daily(h) == {
        (day.date(), "email"): (
            3,
            2,
            pytest.approx(200 / 3),
            4,
            2,
            1,
            1,
            25.0,
            2,
            9,
            4.5,
            4,
            1,
            0.25,
        )
    }


def test_nps_without_detractors(h: Harness) -> None:
    h.record(feedback("nps", 9, T0), feedback("nps", 10, T0), feedback("nps", 8, T0))
    h.project(T0 + DAY)
    assert daily(h, "nps_responses, nps_promoters, nps_passives, nps_detractors, nps") == {
        (T0.date(), "email"): (3, 2, 1, 0, pytest.approx(200 / 3))
    }


def test_nps_spans_minus_100_to_100(h: Harness) -> None:
    h.record(
        feedback("nps", 0, T0, channel="chat"),
        feedback("nps", 6, T0, channel="chat"),
        feedback("nps", 10, T0, channel="web"),
    )
    h.project(T0 + DAY)
    assert daily(h, "nps") == {(T0.date(), "chat"): (-100.0,), (T0.date(), "web"): (100.0,)}


def test_a_day_without_responses_has_zero_counts_and_no_ratios(h: Harness) -> None:
    h.record(fact("ContactLogged", "C1", T0, channel="chat"))
    h.project(T0 + DAY)
    assert daily(h) == {(T0.date(), "chat"): (0, 0, None, 0, 0, 0, 0, None, 0, 0, None, 1, 0, 0.0)}


def test_days_without_any_activity_have_no_row_and_rollups_stay_exact(h: Harness) -> None:
    monday = datetime(2026, 3, 2, 9, tzinfo=T0.tzinfo)
    h.record(
        feedback("csat", 5, monday),
        feedback("csat", 1, monday + 3 * DAY),
        feedback("nps", 10, monday + 8 * DAY),
        feedback("nps", 3, monday + 9 * DAY),
        feedback("nps", 9, monday + 9 * DAY),
    )
    h.project(monday + 30 * DAY)
    assert len(daily(h)) == 4
    assert h.rows(
        "SELECT week, csat_responses, csat_pct, nps_responses, nps "
        "FROM satisfaction_weekly ORDER BY week"
    ) == [
        (date(2026, 3, 2), 2, 50.0, 0, None),
        (date(2026, 3, 9), 0, None, 3, pytest.approx(100 / 3)),
    ]
    assert h.rows(
        "SELECT month, csat_responses, nps_responses, nps_promoters, nps_detractors "
        "FROM satisfaction_monthly"
    ) == [(date(2026, 3, 1), 2, 3, 2, 1)]


def test_feedback_counts_toward_the_channel_of_the_contact_it_is_about(h: Harness) -> None:
    h.record(
        fact("ContactLogged", "C1", T0, channel="phone", contact_id="K1"),
        feedback("csat", 5, T0 + DAY, channel="email", about_contact_id="K1"),
        feedback("csat", 2, T0 + DAY, channel="email", about_contact_id="unknown"),
        feedback("csat", 4, T0 + DAY, channel="sms"),
    )
    h.project(T0 + 5 * DAY)
    assert daily(h, "csat_responses, csat_satisfied, contacts") == {
        (T0.date(), "phone"): (0, 0, 1),
        ((T0 + DAY).date(), "phone"): (1, 1, 0),
        ((T0 + DAY).date(), "email"): (1, 0, 0),
        ((T0 + DAY).date(), "sms"): (1, 1, 0),
    }


def test_a_contact_of_another_customer_with_the_same_id_does_not_attract_feedback(
    h: Harness,
) -> None:
    h.record(
        fact("ContactLogged", "C2", T0, channel="phone", contact_id="K1"),
        feedback("csat", 5, T0, channel="email", about_contact_id="K1"),
    )
    h.project(T0 + DAY)
    assert daily(h, "csat_responses, contacts") == {
        (T0.date(), "email"): (1, 0),
        (T0.date(), "phone"): (0, 1),
    }


def test_a_late_contact_moves_earlier_feedback_to_its_channel(h: Harness) -> None:
    h.record(feedback("ces", 6, T0 + 2 * DAY, channel="email", about_contact_id="K9"))
    h.project(T0 + 5 * DAY)
    assert daily(h, "ces_responses, ces_sum") == {((T0 + 2 * DAY).date(), "email"): (1, 6)}
    h.record(fact("ContactLogged", "C1", T0, channel="chat", contact_id="K9"))
    h.project(T0 + 5 * DAY)
    assert daily(h, "ces_responses, ces_sum, contacts") == {
        (T0.date(), "chat"): (0, 0, 1),
        ((T0 + 2 * DAY).date(), "chat"): (1, 6, 0),
    }


def test_the_day_is_the_utc_date_of_the_feedback(h: Harness) -> None:
    h.record(
        feedback("csat", 5, "2026-01-02T00:30:00+02:00"),
        feedback("csat", 5, "2026-01-02T23:59:59Z"),
    )
    h.project(T0 + 5 * DAY)
    assert sorted(daily(h, "csat_responses")) == [
        (date(2026, 1, 1), "email"),
        (date(2026, 1, 2), "email"),
    ]


def test_satisfaction_by_rfm_segment(h: Harness) -> None:
    h.record(
        consent("C1", T0),  # scored: only a profiled customer has an RFM segment
        buy("C1", T0),
        feedback("csat", 5, T0 + DAY, customer="C1"),
        feedback("csat", 1, T0 + DAY, customer="C2"),
    )
    h.project(T0 + 2 * DAY)
    segment = h.rows("SELECT segment FROM rfm")[0][0]
    assert h.rows(
        "SELECT rfm_segment, csat_responses, csat_pct "
        "FROM satisfaction_by_segment ORDER BY rfm_segment"
    ) == sorted([(segment, 1, 100.0), ("none", 1, 0.0)])


def test_the_profile_keeps_the_latest_score_by_event_time_not_arrival(h: Harness) -> None:
    h.record(feedback("nps", 9, T0 + 5 * DAY), feedback("csat", 2, T0))
    h.record(feedback("nps", 3, T0 + DAY))  # arrives last, happened earlier
    h.record(
        feedback("ces", 4, T0), feedback("ces", 6, T0)
    )  # same instant: recording order decides
    h.project(T0 + 10 * DAY)
    assert h.rows("SELECT latest_csat, latest_nps, latest_ces FROM customer_profile") == [(2, 9, 6)]


def test_the_profile_shows_consent_flags_from_the_latest_change(h: Harness) -> None:
    h.record(
        fact("ConsentChanged", "C1", T0 + 2 * DAY, purpose="marketing_email", granted=False),
        fact("ConsentChanged", "C1", T0, purpose="marketing_email", granted=True),
        fact("ConsentChanged", "C1", T0, purpose="profiling", granted=True),
    )
    h.project(T0 + 10 * DAY)
    assert h.rows(
        "SELECT consent_marketing_email, consent_marketing_sms, "
        "consent_marketing_phone, consent_profiling "
        "FROM customer_profile"
    ) == [(False, False, False, True)]


def test_feedback_counts_even_when_occurred_at_is_far_from_arrival(h: Harness) -> None:
    h.record(feedback("csat", 5, T0 + 40 * DAY))
    h.project(T0 + 50 * DAY)
    h.record(feedback("csat", 1, T0 + 40 * DAY + timedelta(hours=3)))  # late, same day
    h.project(T0 + 50 * DAY)
    assert daily(h, "csat_responses, csat_satisfied") == {((T0 + 40 * DAY).date(), "email"): (2, 1)}


def test_feedback_about_an_unknown_contact_is_counted_as_such_until_the_contact_arrives(h: Harness) -> None:
    day = T0 + 2 * DAY
    h.record(
        fact("ContactLogged", "C1", T0, channel="phone", contact_id="K1"),
        feedback("csat", 5, day, channel="email", about_contact_id="K1"),
        feedback("csat", 2, day, channel="email", about_contact_id="K9"),
        feedback("nps", 9, day, channel="email", about_contact_id="K9"),
        feedback("csat", 4, day, channel="email"),
        feedback("csat", 4, day, channel="sms", customer="C2", about_contact_id="K1"),
    )
    h.project(T0 + 5 * DAY)
    assert daily(h, "csat_responses, feedback_unknown_contact") == {
        (T0.date(), "phone"): (0, 0),
        (day.date(), "phone"): (1, 0),
        (day.date(), "email"): (2, 2),
        (day.date(), "sms"): (1, 1),
    }
    assert h.rows("SELECT week, channel, feedback_unknown_contact FROM satisfaction_weekly "
                  "WHERE feedback_unknown_contact > 0 ORDER BY channel") == [
        (date(2025, 12, 29), "email", 2), (date(2025, 12, 29), "sms", 1)]
    assert h.rows("SELECT sum(feedback_unknown_contact) FROM satisfaction_monthly") == [(3,)]

    h.record(fact("ContactLogged", "C1", T0 + DAY, channel="chat", contact_id="K9"))
    h.project(T0 + 5 * DAY)
    assert daily(h, "csat_responses, nps_responses, feedback_unknown_contact")[(day.date(), "email")] == (1, 0, 0)
    assert daily(h, "csat_responses, nps_responses, feedback_unknown_contact")[(day.date(), "chat")] == (1, 1, 0)


def test_a_file_from_before_the_count_is_upgraded_in_place_with_the_count_made_from_its_events(
    tmp_path: Path, h: Harness
) -> None:
    h.record(
        fact("ContactLogged", "C1", T0, channel="phone", contact_id="K1"),
        feedback("csat", 5, T0 + DAY, about_contact_id="K1"),
        feedback("csat", 2, T0 + DAY, about_contact_id="K9"),
    )
    old_path = tmp_path / "old.duckdb"
    with ReadModels(old_path, models_before({"satisfaction"}), settings=h.settings) as old:
        Projector(old, NotificationLogSource(h.ledger)).catch_up(T0 + 5 * DAY)

    with ReadModels(old_path, settings=h.settings) as upgraded:
        assert upgraded.con.execute("SELECT name FROM readmodel_upgrades WHERE model = 'satisfaction' "
                                    "ORDER BY name").fetchall() == [("amendments",), ("feedback_unknown_contact",)]
        columns = ("SELECT column_name, data_type, is_nullable, column_default FROM information_schema.columns "
                   "WHERE table_name = 'satisfaction_daily' ORDER BY ordinal_position")
        assert upgraded.con.execute(columns).fetchall() == h.rows(columns)
        got = upgraded.con.execute("SELECT * FROM satisfaction_daily ORDER BY ALL").fetchall()
        weekly = upgraded.con.execute("SELECT * FROM satisfaction_weekly ORDER BY ALL").fetchall()
    h.project(T0 + 5 * DAY)
    assert got == h.rows("SELECT * FROM satisfaction_daily ORDER BY ALL")
    assert weekly == h.rows("SELECT * FROM satisfaction_weekly ORDER BY ALL")
    assert [(row[1], row[-1]) for row in got] == [("phone", 0), ("email", 1), ("phone", 0)]
