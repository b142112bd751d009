"""Recording facts: validation names the field and records nothing; idempotency; erasure."""

from __future__ import annotations

from typing import Any

import pytest
from eventsourcing.persistence import Tracking

from ledger.errors import CustomerErasedError, SchemaError, ValidationError
from ledger.settings import Settings
from ledger.write.application import Ledger
from ledger.write.domain import customer_uuid
from tests.support.facts import NOW, FactFactory


@pytest.mark.parametrize(
    ("event_type", "fields", "field", "reason"),
    [
        ("ContactLogged", {"customer_id": ""}, "customer_id", "must not be empty"),
        ("ContactLogged", {"customer_id": "   "}, "customer_id", "must not be empty"),
        ("FeedbackGiven", {"kind": "csat", "score": 0}, "score", "csat score must be 1 to 5, got 0"),
        ("FeedbackGiven", {"kind": "csat", "score": 6}, "score", "csat score must be 1 to 5"),
        ("FeedbackGiven", {"kind": "nps", "score": 11}, "score", "nps score must be 0 to 10, got 11"),
        ("FeedbackGiven", {"kind": "nps", "score": -1}, "score", "nps score must be 0 to 10"),
        ("FeedbackGiven", {"kind": "ces", "score": 8}, "score", "ces score must be 1 to 7"),
        ("PurchaseMade", {"total_minor": -1}, "total_minor", "must not be negative"),
        ("PurchaseRefunded", {"amount_minor": -5}, "amount_minor", "must not be negative"),
        ("ContactLogged", {"duration_s": -3}, "duration_s", "must not be negative"),
        ("PurchaseMade", {"currency": "eur"}, "currency", "codes are upper case"),
        ("PurchaseMade", {"currency": "XYZ"}, "currency", "not an ISO 4217 code"),
        ("ContactLogged", {"occurred_at": "2026-06-02T12:00:01Z"}, "occurred_at", "in the future"),
        ("ContactLogged", {"occurred_at": "2999-01-01T00:00:00Z"}, "occurred_at", "in the future"),
        ("CustomerRegistered", {"country": "gb"}, "country", "ISO 3166"),
    ],
)
def test_a_fact_breaking_a_rule_is_refused_naming_field_and_reason(
    ledger: Ledger, fact: FactFactory, event_type: str, fields: dict[str, Any], field: str, reason: str
) -> None:
    with pytest.raises(ValidationError, match=reason) as caught:
        ledger.record(fact(event_type, **fields))
    assert caught.value.field == field
    assert ledger.head() == 0


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"type": "ContactTeleported"}, "type"),
        ({"type": ...}, "type"),
        ({"occurred_at": "yesterday"}, "occurred_at"),
        ({"channel": "pigeon"}, "channel"),
        ({"contact_id": ...}, "contact_id"),
        ({"duration_s": "12"}, "duration_s"),
        ({"recorded_at": "2026-01-01T00:00:00Z"}, "recorded_at"),
    ],
)
def test_a_fact_that_does_not_fit_the_schema_is_refused(
    ledger: Ledger, fact: FactFactory, fields: dict[str, Any], field: str
) -> None:
    with pytest.raises(SchemaError) as caught:
        ledger.record(fact("ContactLogged", **fields))
    assert caught.value.field == field
    assert ledger.head() == 0


def test_the_edge_of_the_future_is_accepted(ledger: Ledger, fact: FactFactory) -> None:
    ledger.record(fact("ContactLogged", occurred_at="2026-06-02T12:00:00Z"))
    assert ledger.head() == 1


def test_recording_the_same_source_event_twice_yields_one_event(ledger: Ledger, fact: FactFactory) -> None:
    first = ledger.record(fact("PurchaseMade", source_event_id="shop-1"))
    again = ledger.record(fact("PurchaseMade", source_event_id="shop-1", total_minor=1))
    assert (first.status, again.status) == ("recorded", "duplicate")
    assert again.event_id == first.event_id
    assert ledger.head() == 1


def test_duplicates_inside_one_batch_are_recorded_once(ledger: Ledger, fact: FactFactory) -> None:
    outcomes = ledger.record_many([fact("ContactLogged", source_event_id="x")] * 3)
    assert [o.status for o in outcomes] == ["recorded", "duplicate", "duplicate"]
    assert ledger.head() == 1


