"""Segment membership history at calendar points (the first of each month by default, and the
last refresh), so that a replay rebuilds from the log exactly the history the projector built
as it went: whatever the refreshes, batches and late events in between."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from ledger.projection.history import MAX_POINTS, boundaries, plan
from ledger.settings import Settings
from tests.support.facts import DAY, T0, buy, consent, fact, naive
from tests.support.readmodels import Harness

HISTORY = "SELECT segment, customer_id, joined_at, left_at FROM segment_membership ORDER BY ALL"
SEGMENTS = "SELECT segment, members, as_of, without_consent FROM segments ORDER BY ALL"


def history_of(tmp_path: Path, name: str, facts: list[dict], refreshes: list[tuple[int, datetime]],
               every: str = "month") -> tuple[list, list]:
    """Record `facts` in the batches `refreshes` says (the first n facts, then refresh at t)."""
    h = Harness(tmp_path / name, Settings(data_dir=tmp_path / name / "data", segment_history=every))
    try:
        done = 0
        for upto, when in refreshes:
            if upto > done:
                h.record(*facts[done:upto])
                done = upto
            h.project(when)
        return h.rows(HISTORY), h.rows(SEGMENTS)
    finally:
        h.close()


def story(seed: int) -> list[dict]:
    """Customers who buy, complain and give scores over a year, in a shuffled order: some facts
    arrive long after they happened."""
    rng = random.Random(seed)
    facts: list[dict] = []
    for c in range(12):
        customer = f"C{c}"
        facts.append(consent(customer, T0))
        for _ in range(rng.randint(1, 6)):
            at = T0 + timedelta(days=rng.randint(0, 360), hours=rng.randint(0, 23))
            kind = rng.choice(["buy", "complaint", "nps"])
            if kind == "buy":
                facts.append(buy(customer, at, total_minor=rng.randint(100, 90_000)))
            elif kind == "complaint":
                facts.append(fact("ContactLogged", customer, at, is_complaint=True))
            else:
                facts.append(fact("FeedbackGiven", customer, at, kind="nps", score=rng.randint(0, 10), channel="email"))
        if rng.random() < 0.5:  # an address given some day, which marketable_by_email reads
            at = T0 + timedelta(days=rng.randint(0, 360))
            facts.append(consent(customer, T0, purpose="marketing_email"))
            facts.append(fact("ProfileUpdated", customer, at, email=f"{customer.lower()}@example.com"))
    erased = T0 + timedelta(days=rng.randint(100, 380))
    facts.append(fact("CustomerErased", f"C{rng.randint(0, 11)}", erased))  # forgotten, history and all
    rng.shuffle(facts[1:])
    return facts


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_a_replay_rebuilds_the_history_the_projector_built_as_it_went(tmp_path: Path, seed: int) -> None:
    facts = story(seed)
    rng = random.Random(seed)
    cuts = sorted(rng.sample(range(1, len(facts)), 3)) + [len(facts)]
    times = sorted(T0 + timedelta(days=rng.randint(20, 400), hours=rng.randint(0, 23)) for _ in cuts)
    final = T0 + 420 * DAY
    as_it_went = history_of(tmp_path, "incremental", facts, [*zip(cuts, times, strict=True), (len(facts), final)])
    replayed = history_of(tmp_path, "replay", facts, [(len(facts), final)])
    assert as_it_went == replayed
    segments = {row[0] for row in as_it_went[0]}
    assert "marketable_by_email" in segments and segments - {"marketable_by_email"}, segments


def test_points_are_the_first_of_each_month_and_the_last_refresh(tmp_path: Path) -> None:
    complaint = {"is_complaint": True}
    facts = [consent("C1", T0), fact("ContactLogged", "C1", T0 + 40 * DAY, **complaint),
             fact("ContactLogged", "C1", T0 + 41 * DAY, **complaint)]
    last = T0 + 200 * DAY + timedelta(hours=5)
    rows, _ = history_of(tmp_path, "h", facts, [(3, T0 + 45 * DAY), (3, T0 + 100 * DAY), (3, last)])
    complainers = [(joined, left) for segment, _, joined, left in rows if segment == "complainers"]
    # in from the first boundary after the complaints of February 10 and 11 (March 1) until the
    # first boundary more than 90 days after them (June 1; on May 1 they were 80 days old)
    utc = T0.tzinfo
    assert complainers == [(naive(datetime(2026, 3, 1, tzinfo=utc)), naive(datetime(2026, 6, 1, tzinfo=utc)))]


def test_a_late_event_changes_the_history_it_belongs_to(tmp_path: Path) -> None:
    complaint = {"is_complaint": True}
    early = [consent("C1", T0), fact("ContactLogged", "C1", T0 + 40 * DAY, **complaint)]
    late = [fact("ContactLogged", "C1", T0 + 41 * DAY, **complaint)]  # recorded at the end
    final = T0 + 200 * DAY
    with_late = history_of(tmp_path, "late", early + late, [(2, T0 + 100 * DAY), (3, final)])
    assert with_late == history_of(tmp_path, "truth", early + late, [(3, final)])
    assert with_late != history_of(tmp_path, "without", early, [(2, T0 + 100 * DAY), (2, final)])


def test_refreshing_into_the_past_rewinds_and_the_same_time_again_changes_nothing(tmp_path: Path) -> None:
    facts = story(9)
    end = T0 + 400 * DAY
    once = history_of(tmp_path, "once", facts, [(len(facts), end)])
    again = history_of(tmp_path, "again", facts, [(len(facts), end), (len(facts), end)])
    back = history_of(tmp_path, "back", facts, [(len(facts), end), (len(facts), T0 + 100 * DAY), (len(facts), end)])
    assert once == again == back


def test_an_erased_customer_leaves_no_segment_history(tmp_path: Path) -> None:
    complaint = {"is_complaint": True}
    facts = [consent("C1", T0), fact("ContactLogged", "C1", T0 + 40 * DAY, **complaint),
             fact("ContactLogged", "C1", T0 + 41 * DAY, **complaint), fact("CustomerErased", "C1", T0 + 300 * DAY)]
    rows, _ = history_of(tmp_path, "erased", facts, [(3, T0 + 100 * DAY), (4, T0 + 320 * DAY)])
    assert rows == []


def test_the_calendar_is_bounded_whatever_the_first_event() -> None:
    assert boundaries(datetime(9999, 11, 2), datetime(9999, 12, 31), "month") == [datetime(9999, 12, 1)]
    assert boundaries(datetime(9999, 12, 29), datetime(9999, 12, 31, 23), "day")[-1] == datetime(9999, 12, 31)
    far = boundaries(datetime(1, 1, 1), datetime(2026, 6, 15), "month")
    assert len(far) == MAX_POINTS and far[-1] == datetime(2026, 6, 1)
    assert boundaries(datetime(2026, 1, 1), datetime(2026, 1, 20), "week") == [
        datetime(2026, 1, 5), datetime(2026, 1, 12), datetime(2026, 1, 19)]
    assert boundaries(datetime(2026, 1, 31, 5), datetime(2026, 2, 2, 1), "day") == [
        datetime(2026, 2, 1), datetime(2026, 2, 2)]
    steps = plan(datetime(2026, 6, 15), "month", previous=None, changed_from=None, first_event=datetime(1, 1, 1))
    assert len(steps.points) == MAX_POINTS + 1 and steps.cut_before == far[0]
    assert plan(datetime(2026, 6, 15), "refresh", previous=datetime(2026, 6, 1), changed_from=None,
                first_event=datetime(2020, 1, 1)).points == [datetime(2026, 6, 15)]
