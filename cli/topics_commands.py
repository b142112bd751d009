"""Commands of the Kafka topics: create the ledger's topics, explicitly."""

from __future__ import annotations

from typing import Annotated

import typer

from ledger.cli.app import AsJson, Kafka, app, command, err, print_rows, settings
from ledger.cli.intake_commands import DlqTopic, IntakeTopic
from ledger.kafka import topics

topics_app = typer.Typer(
    help="The ledger's Kafka topics: only `topics create`, `serve` and `relay` create them.\n\n"
    "Example: ledger topics create --kafka localhost:9092",
    no_args_is_help=True,
)
app.add_typer(topics_app, name="topics")


@command("create", group=topics_app)
def topics_create(
    kafka: Kafka = None,
    ledger_topic: Annotated[
        str | None, typer.Option("--ledger-topic", help="Topic of the ledger's events (env LEDGER_LEDGER_TOPIC).")
    ] = None,
    intake_topic: IntakeTopic = None,
    dlq_topic: DlqTopic = None,
    partitions: Annotated[
        int | None, typer.Option("--partitions", min=1, help="Partitions of each new topic (env LEDGER_PARTITIONS).")
    ] = None,
    replication_factor: Annotated[
        int | None,
        typer.Option("--replication-factor", min=1, help="Replicas of each new topic (env LEDGER_REPLICATION_FACTOR)."),
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Create the ledger, intake and dead-letter topics that do not exist yet; safe to repeat.

    The ledger and intake topics keep records forever; the dead-letter topic also takes
    records of up to 2 MB. Topics that exist already are left as they are.

    Example: ledger topics create --kafka localhost:9092 --partitions 12
    """
    chosen = {
        "ledger_topic": ledger_topic,
        "intake_topic": intake_topic,
        "dlq_topic": dlq_topic,
        "partitions": partitions,
        "replication_factor": replication_factor,
    }
    config = settings(kafka=kafka).with_(**{k: v for k, v in chosen.items() if v is not None})
    config.kafka.client_options()  # fails early and clearly without --kafka
    made = topics.create(config)
    rows = [(t.name, t.role, "created" if made[t.name] else "exists") for t in topics.ledger_topics(config)]
    print_rows(["topic", "role", "state"], rows, as_json)
    err.print(f"{sum(made.values())} created, {len(made) - sum(made.values())} existed already", highlight=False)
