"""When segment membership is recorded: at calendar boundaries, so that history is a function
of the log alone and a replay rebuilds exactly what the projector built as it went.

A refresh at T evaluates the segments at every boundary (the first of each month at 00:00
UTC, by default) from where its history may have changed up to T, then at T itself. T's own
point is provisional: the next refresh rewinds it and goes on from the boundaries. History
may have changed from the earliest of:

- the previous refresh's T (its provisional point),
- the earliest `occurred_at` among the events applied since (a late event changes the
  membership at every boundary after it happened).

A replay starts from the first event. Either way the points are the boundaries from there to
T, then T: the same points over the same events give the same history.

At most `MAX_POINTS` boundaries are kept before T; history before the first of them is cut
(stays before it are dropped, stays across it start there), as a replay's would be.

The points hold what a rule reads as of them only if the rule reads what held then (the as-of
models, `events` up to `as_of`): a rule over current-state tables gives a history that depends
on when the refreshes ran. An erased customer has no history at all (no consent at any T).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from ledger.settings.sections import SEGMENT_HISTORY as EVERY  # noqa: F401 - `refresh`: no boundaries

MAX_POINTS = 60
"""Boundaries kept before T at most: each costs one refresh of the as-of models, and an event
that happened long ago costs them all once (five years of months, 14 months of weeks, two
months of days)."""


def floor(when: datetime, every: str) -> datetime:
    """The boundary at or before `when` (naive UTC)."""
    day = when.replace(hour=0, minute=0, second=0, microsecond=0)
    if every == "month":
        return day.replace(day=1)
    if every == "week":
        return day - timedelta(days=day.weekday())
    return day


def following(boundary: datetime, every: str) -> datetime:
    if every == "month":
        year, month = divmod(boundary.month, 12)
        return boundary.replace(year=boundary.year + year, month=month + 1)
    return boundary + timedelta(days=7 if every == "week" else 1)


def boundaries(start: datetime, end: datetime, every: str) -> list[datetime]:
    """The boundaries b with start <= b < end, the last `MAX_POINTS` of them."""
    if every == "refresh" or start >= end:
        return []
    b = floor(start, every)
    if b < start:
        b = following(b, every)
    if (end - b).days > 40 * MAX_POINTS:  # do not count the months from year 1 to find the last few
        b = floor(end - timedelta(days=31 * (MAX_POINTS + 1)), every)
    found: list[datetime] = []
    while b < end:
        found.append(b)
        try:
            b = following(b, every)
        except (ValueError, OverflowError):  # past the year 9999: no boundary left
            break
    return found[-MAX_POINTS:]


@dataclass(frozen=True)
class Plan:
    rewind_from: datetime
    """Every stay recorded at or after this is rewound before the first point."""
    points: list[datetime]
    """The as-of times to evaluate, in order; the last is T."""
    cut_before: datetime | None
    """History before this is cut (the first boundary kept), or None."""


def plan(as_of: datetime, every: str, *, previous: datetime | None, changed_from: datetime | None,
         first_event: datetime | None) -> Plan:
    """The points of a refresh at `as_of` (all times naive UTC)."""
    if every == "refresh":
        return Plan(as_of, [as_of], None)
    if previous is None:  # nothing recorded yet: from the first event
        start = min(first_event, as_of) if first_event is not None else as_of
    else:
        start = min(t for t in (previous, changed_from, as_of) if t is not None)
    found = boundaries(start, as_of, every)
    whole = boundaries(first_event, as_of, every) if first_event is not None else []
    cut = whole[0] if len(whole) == MAX_POINTS else None
    return Plan(min(start, found[0]) if found else start, [*found, as_of], cut)
