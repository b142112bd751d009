"""No event can halt the projector: one it cannot decode or apply is parked with its reason,
the events around it are projected, the positions move past it, and the read models equal a
clean replay of the log without it. A failure of the system, not of an event, still stops it."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from ledger.errors import ReadModelError
from ledger.projection.catalogue import in_build_order, load_models, parse_model
from ledger.projection.engine import Projector
from ledger.projection.readmodels import ReadModels
from ledger.write.key_reader import KeyReader
from ledger.write.log import NotificationLogSource
from tests.projection.bad_events import (
    AS_OF,
    WITH_POISON,
    clean_replay,
    contact,
    corrupt,
    position,
    with_models,
)
from tests.projection.before_hugeint import models_before
from tests.projection.tables import snapshot
from tests.support.facts import DAY, T0, buy, event_id, naive
from tests.support.readmodels import Harness

PARKED = (
    "SELECT source, position_key, position, stage, event_type, event_id, customer_id, parked_at "
    "FROM parked_events ORDER BY position"
)


def test_an_undecodable_payload_mid_batch_is_parked_and_the_events_around_it_projected(tmp_path: Path) -> None:
    facts = [contact(n) for n in range(5)]
    h = Harness(tmp_path)
    try:
        h.record(*facts)
        bad = position(h, facts[2])
        stored = corrupt(h, bad)

        stats = h.project(AS_OF)

        assert (stats.read, stats.new, stats.parked) == (5, 4, 1)
        assert h.rows(PARKED) == [
            ("store", "log", bad, "decode", "ContactLogged", None, None, naive(AS_OF))
        ]
        [(reason, payload)] = h.rows("SELECT reason, payload FROM parked_events")
        assert reason.startswith("ContactLogged: corrupt body") and payload == stored
        projected = {e for (e,) in h.rows("SELECT event_id FROM events")}
        assert projected == {event_id(f) for i, f in enumerate(facts) if i != 2}
        assert h.models.positions("store") == {"log": 5}

        again = h.project(AS_OF)
        assert (again.read, again.new, again.parked) == (0, 0, 0)
        assert h.rows("SELECT count(*) FROM parked_events") == [(1,)]
        assert snapshot(h.models, without=frozenset({"parked_events"})) == clean_replay(h, tmp_path / "clean.duckdb")
    finally:
        h.close()


def test_events_a_models_sql_refuses_are_parked_with_its_error_and_the_rest_applied(tmp_path: Path) -> None:
    facts = [contact(n, reason="poison" if n in (1, 4) else "billing") for n in range(7)]
    h = with_models(tmp_path, WITH_POISON)
    try:
        h.record(*facts)

        stats = h.project(AS_OF)

        assert (stats.read, stats.new, stats.parked) == (7, 5, 2)
        assert h.rows(PARKED) == [
            ("store", "log", position(h, facts[n]), "apply", "ContactLogged", event_id(facts[n]),
             facts[n]["customer_id"], naive(AS_OF))
            for n in sorted((1, 4), key=lambda n: position(h, facts[n]))
        ]
        reasons = {r for (r,) in h.rows("SELECT reason FROM parked_events")}
        assert reasons == {
            f"projections/poison.sql: apply failed: Invalid Input Error: poison in {event_id(facts[n])}" for n in (1, 4)
        }
        assert h.rows("SELECT count(*) FROM poison_seen") == [(5,)]
        assert h.models.positions("store") == {"log": 7}

        again = h.project(AS_OF)
        assert (again.read, again.new, again.parked) == (0, 0, 0)
        assert snapshot(h.models, without=frozenset({"parked_events"})) == clean_replay(
            h, tmp_path / "clean.duckdb", WITH_POISON
        )
    finally:
        h.close()


@pytest.mark.parametrize("batch_size", [1, 1000])
def test_with_bigint_sums_the_purchase_that_overflows_is_parked_not_retried_forever(
    tmp_path: Path, batch_size: int
) -> None:
    big = 9 * 10**18
    facts = [buy("C1", T0 + DAY, total_minor=big), buy("C1", T0 + 2 * DAY, total_minor=big), contact(3)]
    h = with_models(tmp_path, models_before({"customer_spend"}), batch_size)
    try:
        h.record(*facts)

        stats = h.project(AS_OF)

        assert (stats.read, stats.new, stats.parked) == (3, 2, 1)
        assert h.rows("SELECT position, event_id FROM parked_events") == [(position(h, facts[1]), event_id(facts[1]))]
        assert h.rows("SELECT purchased_minor FROM customer_spend") == [(big,)]
        assert h.rows("SELECT contacts, purchases FROM customer_profile WHERE customer_id = 'C1'") == [(0, 1)]
        assert h.rows("SELECT count(*) FROM events WHERE event_type = 'ContactLogged'") == [(1,)]
    finally:
        h.close()


@pytest.mark.parametrize(
    "apply_sql",
    [
        pytest.param("COPY (SELECT 1) TO '{missing}/out.csv';", id="io-error"),
        pytest.param("INSERT INTO broken SELECT event_id FROM no_such_table;", id="model-sql-wrong-for-every-event"),
    ],
)
def test_a_failure_of_the_system_stops_the_projector_and_parks_nothing(tmp_path: Path, apply_sql: str) -> None:
    broken = parse_model(
        "broken",
        "-- depends: events\n-- section: schema\nCREATE TABLE broken (event_id VARCHAR);\n"
        f"-- section: apply\n{apply_sql.format(missing=tmp_path / 'missing')}\n",
    )
    h = with_models(tmp_path, in_build_order([*load_models(), broken]))
    try:
        h.record(*(contact(n) for n in range(3)))
        for _ in range(2):  # stopped each time, never parked as if the events were at fault
            with pytest.raises(ReadModelError, match=r"projections/broken\.sql: apply failed"):
                h.project(AS_OF)
        assert h.models.positions("store") == {}
        assert h.rows("SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM parked_events)") == [(0, 0)]
    finally:
        h.close()


def test_an_event_parked_twice_in_the_log_is_parked_once(tmp_path: Path) -> None:
    """A resend of a parked event (the relay may send the tail again) is not parked again."""
    poisoned = contact(1, reason="poison")
    h = with_models(tmp_path, WITH_POISON, batch_size=1)
    try:
        h.record(poisoned, contact(2))
        h.project(AS_OF)
        [(payload,)] = h.rows("SELECT payload FROM parked_events")
        table = h.projector.decoder.table([payload, payload])
        h.models.apply(table, "store", {"log": 99})
        assert h.rows("SELECT count(*), min(event_id) FROM parked_events") == [(1, event_id(poisoned))]
        assert h.rows("SELECT count(*) FROM events") == [(1,)]
    finally:
        h.close()


def test_a_replay_after_the_fix_applies_what_was_parked(tmp_path: Path) -> None:
    from ledger.ops.projecting import replay
    from ledger.projection.parked import parked_summary
    from ledger.projection.query import open_for_reading

    facts = [contact(n, reason="poison" if n == 2 else "billing") for n in range(4)]
    h = Harness(tmp_path)
    try:
        h.record(*facts)
        live = h.settings.readmodel_path
        with ReadModels(live, WITH_POISON, settings=h.settings) as models:
            Projector(models, NotificationLogSource(h.ledger), publish_to=h.settings.published_path,
                      keys=KeyReader(h.settings)).catch_up(AS_OF)
        con = open_for_reading(h.settings.published_path)
        try:
            summary = parked_summary(con)
        finally:
            con.close()
        reason = f"projections/poison.sql: apply failed: Invalid Input Error: poison in {event_id(facts[2])}"
        assert summary == {"parked_events": 1, "newest_parked": [f"store log:{position(h, facts[2])}: {reason}"]}

        replay(h.settings, AS_OF, ledger=h.ledger)  # the fix: a catalogue without the refusing model

        con = open_for_reading(h.settings.published_path)
        try:
            assert parked_summary(con) == {"parked_events": 0}
            assert con.execute("SELECT count(*) FROM events").fetchall() == [(4,)]
        finally:
            con.close()
    finally:
        h.close()


def test_a_published_file_from_before_parking_reports_nothing_parked(tmp_path: Path) -> None:
    import duckdb

    from ledger.projection.parked import parked_rows, parked_summary

    con = duckdb.connect(str(tmp_path / "old.duckdb"))
    try:
        assert parked_summary(con) == {"parked_events": 0}
        assert parked_rows(con) == (0, [])
    finally:
        con.close()


def test_parked_at_is_the_runs_as_of_in_utc(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    try:
        h_fact = contact(1)
        h.record(h_fact)
        corrupt(h, position(h, h_fact))
        h.project(datetime.fromisoformat("2026-03-01T12:00:00+02:00"))
        assert h.rows("SELECT parked_at FROM parked_events") == [(datetime(2026, 3, 1, 10, 0),)]
    finally:
        h.close()