def test_idempotency_survives_a_restart(settings: Settings, fact: FactFactory) -> None:
    Ledger(settings, clock=lambda: NOW).record(fact("ContactLogged", source_event_id="k"))
    reopened = Ledger(settings, clock=lambda: NOW)
    assert reopened.record(fact("ContactLogged", source_event_id="k")).status == "duplicate"
    assert reopened.head() == 1


def test_the_same_id_from_another_source_is_another_event(ledger: Ledger, fact: FactFactory) -> None:
    ledger.record(fact("ContactLogged", source="crm", source_event_id="1"))
    ledger.record(fact("ContactLogged", source="chatbot", source_event_id="1"))
    assert ledger.head() == 2


def test_facts_without_source_event_id_are_never_duplicates(ledger: Ledger, fact: FactFactory) -> None:
    ledger.record_many([fact("ContactLogged", source_event_id=None)] * 2)
    assert ledger.head() == 2


def test_nothing_is_recorded_after_an_erasure(ledger: Ledger, fact: FactFactory) -> None:
    ledger.record(fact("CustomerErased"))
    with pytest.raises(CustomerErasedError, match="C1"):
        ledger.record(fact("ContactLogged"))
    assert ledger.record(fact("ContactLogged", customer_id="C2")).status == "recorded"
    assert ledger.head() == 2


def test_a_bad_fact_in_a_batch_does_not_stop_the_good_ones(ledger: Ledger, fact: FactFactory) -> None:
    outcomes = ledger.record_many(
        [fact("ContactLogged"), fact("FeedbackGiven", kind="nps", score=11), fact("PurchaseMade")]
    )
    assert [o.status for o in outcomes] == ["recorded", "rejected", "recorded"]
    assert isinstance(outcomes[1].error, ValidationError)
    assert ledger.head() == 2


def test_a_second_writer_with_a_stale_cache_still_records(settings: Settings, fact: FactFactory) -> None:
    one = Ledger(settings, clock=lambda: NOW)
    two = Ledger(settings, clock=lambda: NOW)
    one.record(fact("ContactLogged"))
    two.record(fact("ContactLogged"))  # warms two's cache at version 2
    one.record(fact("ContactLogged"))  # one is at version 2 in its cache: conflicts, retries
    two.record(fact("ContactLogged"))
    # PostgreSQL may skip notification ids after a conflict, so count rather than read head
    assert [n.originator_version for n in one.notifications(0, 100)] == [1, 2, 3, 4]


def test_many_facts_make_snapshots_and_still_reload(settings: Settings, fact: FactFactory) -> None:
    app = Ledger(settings, clock=lambda: NOW)
    app.record_many([fact("ContactLogged") for _ in range(450)])
    app.record(fact("ConsentChanged", purpose="profiling", granted=False))
    reloaded = Ledger(settings, clock=lambda: NOW)
    from ledger.write.domain import customer_uuid

    customer = reloaded.repository.get(customer_uuid("C1"))
    assert customer.version == 451
    assert customer.consents == {"profiling": False}
    assert reloaded.snapshots is not None
    assert list(reloaded.snapshots.get(customer_uuid("C1")))


def test_a_snapshot_keeps_the_seen_ids_so_a_resend_after_restart_is_a_duplicate(
    settings: Settings, fact: FactFactory
) -> None:
    first = fact("ContactLogged", source_event_id="first")
    app = Ledger(settings, clock=lambda: NOW)
    app.record(first)
    app.record_many([fact("ContactLogged") for _ in range(250)])  # a snapshot at version 200
    restarted = Ledger(settings, clock=lambda: NOW)
    assert restarted.snapshots is not None and list(restarted.snapshots.get(customer_uuid("C1")))

    outcome = restarted.record(first)

    assert outcome.status == "duplicate"
    assert restarted.head() == 251


def test_a_snapshot_keeps_the_erasure_so_nothing_is_recorded_after_restart(
    settings: Settings, fact: FactFactory
) -> None:
    app = Ledger(settings, clock=lambda: NOW)
    app.record_many([fact("ContactLogged") for _ in range(199)])
    app.record(fact("CustomerErased"))  # version 200: the snapshot holds the erasure
    restarted = Ledger(settings, clock=lambda: NOW)
    snapshots = list(restarted.snapshots.get(customer_uuid("C1")))
    assert [s.originator_version for s in snapshots] == [200]

    with pytest.raises(CustomerErasedError):
        restarted.record(fact("ContactLogged"))
    assert restarted.head() == 200


