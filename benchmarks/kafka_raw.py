"""Raw kafka-python rates: how fast small events can be produced and consumed, with no decoding.

    python benchmarks/kafka_raw.py --events 300000 --partitions 4

Starts its own Tansu broker (or uses ``--bootstrap HOST:PORT``), produces N Avro-sized events
keyed by customer id, then reads them all back with one consumer. Other benchmarks import
``measure_produce`` and ``measure_consume`` to print these raw rates next to their own.
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

_REPO = str(Path(__file__).resolve().parents[1])
if _REPO not in sys.path:
    sys.path.insert(0, _REPO)
from tests.support.broker import TansuBroker, create_topic  # noqa: E402

# Key, value and optionally headers, as given to KafkaProducer.send.
Message = tuple[bytes, bytes] | tuple[bytes, bytes, list[tuple[str, bytes]]]

# send() costs tens of microseconds of Python per record whatever the settings; batching
# (linger, large batches) still gave ~40% over the defaults (linger 0, 16 KiB batches).
PRODUCER_OPTIONS = dict(
    acks="all",
    enable_idempotence=True,
    compression_type=None,
    linger_ms=20,
    batch_size=512 * 1024,
    max_request_size=8 * 1024 * 1024,
)

# Parsing records in Python is the bottleneck, not the fetch. Measured: 1 MiB per partition
# was no slower than 4 or 16 MiB (which fetch a whole 300k topic in one response before any
# parsing starts); max_poll_records above the default 500 saves per-poll overhead.
CONSUMER_OPTIONS = dict(
    enable_auto_commit=False,
    auto_offset_reset="earliest",
    fetch_min_bytes=1,
    fetch_max_wait_ms=100,
    fetch_max_bytes=64 * 1024 * 1024,
    max_partition_fetch_bytes=1024 * 1024,
    receive_buffer_bytes=4 * 1024 * 1024,
    max_poll_records=10_000,
)

# What a single-object-encoded Avro event looks like on the wire: marker, fingerprint, body.
_AVRO_MARKER = b"\xc3\x01"


def crc32c_implementation() -> str:
    """Which CRC-32C kafka-python checks record batches with.

    kafka.record.util binds the ``crc32c`` C extension (if importable) as the default argument
    of ``calc_crc32c`` at import time; otherwise it falls back to a pure-Python table (measured
    ~5 MB/s against ~10 GB/s), which makes consuming several times slower.
    """
    from kafka.record import util

    implementation = util.calc_crc32c.__defaults__[0]
    module = getattr(implementation, "__module__", None) or type(implementation).__module__
    return f"{module}.{implementation.__name__}"


def crc32c_is_native() -> bool:
    from kafka.record import util

    try:
        import crc32c
    except ImportError:
        return False
    return util.calc_crc32c.__defaults__[0] is crc32c.crc32c


def make_messages(
    count: int,
    *,
    customers: int = 10_000,
    value_size: int = 150,
    event_type: bytes | None = b"ContactLogged",
    seed: int = 1,
) -> list[Message]:
    """`count` events of `value_size` bytes, keyed by one of `customers` customer ids."""
    rng = random.Random(seed)
    body_size = max(value_size - len(_AVRO_MARKER) - 8, 0)
    pool = rng.randbytes(body_size + 4096)
    fingerprint = rng.randbytes(8)
    headers = [("type", event_type)] if event_type is not None else None
    messages: list[Message] = []
    for i in range(count):
        key = f"customer-{rng.randrange(customers):06d}".encode()
        start = i % 4096
        value = _AVRO_MARKER + fingerprint + pool[start : start + body_size]
        messages.append((key, value, headers) if headers else (key, value))
    return messages


def measure_produce(bootstrap: str, topic: str, messages: Sequence[Message]) -> float:
    """Send every message (acks=all, idempotent, batched) and wait for all acks; events/s."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, **PRODUCER_OPTIONS)
    try:
        producer.partitions_for(topic)  # metadata fetched before the clock starts
        send = producer.send
        started = time.perf_counter()
        for message in messages:
            headers = message[2] if len(message) > 2 else None
            send(topic, key=message[0], value=message[1], headers=headers)
        producer.flush()
        elapsed = time.perf_counter() - started
    finally:
        producer.close()
    return len(messages) / elapsed


def measure_consume(bootstrap: str, topic: str, expected: int, *, timeout_s: float = 300) -> float:
    """Read `expected` records from the start of every partition with one consumer; events/s.

    Partitions are assigned, not subscribed: a group join would only add its delay.
    """
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, **CONSUMER_OPTIONS)
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            raise RuntimeError(f"topic {topic!r} does not exist on {bootstrap}")
        consumer.assign([TopicPartition(topic, p) for p in sorted(partitions)])
        consumer.seek_to_beginning()
        count = 0
        max_records = CONSUMER_OPTIONS["max_poll_records"]
        started = time.perf_counter()
        deadline = started + timeout_s
        while count < expected:
            for records in consumer.poll(timeout_ms=200, max_records=max_records).values():
                count += len(records)
            if time.perf_counter() > deadline:
                raise RuntimeError(f"read {count} of {expected} records in {timeout_s}s")
        elapsed = time.perf_counter() - started
    finally:
        consumer.close()
    return count / elapsed


def run(args: argparse.Namespace, bootstrap: str) -> None:
    topic = f"bench-raw-{uuid.uuid4().hex[:8]}"
    create_topic(bootstrap, topic, args.partitions)
    event_type = None if args.no_headers else b"ContactLogged"
    messages = make_messages(
        args.events, customers=args.customers, value_size=args.value_size, event_type=event_type
    )
    events = args.events
    headers = "no headers" if args.no_headers else "a type header"
    print(
        f"topic {topic}: {events} events of {args.value_size} bytes with {headers},"
        f" {args.customers} customers, {args.partitions} partitions",
        flush=True,
    )
    produce_rate = measure_produce(bootstrap, topic, messages)
    print(f"produce  {produce_rate:>10,.0f} ev/s", flush=True)
    # The consumer's garbage collections should not walk the producer's input.
    del messages
    gc.collect()
    # Consume rates on these 2-core VMs vary by ±20% run to run: read the topic a few times.
    rates = []
    for _ in range(args.repeat):
        rates.append(measure_consume(bootstrap, topic, events))
        print(f"consume  {rates[-1]:>10,.0f} ev/s", flush=True)
    if len(rates) > 1:
        print(f"consume  {statistics.median(rates):>10,.0f} ev/s median of {len(rates)}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--value-size", type=int, default=150)
    parser.add_argument("--repeat", type=int, default=3, help="consume the topic this many times")
    parser.add_argument(
        "--no-headers", action="store_true", help="send no event-type header with each event"
    )
    parser.add_argument(
        "--bootstrap", help="use this broker (HOST:PORT) instead of starting a Tansu broker"
    )
    args = parser.parse_args(argv)

    print(f"crc32c: {crc32c_implementation()}")
    if not crc32c_is_native():
        print("kafka-python is using its pure-Python CRC-32C; install crc32c", file=sys.stderr)
        return 1

    if args.bootstrap:
        run(args, args.bootstrap)
        return 0

    with TansuBroker() as broker:
        print(f"broker: Tansu at {broker.bootstrap}")
        run(args, broker.bootstrap)
    return 0


if __name__ == "__main__":
    sys.exit(main())
