"""Every row of the speed table (issue 12), measured side by side in one run.

Each row runs the ledger and its yardstick on the same data, on the same broker, one after the
other, so that their ratio means something on a shared machine whose absolute rates drift.
Whole commands run in processes of their own (`measure.measured`: wall time and their own peak
memory); the Kafka rows run in this process, timed around the call that does the work, as
`benchmarks/pipeline.py` always has.
"""

from __future__ import annotations

import json
import statistics
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.kafka_raw import make_messages, measure_consume, measure_produce
from benchmarks.measure import LEDGER, measured, python
from benchmarks.pipeline import AS_OF, facts

POSTGRES = "postgresql://postgres@127.0.0.1:5432/test?schema={schema}"


@dataclass
class Results:
    """What one run measured, by row; written to docs/benchmarks.md by `report`."""

    events: int
    started: str = field(default_factory=lambda: datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"))
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)

    def put(self, row: str, **figures: Any) -> None:
        self.rows[row] = figures
        shown = ", ".join(f"{k} {v:,.2f}" if isinstance(v, float) else f"{k} {v}" for k, v in figures.items())
        print(f"{row:<22} {shown}", flush=True)


def write_facts(path: Path, count: int, customers: int) -> Path:
    with path.open("w", encoding="utf-8") as out:
        for fact in facts(count, customers):
            out.write(json.dumps(fact) + "\n")
    return path


