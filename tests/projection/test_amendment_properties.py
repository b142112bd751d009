"""Amendments give the read models of the amended history, whatever the history:

- a merge then its split leaves every read model exactly as if the two ids had never been
  merged (the merge is reversible, unlike a CDP's);
- while merged, the read models are those of the same history recorded under one id;
- corrections and retractions give the read models of the corrected history recorded
  directly (corrected values, retracted facts left out).

On random histories of a few customers, projected between the steps or not.
"""

from __future__ import annotations

import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import duckdb
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from ledger.ops.projecting import project
from ledger.settings import Settings
from ledger.write.application import Ledger
from tests.support.facts import CLOCK, DAY, T0, fact

CUSTOMERS = ["A", "B", "C"]
KINDS = ["register", "contact", "purchase", "feedback", "consent"]
AS_OF = T0 + 90 * DAY

MODELS = ["customer_profile", "customer_spend", "orders", "lifecycle", "lifecycle_transitions", "consent", "rfm",
          "segments", "segment_membership", "satisfaction_daily"]
"""Every read model but the timeline and the amendments' own bookkeeping."""

Step = tuple[str, str, int]


def to_fact(i: int, step: Step, customer: str | None = None) -> dict[str, Any]:
    """The i-th fact of a history: the same (source, source_event_id), so the same event_id,
    whichever customer id it is recorded under."""
    who, kind, n = step
    who = customer or who
    at = T0 + timedelta(hours=7 * i)
    common = {"source_event_id": f"h{i}"}
    if kind == "register":
        return fact("CustomerRegistered", who, at, name=f"name {i}", country="FR", **common)
    if kind == "contact":
        return fact("ContactLogged", who, at, contact_id=f"K{n % 3}", channel=["phone", "chat"][n % 2],
                    is_complaint=n % 3 == 0, duration_s=60 * n, **common)
    if kind == "purchase":
        return fact("PurchaseMade", who, at, total_minor=100 * (n + 1), order_id=f"O{i}", **common)
    if kind == "consent":
        return fact("ConsentChanged", who, at, purpose="profiling", granted=n % 4 != 0, **common)
    return fact("FeedbackGiven", who, at, kind="nps", score=n, about_contact_id=f"K{n % 3}", **common)


steps = st.lists(st.tuples(st.sampled_from(CUSTOMERS), st.sampled_from(KINDS), st.integers(0, 9)),
                 min_size=2, max_size=7)


