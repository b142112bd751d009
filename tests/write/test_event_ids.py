"""An event id means one event, forever and across customers; idempotency never forgets; two
writers racing for the same facts record each once; an event too large for Kafka is refused."""

from __future__ import annotations

import multiprocessing
import uuid

from ledger.contract.facts import event_id_for
from ledger.errors import ValidationError
from ledger.settings import Settings
from ledger.write.application import Ledger
from tests.support.facts import NOW, FactFactory


def test_idempotency_has_no_limit_per_customer(ledger: Ledger, fact: FactFactory) -> None:
    facts = [fact("ContactLogged", source_event_id=f"s{n}") for n in range(10_050)]
    for start in range(0, len(facts), 2000):
        assert all(o.status == "recorded" for o in ledger.record_many(facts[start : start + 2000]))
    first, last = ledger.record(facts[0]), ledger.record(facts[-1])
    assert (first.status, last.status) == ("duplicate", "duplicate")
    assert ledger.head() == 10_050


def test_the_same_source_event_id_under_another_customer_is_refused(ledger: Ledger, fact: FactFactory) -> None:
    ledger.record(fact("ContactLogged", customer_id="C1", source_event_id="ticket-7"))
    [outcome] = ledger.record_many([fact("ContactLogged", customer_id="C2", source_event_id="ticket-7")])
    assert outcome.status == "rejected"
    assert isinstance(outcome.error, ValidationError) and outcome.error.field == "source_event_id"
    assert "already recorded for another customer ('C1')" in outcome.error.reason
    assert ledger.head() == 1


def test_a_reused_event_id_is_refused_and_the_same_fact_again_is_a_duplicate(ledger: Ledger, fact: FactFactory) -> None:
    chosen = str(uuid.uuid4())
    given = fact("ContactLogged", event_id=chosen, source_event_id=None)
    assert ledger.record(given).status == "recorded"
    assert ledger.record(given).status == "duplicate"
    for other in (fact("PurchaseMade", event_id=chosen, source_event_id=None),
                  fact("ContactLogged", customer_id="C9", event_id=chosen, source_event_id=None)):
        [outcome] = ledger.record_many([other])
        assert outcome.status == "rejected" and outcome.error.field == "event_id"
        assert f"{chosen} is already the id of another event (customer 'C1'" in outcome.error.reason
    assert ledger.head() == 1


def test_reuse_within_one_batch_is_found_too(ledger: Ledger, fact: FactFactory) -> None:
    outcomes = ledger.record_many([
        fact("ContactLogged", customer_id="C1", source_event_id="dup"),
        fact("ContactLogged", customer_id="C2", source_event_id="dup"),
        fact("ContactLogged", customer_id="C1", source_event_id="dup"),
    ])
    assert [o.status for o in outcomes] == ["recorded", "rejected", "duplicate"]


def test_a_store_from_before_the_index_gets_it_filled_from_its_events(settings: Settings, fact: FactFactory) -> None:
    given = fact("ContactLogged", source_event_id="old-1")
    Ledger(settings, clock=lambda: NOW).record(given)
    _drop_index(settings)
    reopened = Ledger(settings, clock=lambda: NOW)
    assert reopened.record(given).status == "duplicate"
    [other] = reopened.record_many([fact("ContactLogged", customer_id="C2", source_event_id="old-1")])
    assert other.status == "rejected"


def test_an_event_larger_than_the_limit_is_refused_naming_the_limit(settings: Settings, fact: FactFactory) -> None:
    ledger = Ledger(settings.with_(max_event_bytes=2_000), clock=lambda: NOW)
    [big, small] = ledger.record_many([
        fact("CustomerRegistered", attributes={f"k{n}": "x" * 50 for n in range(60)}),
        fact("ContactLogged"),
    ])
    assert big.status == "rejected" and big.error.field == "CustomerRegistered"
    assert "more than the 2,000 allowed (LEDGER_MAX_EVENT_BYTES" in big.error.reason
    assert small.status == "recorded" and ledger.head() == 1


def _record_overlapping(url: str | None, data_dir: str, barrier, worker: int) -> list[str]:
    from tests.support.facts import fact

    settings = Settings(data_dir=data_dir, store=url)
    ledger = Ledger(settings, clock=lambda: NOW)
    barrier.wait()
    statuses: list[str] = []
    for batch in range(5):
        facts = [fact("ContactLogged", customer_id=f"C{n % 7}", source_event_id=f"e{batch}-{n}") for n in range(40)]
        statuses += [o.status for o in ledger.record_many(facts[::-1] if worker else facts)]
    return statuses


def test_two_writers_recording_the_same_facts_at_once_record_each_once(settings: Settings) -> None:
    """Both start on a fresh store at once (its tables created by one, found by the other) and
    record overlapping batches for the same customers: no error escapes, nothing is doubled."""
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager:
        barrier = manager.Barrier(2)
        with context.Pool(2) as pool:
            args = [(settings.store.url, str(settings.data_dir), barrier, w) for w in (0, 1)]
            first, second = pool.starmap(_record_overlapping, args)
    assert set(first) | set(second) <= {"recorded", "duplicate"}
    assert first.count("recorded") + second.count("recorded") == 200
    assert len(Ledger(settings).notifications(0, 1000)) == 200  # ids may have gaps on PostgreSQL


def _drop_index(settings: Settings) -> None:
    _execute(settings, "DROP TABLE {table}")



