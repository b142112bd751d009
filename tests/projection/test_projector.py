"""The projector engine: batches, restarts and crashes never lose or double-count an event."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ledger.projection.engine import Projector
from ledger.projection.readmodels import ReadModels
from ledger.settings import Settings
from ledger.write.application import Ledger
from ledger.write.key_reader import KeyReader
from ledger.write.log import NotificationLogSource
from tests.support.crashes import kill_mid_stream
from tests.support.facts import NOW, FactFactory

TABLES = ("events", "customer_profile", "customer_spend")


def history(fact: FactFactory, customers: int = 40, per_customer: int = 12) -> list[dict]:
    facts = []
    for i in range(per_customer):
        for c in range(customers):
            cid = f"C{c:03d}"
            kind = ("ContactLogged", "PurchaseMade", "PurchaseRefunded", "FeedbackGiven")[(i + c) % 4]
            if kind == "PurchaseRefunded" and i == 0:
                kind = "ContactLogged"  # a refund is of the order bought just before: none yet
            order = f"O{c}-{i - 1}" if kind == "PurchaseRefunded" else f"O{c}-{i}"
            extra = {"order_id": order, "currency": ("EUR", "GBP")[c % 2]} if "Purchase" in kind else {}
            facts.append(fact(kind, customer_id=cid, occurred_at=f"2026-0{1 + i % 5}-1{c % 9}T08:00:00Z", **extra))
    return facts


def snapshot(path: Path) -> dict[str, list[tuple]]:
    models = ReadModels(path)
    try:
        return {t: models.con.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall() for t in TABLES}
    finally:
        models.close()


def project_all(settings: Settings, ledger: Ledger, path: Path, batch_size: int) -> None:
    with ReadModels(path) as models:
        keys = KeyReader(ledger.settings)
        projector = Projector(models, NotificationLogSource(ledger), batch_size=batch_size, keys=keys)
        projector.catch_up(NOW)


def test_a_projector_stopped_mid_stream_resumes_without_loss_or_double_count(
    settings: Settings, ledger: Ledger, fact: FactFactory, tmp_path: Path
) -> None:
    ledger.record_many(history(fact))
    path = tmp_path / "stepwise.duckdb"
    with ReadModels(path) as models:
        projector = Projector(models, NotificationLogSource(ledger), batch_size=37, keys=KeyReader(ledger.settings))
        for _ in range(5):
            projector.step()
        assert models.positions("store") == {"log": 5 * 37}
    # restart: a new projector on the same file continues from the stored position
    project_all(settings, ledger, path, batch_size=37)
    project_all(settings, ledger, tmp_path / "clean.duckdb", batch_size=10_000)
    assert snapshot(path) == snapshot(tmp_path / "clean.duckdb")
    assert len(snapshot(path)["events"]) == ledger.head() == 480


def test_a_projector_far_behind_reads_larger_batches_and_ends_as_a_small_batch_replay_would(
    settings: Settings, ledger: Ledger, fact: FactFactory, tmp_path: Path
) -> None:
    ledger.record_many(history(fact))  # 480 events
    with ReadModels(tmp_path / "catching-up.duckdb") as models:
        projector = Projector(models, NotificationLogSource(ledger), batch_size=20, catch_up_batch_size=200,
                              keys=KeyReader(ledger.settings))
        stats = projector.catch_up(NOW)
    # 200 and 200 while at least 200 remain, then the last 80 in one batch
    assert (stats.read, stats.batches) == (480, 3)
    project_all(settings, ledger, tmp_path / "small.duckdb", batch_size=20)
    assert snapshot(tmp_path / "catching-up.duckdb") == snapshot(tmp_path / "small.duckdb")


def test_a_projector_near_the_head_keeps_small_batches(
    ledger: Ledger, fact: FactFactory, tmp_path: Path
) -> None:
    ledger.record_many(history(fact))  # 480 events, fewer than a catch-up batch
    with ReadModels(tmp_path / "near.duckdb") as models:
        projector = Projector(models, NotificationLogSource(ledger), batch_size=100, catch_up_batch_size=500,
                              keys=KeyReader(ledger.settings))
        stats = projector.catch_up(NOW)
    assert (stats.read, stats.batches) == (480, 5)


def test_the_store_log_hands_projectors_exactly_the_facts_its_notifications_hold(
    ledger: Ledger, fact: FactFactory
) -> None:
    ledger.record_many(history(fact, customers=5, per_customer=4))  # 20 events
    for after, limit in ((0, 7), (3, 100), (0, 10_000), (19, 5), (ledger.head(), 5)):
        expected = [(n.id, n.topic, n.state) for n in ledger.notifications(after, limit)]
        assert ledger.log(after, limit) == expected
    assert len(ledger.log(0, 100)) == 20


def test_events_delivered_twice_are_counted_once(
    ledger: Ledger, fact: FactFactory, tmp_path: Path
) -> None:
    ledger.record_many(history(fact, customers=5, per_customer=4))
    path = tmp_path / "rm.duckdb"
    source = NotificationLogSource(ledger)
    with ReadModels(path) as models:
        projector = Projector(models, source, batch_size=7)
        projector.catch_up(NOW)
        once = snapshot_of(models)
        models.con.execute("UPDATE projector_positions SET position = 3")  # as if the relay resent
        projector.catch_up(NOW)
        assert snapshot_of(models) == once


def snapshot_of(models: ReadModels) -> dict[str, list[tuple]]:
    return {t: models.con.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall() for t in TABLES}


def test_the_profile_counts_and_keeps_currencies_apart(ledger: Ledger, fact: FactFactory, tmp_path: Path) -> None:
    ledger.record_many(
        [
            fact("CustomerRegistered", name="Ada", occurred_at="2026-01-01T00:00:00Z"),
            fact("ProfileUpdated", name="Ada King", occurred_at="2026-03-01T00:00:00Z"),
            fact("ProfileUpdated", name="Ada L.", occurred_at="2026-02-01T00:00:00Z"),  # late, older
            fact("PurchaseMade", order_id="A", currency="EUR", total_minor=1000),
            fact("PurchaseMade", order_id="B", currency="GBP", total_minor=700),
            fact("PurchaseRefunded", order_id="A", currency="EUR", amount_minor=250),
            fact("ContactLogged", is_complaint=True, occurred_at="2026-05-02T00:00:00Z"),
            fact("ContactLogged"),
        ]
    )
    path = tmp_path / "rm.duckdb"
    project_all(Settings(), ledger, path, batch_size=3)
    with ReadModels(path) as models:
        row = models.con.execute(
            "SELECT name, contacts, complaints, purchases, refunds, net_spend, last_contact_at::VARCHAR"
            " FROM customer_profile"
        ).fetchall()
    assert row == [("Ada King", 2, 1, 2, 1, {"EUR": 750, "GBP": 700}, "2026-05-02 00:00:00")]


def test_an_erased_customer_shows_as_erased_without_personal_data(
    ledger: Ledger, fact: FactFactory, tmp_path: Path
) -> None:
    ledger.record_many([fact("CustomerRegistered", email="a@b.c"), fact("CustomerErased")])
    path = tmp_path / "rm.duckdb"
    project_all(Settings(), ledger, path, batch_size=1)
    with ReadModels(path) as models:
        assert models.con.execute("SELECT erased, name, email FROM customer_profile").fetchall() == [
            (True, None, None)
        ]
        assert models.con.execute("SELECT count(*) FROM events WHERE email IS NOT NULL").fetchall() == [(0,)]


def test_a_projector_killed_at_random_points_ends_equal_to_a_clean_replay(
    settings: Settings, fact: FactFactory, tmp_path: Path
) -> None:
    ledger = Ledger(settings, clock=lambda: NOW)
    ledger.record_many(history(fact, customers=400, per_customer=25))
    env = {**os.environ, "LEDGER_DATA_DIR": str(settings.data_dir), "LEDGER_BATCH_SIZE": "100",
           "LEDGER_STORE": settings.store.url or ""}
    command = [sys.executable, "-m", "ledger.cli", "project", "--once", "--as-of", NOW.isoformat()]

    def position() -> int:
        if not settings.readmodel_path.exists():
            return 0
        with ReadModels(settings.readmodel_path) as models:
            return models.positions("store").get("log", 0)

    killed_at = kill_mid_stream(command, env, position, ledger.head(),
                                wal=settings.readmodel_path.with_name("readmodels.duckdb.wal"))
    assert any(0 < position < ledger.head() for position in killed_at), killed_at
    finished = subprocess.run(command, env=env, capture_output=True, text=True)
    assert finished.returncode == 0, finished.stderr
    project_all(settings, ledger, tmp_path / "clean.duckdb", batch_size=100_000)
    assert snapshot(settings.readmodel_path) == snapshot(tmp_path / "clean.duckdb")
