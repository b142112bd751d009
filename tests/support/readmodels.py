"""A small harness for read-model tests: a real ledger, a real DuckDB file, real SQL.

Facts are written as adapters would send them (tests.support.facts); the ledger's clock sits
far in the future so any `occurred_at` is accepted, and each test picks its own "as of" time.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from ledger.projection.engine import Projector, RunStats
from ledger.projection.readmodels import ReadModels
from ledger.settings import Settings
from ledger.write.application import Ledger
from ledger.write.key_reader import KeyReader
from ledger.write.log import NotificationLogSource
from tests.support.facts import CLOCK


class Harness:
    """Record facts, project them, read tables back."""

    def __init__(self, tmp_path: Path, settings: Settings | None = None, batch_size: int = 1000):
        self.settings = settings or Settings(data_dir=tmp_path / "data")
        self.ledger = Ledger(self.settings, clock=lambda: CLOCK)
        self.models = ReadModels(tmp_path / "readmodels.duckdb", settings=self.settings)
        self.projector = Projector(
            self.models, NotificationLogSource(self.ledger), batch_size=batch_size, keys=KeyReader(self.settings)
        )

    def record(self, *facts: dict[str, Any]) -> None:
        outcomes = self.ledger.record_many(facts)
        rejected = [o.error for o in outcomes if not o.ok]
        assert not rejected, rejected

    def project(self, as_of: datetime) -> RunStats:
        return self.projector.catch_up(as_of)

    def rows(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        return self.models.con.execute(sql, list(params)).fetchall()

    def close(self) -> None:
        self.models.close()
        self.ledger.close()
