"""eventsourcing's own batched save of the same facts: the yardstick of `ledger ingest`.

    python -m benchmarks.es_peer FACTS.jsonl STORE.sqlite

Reads the JSON Lines file, applies each fact as an event of a plain eventsourcing aggregate
(one per customer, its fields as the event's state), and saves the touched aggregates once
per 10,000 facts (the chunk `ledger ingest` records in one transaction) into an SQLite file
with eventsourcing's default JSON transcoder. No contract, no rules, no idempotency, no read
models: what a store of these events costs by itself.
"""

from __future__ import annotations

import json
import sys
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event

CHUNK = 10_000


class Customer(Aggregate):
    def __init__(self, customer_id: str) -> None:
        self.customer_id = customer_id
        self.facts = 0

    @staticmethod
    def create_id(customer_id: str) -> UUID:
        return uuid5(NAMESPACE_URL, customer_id)

    @event("Happened")
    def happened(self, fact: dict[str, Any]) -> None:
        self.facts += 1


class Store(Application[UUID]):
    env = {"AGGREGATE_CACHE_MAXSIZE": "100000"}  # noqa: RUF012 - eventsourcing's class setting


def main(facts_path: str, store_path: str) -> None:
    app = Store(env={"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": store_path})
    known: dict[UUID, Customer] = {}
    touched: dict[UUID, Customer] = {}
    count = 0
    with open(facts_path, encoding="utf-8") as lines:
        for line in lines:
            fact = json.loads(line)
            aggregate_id = Customer.create_id(fact["customer_id"])
            customer = known.get(aggregate_id)
            if customer is None:
                customer = known[aggregate_id] = Customer(fact["customer_id"])
            customer.happened(fact)
            touched[aggregate_id] = customer
            count += 1
            if count % CHUNK == 0:
                app.save(*touched.values())
                touched.clear()
    if touched:
        app.save(*touched.values())
    print(json.dumps({"events": count}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
