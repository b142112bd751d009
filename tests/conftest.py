"""Shared fixtures: settings in a temporary data directory, a ledger on real SQLite."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import hypothesis
import psycopg
import pytest

from ledger.settings import Settings
from ledger.write.application import Ledger

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)

# Property tests explore the same examples on every run and never race a deadline: a CI
# failure then always reproduces, and a loaded machine cannot fail a correct test.
hypothesis.settings.register_profile("ledger", deadline=None, derandomize=True, database=None)
hypothesis.settings.load_profile("ledger")


POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """Settings for each store: every store test runs on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        yield Settings(data_dir=tmp_path / "data", batch_size=50)
        return
    schema = f"test_{uuid.uuid4().hex[:12]}"
    yield Settings(data_dir=tmp_path / "data", batch_size=50, store=f"{POSTGRES}?schema={schema}")
    with psycopg.connect(POSTGRES, autocommit=True) as connection:
        connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture
def settings_for_store() -> Callable[[str], str | None]:
    """The `--store` of each kind: None for the embedded SQLite file, or a PostgreSQL URL with
    a schema of its own, dropped afterwards."""
    schemas: list[str] = []

    def store(kind: str) -> str | None:
        if kind == "sqlite":
            return None
        schemas.append(f"test_{uuid.uuid4().hex[:12]}")
        return f"{POSTGRES}?schema={schemas[-1]}"

    yield store
    with psycopg.connect(POSTGRES, autocommit=True) as connection:
        for schema in schemas:
            connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture
def ledger(settings: Settings) -> Ledger:
    app = Ledger(settings, clock=lambda: NOW)
    yield app
    app.close()


FactFactory = Callable[..., dict[str, Any]]

_DEFAULTS: dict[str, dict[str, Any]] = {
    "CustomerRegistered": {"name": "Ada Lovelace", "email": "ada@example.com", "country": "GB"},
    "ProfileUpdated": {"city": "London"},
    "ConsentChanged": {"purpose": "marketing_email", "granted": True},
    "ContactLogged": {"contact_id": "K1", "channel": "phone", "direction": "inbound"},
    "PurchaseMade": {"order_id": "O1", "channel": "web", "currency": "EUR", "total_minor": 1999},
    "PurchaseRefunded": {"order_id": "O1", "currency": "EUR", "amount_minor": 500},
    "FeedbackGiven": {"kind": "csat", "score": 4, "channel": "email"},
    "CustomerErased": {},
}


@pytest.fixture
def fact() -> FactFactory:
    """Build a valid fact of a type; keyword arguments override fields."""
    counter = iter(range(1, 10**9))

    def build(event_type: str, **fields: Any) -> dict[str, Any]:
        base = {
            "type": event_type,
            "customer_id": "C1",
            "occurred_at": "2026-05-01T09:30:00Z",
            "source": "test",
            "source_event_id": f"e{next(counter)}",
        }
        base.update(_DEFAULTS[event_type])
        base.update(fields)
        return {k: v for k, v in base.items() if v is not ...}

    return build
