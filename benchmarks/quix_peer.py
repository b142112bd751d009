"""A Quix Streams peer of the ledger's Kafka projection: a per-customer count and sum of
purchase totals, kept in Quix's RocksDB state, on the ledger's own topic.

    python -m benchmarks.quix_peer BOOTSTRAP TOPIC EVENTS

Prints one JSON line: the whole process's seconds, the seconds from its first message to its
last (the rate "at the margin", without the consumer group's join and the state's recovery,
which Quix pays once per start), and the customers' totals (to check it read what the ledger
read). Run in its own process so its memory and start-up are its own.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
import uuid
from typing import Any

STARTED = time.perf_counter()

from quixstreams import Application  # noqa: E402
from quixstreams.models.serializers import Deserializer  # noqa: E402

from ledger.contract.codec import default_codec  # noqa: E402


class LedgerAvro(Deserializer):
    """The ledger's Avro single-object encoding, read with the contract's newest schemas."""

    def __init__(self) -> None:
        super().__init__()
        self.codec = default_codec()

    def __call__(self, value: bytes, ctx: Any) -> dict[str, Any]:
        _, record = self.codec.decode(value)
        return record


def main(bootstrap: str, topic_name: str, events: int) -> None:
    seen = {"count": 0, "first": 0.0, "last": 0.0}

    def count_and_sum(record: dict[str, Any], state: Any) -> None:
        if not seen["count"]:
            seen["first"] = time.perf_counter()
        seen["count"] += 1
        state.set("count", (state.get("count") or 0) + 1)
        state.set("sum", (state.get("sum") or 0) + (record.get("total_minor") or 0))
        if seen["count"] >= events:
            seen["last"] = time.perf_counter()
            app.stop()

    with tempfile.TemporaryDirectory(prefix="quix-state-") as state_dir:
        app = Application(broker_address=bootstrap, consumer_group=f"quix-peer-{uuid.uuid4().hex[:8]}",
                          auto_offset_reset="earliest", state_dir=state_dir, loglevel="WARNING",
                          consumer_extra_config={"session.timeout.ms": 6000, "heartbeat.interval.ms": 1000})
        topic = app.topic(topic_name, key_deserializer="str", value_deserializer=LedgerAvro())
        app.dataframe(topic).update(count_and_sum, stateful=True)
        app.run()
    import resource

    print(json.dumps({
        "events": seen["count"], "whole_s": time.perf_counter() - STARTED,
        "margin_s": seen["last"] - seen["first"],
        "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
