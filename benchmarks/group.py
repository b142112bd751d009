"""Projectors in a consumer group: throughput with 1, 2 and 3 processes, and the lake's cost.

    python -m benchmarks.group --events 120000

Records N synthetic facts into a SQLite store and relays them to a Tansu topic of 6
partitions. Then, each from a fresh lake (a PostgreSQL database of its own) and fresh data
directories, side by side in one run:

- the single file: one `ledger project --once` into readmodels.duckdb;
- the lake, one projector: the same into a DuckLake (projection.store = ducklake);
- the group with 1, 2 and 3 `ledger project --once` processes started together
  (projection.projector_group), timed until the last one exits, when the analysts' tables
  hold every event.

Prints wall seconds, events/s and each figure against the single file, and each process's
peak memory. A group's wall time includes joining the group (Tansu answers a join after
about half the session timeout, 10 s) and every combine.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

_REPO = str(Path(__file__).resolve().parents[1])
if _REPO not in sys.path:
    sys.path.insert(0, _REPO)

from benchmarks.measure import measured  # noqa: E402
from benchmarks.pipeline import AS_OF, facts  # noqa: E402
from ledger.kafka import topics  # noqa: E402
from ledger.kafka.relay import Relay  # noqa: E402
from ledger.settings import Settings  # noqa: E402
from ledger.write.application import Ledger  # noqa: E402
from tests.support.broker import TansuBroker  # noqa: E402
from tests.support.lakes import new_catalog  # noqa: E402

PARTITIONS = 6


def ledger_env(settings: Settings, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    return {**env, "LEDGER_KAFKA": str(settings.kafka), "LEDGER_STORE": settings.store_url,
            "LEDGER_LEDGER_TOPIC": settings.kafka.ledger_topic, **extra}


def project_once(data: Path) -> list[str]:
    return [sys.executable, "-m", "ledger.cli", "project", "--once", "--as-of", AS_OF.isoformat(),
            "--data-dir", str(data)]


def group(settings: Settings, work: Path, members: int) -> tuple[float, list[float]]:
    """`members` processes of one group started together: (wall seconds to the last exit, peaks)."""
    with new_catalog("lake_bench") as url:
        env = ledger_env(settings, LEDGER_PROJECTOR_GROUP="true", LEDGER_READMODEL_STORE="ducklake",
                         LEDGER_LAKE_CATALOG=url, LEDGER_LAKE_DATA=str(work / f"lake-{members}"),
                         LEDGER_CONSUMER_GROUP=f"bench-{uuid.uuid4().hex[:8]}")
        started = time.perf_counter()
        peaks: list[float] = []
        with tempfile.TemporaryDirectory() as logs:
            runs = [subprocess.Popen(
                [sys.executable, "-c", "import sys; from benchmarks.measure import measured; "
                 "m = measured(sys.argv[1:]); print(m.peak_mib)", *project_once(work / f"g{members}-{n}")],
                cwd=_REPO, env=env, stdout=subprocess.PIPE, stderr=open(Path(logs) / f"{n}.log", "wb"))
                for n in range(members)]
            for n, process in enumerate(runs):
                out, _ = process.communicate()
                if process.returncode != 0:
                    raise RuntimeError(f"member {n} failed:\n{(Path(logs) / f'{n}.log').read_text()[-3000:]}")
                peaks.append(float(out.decode().strip().splitlines()[-1]))
        return time.perf_counter() - started, peaks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=120_000)
    parser.add_argument("--customers", type=int, default=12_000)
    parser.add_argument("--members", type=int, nargs="*", default=[1, 2, 3])
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ledger-bench-group-"))
    with TansuBroker() as broker:
        settings = Settings(data_dir=work / "writer", kafka=broker.bootstrap, partitions=PARTITIONS,
                            ledger_topic=f"bench-group-{uuid.uuid4().hex[:8]}")
        topics.create(settings)
        ledger = Ledger(settings, clock=lambda: AS_OF)
        every = list(facts(args.events, args.customers))
        for start in range(0, len(every), 5000):
            ledger.record_many(every[start:start + 5000])
        Relay(settings, ledger).run_once()
        n = ledger.head()
        print(f"{n:,} events, {args.customers:,} customers, {PARTITIONS} partitions; 2 cores")
        rows: list[tuple[str, float, str]] = []
        single = measured(project_once(work / "single"), env=ledger_env(settings))
        rows.append(("single file, one process", single.seconds, f"{single.peak_mib:,.0f}"))
        with new_catalog("lake_bench") as url:
            lake = measured(project_once(work / "lake"), env=ledger_env(
                settings, LEDGER_READMODEL_STORE="ducklake", LEDGER_LAKE_CATALOG=url,
                LEDGER_LAKE_DATA=str(work / "lake-single")))
        rows.append(("lake, one process", lake.seconds, f"{lake.peak_mib:,.0f}"))
        for members in args.members:
            seconds, peaks = group(settings, work, members)
            rows.append((f"group of {members}", seconds, " / ".join(f"{p:,.0f}" for p in peaks)))
    print(f"{'':<26} {'wall s':>8} {'events/s':>10} {'vs file':>8}  peak MiB per process")
    for label, seconds, peak in rows:
        print(f"{label:<26} {seconds:>8.1f} {n / seconds:>10,.0f} {single.seconds / seconds:>7.2f}x  {peak}")


if __name__ == "__main__":
    main()
