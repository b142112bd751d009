"""The cost of sealing personal fields: a history in which every fact that can hold personal
data holds it (the worst case), as JSON Lines for `ledger ingest`, plus the seal/open cost
per fact measured alone.

    python benchmarks/sealing.py --events 100000 --out /tmp/personal.jsonl

Time ingest (which also projects) against a build without sealing with farm-bench, e.g.
    farm-bench --vs "sh -c 'rm -rf /tmp/b && exec OLD/ledger ingest F --data-dir /tmp/b'" -- \
        sh -c 'rm -rf /tmp/a && exec NEW/ledger ingest F --data-dir /tmp/a'
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from datetime import timedelta
from pathlib import Path

_REPO = str(Path(__file__).resolve().parents[1])
if _REPO not in sys.path:
    sys.path.insert(0, _REPO)

from benchmarks.pipeline import AS_OF  # noqa: E402
from ledger.contract.sealing import cipher, new_data_key, personal_fields, seal, unseal  # noqa: E402


def facts(count: int, customers: int, seed: int = 1):
    rng = random.Random(seed)
    for i in range(count):
        n = rng.randrange(customers)
        at = (AS_OF - timedelta(minutes=rng.randrange(2 * 365 * 24 * 60))).isoformat()
        base = {"customer_id": f"C{n:06d}", "occurred_at": at, "source": "bench", "source_event_id": str(i)}
        roll = rng.random()
        if roll < 0.15:
            yield {"type": "ProfileUpdated", **base, "name": f"Customer {n} Example", "email": f"c{n}@example.org",
                   "phone": f"+4930{n:08d}", "city": "Berlin", "birth_date": "1980-01-01",
                   "attributes": {"tier": rng.choice(["gold", "silver"])}}
        elif roll < 0.55:
            yield {"type": "ContactLogged", **base, "contact_id": f"K{i}", "channel": "phone", "direction": "inbound",
                   "reason": "delivery late, asked for a call back", "agent_id": f"A{rng.randrange(50)}",
                   "is_complaint": rng.random() < 0.08, "duration_s": rng.randrange(30, 900)}
        elif roll < 0.85:
            yield {"type": "PurchaseMade", **base, "order_id": f"O{i}", "channel": "web", "currency": "EUR",
                   "total_minor": rng.randrange(500, 50_000)}
        else:
            yield {"type": "FeedbackGiven", **base, "kind": "nps", "score": rng.randint(0, 10), "channel": "email",
                   "comment": "friendly, but the parcel came two days late"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    with args.out.open("w") as out:
        for fact in facts(args.events, args.customers):
            out.write(json.dumps(fact) + "\n")
    personal = personal_fields({"fields": [{"name": "reason", "pii": True, "type": ["null", "string"]},
                                           {"name": "agent_id", "pii": True, "type": ["null", "string"]}]})
    record = {"event_id": "0b4e1b8e-64f4-4bd8-9b0b-5a4f2d3b9f10", "customer_id": "C000001",
              "reason": "delivery late, asked for a call back", "agent_id": "A7"}
    key, rounds = cipher(new_data_key()), 100_000  # as writers and projectors hold it
    started = time.perf_counter()
    for _ in range(rounds):
        sealed = seal(record, personal, key)
    sealing = (time.perf_counter() - started) / rounds
    started = time.perf_counter()
    for _ in range(rounds):
        unseal(dict(sealed), personal, key)
    opening = (time.perf_counter() - started) / rounds
    print(f"wrote {args.events:,} facts to {args.out}; "
          f"seal {sealing * 1e6:.1f} µs, open {opening * 1e6:.1f} µs per fact")


if __name__ == "__main__":
    main()
