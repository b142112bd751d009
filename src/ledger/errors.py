"""One error hierarchy for the ledger.

Every error a user can cause is a `LedgerError`; the CLI turns it into a message on stderr
and a non-zero exit. Third-party errors are wrapped where they enter (``raise ... from exc``).
"""

from __future__ import annotations

import re


class LedgerError(Exception):
    """Base of every error the ledger raises on purpose."""

    exit_code = 1


class SettingsError(LedgerError):
    """A setting (flag or LEDGER_* variable) has a value that cannot be used."""

    exit_code = 2


class SchemaError(LedgerError):
    """Bytes or a record do not match the Avro event contract.

    `field` is the path of the offending field: a top-level name (``total_minor``) or, inside
    a record, its path from the top (``lines[2].sku``, indexes counted from 0).
    """

    def __init__(self, message: str, field: str | None = None):
        note = counted_from_zero(field)
        if note not in message:  # a SchemaError re-raised with its message and field keeps one note
            message += note
        super().__init__(message)
        self.field = field
        self.reason = message


class ValidationError(LedgerError):
    """A fact breaks a domain rule; nothing was recorded.

    `field` names the offending field (a path such as ``lines[0].quantity`` inside a record)
    and `reason` says what is wrong with it.
    """

    def __init__(self, field: str, reason: str):
        super().__init__(f"{field}: {reason}{counted_from_zero(field)}")
        self.field = field
        self.reason = reason


_INDEXED = re.compile(r"^([A-Za-z_]\w*)\[\d+\]")


def counted_from_zero(field: str | None) -> str:
    """" (lines[0] is the first)" for a path with an index, else "": indexes count from 0, as
    in JSON Pointer and jq, while `ledger ingest` numbers a file's lines from 1; the message
    says which is which."""
    match = _INDEXED.match(field or "")
    return f" ({match[1]}[0] is the first)" if match else ""


class InvariantError(ValidationError):
    """A fact contradicts what the ledger already holds about its customer (a refund larger
    than what is left of its order, in another currency, an order id used twice): refused,
    nothing recorded. A ValidationError, so every door that reports those reports these."""


class CustomerErasedError(ValidationError):
    """The customer was erased; the ledger accepts nothing more about them."""

    def __init__(self, customer_id: str):
        super().__init__("customer_id", f"customer {customer_id!r} was erased")


class StoreError(LedgerError):
    """The event store cannot be reached or opened."""


class InputError(LedgerError):
    """A line or file given to `ledger ingest` cannot be read as an event."""


class ReadModelError(LedgerError):
    """The read models cannot be built, opened or queried."""


class NotPublishedError(ReadModelError):
    """Nothing is published for readers yet: no published copy, or nothing in the lake."""


class LakeUnavailableError(ReadModelError):
    """The lake (its PostgreSQL catalog or its data files) cannot be reached or written: a
    following projector keeps its own file and publishes again once it can."""


class SegmentError(ReadModelError):
    """A segment rule file is broken; the message names the file."""


class KafkaError(LedgerError):
    """The Kafka broker refused or failed a request."""


class WriterBusyError(LedgerError):
    """Another process is writing the same read models (projecting, replaying, ingesting).

    Its own exit code, so a scheduler can tell "try later" from "broken".
    """

    exit_code = 4


class DataDirMismatchError(SettingsError):
    """The data directory was built from another store or topic than the one given."""


class TopicResetError(KafkaError):
    """A topic went backwards or disappeared (emptied, recreated, broker restarted without its
    data): positions stored against it no longer mean what they did."""


class QueryRefusedError(ReadModelError):
    """An analyst's SQL is not one read statement: refused before it runs (a usage error)."""

    exit_code = 2


class RatesError(SettingsError):
    """The exchange-rates file (projection.exchange_rates) cannot be used: the message names
    the file, the line and the reason. A settings error: the operator fixes the file."""


class InsightError(LedgerError):
    """An insight model cannot run: a missing extra, too little history, a date out of range."""
