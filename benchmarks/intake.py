"""Intake throughput: adapters publish with the SDK, the intake records into a fresh store.

    python benchmarks/intake.py --events 100000 --partitions 4 --invalid 0.01

Starts its own Tansu broker (or uses ``--bootstrap HOST:PORT``). Publishes N facts through
``LedgerClient.kafka`` (validated, encoded, batched), plus a fraction of invalid records
(alternately undecodable bytes and facts that break a rule), then runs
``Intake.run_once`` into a fresh store (SQLite, or ``--store``) and prints events/s for
each stage, the raw kafka-python consume rate of the same topic, and the peak memory.
"""

from __future__ import annotations

import argparse
import random
import resource
import sys
import tempfile
import time
import uuid
from pathlib import Path

_REPO = str(Path(__file__).resolve().parents[1])
if _REPO not in sys.path:
    sys.path.insert(0, _REPO)

from kafka import KafkaProducer  # noqa: E402

from benchmarks.kafka_raw import measure_consume  # noqa: E402
from benchmarks.pipeline import facts  # noqa: E402
from ledger.contract.codec import default_codec  # noqa: E402
from ledger.intake.client import LedgerClient  # noqa: E402
from ledger.intake.consumer import Intake  # noqa: E402
from ledger.settings import Settings  # noqa: E402
from ledger.write.application import Ledger  # noqa: E402
from tests.support.broker import TansuBroker, create_topic  # noqa: E402


def publish(settings: Settings, count: int, customers: int) -> float:
    """Send `count` facts through the SDK and wait for every ack; events/s."""
    with LedgerClient.kafka(settings, source="bench") as client:
        started = time.perf_counter()
        for fact in facts(count, customers):
            fields = {k: v for k, v in fact.items() if k not in ("type", "source")}
            client.send(fact["type"], **fields)
        client.flush()
        return count / (time.perf_counter() - started)


def publish_invalid(settings: Settings, count: int) -> None:
    """Undecodable bytes and a rule-breaking fact (NPS 12), alternately."""
    codec = default_codec()
    rng = random.Random(2)
    producer = KafkaProducer(bootstrap_servers=str(settings.kafka), acks="all", linger_ms=5)
    try:
        for i in range(count):
            if i % 2:
                value = rng.randbytes(60)
            else:
                value = codec.encode("FeedbackGiven", {
                    "event_id": str(uuid.uuid4()), "customer_id": f"C{i:06d}",
                    "occurred_at": 1_767_225_600_000_000, "recorded_at": 1_767_225_600_000_000,
                    "source": "bench", "source_event_id": f"bad{i}", "kind": "nps", "score": 12,
                    "channel": "email",
                }, checked=True)
            producer.send(settings.intake_topic, key=f"C{i:06d}".encode(), value=value)
        producer.flush()
    finally:
        producer.close()


def run(args: argparse.Namespace, bootstrap: str) -> None:
    suffix = uuid.uuid4().hex[:8]
    data_dir = Path(tempfile.mkdtemp(prefix="bench-intake-"))
    settings = Settings(
        data_dir=data_dir, kafka=bootstrap, intake_topic=f"bench-intake-{suffix}",
        dlq_topic=f"bench-intake-dlq-{suffix}", batch_size=args.batch_size,
        store=args.store.replace("{suffix}", suffix) if args.store else None,
    )
    create_topic(bootstrap, settings.intake_topic, args.partitions)
    create_topic(bootstrap, settings.dlq_topic, 1)
    invalid = int(args.events * args.invalid)

    sdk_rate = publish(settings, args.events, args.customers)
    publish_invalid(settings, invalid)
    total = args.events + invalid

    ledger = Ledger(settings)
    intake = Intake(settings, ledger)
    started = time.perf_counter()
    stats = intake.run_once()
    elapsed = time.perf_counter() - started
    ledger.close()
    raw_rate = measure_consume(bootstrap, settings.intake_topic, total)

    assert stats.recorded == args.events, stats
    assert stats.dead_letters == invalid, stats
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"events: {args.events} valid + {invalid} invalid on {args.partitions} partitions, "
          f"{args.customers} customers, batch {args.batch_size}, "
          f"{'PostgreSQL' if args.store else 'SQLite'} store")
    print(f"SDK publish (validate, encode, send, acks): {sdk_rate:10,.0f} ev/s")
    print(f"intake (decode, record + position, DLQ):    {total / elapsed:10,.0f} ev/s "
          f"({stats.recorded} recorded, {stats.dead_letters} dead letters, {elapsed:.1f}s)")
    print(f"raw kafka-python consume, same topic:       {raw_rate:10,.0f} ev/s "
          f"(intake = {total / elapsed / raw_rate:.2f}x raw)")
    print(f"peak RSS: {peak_mb:,.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--invalid", type=float, default=0.01, help="fraction of invalid records")
    parser.add_argument("--batch-size", type=int, default=5000)
    parser.add_argument("--bootstrap", help="use this broker instead of starting Tansu")
    parser.add_argument("--store", help="event store URL ({suffix} is replaced by a fresh name), "
                        "e.g. postgresql://postgres@127.0.0.1/test?schema=bench_{suffix}")
    args = parser.parse_args()
    if args.bootstrap:
        run(args, args.bootstrap)
        return
    with TansuBroker() as broker:
        run(args, broker.bootstrap)


if __name__ == "__main__":
    main()
