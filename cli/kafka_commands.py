"""Commands of the production path: relay and serve (both create missing topics first)."""

from __future__ import annotations

import threading
from typing import Annotated

import typer

from ledger.cli.app import DataDir, Kafka, Store, command, err, settings
from ledger.kafka import topics
from ledger.kafka.relay import Relay
from ledger.ops.serve import PART_NAMES, parts
from ledger.ops.serve import serve as run_serve
from ledger.ops.signals import stop_on_signals
from ledger.write.application import Ledger


@command()
def relay(
    once: Annotated[bool, typer.Option("--once", help="Stop when everything recorded so far is on the topic.")] = False,
    data_dir: DataDir = None,
    store: Store = None,
    kafka: Kafka = None,
) -> None:
    """Publish the store's events to the Kafka ledger topic, in order, from the stored position.

    Creates the ledger's topics that do not exist yet, as `ledger topics create` does.

    Example: ledger relay --once --kafka localhost:9092 --store postgresql://postgres@db/ledger
    """
    config = settings(data_dir, store, kafka)
    config.kafka.client_options()  # fails early and clearly without --kafka
    topics.create(config)
    publisher = Relay(config, Ledger(config))
    if once:
        stats = publisher.run_once()
    else:
        stop = threading.Event()
        with stop_on_signals(stop):
            stats = publisher.run(stop)
    err.print(
        f"relayed {stats.sent} events in {stats.batches} batches ({stats.rate:,.0f}/s); "
        f"position {publisher.position()}",
        highlight=False,
    )


@command()
def serve(
    only: Annotated[
        list[str] | None,
        typer.Option("--only", help=f"Run only this part ({', '.join(PART_NAMES)}); repeatable."),
    ] = None,
    data_dir: DataDir = None,
    store: Store = None,
    kafka: Kafka = None,
) -> None:
    """Run relay, intake and projector together until SIGTERM or SIGINT (embedded: projector only).

    With Kafka, creates the ledger's topics that do not exist yet, as `ledger topics create` does.

    Example: ledger serve --kafka localhost:9092 --store postgresql://postgres@db/ledger

    Also: ledger serve --only intake --kafka localhost:9092 (one part per process)
    """
    config = settings(data_dir, store, kafka)
    chosen = parts(config, only or PART_NAMES)
    stop = threading.Event()
    with stop_on_signals(stop):
        run_serve(config, stop, chosen)
    err.print("stopped", highlight=False)
