"""Whether a fact was recorded already: the index of event ids, read for a batch.

Every fact's `event_id` means one event, and the same ``(source, source_event_id)`` gives one
event however often it is sent (write/recorders.py keeps the index).
"""

from __future__ import annotations

from collections.abc import Callable

from ledger.contract.facts import event_id_for
from ledger.errors import ValidationError
from ledger.write.recorders import EventIdRow

NEW_ID = object()
"""What `_already` says of a new fact whose derived event id another fact took first."""


def already(
    key: tuple[str, str, str, str | None], said: Callable[[], str],
    by_id: dict[str, EventIdRow], by_pair: dict[tuple[str, str], EventIdRow],
) -> str | object | None:
    """The event id this fact was recorded under already, None if it is new; a fact that
    would reuse another event's id, or another customer's ``(source, source_event_id)``, is
    refused.

    A new ``(source, source_event_id)`` whose event id is the one derived from it is never
    refused for that id: another fact may have chosen it as its own (on purpose, or because
    ids with the separator in them derive alike), and an adapter must not be able to block
    another's facts. It gets `NEW_ID`: a fresh id; the pair still makes resends duplicates."""
    event_id, customer_id, source, source_event_id = key
    if source_event_id is not None and (source, source_event_id) in by_pair:
        before = by_pair[(source, source_event_id)]
        if before[1] == customer_id:
            return before[0]
        raise ValidationError(
            "source_event_id", f"{source_event_id!r} from source {source!r} was already recorded for another "
            f"customer ({before[1]!r}); one adapter id means one event"
        )
    before = by_id.get(event_id)
    if before is None:
        return None
    if before[:4] == key and before[4] == said():
        return event_id  # the same fact, sent again with its own event_id
    if source_event_id is not None and event_id == str(event_id_for(source, source_event_id)):
        return NEW_ID
    raise ValidationError(
        "event_id", f"{event_id} is already the id of another event (customer {before[1]!r}, source {before[2]!r})"
    )
