"""Parking does not depend on batches: any split of a log with bad events anywhere in it parks
the same events, with the same reasons, and gives the same read models as one batch."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ledger.projection.engine import Projector
from ledger.projection.readmodels import ReadModels
from ledger.write.key_reader import KeyReader
from ledger.write.log import NotificationLogSource
from tests.projection.bad_events import AS_OF, WITH_POISON, clean_replay, contact, corrupt, positions
from tests.projection.tables import snapshot
from tests.support.facts import DAY, T0, buy, event_id
from tests.support.readmodels import Harness

# At least one bad event: a log without one has nothing to park whatever the batches, and each
# example costs three or four projections (of 12 unfiltered examples, 3 had no bad event).
kinds = st.lists(st.sampled_from(["contact", "purchase", "poison", "truncated"]), min_size=2, max_size=14).filter(
    lambda drawn: "poison" in drawn or "truncated" in drawn)


def project(h: Harness, path: Path, batch_size: int) -> dict[str, list[tuple]]:
    with ReadModels(path, WITH_POISON, settings=h.settings) as models:
        keys = KeyReader(h.settings)
        Projector(models, NotificationLogSource(h.ledger), batch_size=batch_size, keys=keys).catch_up(AS_OF)
        return snapshot(models)


@settings(max_examples=8, suppress_health_check=[HealthCheck.too_slow])
@given(drawn=kinds, batch_sizes=st.lists(st.integers(1, 6), min_size=1, max_size=2, unique=True))
@example(drawn=["poison", "truncated", "poison"], batch_sizes=[2, 5])  # every event bad: drawn unfiltered, not now
def test_any_batches_park_the_same_events_and_give_the_same_read_models(
    drawn: list[str], batch_sizes: list[int]
) -> None:
    facts = [
        buy(f"C{n % 3}", T0 + n * DAY) if kind == "purchase"
        else contact(n, reason="poison" if kind == "poison" else "billing")
        for n, kind in enumerate(drawn)
    ]
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        h = Harness(folder)
        try:
            h.record(*facts)
            where = positions(h)
            for fact, kind in zip(facts, drawn, strict=True):
                if kind == "truncated":
                    corrupt(h, where[event_id(fact)])
            bad = {where[event_id(f)] for f, kind in zip(facts, drawn, strict=True) if kind in ("poison", "truncated")}

            once = project(h, folder / "once.duckdb", 100_000)
            assert {p for (_, _, p, *_) in once["parked_events"]} == bad
            for size in batch_sizes:
                assert project(h, folder / f"by-{size}.duckdb", size) == once

            h.models.close()
            h.models = ReadModels(folder / "once.duckdb", WITH_POISON, settings=h.settings)
            without_parked = {k: v for k, v in once.items() if k != "parked_events"}
            assert without_parked == clean_replay(h, folder / "clean.duckdb", WITH_POISON)
        finally:
            h.close()
