"""Amendments: the facts that change how earlier facts count, and what each may change.

A wrong fact is never edited: a FactCorrected names the fields that were wrong and their
right values, a FactRetracted withdraws a fact, a CustomersMerged counts one customer id as
another until a CustomerSplit undoes it. The read models apply them (projections/facts.sql);
the timeline keeps both the fact and its amendment.

Pure: no I/O. A correction's values travel as JSON text in the Avro map ``changes`` (one
schema for every field's type); `read_changes` turns them into values the target's schema
takes, so that the corrected fact is checked like any new one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from ledger.contract.facts import parse_timestamp
from ledger.errors import ValidationError

AMENDMENTS = ("FactCorrected", "FactRetracted", "CustomersMerged", "CustomerSplit")
"""Event types that amend others; they are not facts about the customer themselves."""

CORRECTABLE: dict[str, tuple[str, ...]] = {
    "ContactLogged": ("occurred_at", "channel", "direction", "outcome", "is_complaint", "duration_s", "language",
                      "sentiment"),
    "PurchaseMade": ("occurred_at", "channel", "total_minor", "lines"),
    "PurchaseRefunded": ("occurred_at", "amount_minor"),
    "FeedbackGiven": ("occurred_at", "channel", "kind", "score", "about_contact_id", "about_order_id"),
}
"""The fields a correction may change, per type of fact. Not the envelope (ids, source), not the
identities other facts point at (contact_id, order_id, currency: retract the fact and record the
right one), not personal data (a ProfileUpdated corrects a profile; ConsentChanged and
CustomerRegistered are corrected by newer facts of their own kind). The projection applies
exactly these (facts.sql)."""

RETRACTABLE = tuple(CORRECTABLE)
"""The facts a retraction may withdraw: the same types (a profile, a consent or an erasure is
changed by a newer fact of its kind, never withdrawn)."""

MAX_CHANGE_TEXT = 100_000


def amendable(target_type: str, verb: str) -> None:
    """ValidationError unless facts of `target_type` can be corrected (or retracted)."""
    if target_type not in CORRECTABLE:
        kinds = ", ".join(CORRECTABLE)
        hint = {
            "CustomerRegistered": "; record a ProfileUpdated with the right values",
            "ProfileUpdated": "; record a ProfileUpdated with the right values",
            "ConsentChanged": "; record a ConsentChanged with the right value",
        }.get(target_type, "")
        raise ValidationError("target_event_id", f"a {target_type} cannot be {verb} (only {kinds}){hint}")


def read_changes(target_type: str, changes: Any) -> dict[str, Any]:
    """The corrected values of `changes` (field -> JSON text), checked against what may change."""
    if not isinstance(changes, Mapping) or not changes:
        raise ValidationError("changes", "name at least one field to correct, e.g. {\"score\": \"9\"}")
    allowed = CORRECTABLE[target_type]
    values: dict[str, Any] = {}
    for name, text in changes.items():
        if name not in allowed:
            raise ValidationError(
                f"changes.{str(name)[:60]}",
                f"a {target_type}'s {str(name)[:60]!r} cannot be corrected (correctable: {', '.join(allowed)})",
            )
        if not isinstance(text, str) or len(text) > MAX_CHANGE_TEXT:
            raise ValidationError(f"changes.{name}", "must be a JSON text of at most 100,000 characters")
        try:
            value = json.loads(text)
        except (ValueError, RecursionError):
            raise ValidationError(f"changes.{name}", f"{text[:60]!r} is not JSON (text needs quotes: "
                                                     "\"\\\"phone\\\"\")") from None
        if name == "occurred_at":
            value = parse_timestamp("changes.occurred_at", value)
        values[name] = value
    return values


def changes_text(values: Mapping[str, Any]) -> dict[str, str]:
    """The map a FactCorrected carries: each value as canonical JSON text (times as naive UTC
    ISO text, as the read models keep them)."""
    return {name: json.dumps(_plain(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
            for name, value in sorted(values.items())}


def given_value(text: str) -> Any:
    """A value as an operator types it after ``--set field=``: JSON when it reads as JSON
    (``9``, ``true``, ``null``, ``[...]``), else the text itself (``phone``)."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return text


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds")
    return value
