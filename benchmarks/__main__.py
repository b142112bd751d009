"""Every row of the speed table, side by side in one run, written to docs/benchmarks.md.

    python -m benchmarks all                 # 300k events per row; histories 100k, 300k, 1M, 3M
    python -m benchmarks all --smoke --doc /tmp/b.md   # seconds, for CI: the harness works

Needs the `bench` extra (Quix Streams, matplotlib): pip install -e '.[test,bench]'.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from benchmarks.measure import REPO
from benchmarks.report import write
from benchmarks.suite import Results, history_rows, ingest_row, kafka_rows

FULL_EVENTS = 300_000
FULL_HISTORY = [100_000, 300_000, 1_000_000, 3_000_000]
SMOKE_EVENTS = 2_000
SMOKE_HISTORY = [1_000, 3_000]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["all", "ingest", "kafka", "history"])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks the harness, measures nothing")
    parser.add_argument("--events", type=int, help=f"events per row (default {FULL_EVENTS:,})")
    parser.add_argument("--history", help="history lengths, comma separated (default 100k,300k,1M,3M)")
    parser.add_argument("--doc", type=Path, default=REPO / "docs" / "benchmarks.md")
    parser.add_argument("--no-quix", action="store_true", help="leave out the Quix Streams peer")
    args = parser.parse_args(argv)
    events = args.events or (SMOKE_EVENTS if args.smoke else FULL_EVENTS)
    if args.history:
        sizes = [int(float(s.lower().replace("k", "e3").replace("m", "e6"))) for s in args.history.split(",")]
    else:
        sizes = SMOKE_HISTORY if args.smoke else FULL_HISTORY
    results = Results(events)
    work = Path(tempfile.mkdtemp(prefix="ledger-bench-"))
    try:
        if args.what in ("all", "ingest"):
            ingest_row(results, work, events)
        if args.what in ("all", "kafka"):
            from tests.support.broker import TansuBroker

            with TansuBroker() as broker:
                kafka_rows(results, work, events, broker.bootstrap, quix=not args.no_quix)
        if args.what in ("all", "history"):
            history_rows(results, work, sizes)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    write(results, args.doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