def test_the_same_fact_with_its_own_event_id_is_a_duplicate_in_any_key_order_or_with_defaults_spelt_out(
    ledger: Ledger, fact: FactFactory
) -> None:
    chosen = str(uuid.uuid4())
    lines = [{"sku": "a", "quantity": 1, "unit_price_minor": 5}]
    first = fact("PurchaseMade", event_id=chosen, source_event_id=None, lines=lines, total_minor=5)
    assert ledger.record(first).status == "recorded"
    reordered = {**first, "lines": [{"unit_price_minor": 5, "quantity": 1, "sku": "a"}]}
    assert ledger.record(dict(reversed(list(reordered.items())))).status == "duplicate"
    contact_id = str(uuid.uuid4())
    contact = fact("ContactLogged", event_id=contact_id, source_event_id=None)
    contact.pop("is_complaint", None)
    assert ledger.record(contact).status == "recorded"
    assert ledger.record({**contact, "is_complaint": False}).status == "duplicate"
    assert ledger.head() == 2


def test_a_store_from_before_the_index_still_knows_a_fact_sent_with_its_own_event_id(
    settings: Settings, fact: FactFactory
) -> None:
    given = fact("ContactLogged", event_id=str(uuid.uuid4()), source_event_id=None)
    Ledger(settings, clock=lambda: NOW).record(given)
    _drop_index(settings)
    assert Ledger(settings, clock=lambda: NOW).record(given).status == "duplicate"


def test_an_adapter_cannot_block_another_by_taking_the_event_id_its_pair_derives(
    ledger: Ledger, fact: FactFactory
) -> None:
    """The id derived from ('shop', 'k9') taken first by another fact, or by a pair whose
    ids hold the separator and derive alike: the shop's fact is still recorded, once."""
    squatted = str(event_id_for("shop", "k9"))
    assert ledger.record(fact("ContactLogged", source="squatter", source_event_id="zz", event_id=squatted)).ok
    legitimate = fact("ContactLogged", source="shop", source_event_id="k9")
    recorded = ledger.record(legitimate)
    assert recorded.status == "recorded" and recorded.event_id != squatted
    assert ledger.record(legitimate).event_id == recorded.event_id  # a resend: the pair decides
    assert ledger.record(legitimate).status == "duplicate"
    assert ledger.record(fact("ContactLogged", source="a\x1fb", source_event_id="c")).status == "recorded"
    assert ledger.record(fact("ContactLogged", source="a", source_event_id="b\x1fc")).status == "recorded"
    assert ledger.head() == 4


def _record_many_batches(url: str | None, data_dir: str, barrier, worker: int) -> tuple[int, int]:
    from tests.support.facts import fact

    ledger = Ledger(Settings(data_dir=data_dir, store=url), clock=lambda: NOW)
    batches = [[fact("ContactLogged", customer_id=f"C{n % 50}", source_event_id=f"e{b}-{n}") for n in range(400)]
               for b in range(15)]
    if worker:
        batches = [batch[::-1] for batch in batches[::-1]]
    barrier.wait()
    outcomes = [o.status for batch in batches for o in ledger.record_many(batch)]
    return outcomes.count("recorded"), outcomes.count("duplicate")


def test_two_writers_taking_the_same_customers_in_opposite_orders_both_finish(settings: Settings) -> None:
    """Every batch of each touches every customer the other is writing: without turns, one
    writer lost every race while the other kept committing, and gave up."""
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager:
        barrier = manager.Barrier(2)
        with context.Pool(2) as pool:
            args = [(settings.store.url, str(settings.data_dir), barrier, w) for w in (0, 1)]
            (recorded_1, duplicates_1), (recorded_2, duplicates_2) = pool.starmap(_record_many_batches, args)
    assert recorded_1 + recorded_2 == 6000 and duplicates_1 + duplicates_2 == 6000
    assert len(Ledger(settings).notifications(0, 10_000)) == 6000


def test_a_fact_of_another_type_with_the_same_fields_under_a_used_event_id_is_refused(
    ledger: Ledger, fact: FactFactory
) -> None:
    chosen = str(uuid.uuid4())
    fields = {"customer_id": "C1", "event_id": chosen, "source_event_id": None, "name": "Ada", "country": "GB"}
    assert ledger.record(fact("CustomerRegistered", **fields)).status == "recorded"
    [outcome] = ledger.record_many([fact("ProfileUpdated", **fields)])
    assert outcome.status == "rejected" and outcome.error.field == "event_id"
    assert ledger.head() == 1


def test_fingerprints_of_an_older_format_are_made_again_when_the_store_opens(
    settings: Settings, fact: FactFactory
) -> None:
    given = fact("ContactLogged", event_id=str(uuid.uuid4()), source_event_id=None)
    Ledger(settings, clock=lambda: NOW).record(given)
    _execute(settings, "UPDATE {table} SET fingerprint = '0123456789abcdef0123456789abcdef' WHERE fingerprint <> ''")
    assert Ledger(settings, clock=lambda: NOW).record(given).status == "duplicate"


def _execute(settings: Settings, statement: str) -> None:
    url = settings.store_url
    if url.startswith("sqlite:///"):
        import sqlite3

        with sqlite3.connect(url[len("sqlite:///"):]) as connection:
            [(table,)] = connection.execute("SELECT name FROM sqlite_master WHERE name LIKE '%event_ids'").fetchall()
            connection.execute(statement.format(table=table))
        return
    import psycopg

    from ledger.write.store import persistence_env

    env = persistence_env(url)
    with psycopg.connect(dbname=env["POSTGRES_DBNAME"], host=env["POSTGRES_HOST"], port=env["POSTGRES_PORT"],
                         user=env["POSTGRES_USER"], autocommit=True) as connection:
        connection.execute(statement.format(table=f'"{env["POSTGRES_SCHEMA"]}".ledger_event_ids'))
