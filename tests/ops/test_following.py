"""A following projector (`ledger project`, `serve`): republishes when events arrive and, while
idle, refreshes the "as of" models every `refresh_idle_s`, never more often. Rounds are
counted through the clock the follower asks each round, so no test waits for a time."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path

from ledger.ops.projecting import follow
from ledger.projection.query import query
from ledger.settings import Settings
from ledger.write.application import Ledger
from tests.support.facts import NOW, FactFactory


class CountingClock:
    """A clock one second later at every call, which says how often it was asked."""

    def __init__(self) -> None:
        self.calls = itertools.count()
        self.asked = 0
        self.condition = threading.Condition()

    def __call__(self) -> datetime:
        with self.condition:
            self.asked = next(self.calls) + 1
            self.condition.notify_all()
        return NOW + timedelta(seconds=self.asked)

    def wait_for_rounds(self, rounds: int) -> None:
        with self.condition:
            target = self.asked + rounds
            assert self.condition.wait_for(lambda: self.asked >= target, timeout=60), "the follower stalled"


def published(settings: Settings, sql: str) -> object:
    if not settings.published_path.exists():
        return None
    return query(settings.published_path, sql)[1][0][0]


def wait_until(condition: Callable[[], bool], clock: CountingClock) -> None:
    for _ in range(600):
        if condition():
            return
        clock.wait_for_rounds(1)
    raise AssertionError("the follower never got there")


@contextmanager
def following(settings: Settings, ledger: Ledger, clock: CountingClock) -> Iterator[None]:
    stop = threading.Event()
    thread = threading.Thread(target=follow, args=(settings, clock, stop),
                              kwargs={"ledger": ledger, "idle_s": 0.01})
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=60)
    assert not thread.is_alive()


def test_an_idle_follower_does_not_republish_until_new_events_arrive(tmp_path: Path, fact: FactFactory) -> None:
    settings = Settings(data_dir=tmp_path, refresh_idle_s=3600)
    ledger = Ledger(settings, clock=lambda: NOW)
    ledger.record_many([fact("ContactLogged", customer_id="C1")])
    clock = CountingClock()
    with following(settings, ledger, clock):
        wait_until(lambda: published(settings, "SELECT count(*) FROM events") == 1, clock)
        published_at = "SELECT value FROM projector_state WHERE key = 'published_at'"
        first = (published(settings, published_at), settings.published_path.stat().st_ino)
        clock.wait_for_rounds(10)
        assert (published(settings, published_at), settings.published_path.stat().st_ino) == first
        ledger.record_many([fact("ContactLogged", customer_id="C2")])
        wait_until(lambda: published(settings, "SELECT count(*) FROM events") == 2, clock)


def test_an_idle_follower_refreshes_the_as_of_models_once_refresh_idle_s_has_passed(
    tmp_path: Path, fact: FactFactory
) -> None:
    settings = Settings(data_dir=tmp_path, refresh_idle_s=0)
    ledger = Ledger(settings, clock=lambda: NOW)
    ledger.record_many([fact("PurchaseMade", customer_id="C1", occurred_at=NOW - timedelta(days=1))])
    clock = CountingClock()
    as_of = "SELECT value FROM projector_state WHERE key = 'as_of'"
    with following(settings, ledger, clock):
        wait_until(lambda: published(settings, as_of) is not None, clock)
        first = datetime.fromisoformat(published(settings, as_of))
        clock.wait_for_rounds(5)
        wait_until(lambda: datetime.fromisoformat(published(settings, as_of)) > first, clock)
    refreshed = datetime.fromisoformat(published(settings, as_of))
    assert first < refreshed <= NOW + timedelta(seconds=clock.asked)
    lifecycle = published(settings, "SELECT max(as_of) FROM lifecycle")
    assert lifecycle == refreshed.replace(tzinfo=None)
