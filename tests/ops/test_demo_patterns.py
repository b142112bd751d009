"""The demo history is worth charting: seasons, weekdays and hours per channel, surveys on every
channel that follow the experience, a churn wave and a campaign. Fixed seeds, facts in memory,
and one small history projected into DuckDB to see the same in the read models."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta
from statistics import mean

import duckdb
import pytest

from ledger.ops import demo_calendar as cal
from ledger.ops.demo import CONTACT_CHANNELS, PURCHASE_CHANNELS, generate
from ledger.ops.projecting import project
from ledger.settings import Settings
from ledger.write.application import Ledger

END = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
YEAR_START = datetime(2025, 3, 1, tzinfo=UTC)  # the last whole year before END: no ramp-up
SATURDAY, SUNDAY = 5, 6


@pytest.fixture(scope="module")
def facts() -> list[dict]:
    return list(generate(customers=2000, seed=7, end=END))


def of_type(facts: list[dict], type_: str) -> list[dict]:
    return [f for f in facts if f["type"] == type_]


def per_day_by_month(events: list[dict]) -> tuple[dict[int, float], float]:
    """Events per day in each month of the last whole year, and per day over that year."""
    year = [f for f in events if YEAR_START <= f["occurred_at"] < YEAR_START.replace(year=2026)]
    days = Counter((YEAR_START + timedelta(days=n)).month for n in range(365))
    counts = Counter(f["occurred_at"].month for f in year)
    return {m: counts[m] / days[m] for m in range(1, 13)}, len(year) / 365


def test_purchases_peak_in_november_and_december_and_dip_in_summer(facts) -> None:
    monthly, yearly = per_day_by_month(of_type(facts, "PurchaseMade"))
    peak = (monthly[11] * 30 + monthly[12] * 31) / 61
    summer = (monthly[7] + monthly[8]) / 2
    assert peak > 1.3 * yearly, (peak, yearly)
    assert summer < 0.9 * yearly, (summer, yearly)
    assert min(monthly, key=monthly.get) in (7, 8)


def test_black_friday_to_cyber_monday_beats_the_rest_of_november(facts) -> None:
    november = [f["occurred_at"].date() for f in of_type(facts, "PurchaseMade") if f["occurred_at"].month == 11]
    fridays = (cal.black_friday(2024), cal.black_friday(2025))
    weekend = sum(any(0 <= (d - friday).days <= 3 for friday in fridays) for d in november)
    per_day = weekend / 8, (len(november) - weekend) / 52
    assert per_day[0] > 1.5 * per_day[1], per_day


def test_refunds_bump_in_january(facts) -> None:
    monthly, yearly = per_day_by_month(of_type(facts, "PurchaseRefunded"))
    assert monthly[1] > 1.3 * yearly, (monthly[1], yearly)


def share(events: list[dict], channel: str) -> float:
    return sum(f["channel"] == channel for f in events) / len(events)


def test_the_store_is_busiest_on_saturday_and_the_phone_quiet_at_weekends(facts) -> None:
    purchases = of_type(facts, "PurchaseMade")
    by_day = defaultdict(list)
    for f in purchases:
        by_day[f["occurred_at"].weekday()].append(f)
    weekdays = [f for day in range(5) for f in by_day[day]]
    assert share(by_day[SATURDAY], "store") > 1.4 * share(weekdays, "store")
    assert share(by_day[SUNDAY], "store") < 0.5 * share(weekdays, "store")
    store_days = Counter(f["occurred_at"].weekday() for f in purchases if f["channel"] == "store")
    assert store_days.most_common(1)[0][0] == SATURDAY

    contacts = [f for f in of_type(facts, "ContactLogged") if f["direction"] == "inbound"]
    weekend = [f for f in contacts if f["occurred_at"].weekday() >= SATURDAY]
    working = [f for f in contacts if f["occurred_at"].weekday() < SATURDAY]
    assert share(weekend, "phone") < 0.7 * share(working, "phone")


def in_hours(events: list[dict], first: int, stop: int) -> float:
    return sum(first <= f["occurred_at"].hour < stop for f in events) / len(events)


def test_hours_of_the_day_follow_the_channel(facts) -> None:
    contacts, purchases = of_type(facts, "ContactLogged"), of_type(facts, "PurchaseMade")

    def on(events: list[dict], *channels: str) -> list[dict]:
        return [f for f in events if f["channel"] in channels]

    assert in_hours(on(contacts, "phone"), 8, 18) > 0.9
    assert in_hours(on(contacts, "store"), 8, 20) > 0.95
    assert in_hours(on(purchases, "store"), 8, 20) > 0.95
    assert in_hours(on(purchases, "phone"), 8, 18) > 0.9
    evening = in_hours(on(purchases, "web", "app"), 18, 22)  # 4 hours of 24 hold over a third
    assert evening > 0.35 and in_hours(on(contacts, "chat", "web", "app"), 18, 22) > 0.35
    assert in_hours(on(purchases, "store"), 18, 22) < 0.15 and in_hours(on(contacts, "phone"), 18, 22) < 0.05
    assert in_hours(contacts + purchases, 1, 6) < 0.01  # Europe sleeps


def test_every_channel_has_every_survey_about_its_contacts_and_orders(facts) -> None:
    contacts = {f["contact_id"]: f for f in of_type(facts, "ContactLogged")}
    orders = {f["order_id"]: f for f in of_type(facts, "PurchaseMade")}
    about_contacts, about_orders = defaultdict(set), defaultdict(set)
    for f in of_type(facts, "FeedbackGiven"):
        if f["about_contact_id"] is not None:
            assert contacts[f["about_contact_id"]]["channel"] == f["channel"]
            about_contacts[f["channel"]].add(f["kind"])
        if f["about_order_id"] is not None:
            order = orders[f["about_order_id"]]
            assert order["channel"] == f["channel"] and order["customer_id"] == f["customer_id"]
            assert order["occurred_at"] < f["occurred_at"]
            about_orders[f["channel"]].add(f["kind"])
    kinds = {"csat", "nps", "ces"}
    assert about_contacts == {channel: kinds for channel in CONTACT_CHANNELS}
    assert about_orders == {channel: kinds for channel in PURCHASE_CHANNELS}


def test_scores_follow_the_experience_and_differ_by_channel(facts) -> None:
    contacts = {f["contact_id"]: f for f in of_type(facts, "ContactLogged")}
    scores: dict[tuple[str, str], list[int]] = defaultdict(list)
    by_channel: dict[tuple[str, str], list[int]] = defaultdict(list)
    for f in of_type(facts, "FeedbackGiven"):
        by_channel[f["kind"], f["channel"]].append(f["score"])
        if f["about_contact_id"] is not None:
            contact = contacts[f["about_contact_id"]]
            how = "complaint" if contact["is_complaint"] else contact["outcome"]
            scores[f["kind"], how].append(f["score"])
    for kind in ("csat", "nps", "ces"):
        m = {how: mean(scores[kind, how]) for how in ("resolved", "unresolved", "escalated", "complaint")}
        assert m["complaint"] < min(m["unresolved"], m["escalated"]) < m["resolved"], (kind, m)
    for kind, spread in (("csat", 0.3), ("nps", 0.8)):
        means = {c: mean(by_channel[kind, c]) for c in CONTACT_CHANNELS}
        assert max(means.values()) - min(means.values()) > spread, (kind, means)
        assert means["store"] > means["phone"] > means["social"], (kind, means)


def last_purchases(facts: list[dict]) -> dict[str, datetime]:
    last: dict[str, datetime] = {}
    for f in of_type(facts, "PurchaseMade"):
        last[f["customer_id"]] = max(f["occurred_at"], last.get(f["customer_id"], f["occurred_at"]))
    return last


def test_a_churn_wave_of_customers_who_stop_buying_after_a_bad_experience(facts) -> None:
    start, stop = cal.churn_wave(END)
    assert timedelta(days=300) < END - stop < END - start < timedelta(days=14 * 31)
    last = last_purchases(facts)
    complaints = sorted((f["occurred_at"], f["customer_id"]) for f in of_type(facts, "ContactLogged")
                        if f["is_complaint"])
    let_down: dict[str, datetime] = {}  # stopped buying (no purchase in the last half year) after a complaint
    for at, customer in complaints:
        if customer in last and last[customer] < at and last[customer] < END - timedelta(days=180):
            let_down.setdefault(customer, at)
    months = Counter(at.strftime("%Y-%m") for at in let_down.values())
    in_wave = sum(start <= at < stop for at in let_down.values())
    assert in_wave > 150 and in_wave > 0.5 * len(let_down), (in_wave, months)
    assert {m for m, _ in months.most_common(3)} == {"2025-02", "2025-03", "2025-04"}, months
    inbound = [f for f in of_type(facts, "ContactLogged") if f["direction"] == "inbound"]
    rate = {w: mean(f["is_complaint"] for f in inbound if (start <= f["occurred_at"] < stop) == w)
            for w in (True, False)}
    assert rate[True] > 1.8 * rate[False], rate


def test_the_campaign_brings_lapsed_customers_back(facts) -> None:
    start, stop = cal.campaign(END)
    assert start.weekday() == 0 and stop - start == timedelta(days=21)
    assert start.month == 1 and start.day <= 7  # inside one month: it shows in monthly charts
    times: dict[str, list[datetime]] = defaultdict(list)
    for f in of_type(facts, "PurchaseMade"):
        times[f["customer_id"]].append(f["occurred_at"])
    comebacks = [b for ts in times.values() for a, b in zip(sorted(ts), sorted(ts)[1:], strict=False)
                 if b - a > timedelta(days=180)]
    in_window = sum(start <= at < stop for at in comebacks)
    assert in_window > 0.5 * len(comebacks) and in_window > 100, (in_window, len(comebacks))

    reached = {f["customer_id"]: f for f in of_type(facts, "ContactLogged") if f["reason"] == "campaign"}
    assert len(reached) > 300
    assert all(f["direction"] == "outbound" and start <= f["occurred_at"] < start + timedelta(days=8)
               and f["channel"] in ("email", "sms", "phone") for f in reached.values())
    consent = {"email": "marketing_email", "sms": "marketing_sms", "phone": "marketing_phone"}
    for contact in reached.values():
        changes = sorted((f["occurred_at"], f["granted"]) for f in of_type(facts, "ConsentChanged")
                         if f["customer_id"] == contact["customer_id"]
                         and f["purpose"] == consent[contact["channel"]] and f["occurred_at"] <= start)
        assert changes and changes[-1][1], contact["customer_id"]


def test_the_patterns_are_deterministic_and_the_seed_matters() -> None:
    first, again = list(generate(300, 5, END)), list(generate(300, 5, END))
    assert first == again
    assert [(f["source"], f["source_event_id"]) for f in first] == [
        (f["source"], f["source_event_id"]) for f in again]
    other = list(generate(300, 6, END))
    assert [f["occurred_at"] for f in other] != [f["occurred_at"] for f in first]


def test_the_calendar_places_its_episodes_from_end_alone() -> None:
    assert cal.black_friday(2025) == date(2025, 11, 28) and cal.black_friday(2026) == date(2026, 11, 27)
    end = datetime(2026, 12, 5, tzinfo=UTC)
    assert cal.churn_wave(end) == (datetime(2025, 11, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC))
    assert cal.campaign(end) == (datetime(2026, 10, 5, tzinfo=UTC), datetime(2026, 10, 26, tzinfo=UTC))


def test_the_read_models_show_the_wave_the_campaign_and_every_channel_surveyed(tmp_path) -> None:
    settings = Settings(data_dir=tmp_path)
    ledger = Ledger(settings, clock=lambda: END)
    ledger.record_many(list(generate(customers=300, seed=7, end=END)))
    project(settings, END, ledger=ledger)
    with duckdb.connect(str(settings.published_path), read_only=True) as db:
        monthly = dict(db.sql(
            "SELECT strftime(\"at\", '%Y-%m'), count(*) FILTER (WHERE to_stage = 'reactivated') "
            "FROM lifecycle_transitions GROUP BY 1").fetchall())
        assert max(monthly, key=monthly.get) == "2026-01"  # the campaign's month
        assert monthly["2026-01"] > 3 * (sum(monthly.values()) - monthly["2026-01"]) / (len(monthly) - 1)
        complaints = dict(db.sql(
            "SELECT month BETWEEN DATE '2025-02-01' AND DATE '2025-04-01', sum(complaints) / sum(contacts) "
            "FROM satisfaction_monthly GROUP BY 1").fetchall())
        assert complaints[True] > 1.8 * complaints[False], complaints
        # the wave's customers go at risk 90 days after their last purchase and churn 180 days after
        # it: more of both in the months after the wave than in as many months later on
        def moves(stage: str, first: str, middle: str, stop: str) -> tuple[int, int]:
            return db.execute(
                "SELECT count(*) FILTER (WHERE \"at\" < $2::TIMESTAMP), "
                "count(*) FILTER (WHERE \"at\" >= $2::TIMESTAMP) "
                "FROM lifecycle_transitions WHERE to_stage = $1 AND \"at\" >= $3::TIMESTAMP AND \"at\" < $4::TIMESTAMP",
                [stage, middle, first, stop]).fetchall()[0]

        soon, later = moves("at_risk", "2025-02-01", "2025-08-01", "2026-02-01")
        assert soon > 1.8 * later, (soon, later)
        soon, later = moves("churned", "2025-05-01", "2025-09-01", "2026-01-01")
        assert soon > 1.5 * later, (soon, later)
        surveyed = db.sql(
            "SELECT channel, sum(csat_responses), sum(nps_responses), sum(ces_responses) "
            "FROM satisfaction_daily GROUP BY channel").fetchall()
        assert {row[0] for row in surveyed} == set(CONTACT_CHANNELS)
        assert all(sum(row[1:]) > 0 for row in surveyed), surveyed  # sms and social are rare at this size
        assert all(min(row[1:]) > 0 for row in surveyed if row[0] not in ("sms", "social")), surveyed
