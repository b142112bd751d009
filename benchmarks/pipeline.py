"""End-to-end rates of the ledger, next to raw kafka-python on the same broker, same run.

    python benchmarks/pipeline.py --events 200000

Records N synthetic facts into a fresh SQLite store, projects them embedded (from the
store's log), relays them to a Tansu topic, projects them again from Kafka into a fresh
data directory, then measures raw produce and consume of N same-sized records. Prints
events/s for each stage, the ratios to the raw rates, and the peak resident memory.
"""

from __future__ import annotations

import argparse
import random
import resource
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

_REPO = str(Path(__file__).resolve().parents[1])
if _REPO not in sys.path:
    sys.path.insert(0, _REPO)

from benchmarks.kafka_raw import make_messages, measure_consume, measure_produce  # noqa: E402
from ledger.kafka import topics  # noqa: E402
from ledger.kafka.relay import Relay  # noqa: E402
from ledger.ops.projecting import project  # noqa: E402
from ledger.settings import Settings  # noqa: E402
from ledger.write.application import Ledger  # noqa: E402
from tests.support.broker import TansuBroker, create_topic  # noqa: E402

AS_OF = datetime(2026, 11, 1, tzinfo=UTC)


def facts(count: int, customers: int, seed: int = 1):
    rng = random.Random(seed)
    left: dict[str, tuple[str, int]] = {}
    """Each customer's last order and what is left of it to refund: a refund is of that one."""
    for i in range(count):
        customer = f"C{rng.randrange(customers):06d}"
        at = (AS_OF - timedelta(minutes=rng.randrange(2 * 365 * 24 * 60))).isoformat()
        base = {"customer_id": customer, "occurred_at": at, "source": "bench", "source_event_id": str(i)}
        roll = rng.random()
        if roll < 0.45:
            channel = rng.choice(["phone", "chat", "email"])
            yield {"type": "ContactLogged", **base, "contact_id": f"K{i}", "channel": channel,
                   "direction": "inbound", "is_complaint": rng.random() < 0.08, "duration_s": rng.randrange(30, 900)}
        elif roll < 0.80:
            total = rng.randrange(500, 50_000)
            left[customer] = (f"O{i}", total)
            yield {"type": "PurchaseMade", **base, "order_id": f"O{i}", "channel": "web", "currency": "EUR",
                   "total_minor": total}
        elif roll < 0.85 and left.get(customer, ("", 0))[1] >= 500:
            order, remaining = left[customer]
            left[customer] = (order, remaining - 500)
            yield {"type": "PurchaseRefunded", **base, "order_id": order, "currency": "EUR", "amount_minor": 500}
        else:
            kind, low, high = rng.choice([("csat", 1, 5), ("nps", 0, 10), ("ces", 1, 7)])
            yield {"type": "FeedbackGiven", **base, "kind": kind, "score": rng.randint(low, high), "channel": "email"}


def timed(label: str, count: int, action) -> float:
    started = time.perf_counter()
    action()
    rate = count / (time.perf_counter() - started)
    print(f"{label:<34} {rate:>10,.0f} ev/s", flush=True)
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--batch-size", type=int, default=Settings.batch_size)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ledger-bench-"))
    all_facts = list(facts(args.events, args.customers))
    with TansuBroker() as broker:
        topic = f"bench-ledger-{uuid.uuid4().hex[:8]}"
        settings = Settings(data_dir=work / "a", kafka=broker.bootstrap, ledger_topic=topic,
                            batch_size=args.batch_size)
        topics.create(settings)
        ledger = Ledger(settings, clock=lambda: AS_OF)
        print(f"{args.events:,} events, {args.customers:,} customers, batches of {args.batch_size:,}")

        def record() -> None:
            for start in range(0, len(all_facts), 5000):
                ledger.record_many(all_facts[start : start + 5000])

        recorded = timed("record (SQLite store)", args.events, record)
        n = ledger.head()
        embedded = timed(
            "project embedded (store log)", n, lambda: project(settings.with_(kafka=None), AS_OF, ledger=ledger)
        )
        relayed = timed("relay store -> Kafka", n, lambda: Relay(settings, ledger).run_once())
        from_kafka = timed("project from Kafka", n, lambda: project(settings.with_(data_dir=work / "c"), AS_OF))

        raw_topic = f"bench-raw-{uuid.uuid4().hex[:8]}"
        create_topic(broker.bootstrap, raw_topic)
        size = len(ledger.log(0, 1)[0].state)
        messages = make_messages(n, customers=args.customers, value_size=size)
        produce = measure_produce(broker.bootstrap, raw_topic, messages)
        print(f"{'raw kafka-python produce':<34} {produce:>10,.0f} ev/s")
        consume = measure_consume(broker.bootstrap, raw_topic, n)
        print(f"{'raw kafka-python consume':<34} {consume:>10,.0f} ev/s")
    print(f"relay / raw produce:              {relayed / produce:.2f}")
    print(f"Kafka projection / raw consume:   {from_kafka / consume:.2f}")
    print(f"embedded projection / record:     {embedded / recorded:.2f}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak resident memory:             {peak:,.0f} MiB")


if __name__ == "__main__":
    main()
