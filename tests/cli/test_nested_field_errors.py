"""`ledger record` and `ledger ingest` name a wrong field inside a record by its path
(``lines[2].sku``, counted from 0), and an ingested line by its number (counted from 1): exit
3, no traceback, however large or deep the input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from ledger.cli.main import app
from tests.support.cli import StrictRunner

runner = StrictRunner()
LEDGER = str(Path(sys.executable).parent / "ledger")
LINE = {"sku": "A", "quantity": 1, "unit_price_minor": 100}


def purchase(n: int, **fields: Any) -> dict[str, Any]:
    return {"type": "PurchaseMade", "customer_id": "C1", "occurred_at": "2026-01-01T00:00:00Z", "source": "shop",
            "source_event_id": f"o{n}", "order_id": f"O{n}", "channel": "web", "currency": "EUR",
            "total_minor": 300, **fields}


def test_record_refuses_a_missing_nested_field_by_its_path_with_exit_3(tmp_path: Path) -> None:
    bad = purchase(1, lines=[LINE, LINE, {"quantity": 1, "unit_price_minor": 1}])
    refused = runner.invoke(app, ["record", json.dumps(bad), "--no-project", "--data-dir", str(tmp_path)])
    assert refused.exit_code == 3
    assert refused.stderr == "refused: lines[2].sku: required field missing (lines[0] is the first)\n"


def test_record_refuses_a_10_mb_value_in_a_line_in_one_short_line(tmp_path: Path) -> None:
    bad = purchase(1, lines=[LINE, {**LINE, "quantity": "9" * 10_000_000}])
    refused = runner.invoke(app, ["record", json.dumps(bad), "--no-project", "--data-dir", str(tmp_path)])
    assert refused.exit_code == 3
    assert refused.stderr.startswith("refused: lines[1].quantity: str '999") and len(refused.stderr) < 200


def test_ingest_names_each_refused_line_by_number_and_path_and_records_the_rest(tmp_path: Path) -> None:
    rows = [
        purchase(1, lines=[LINE], total_minor=100),
        purchase(2, lines=[LINE, {"quantity": 1, "unit_price_minor": 1}]),
        purchase(3, lines=[LINE, LINE, {**LINE, "quantity": "2"}]),
        purchase(4, lines=[{**LINE, "colour": "red"}]),
        purchase(5, lines=[LINE, 7]),
        purchase(6, lines={"sku": "A"}),
        purchase(7, lines=[LINE] * 99_999 + [{**LINE, "sku": 5}]),
        purchase(8, lines=[LINE], total_minor=100),
    ]
    path = tmp_path / "orders.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows)
                    + '{"type": "PurchaseMade", "lines": ' + "[" * 100_000 + "]" * 100_000 + "}\n")

    done = subprocess.run([LEDGER, "ingest", str(path), "--no-project", "--data-dir", str(tmp_path / "d")],
                          capture_output=True, text=True, timeout=120, check=False)

    assert done.returncode == 3, done.stderr
    refusals = [line for line in done.stderr.splitlines() if line.startswith(f"{path}:")]
    assert refusals == [
        f"{path}:2: lines[1].sku: required field missing (lines[0] is the first)",
        f"{path}:3: lines[2].quantity: str '2' does not fit int (lines[0] is the first)",
        f"{path}:4: lines[0]: PurchaseLine has no field 'colour' (lines[0] is the first)",
        f"{path}:5: lines[1]: int 7 does not fit a PurchaseLine record (lines[0] is the first)",
        f"{path}:6: lines: dict {{'sku': 'A'}} does not fit null or array",
        f"{path}:7: lines[99999].sku: int 5 does not fit string (lines[0] is the first)",
        f"{path}:9: not JSON the ledger reads: nested too deeply",
    ]
    assert "2 recorded, 0 duplicates, 7 rejected" in done.stderr
    assert "Traceback" not in done.stderr