def customers_for(events: int) -> int:
    """A shop's customers grow with its history: one per ten events, as in the demo."""
    return max(events // 10, 10)


def ingest_row(results: Results, work: Path, events: int) -> None:
    """`ledger ingest` of JSON Lines into a fresh embedded store with every read model kept
    current, against eventsourcing's batched save of the same facts."""
    source = write_facts(work / "ingest.jsonl", events, customers_for(events))
    peer = measured(python("benchmarks.es_peer", str(source), str(work / "es-peer.sqlite")))
    whole = measured([LEDGER, "ingest", str(source), "--data-dir", str(work / "ingest")])
    record = measured([LEDGER, "ingest", str(source), "--data-dir", str(work / "ingest-only"), "--no-project"])
    results.put("ingest", ledger=whole.rate(events), record_only=record.rate(events),
                eventsourcing=peer.rate(events), ratio=whole.rate(events) / peer.rate(events),
                peak_mib=whole.peak_mib)


def kafka_rows(results: Results, work: Path, events: int, bootstrap: str, *, quix: bool) -> None:
    """Relay and Kafka projection against raw kafka-python (and Quix Streams), on one broker;
    then the intake from Kafka into a PostgreSQL store."""
    from ledger.kafka import topics
    from ledger.kafka.relay import Relay
    from ledger.ops.projecting import project
    from ledger.settings import Settings
    from ledger.write.application import Ledger
    from tests.support.broker import create_topic

    topic = f"bench-ledger-{uuid.uuid4().hex[:8]}"
    settings = Settings(data_dir=work / "kafka-a", kafka=bootstrap, ledger_topic=topic)
    topics.create(settings)
    ledger = Ledger(settings, clock=lambda: AS_OF)
    all_facts = list(facts(events, customers_for(events)))
    for start in range(0, events, 10_000):
        ledger.record_many(all_facts[start : start + 10_000])
    del all_facts
    count = ledger.head()
    relay = _timed(lambda: Relay(settings, ledger).run_once())
    size = len(ledger.log(0, 1)[0].state)
    raw_topic = f"bench-raw-{uuid.uuid4().hex[:8]}"
    create_topic(bootstrap, raw_topic)
    produce = measure_produce(bootstrap, raw_topic, make_messages(count, value_size=size))
    results.put("relay", ledger=count / relay, raw_produce=produce, ratio=count / relay / produce)

    projection = _timed(lambda: project(settings.with_(data_dir=work / "kafka-b"), AS_OF))
    consume = statistics.median(measure_consume(bootstrap, topic, count) for _ in range(3))
    row: dict[str, Any] = {"ledger": count / projection, "raw_consume": consume,
                           "ratio": count / projection / consume}
    if quix:
        peer = json.loads(measured(python("benchmarks.quix_peer", bootstrap, topic, str(count))).stdout)
        row |= {"quix_margin": count / peer["margin_s"], "quix_whole_s": peer["whole_s"],
                "vs_quix": count / projection / (count / peer["margin_s"])}
    results.put("kafka_projection", **row)
    ledger.close()
    intake_row(results, work, events, bootstrap)


def intake_row(results: Results, work: Path, events: int, bootstrap: str) -> None:
    from benchmarks.intake import publish
    from ledger.intake.consumer import Intake
    from ledger.settings import Settings
    from ledger.write.application import Ledger
    from tests.support.broker import create_topic

    suffix = uuid.uuid4().hex[:8]
    settings = Settings(data_dir=work / "intake", kafka=bootstrap, intake_topic=f"bench-intake-{suffix}",
                        dlq_topic=f"bench-dlq-{suffix}", store=POSTGRES.format(schema=f"bench_{suffix}"))
    create_topic(bootstrap, settings.intake_topic)
    create_topic(bootstrap, settings.dlq_topic, 1)
    publish(settings, events, customers_for(events))
    ledger = Ledger(settings)
    try:
        stats = Intake(settings, ledger).run_once()
        assert stats.recorded == events, stats
        results.put("intake_postgres", ledger=stats.rate)
    finally:
        ledger.close()
        _drop_schema(f"bench_{suffix}")


def history_rows(results: Results, work: Path, sizes: list[int]) -> None:
    """For each history length: record it (no projection), then replay every read model from
    it in a fresh process, for its time and its peak memory; then the two queries an analyst
    runs most, on its published read models."""
    for size in sizes:
        source = write_facts(work / f"history-{size}.jsonl", size, customers_for(size))
        data_dir = work / f"history-{size}"
        record = measured([LEDGER, "ingest", str(source), "--data-dir", str(data_dir), "--no-project"])
        source.unlink()
        replay = measured([LEDGER, "replay", "--data-dir", str(data_dir)])
        point = {"events": size, "record": record.rate(size), "record_peak_mib": record.peak_mib,
                 "replay_s": replay.seconds, "replay": replay.rate(size), "replay_peak_mib": replay.peak_mib,
                 **query_latencies(data_dir)}
        results.history.append(point)
        print(f"history {size:>10,}: record {point['record']:,.0f} ev/s ({record.peak_mib:,.0f} MiB), replay "
              f"{replay.seconds:.1f} s = {point['replay']:,.0f} ev/s ({replay.peak_mib:,.0f} MiB), timeline "
              f"{point['timeline_ms']:.1f} ms, segment sizes {point['segment_sizes_ms']:.1f} ms", flush=True)
        if size != sizes[-1]:
            _remove(data_dir)
    query_rows(results, work / f"history-{sizes[-1]}", sizes[-1])


QUERIES = {
    "timeline": ("SELECT occurred_at, event_type, channel, total_minor FROM events "
                 "WHERE customer_id = 'C000123' ORDER BY occurred_at"),
    "segment_sizes": "SELECT segment, count(*) AS customers FROM segments GROUP BY segment ORDER BY segment",
}
"""A customer's timeline and the segment sizes, as an analyst asks them."""


def query_latencies(data_dir: Path) -> dict[str, float]:
    """In-process latency of each query (open the published file, check, run), median of 20."""
    from ledger.projection.query import query
    from ledger.settings import Settings

    path = Settings(data_dir=data_dir).published_path
    latencies = {}
    for name, sql in QUERIES.items():
        query(path, sql)  # the first opening reads the file's metadata into the page cache
        times = []
        for _ in range(20):
            started = time.perf_counter()
            query(path, sql)
            times.append(time.perf_counter() - started)
        latencies[f"{name}_ms"] = statistics.median(times) * 1000
    return latencies


def query_rows(results: Results, data_dir: Path, events: int) -> None:
    """The queries' latency on the 1M-event history (the target's) when there is one, else
    the longest; and the whole `ledger query` command once (Python's start-up and imports
    included) on the longest."""
    at = next((p for p in results.history if p["events"] == 1_000_000), results.history[-1])
    for name, sql in QUERIES.items():
        whole = measured([LEDGER, "query", sql, "--data-dir", str(data_dir)])
        results.put(f"query_{name}", events=at["events"], median_ms=at[f"{name}_ms"],
                    command_events=events, command_ms=whole.seconds * 1000)


def _timed(action: Callable[[], Any]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def _drop_schema(schema: str) -> None:
    import psycopg

    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/test", autocommit=True) as connection:
        connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _remove(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)
