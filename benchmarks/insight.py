"""`ledger insight churn|basket|clusters` on a long history, next to `ledger project` with nothing new.

    python -m benchmarks.insight --events 1000000            # ~66k demo customers, kept in a temporary dir
    python -m benchmarks.insight --events 1000000 --data-dir /tmp/insight-1m --runs 5   # built once, reused

The history is the demo's (`ledger.ops.demo.generate`, about 15 facts a customer): the models
need what the benchmarks' plain facts lack (profiling consent, order lines, fading leavers). It
is written as JSON Lines, recorded with `ledger ingest --no-project` and projected by `ledger
replay`, as `benchmarks.suite.history_rows` does. Then each command runs `--runs` times in a
process of its own (`measure.measured`): the median wall time and the largest peak memory. Every
insight command catches the read models up and publishes them first, so `ledger project --once`
with nothing new is its floor: what is left above it is the model's own cost.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

_REPO = str(Path(__file__).resolve().parents[1])
if _REPO not in sys.path:
    sys.path.insert(0, _REPO)

from benchmarks.measure import LEDGER, Measured, measured  # noqa: E402

FACTS_PER_CUSTOMER = 15
"""About what `ledger demo` records per customer (30,156 facts for its 2,000)."""

COMMANDS = {
    "project --once (floor)": ["project", "--once"],
    "insight churn": ["insight", "churn"],
    "insight basket": ["insight", "basket"],
    "insight clusters": ["insight", "clusters"],
    "insight churn --train": ["insight", "churn", "--train"],
}
ENV = {"PYTHONWARNINGS": "ignore"}


def write_facts(path: Path, customers: int, seed: int) -> int:
    """The demo's history of `customers` customers, ending today at midnight, as JSON Lines."""
    from ledger.ops.demo import generate

    end = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    count = 0
    with path.open("w", encoding="utf-8") as out:
        for fact in generate(customers=customers, seed=seed, end=end):
            out.write(json.dumps(fact, default=lambda v: v.isoformat()) + "\n")
            count += 1
    return count


def build(data_dir: Path, events: int, seed: int) -> None:
    """Record and project the history into `data_dir`, printing what each step took."""
    customers = max(events // FACTS_PER_CUSTOMER, 10)
    data_dir.mkdir(parents=True, exist_ok=True)
    source = data_dir.parent / f"{data_dir.name}.jsonl"
    try:
        count = write_facts(source, customers, seed)
        record = measured([LEDGER, "ingest", str(source), "--data-dir", str(data_dir), "--no-project"], env=ENV)
    finally:
        source.unlink(missing_ok=True)
    replay = measured([LEDGER, "replay", "--data-dir", str(data_dir)], env=ENV)
    print(f"built {count:,} facts of {customers:,} customers in {data_dir}: record {record.seconds:.1f} s "
          f"({record.rate(count):,.0f} ev/s, {record.peak_mib:,.0f} MiB), replay {replay.seconds:.1f} s "
          f"({replay.rate(count):,.0f} ev/s, {replay.peak_mib:,.0f} MiB)", flush=True)


def events_in(data_dir: Path) -> int:
    out = measured([LEDGER, "query", "SELECT count(*) AS n FROM events", "--data-dir", str(data_dir), "--json"],
                   env=ENV).stdout
    return int(json.loads(out)[0]["n"])


def time_commands(data_dir: Path, runs: int) -> dict[str, list[Measured]]:
    """Each command `runs` times after one warm-up run, in turn (A B C ... A B C ...): a drift
    of the shared machine's speed then touches every command alike."""
    times: dict[str, list[Measured]] = {name: [] for name in COMMANDS}
    for round_ in range(runs + 1):
        for name, args in COMMANDS.items():
            result = measured([LEDGER, *args, "--data-dir", str(data_dir)], env=ENV)
            if round_:
                times[name].append(result)
    return times


def report(times: dict[str, list[Measured]], events: int) -> None:
    floor = statistics.median(m.seconds for m in times["project --once (floor)"])
    print(f"\n{events:,} events, {len(next(iter(times.values())))} runs each (whole commands, start-up included)")
    print(f"{'command':<24} {'median s':>9} {'min s':>7} {'max s':>7} {'over floor s':>13} {'peak MiB':>9}")
    for name, results in times.items():
        seconds = [m.seconds for m in results]
        median = statistics.median(seconds)
        over = "-" if "--train" in name else f"{median - floor:.2f}"  # --train reads the published copy alone
        print(f"{name:<24} {median:>9.2f} {min(seconds):>7.2f} {max(seconds):>7.2f} {over:>13} "
              f"{max(m.peak_mib for m in results):>9,.0f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.insight", description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="about this many facts (default 1M)")
    parser.add_argument("--runs", type=int, default=3, help="timed runs per command, after one warm-up")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--data-dir", type=Path, help="build here if empty, else reuse (kept afterwards)")
    args = parser.parse_args(argv)
    work = None if args.data_dir else Path(tempfile.mkdtemp(prefix="ledger-insight-bench-"))
    data_dir = args.data_dir or work / "history"
    try:
        if not (data_dir.exists() and any(data_dir.iterdir())):
            build(data_dir, args.events, args.seed)
        report(time_commands(data_dir, args.runs), events_in(data_dir))
    finally:
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