def tables(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    with duckdb.connect(str(path), read_only=True) as con:
        return {t: con.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall() for t in MODELS}


def build(root: Path, name: str, story: list[tuple[str, Any]]) -> dict[str, list[tuple[Any, ...]]]:
    """Play `story` (("record", facts) | ("merge", (survivor, merged)) | ("split", merged) |
    ("correct", (event_id, changes)) | ("retract", event_id) | ("project", None)) on a new
    ledger, project at the end, and return its read models."""
    config = Settings(data_dir=root / name)
    ledger = Ledger(config, clock=lambda: CLOCK)
    try:
        for action, what in story:
            if action == "record":
                outcomes = ledger.record_many(what)
                assert all(o.ok for o in outcomes), [o.error for o in outcomes]
            elif action == "merge":
                ledger.merge(*what, reason="same person")
            elif action == "split":
                ledger.split(what, reason="two people")
            elif action == "correct":
                ledger.correct(*what, reason="typo")
            elif action == "retract":
                ledger.retract(what, reason="never happened")
            elif action == "project":
                project(config, AS_OF, ledger=ledger)
        project(config, AS_OF, ledger=ledger)
    finally:
        ledger.close()
    return tables(config.published_path)


@st.composite
def merges(draw: st.DrawFn) -> tuple[list[Step], list[Step], str, str, bool]:
    history = draw(steps)
    later = draw(st.lists(st.tuples(st.sampled_from(CUSTOMERS), st.sampled_from(KINDS), st.integers(0, 9)),
                          max_size=4))
    known = sorted({who for who, _, _ in history})
    survivor = draw(st.sampled_from(known))
    others = [c for c in known if c != survivor]
    merged = draw(st.sampled_from(others)) if others else None
    if merged is None:
        extra = "B" if survivor != "B" else "C"
        history = [*history, (extra, "contact", 1)]
        merged = extra
    return history, later, survivor, merged, draw(st.booleans())


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(merges())
def test_a_merge_then_its_split_leaves_every_read_model_as_if_never_merged(
    case: tuple[list[Step], list[Step], str, str, bool],
) -> None:
    history, later, survivor, merged, projected_between = case
    first = [to_fact(i, s) for i, s in enumerate(history)]
    rest = [to_fact(len(history) + i, s) for i, s in enumerate(later)]
    between = [("project", None)] if projected_between else []
    with tempfile.TemporaryDirectory() as root:
        amended = build(Path(root), "amended", [
            ("record", first), *between, ("merge", (survivor, merged)), *between,
            ("record", rest), *between, ("split", merged)])
        never = build(Path(root), "never", [("record", first + rest)])
    for model in MODELS:
        assert amended[model] == never[model], model


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(merges())
def test_while_merged_the_read_models_are_those_of_one_customer(
    case: tuple[list[Step], list[Step], str, str, bool],
) -> None:
    history, later, survivor, merged, projected_between = case
    first = [to_fact(i, s) for i, s in enumerate(history)]
    rest = [to_fact(len(history) + i, s) for i, s in enumerate(later)]
    as_one = [to_fact(i, s, survivor if s[0] == merged else None) for i, s in enumerate(history + later)]
    between = [("project", None)] if projected_between else []
    with tempfile.TemporaryDirectory() as root:
        amended = build(Path(root), "amended", [
            ("record", first), *between, ("merge", (survivor, merged)), *between, ("record", rest)])
        one = build(Path(root), "one", [("record", as_one)])
    for model in MODELS:
        assert amended[model] == one[model], model


CORRECTIONS = {
    "contact": lambda n: {"channel": ["email", "store"][n % 2], "is_complaint": n % 2 == 0},
    "purchase": lambda n: {"total_minor": 50 * (n + 3)},
    "feedback": lambda n: {"score": (n + 5) % 11},
}


@st.composite
def corrections(draw: st.DrawFn) -> tuple[list[Step], dict[int, dict[str, Any]], set[int], bool]:
    history = draw(steps.filter(lambda h: any(kind in CORRECTIONS for _, kind, _ in h)))
    amendable = [i for i, (_, kind, _) in enumerate(history) if kind in CORRECTIONS]
    corrected = draw(st.sets(st.sampled_from(amendable), max_size=3))
    retracted = draw(st.sets(st.sampled_from(amendable), max_size=2))
    # A history left unamended proves nothing here, and each example costs two projections.
    assume(corrected or retracted)
    changes = {}
    for i in sorted(corrected):
        n = draw(st.integers(0, 9))
        changes[i] = CORRECTIONS[history[i][1]](n)
        if draw(st.booleans()):
            changes[i]["occurred_at"] = T0 + timedelta(hours=7 * i + draw(st.integers(-30, 30)))
    return history, changes, retracted, draw(st.booleans())


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(corrections())
def test_corrections_and_retractions_give_the_read_models_of_the_corrected_history(
    case: tuple[list[Step], dict[int, dict[str, Any]], set[int], bool],
) -> None:
    history, changes, retracted, projected_between = case
    facts = [to_fact(i, s) for i, s in enumerate(history)]
    corrected = [{**f, **changes.get(i, {})} for i, f in enumerate(facts) if i not in retracted]
    between = [("project", None)] if projected_between else []
    with tempfile.TemporaryDirectory() as root:
        ids = {i: _event_id(f) for i, f in enumerate(facts)}
        story: list[tuple[str, Any]] = [("record", facts), *between]
        story += [("correct", (ids[i], c)) for i, c in changes.items()]
        story += [("retract", ids[i]) for i in sorted(retracted)]
        amended = build(Path(root), "amended", story)
        direct = build(Path(root), "direct", [("record", corrected)])
    for model in MODELS:
        assert amended[model] == direct[model], model


def _event_id(f: dict[str, Any]) -> str:
    from ledger.contract.facts import event_id_for

    return str(event_id_for(f["source"], f["source_event_id"]))
