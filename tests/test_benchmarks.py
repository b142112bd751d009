"""`python -m benchmarks all` runs every row end to end (in its smoke mode: tiny sizes, so the
figures mean nothing and nothing here reads them) and writes its section and its plot."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.report import END, START

REPO = Path(__file__).resolve().parents[1]

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]


def test_the_benchmark_harness_measures_every_row_and_writes_the_doc_and_the_plot(tmp_path: Path) -> None:
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n\nBy hand, kept.\n")
    run = subprocess.run([sys.executable, "-m", "benchmarks", "all", "--smoke", "--doc", str(doc)],
                         cwd=REPO, capture_output=True, text=True, timeout=280)
    assert run.returncode == 0, run.stdout + run.stderr
    text = doc.read_text()
    assert text.startswith("# Benchmarks\n\nBy hand, kept.\n") and text.count(START) == text.count(END) == 1
    for row in ("embedded ingest", "eventsourcing batched save", "Kafka intake → store (PostgreSQL)",
                "raw kafka-python produce", "raw kafka-python consume", "Quix at the margin",
                "replay peak memory", "a customer's timeline", "segment sizes"):
        assert row in text, row
    plot = tmp_path / "benchmarks-history.png"
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # A second run replaces its section, and only it.
    again = subprocess.run([sys.executable, "-m", "benchmarks", "history", "--smoke", "--doc", str(doc)],
                           cwd=REPO, capture_output=True, text=True, timeout=200)
    assert again.returncode == 0, again.stdout + again.stderr
    text = doc.read_text()
    assert text.count(START) == 1 and "By hand, kept." in text and "embedded ingest" not in text