@pytest.mark.postgres
def test_writers_starting_at_once_on_a_fresh_postgresql_schema_all_open_it(settings_for_store, tmp_path) -> None:
    import threading

    settings = Settings(data_dir=tmp_path, store=settings_for_store("postgresql"))
    start = threading.Barrier(6)
    failures: list[BaseException] = []

    def open_ledger() -> None:
        start.wait()
        try:
            Ledger(settings).close()
        except BaseException as error:  # noqa: BLE001 - collected for the assertion
            failures.append(error)

    threads = [threading.Thread(target=open_ledger) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


@pytest.mark.postgres
def test_a_writer_waits_while_another_creates_the_tables_then_opens_the_store(settings_for_store, tmp_path) -> None:
    import threading

    import psycopg

    url = settings_for_store("postgresql")
    schema = url.rsplit("schema=", 1)[1]
    settings = Settings(data_dir=tmp_path, store=url)
    holder = psycopg.connect(url.split("?")[0], autocommit=True)
    holder.execute("SELECT pg_advisory_lock(hashtext(%s))", [f"ledger-schema:{schema}"])
    opened: list[Ledger] = []
    opener = threading.Thread(target=lambda: opened.append(Ledger(settings)))
    opener.start()
    try:
        waiting = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        for _ in range(600):
            if holder.execute(waiting).fetchone()[0]:
                break
            opener.join(timeout=0.05)
        assert holder.execute(waiting).fetchone()[0] == 1 and not opened
    finally:
        holder.close()  # releases the lock
    opener.join(timeout=60)
    assert len(opened) == 1 and opened[0].head() == 0


def test_facts_and_their_upstream_position_commit_together(settings: Settings, fact: FactFactory) -> None:
    app = Ledger(settings, clock=lambda: NOW)
    first = fact("ContactLogged", source_event_id="up-1")
    app.record_many([first], tracking=Tracking("intake#0", 7))
    assert app.recorder.max_tracking_id("intake#0") == 7
    app.record_many([first], tracking=Tracking("intake#0", 8))  # only a duplicate: the position still moves
    assert app.recorder.max_tracking_id("intake#0") == 8 and app.head() == 1


def test_a_writer_with_an_empty_cache_decides_on_what_the_store_holds(settings: Settings, fact: FactFactory) -> None:
    app = Ledger(settings, clock=lambda: NOW)
    app.record_many([fact("ContactLogged", customer_id=c) for c in ("C1", "C2", "C3")])
    app.record(fact("ConsentChanged", customer_id="C2", purpose="profiling", granted=True))
    app.record(fact("ConsentChanged", customer_id="C2", purpose="profiling", granted=False))
    app.record(fact("ConsentChanged", customer_id="C2", purpose="marketing_email", granted=True))
    app.record(fact("CustomerErased", customer_id="C3"))
    ids = ("C1", "C2", "C3", "C4")
    # The batch's customers, read in one query, are what replaying their events gives.
    read = Ledger(settings, clock=lambda: NOW)._read_customers([{"customer_id": c} for c in ids])
    replaying = Ledger(settings, clock=lambda: NOW)
    replayed = replaying.repository
    for customer_id in ids[:3]:
        got, want = read[customer_uuid(customer_id)], replayed.get(customer_uuid(customer_id))
        assert got is not None and (got.version, got.erased, got.consents) == (want.version, want.erased, want.consents)
    assert read[customer_uuid("C2")].consents == {"profiling": False, "marketing_email": True}
    assert read[customer_uuid("C3")].erased and read[customer_uuid("C4")] is None
    # And a writer that starts cold decides on them: the erased one refused, versions follow on.
    fresh = Ledger(settings, clock=lambda: NOW)
    outcomes = fresh.record_many([fact("ContactLogged", customer_id=c) for c in ids])
    assert [o.status for o in outcomes] == ["recorded", "recorded", "rejected", "recorded"]
    versions = {n.originator_id: n.originator_version for n in fresh.notifications(0, 100)}
    assert [versions[customer_uuid(c)] for c in ("C1", "C2", "C4")] == [2, 5, 1]
