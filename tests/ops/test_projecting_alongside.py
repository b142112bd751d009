"""`ledger ingest` projects in a thread while it records: the read models it publishes are
those of a replay, and a projector that fails costs nothing that was recorded."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from ledger.errors import ReadModelError
from ledger.intake import ingest as ingest_module
from ledger.intake.files import FactFile
from ledger.intake.ingest import ingest
from ledger.ops.demo import generate
from ledger.ops.projecting import projecting_alongside, recording, replay
from ledger.settings import Settings
from ledger.write.application import Ledger

END = datetime(2026, 6, 1, tzinfo=UTC)
# Tables and columns that do not depend on when they were refreshed ("as of" now).
COMPARED = {
    "events": "*",
    "customer_spend": "*",
    "orders": "* EXCLUDE (as_of)",
    "customer_profile": "* EXCLUDE (lifecycle_stage, rfm_segment)",
}


def facts_file(tmp_path: Path, customers: int) -> Path:
    path = tmp_path / "facts.jsonl"
    facts = generate(customers=customers, seed=5, end=END)
    path.write_text("".join(json.dumps(fact, default=lambda at: at.isoformat()) + "\n" for fact in facts))
    return path


def tables(path: Path) -> dict[str, list[tuple]]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return {t: con.execute(f"SELECT {columns} FROM {t} ORDER BY ALL").fetchall() for t, columns in COMPARED.items()}
    finally:
        con.close()


def test_ingest_projecting_while_it_records_publishes_the_read_models_of_a_replay(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ingest_module, "CHUNK", 157)  # many transactions, so the projector runs between them
    settings = Settings(data_dir=tmp_path / "data", batch_size=101)
    source = facts_file(tmp_path, customers=150)
    ledger = Ledger(settings)
    chunks = []
    with recording(settings), projecting_alongside(settings, ledger) as saved:
        report = ingest(ledger, FactFile(source, None), progress=lambda r: (chunks.append(r.lines), saved()))
    assert report.rejected_count == 0 and report.recorded == ledger.head() > 2000
    assert len(chunks) > 5
    published = tables(settings.published_path)
    assert len(published["events"]) == ledger.head()
    replay(settings, END, ledger=ledger)
    assert published == tables(settings.published_path)


def test_a_projector_that_cannot_open_its_read_models_fails_the_command_and_keeps_what_was_recorded(
    tmp_path: Path,
) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    settings.readmodel_path.mkdir(parents=True)  # a directory where the read-model file should be
    source = facts_file(tmp_path, customers=5)
    ledger = Ledger(settings)
    with pytest.raises(ReadModelError), recording(settings), projecting_alongside(settings, ledger) as saved:
        report = ingest(ledger, FactFile(source, None), progress=lambda _: saved())
    assert report.recorded == ledger.head() > 0
