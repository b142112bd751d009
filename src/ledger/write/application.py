"""The ledger application: records facts about customers as events.

Application methods take and return plain data. A batch of facts is validated fact by fact;
the valid ones are saved in one store transaction, the invalid ones are reported with a
typed error and record nothing.

Facts arrive in two forms. JSON-like dicts with a ``type`` (files, the command line) are
read into Avro records and checked against the contract (`record_many`). Records that fit
the contract already, because they were decoded from Avro (the intake) or checked by the
SDK, skip that work (`record_typed`). Both then meet the same domain rules, idempotency
and erasure checks, and are encoded once.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any
from uuid import UUID, uuid4

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from eventsourcing.application import AggregateNotFoundError, Application, LRUCache, ProcessingEvent
from eventsourcing.persistence import (
    IntegrityError,
    Notification,
    OperationalError,
    PersistenceError,
    ProcessRecorder,
    Tracking,
)
from eventsourcing.utils import Environment

from ledger.contract.amendments import AMENDMENTS
from ledger.contract.codec import Codec, default_codec
from ledger.contract.facts import to_record
from ledger.contract.rules import check_rules, normal_customer_id
from ledger.errors import LedgerError, StoreError, ValidationError
from ledger.settings import Settings
from ledger.write.amend import Amending
from ledger.write.customer_keys import BatchKeys, CustomerKeys
from ledger.write.domain import Customer, Recorded, customer_uuid
from ledger.write.idempotency import NEW_ID, already
from ledger.write.keys import Keyring
from ledger.write.recorders import EventIdRow, LogEntry, fingerprint, row_of
from ledger.write.snapshots import FreshSnapshots
from ledger.write.store import TOPIC_PREFIX, LedgerMapper, WriteTurns, persistence_env, prepared
from ledger.write.waiting import WaitingBatch, WaitingFacts

Clock = Callable[[], datetime]
TypedFact = tuple[str, dict[str, Any]]
"""``(event_type, record)``: an Avro record of that type, envelope included."""


FORGET_AT_MOST = 100_000
"""Events written by others since a writer's last save beyond which it forgets its whole
cache rather than read which customers they were about."""

WRITE_ATTEMPTS = 5
"""Decide-and-save rounds before giving up on a batch that other writers keep racing."""


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Outcome:
    """What became of one fact: ``recorded``, ``duplicate``, ``rejected`` (with `error`), or
    ``waiting`` (a refund kept until its order, `waits_for`, arrives: write/waiting.py)."""

    status: str
    event_id: str | None = None
    event_type: str | None = None
    error: LedgerError | None = None
    waits_for: str | None = None

    @property
    def ok(self) -> bool:
        return self.status != "rejected"


class Ledger(Amending, CustomerKeys, WaitingFacts, FreshSnapshots, Application[UUID]):
    name = "Ledger"
    snapshotting_intervals = {Customer: 200}  # noqa: RUF012 - eventsourcing's class setting
    creates_tables = True
    """Whether opening creates the store's tables if missing (not for `ledger status`)."""

    def __init__(self, settings: Settings, clock: Clock = utc_now, codec: Codec | None = None):
        self.settings = settings
        self.clock = clock
        self.codec = codec or default_codec()
        try:
            if not settings.store:
                settings.data_dir.mkdir(parents=True, exist_ok=True)
            with prepared(settings.store_url, creates=self.creates_tables):
                super().__init__(
                    env={
                        **persistence_env(settings.store_url),
                        "AGGREGATE_CACHE_MAXSIZE": "100000",
                        "AGGREGATE_CACHE_FASTFORWARD": "n",
                        "DEEPCOPY_FROM_AGGREGATE_CACHE": "n",
                    }
                )
            self._turns = WriteTurns(settings.store_url)
            self._keyring: Keyring | None = None
            self._data_keys: dict[UUID, AESGCM] = {}
            """Ciphers of the data keys of customers this writer has seen, by aggregate id."""
            self._head_written = -1
            """The log's head after this writer's last save, -1 before its first turn."""
        except (PersistenceError, sqlite3.Error, OSError) as exc:
            # sqlite3's own errors (a file that is not a database, a directory without write
            # access) reach us unwrapped from eventsourcing's connection setup.
            raise StoreError(f"cannot open the event store {settings.store_shown}: {exc}") from exc

    def close(self) -> None:
        self._turns.close()
        super().close()

    def construct_env(self, name: str, env: Any = None) -> Environment:
        """Only the settings we pass: the environment was read once, at the edge."""
        values = dict(env or {})
        values["IS_SNAPSHOTTING_ENABLED"] = "y"
        return Environment(name, values)

    def construct_recorder(self) -> ProcessRecorder:
        """A process recorder: facts and a tracking position (intake, relay) commit together."""
        return self.factory.process_recorder()

    def construct_mapper(self) -> LedgerMapper:
        return LedgerMapper(transcoder=self.construct_transcoder(), codec=self.codec)

    def record(self, fact: Mapping[str, Any]) -> Outcome:
        """Record one fact; raise its LedgerError if it is rejected."""
        (outcome,) = self.record_many([fact])
        if outcome.error is not None:
            raise outcome.error
        return outcome

    def record_many(
        self, facts: Iterable[Mapping[str, Any]], tracking: Tracking | None = None
    ) -> list[Outcome]:
        """Record facts in order, in one transaction; one Outcome per fact.

        With `tracking` (the position of these facts in an upstream log, such as an intake
        partition's offset), the position commits in the same transaction as the facts, so
        a crash neither loses nor duplicates them.
        """
        now = self.clock()
        outcomes: list[Outcome | None] = []
        typed: list[TypedFact] = []
        for fact in facts:
            try:
                event_type, record = to_record(fact, now)
                self.codec.check(event_type, record)
            except LedgerError as error:
                event_type = fact.get("type") if isinstance(fact, Mapping) else None
                outcomes.append(Outcome("rejected", error=error, event_type=event_type))
                continue
            typed.append((event_type, record))
            outcomes.append(None)
        decided = iter(self.record_typed(typed, tracking))
        return [outcome or next(decided) for outcome in outcomes]

    def record_typed(self, facts: Iterable[TypedFact], tracking: Tracking | None = None) -> list[Outcome]:
        """Like `record_many`, for ``(event_type, record)`` pairs whose records fit the
        newest schema of their type already (decoded, or checked by the caller)."""
        facts = list(facts)
        if not facts:
            return []
        with self._turns.turn():  # no other writer decides or saves until this batch is saved
            self._forget_if_others_wrote()
            self._check_master()
            given, facts = len(facts), self._with_group_erasures(facts)
            for attempt in range(WRITE_ATTEMPTS):
                outcomes, touched, rows, keys, waiting = self._decide(facts)
                keyed = touched | waiting.holders
                stored = {"event_ids": rows, "erased": [touched[e].customer_id for e in keys.erased],
                          "keys": [row for aggregate_id, (row, _) in keys.new.items() if aggregate_id in keyed],
                          **waiting.stored()}
                try:
                    if tracking is not None or touched or waiting.changes:
                        processing = self._processing(tracking, touched, stored)
                        self._record(processing)
                        self._take_snapshots(processing)
                    self._head_written = self.head()
                    self._keep_keys(keys, keyed)
                    return outcomes[:given]  # the erasures of the other ids of a merged person are its own
                except (IntegrityError, OperationalError) as exc:
                    if isinstance(exc, OperationalError) and "pipeline aborted" not in str(exc):
                        raise
                    # eventsourcing's PostgreSQL recorder reports a unique violation met before
                    # its pipeline's sync as "pipeline aborted", the violation itself lost.
                    # A customer cached before another writer's last turn is behind: forget
                    # what we cached and decide again, now seeing what it recorded.
                    for aggregate_id in touched:
                        self._forget(aggregate_id)
                    if attempt == WRITE_ATTEMPTS - 1:
                        raise StoreError(
                            f"other writers kept recording for the same customers at the same time; "
                            f"nothing of these {len(facts)} facts was recorded after {WRITE_ATTEMPTS} tries, "
                            f"send them again ({exc})"
                        ) from exc
        raise AssertionError("unreachable")

    @staticmethod
    def _processing(tracking: Tracking | None, touched: dict[UUID, Customer], stored: dict[str, Any]) -> Any:
        """What one transaction saves: the touched customers' new events, `stored` rows and
        the position. Built here, not with eventsourcing's ``collect_events``, whose check of
        each object against a runtime Protocol cost a quarter of a batch's save."""
        processing = ProcessingEvent[UUID](tracking)
        for aggregate_id, customer in touched.items():
            processing.events.extend(customer.collect_events())  # type: ignore[arg-type]
            processing.aggregates[aggregate_id] = customer  # type: ignore[assignment]
        processing.saved_kwargs.update(stored)
        return processing

    def _decide(
        self, facts: list[TypedFact]
    ) -> tuple[list[Outcome], dict[UUID, Customer], list[EventIdRow], BatchKeys, WaitingBatch]:
        """Check each fact and apply it to its customer; nothing is saved here.

        Idempotency and the uniqueness of event ids come from the store's index of event ids,
        read once for the whole batch (and extended as the batch goes, for repeats within it).
        """
        now = self.clock()
        max_future = timedelta(seconds=self.settings.intake.max_future_s)
        max_bytes = self.settings.intake.max_event_bytes
        touched: dict[UUID, Customer] = {}
        outcomes: list[Outcome] = []
        rows: list[EventIdRow] = []
        keys = BatchKeys()
        # Distinct recorded_at values keep "recording order" a total order per batch.
        records = [{**given, "event_id": str(given["event_id"]), "recorded_at": now + timedelta(microseconds=index),
                    "customer_id": normal_customer_id(given.get("customer_id"))}
                   for index, (_, given) in enumerate(facts)]
        by_id, by_pair = self._known(records)
        waiting = self._waiting_batch(records, [t for t, _ in facts], now)
        read = self._read_customers(records)
        in_batch: dict[str, tuple[str, dict[str, Any]]] = {}
        """This batch's facts recorded so far, by event id: an amendment may name one."""
        self._load_keys([r["customer_id"] for (t, _), r in zip(facts, records, strict=True)
                         if isinstance(r["customer_id"], str) and self.codec.newest(t).personal])

        def index(event_type: str, sealed: dict[str, Any], data: bytes) -> None:
            row = row_of(event_type, sealed, data, self.codec)
            rows.append(row)
            by_id[row[0]] = row
            if row[3] is not None:
                by_pair[(row[2], row[3])] = row

        for (event_type, _), record in zip(facts, records, strict=True):
            try:
                check_rules(event_type, record, now, max_future)
                key = (record["event_id"], record["customer_id"], record["source"], record.get("source_event_id"))
                existing = already(key, partial(self._fingerprint, event_type, record), by_id, by_pair)
                if existing is NEW_ID:
                    record["event_id"] = str(uuid4())
                elif existing is not None:
                    outcomes.append(Outcome("duplicate", existing, event_type))
                    continue
                customer = self._customer(record["customer_id"], touched, read)
                customer.refuse_if_erased()
                if waiting.parked(record["event_id"]) is not None:  # sent again while it waits: it waits once
                    outcomes.append(Outcome("waiting", record["event_id"], event_type, waits_for=record["order_id"]))
                    continue
                if event_type in AMENDMENTS:
                    self._check_amendment(event_type, record, customer, partial(self._customer, touched=touched,
                                          read=read), in_batch, now, max_future)
                sealed = self._sealed(event_type, record, customer, keys)
                data = self.codec.encode(event_type, sealed, checked=True)
                if len(data) > max_bytes:
                    raise ValidationError(
                        event_type, f"the event is {len(data):,} bytes encoded, more than the {max_bytes:,} allowed "
                        "(LEDGER_MAX_EVENT_BYTES; below the topic's message limit); shorten its lines or attributes"
                    )
                if customer.waits(event_type, sealed):
                    waiting.park(customer, sealed, data)
                    outcomes.append(Outcome("waiting", record["event_id"], event_type, waits_for=record["order_id"]))
                    continue
                customer.record(event_type, sealed, data)
                touched[customer.id] = customer
                if event_type == "CustomerErased":
                    keys.erased.append(customer.id)
                index(event_type, sealed, data)
                in_batch[record["event_id"]] = (event_type, sealed)
                outcomes.append(Outcome("recorded", record["event_id"], event_type))
                if event_type == "PurchaseMade":
                    self._decide_waiting(customer, sealed["order_id"], waiting, index)
            except LedgerError as error:
                outcomes.append(Outcome("rejected", error=error, event_type=event_type))
        return outcomes, touched, rows, keys, waiting

    def _fingerprint(self, event_type: str, record: dict[str, Any]) -> str:
        return fingerprint(self.codec.encode(event_type, record, checked=True), self.codec)

    def _known(
        self, records: list[dict[str, Any]]
    ) -> tuple[dict[str, EventIdRow], dict[tuple[str, str], EventIdRow]]:
        # Text with a NUL is refused by the rules; PostgreSQL cannot even look it up.
        ids = [i for i in {str(r.get("event_id")) for r in records} if "\x00" not in i]
        pairs = list({(r["source"], r["source_event_id"]) for r in records
                      if isinstance(r.get("source"), str) and isinstance(r.get("source_event_id"), str)
                      and "\x00" not in r["source"] + r["source_event_id"]})
        found = self.recorder.find(ids, pairs)  # type: ignore[attr-defined]
        return {row[0]: row for row in found}, {(row[2], row[3]): row for row in found if row[3] is not None}

    def _read_customers(self, records: list[dict[str, Any]], cached: bool = True) -> dict[UUID, Customer | None]:
        """The customers of `records` that the cache lacks, read in one query for the batch
        (None: the store has no event of them) instead of replaying each one's events: once
        there were more customers than the cache holds, those lookups made recording a 3M-event
        history five times slower than its first 100k."""
        cache = self.repository.cache
        held = cache.cache if isinstance(cache, LRUCache) else {}
        wanted = {customer_uuid(r["customer_id"]): r["customer_id"] for r in records
                  if isinstance(r["customer_id"], str)}
        unknown = [i for i in wanted if i not in held or not cached]
        if not unknown:
            return {}
        read: dict[UUID, Customer | None] = dict.fromkeys(unknown)
        for state in self.recorder.customer_states(unknown):  # type: ignore[attr-defined]
            customer = Customer(state.id, wanted[state.id])
            for version, data in state.events:  # the aggregate's own apply, on the events it reads
                customer.apply(Recorded(state.id, version, *self.codec.decode(data), data))
            customer.version = state.version
            read[state.id] = customer
        return read

    def _customer(self, customer_id: str, touched: dict[UUID, Customer], read: dict[UUID, Customer | None]) -> Customer:
        aggregate_id = customer_uuid(customer_id)
        if aggregate_id in touched:
            return touched[aggregate_id]
        if aggregate_id in read:
            return read[aggregate_id] or Customer(aggregate_id, customer_id)
        return self.customer(customer_id) or Customer(aggregate_id, customer_id)

    def customer(self, customer_id: str) -> Customer | None:
        """What the ledger knows of a customer (erased or not, ...); None if nothing was recorded."""
        try:
            customer: Customer = self.repository.get(customer_uuid(customer_id))
        except AggregateNotFoundError:
            return None
        return self._complete(customer)

    def turn(self) -> Any:
        """This writer's turn: no other decides or saves while it lasts."""
        return self._turns.turn()

    def _forget_if_others_wrote(self) -> None:
        """Customers cached before another writer's turn may be behind what it recorded, so
        a batch would be decided on old versions and fail to save: forget the customers the
        log gained since this writer's last save (all of them before its first, or after a
        long absence), so that a batch is decided once, on what is recorded."""
        head = self.head()
        cache = self.repository.cache
        if head != self._head_written and isinstance(cache, LRUCache) and cache.cache:
            if self._head_written < 0 or head - self._head_written > FORGET_AT_MOST:
                # A new cache: LRUCache.clear() resets its order but keeps what it holds.
                self.repository.cache = LRUCache(maxsize=cache.maxsize)
            else:
                written = self.recorder.select_notifications(
                    self._head_written, head - self._head_written, stop=head, inclusive_of_start=False
                )
                for aggregate_id in {n.originator_id for n in written}:
                    self._forget(aggregate_id)  # type: ignore[arg-type]
        self._head_written = head

    def _forget(self, aggregate_id: UUID) -> None:
        self._data_keys.pop(aggregate_id, None)
        if self.repository.cache is not None:
            with contextlib.suppress(KeyError):
                self.repository.cache.get(aggregate_id, evict=True)

    # Reading the log, for projectors and the relay.

    def head(self) -> int:
        """The id of the newest notification, 0 for an empty store."""
        return self.recorder.max_notification_id() or 0

    def notifications(self, after: int, limit: int) -> list[Notification]:
        """Up to `limit` facts recorded after notification id `after`, in order."""
        return [
            n
            for n in self.recorder.select_notifications(
                after, limit, inclusive_of_start=False
            )
            if n.topic.startswith(TOPIC_PREFIX)
        ]

    def log(self, after: int, limit: int) -> list[LogEntry]:
        """The facts `notifications` gives, with only what the relay and projectors read of
        them (their id, topic and payload), at a quarter of the cost."""
        return self.recorder.log_entries(after, limit)
