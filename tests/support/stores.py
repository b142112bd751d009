"""Store fixtures: every store test runs on the embedded SQLite file and on PostgreSQL (a
schema of its own per test, dropped afterwards)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from ledger.settings import Settings
from ledger.write.application import Ledger
from tests.support.facts import NOW

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
