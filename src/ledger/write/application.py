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
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application, ProcessingEvent
from eventsourcing.persistence import (
    IntegrityError,
    Notification,
    PersistenceError,
    ProcessRecorder,
    Tracking,
)
from eventsourcing.utils import Environment

from ledger.contract.codec import Codec, default_codec
from ledger.contract.facts import to_record
from ledger.contract.rules import check_rules
from ledger.errors import LedgerError, StoreError
from ledger.settings import Settings
from ledger.write.domain import Customer, customer_uuid
from ledger.write.store import LedgerMapper, persistence_env, prepared

Clock = Callable[[], datetime]
TypedFact = tuple[str, dict[str, Any]]
"""``(event_type, record)``: an Avro record of that type, envelope included."""


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Outcome:
    """What became of one fact: ``recorded``, ``duplicate`` or ``rejected`` (with `error`)."""

    status: str
    event_id: str | None = None
    event_type: str | None = None
    error: LedgerError | None = None

    @property
    def ok(self) -> bool:
        return self.status != "rejected"


class Ledger(Application[UUID]):
    name = "Ledger"
    snapshotting_intervals = {Customer: 200}  # noqa: RUF012 - eventsourcing's class setting

    def __init__(self, settings: Settings, clock: Clock = utc_now, codec: Codec | None = None):
        self.settings = settings
        self.clock = clock
        self.codec = codec or default_codec()
        if not settings.store:
            settings.data_dir.mkdir(parents=True, exist_ok=True)
        try:
            with prepared(settings.store_url):
                super().__init__(
                    env={
                        **persistence_env(settings.store_url),
                        "AGGREGATE_CACHE_MAXSIZE": "100000",
                        "AGGREGATE_CACHE_FASTFORWARD": "n",
                        "DEEPCOPY_FROM_AGGREGATE_CACHE": "n",
                    }
                )
        except PersistenceError as exc:
            raise StoreError(f"cannot open the event store: {exc}") from exc

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
        for attempt in range(3):
            outcomes, touched = self._decide(facts)
            try:
                if tracking is not None:
                    processing = ProcessingEvent[UUID](tracking)
                    processing.collect_events(*touched.values())
                    self._record(processing)
                    self._take_snapshots(processing)
                elif touched:
                    self.save(*touched.values())
                return outcomes
            except IntegrityError:
                # Another writer got there first: forget what we cached and decide again.
                for aggregate_id in touched:
                    self._forget(aggregate_id)
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _decide(self, facts: list[TypedFact]) -> tuple[list[Outcome], dict[UUID, Customer]]:
        now = self.clock()
        max_future = timedelta(seconds=self.settings.intake.max_future_s)
        touched: dict[UUID, Customer] = {}
        outcomes: list[Outcome] = []
        for index, (event_type, given) in enumerate(facts):
            # Distinct recorded_at values keep "recording order" a total order per batch.
            record = {**given, "event_id": str(given["event_id"]), "recorded_at": now + timedelta(microseconds=index)}
            try:
                check_rules(event_type, record, now, max_future)
                customer = self._customer(record["customer_id"], touched)
                existing = customer.duplicate_of(record["source"], record.get("source_event_id"))
                if existing is not None:
                    outcomes.append(Outcome("duplicate", existing, event_type))
                    continue
                data = self.codec.encode(event_type, record, checked=True)
                customer.record(event_type, record, data)
                touched[customer.id] = customer
                outcomes.append(Outcome("recorded", record["event_id"], event_type))
            except LedgerError as error:
                outcomes.append(Outcome("rejected", error=error, event_type=event_type))
        return outcomes, touched

    def _customer(self, customer_id: str, touched: dict[UUID, Customer]) -> Customer:
        aggregate_id = customer_uuid(customer_id)
        if aggregate_id in touched:
            return touched[aggregate_id]
        return self.customer(customer_id) or Customer(aggregate_id, customer_id)

    def customer(self, customer_id: str) -> Customer | None:
        """What the ledger knows of a customer (erased or not, ...); None if nothing was recorded."""
        try:
            return self.repository.get(customer_uuid(customer_id))
        except AggregateNotFoundError:
            return None

    def _forget(self, aggregate_id: UUID) -> None:
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
            if n.topic.startswith("ledger.events.")
        ]
