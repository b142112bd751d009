"""When the demo's customers buy and get in touch: the week, the day, the year, and two episodes.

Pure tables and functions of a caller's `random.Random`; every time is UTC. The business is
European, so office hours (09:00-19:00 CET) are 08:00-18:00 UTC and evenings peak at
18:00-22:00 UTC. Two episodes are placed relative to `end`, so that any `end` shows them:
a churn wave (a three-month service crisis, 13 to 10 months before `end`'s month) and a
three-week marketing campaign (from the first Monday of the month two months before `end`'s).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from datetime import date, datetime, timedelta
from itertools import accumulate

DAY = timedelta(days=1)

# Monday .. Sunday. The store is busiest on Saturday and mostly shut on Sunday; the call centre
# is quiet at weekends; web and app pick up when people are at home.
WEEKLY = {
    "store": (0.85, 0.85, 0.9, 0.95, 1.15, 2.1, 0.2),
    "phone": (1.2, 1.1, 1.05, 1.05, 1.0, 0.45, 0.15),
    "web": (0.95, 0.9, 0.9, 0.95, 0.95, 1.1, 1.25),
    "app": (0.9, 0.9, 0.9, 0.95, 1.0, 1.15, 1.3),
    "chat": (1.05, 1.05, 1.0, 1.0, 1.0, 0.8, 0.7),
    "email": (1.2, 1.1, 1.1, 1.05, 1.0, 0.5, 0.45),
    "social": (0.95, 0.95, 0.95, 0.95, 1.0, 1.1, 1.1),
    "sms": (1.1, 1.05, 1.05, 1.05, 1.0, 0.6, 0.5),
}


def _hours(*spans: tuple[int, int, float]) -> tuple[float, ...]:
    """Cumulative weights per UTC hour from (first hour, hour after the last, weight) spans."""
    weights = [0.0] * 24
    for first, stop, weight in spans:
        for hour in range(first, stop):
            weights[hour] = weight
    return tuple(accumulate(weights))


OFFICE = _hours((7, 8, 0.3), (8, 12, 3), (12, 13, 2), (13, 17, 3), (17, 18, 2), (18, 19, 0.3))
SHOP = _hours((8, 9, 0.5), (9, 12, 2), (12, 17, 3), (17, 19, 2.5), (19, 20, 0.5))
EVENING = _hours((0, 1, 0.4), (6, 8, 0.4), (8, 12, 1), (12, 17, 1.2), (17, 18, 1.8), (18, 22, 3),
                 (22, 24, 1.2))
DAYTIME = _hours((6, 8, 0.8), (8, 17, 2.5), (17, 21, 1.5), (21, 23, 0.6))
HOURLY = {"phone": OFFICE, "store": SHOP, "web": EVENING, "app": EVENING, "chat": EVENING,
          "social": EVENING, "email": DAYTIME, "sms": DAYTIME}

# January .. December. Purchases peak for Black Friday and Christmas and dip in summer;
# contacts follow them, with January's returns and refunds on top.
PURCHASE_MONTHS = (0.8, 0.85, 0.95, 1.0, 1.0, 0.9, 0.72, 0.7, 0.95, 1.05, 1.6, 1.8)
CONTACT_MONTHS = (1.3, 1.0, 1.0, 1.0, 0.95, 0.9, 0.85, 0.85, 1.0, 1.0, 1.15, 1.25)
PURCHASE_PEAK = max(PURCHASE_MONTHS) * 2.2 * max(max(w) for w in WEEKLY.values())
CONTACT_PEAK = max(CONTACT_MONTHS) * max(max(w) for w in WEEKLY.values())


def black_friday(year: int) -> date:
    """The fourth Friday of November."""
    first = date(year, 11, 1)
    return first + timedelta(days=(4 - first.weekday()) % 7 + 21)


def purchase_season(day: date) -> float:
    """How busy the shop is on `day` relative to an ordinary day, before the weekday mix."""
    weight = PURCHASE_MONTHS[day.month - 1]
    if day.month == 11 and 0 <= (day - black_friday(day.year)).days <= 3:  # to Cyber Monday
        weight *= 2.2
    elif (day.month, day.day) in ((12, 25), (12, 26), (1, 1)):  # shops shut
        weight *= 0.3
    return weight


def contact_season(day: date) -> float:
    return CONTACT_MONTHS[day.month - 1]


def weekday_mix(day: date, channels: Mapping[str, float]) -> float:
    """The weekday's weight for this channel mix: 1.0 on an average day of the week."""
    weekday = day.weekday()
    return sum(w * WEEKLY[c][weekday] for c, w in channels.items()) / sum(channels.values())


def pick_channel(rng: random.Random, channels: Mapping[str, float], day: date) -> str:
    weekday = day.weekday()
    return rng.choices(tuple(channels), [w * WEEKLY[c][weekday] for c, w in channels.items()])[0]


def time_of_day(rng: random.Random, day: datetime, channel: str) -> datetime:
    """A moment on `day`'s date at an hour this channel is used."""
    cumulative = HOURLY[channel]
    hour = rng.choices(range(24), cum_weights=cumulative)[0]
    midnight = day.replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight + timedelta(hours=hour, seconds=rng.randrange(3600))


def shaped(rng: random.Random, lo: datetime, hi: datetime, weight: Callable[[date], float],
           peak: float) -> datetime:
    """A moment in [lo, hi], its day drawn in proportion to `weight` (at most `peak`)."""
    seconds = max(0.0, (hi - lo).total_seconds())
    at = lo
    for _ in range(60):  # rejection sampling; the last try is kept (no day is that unlikely)
        at = lo + timedelta(seconds=int(rng.uniform(0, seconds)))
        if rng.random() * peak < weight(at.date()):
            break
    return at


def _month_start(at: datetime, back: int) -> datetime:
    index = at.year * 12 + at.month - 1 - back
    return at.replace(year=index // 12, month=index % 12 + 1, day=1, hour=0, minute=0, second=0,
                      microsecond=0)


def churn_wave(end: datetime) -> tuple[datetime, datetime]:
    """Three calendar months, 13 to 10 months before `end`'s month, of poor service."""
    return _month_start(end, 13), _month_start(end, 10)


def campaign(end: datetime) -> tuple[datetime, datetime]:
    """Three weeks from the first Monday of the month two months before `end`'s month."""
    first = _month_start(end, 2)
    start = first + timedelta(days=(7 - first.weekday()) % 7)
    return start, start + 21 * DAY


def peak_and_mean(weight: Callable[[date], float]) -> tuple[float, float]:
    """The largest and the average of `weight` over four whole years (any leap year included)."""
    days = [date(2024, 1, 1) + n * DAY for n in range(4 * 365 + 1)]
    weights = [weight(day) for day in days]
    return max(weights), sum(weights) / len(weights)
