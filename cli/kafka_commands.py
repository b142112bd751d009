"""Commands of the production path: relay and serve (both create missing topics first)."""

from __future__ import annotations

import threading
from enum import Enum
from typing import Annotated

import typer

from ledger.cli.app import AsJson, DataDir, Kafka, Store, command, err, print_rows, settings
from ledger.cli.intake_commands import dlq_app
from ledger.errors import SettingsError
from ledger.kafka import topics
from ledger.kafka.parking import COLUMNS as PARKED_COLUMNS
from ledger.kafka.parking import relay_parked
from ledger.kafka.relay import Relay
from ledger.ops import logs
from ledger.ops.serve import PART_NAMES, parts
from ledger.ops.serve import serve as run_serve
from ledger.ops.signals import stop_on_signals
from ledger.settings.sections import LOG_FORMATS, LOG_LEVELS
from ledger.write.application import Ledger

LogLevel = Enum("LogLevel", {name: name for name in LOG_LEVELS}, type=str)  # type: ignore[misc]
LogFormat = Enum("LogFormat", {name: name for name in LOG_FORMATS}, type=str)  # type: ignore[misc]


@command()
def relay(
    once: Annotated[bool, typer.Option("--once", help="Stop when everything recorded so far is on the topic.")] = False,
    from_start: Annotated[
        bool,
        typer.Option(
            "--from-start",
            help="Republish every event from the first one, without asking for confirmation: for a topic "
            "that lost its records, or to send again what was parked once the topic's limit was raised. "
            "Events already on the topic are sent again; projectors drop the repeats.",
        ),
    ] = False,
    data_dir: DataDir = None,
    store: Store = None,
    kafka: Kafka = None,
) -> None:
    """Publish the store's events to the Kafka ledger topic, in order, from the stored position.

    Creates the ledger's topics that do not exist yet, as `ledger topics create` does. One relay
    per topic: a second one is refused (exit code 4). A topic that went backwards or disappeared
    (emptied, recreated, a broker restarted without its data) is noticed and republished from
    the store. An event Kafka refuses for its size or content is parked (`ledger dlq
    relay-parked`) and the next ones go on.

    Example: ledger relay --once --kafka localhost:9092 --store postgresql://postgres@db/ledger

    Also: ledger relay --once --from-start --kafka localhost:9092 (republish everything)
    """
    config = settings(data_dir, store, kafka)
    config.kafka.client_options()  # fails early and clearly without --kafka
    topics.create(config)
    publisher = Relay(config, Ledger(config))
    if once:
        stats = publisher.run_once(from_start=from_start)
    else:
        stop = threading.Event()
        with stop_on_signals(stop):
            stats = publisher.run(stop, from_start=from_start)
    extra = "".join(
        f"; {count} {what}" for count, what in ((stats.parked, "parked"), (stats.resets, "republished from the start"))
        if count
    )
    err.print(
        f"relayed {stats.sent} events in {stats.batches} batches ({stats.rate:,.0f}/s); "
        f"position {publisher.position()}{extra}",
        highlight=False, markup=False,
    )


_RELAY_PARKED_COLUMNS = ["notification_id", "event_type", "customer_id", "size_bytes", "reason", "parked_at"]
"""What a person sees; --json gives the event_id too, and times in full."""


@command("relay-parked", group=dlq_app)
def dlq_relay_parked(
    as_json: AsJson = False,
    data_dir: DataDir = None,
    store: Store = None,
) -> None:
    """List the events the relay parked, oldest first: recorded in the store, but refused by
    Kafka for their size or content, so never published to the ledger topic (with the reason).

    Reads the event store only; changes nothing. Once the cause is fixed (the topic's
    max.message.bytes raised, for instance), `ledger relay --from-start` sends them again, and
    those Kafka accepts leave this list.

    Example: ledger dlq relay-parked --store postgresql://postgres@db/ledger
    """
    config = settings(data_dir, store)
    parked = relay_parked(config)
    if as_json:
        print_rows(list(PARKED_COLUMNS), [tuple(p.as_dict().values()) for p in parked], as_json=True)
        return
    rows = [
        (p.notification_id, p.event_type, p.customer_id, p.size_bytes, p.reason, p.parked_at.isoformat()[:19])
        for p in parked
    ]
    print_rows(_RELAY_PARKED_COLUMNS, rows, as_json=False, title=f"Parked by the relay of {config.kafka.ledger_topic}")
    err.print(f"{len(parked)} parked events", highlight=False, markup=False)


@command()
def serve(
    only: Annotated[
        list[str] | None,
        typer.Option("--only", help=f"Run only this part ({', '.join(PART_NAMES)}); repeatable."),
    ] = None,
    log_level: Annotated[
        LogLevel | None,
        typer.Option("--log-level", help="What serve logs on stderr (env LEDGER_LOG_LEVEL; default info).",
                     case_sensitive=False),
    ] = None,
    log_format: Annotated[
        LogFormat | None,
        typer.Option("--log-format", help="text, or json: one object per line (env LEDGER_LOG_FORMAT).",
                     case_sensitive=False),
    ] = None,
    metrics_port: Annotated[
        str | None,
        typer.Option("--metrics-port", help="Port of /metrics, /healthz and /readyz (env LEDGER_METRICS_PORT; "
                     "default 9464; 0 picks a free one; off runs no HTTP server)."),
    ] = None,
    metrics_host: Annotated[
        str | None,
        typer.Option("--metrics-host", help="Address they listen on (env LEDGER_METRICS_HOST; default 127.0.0.1)."),
    ] = None,
    data_dir: DataDir = None,
    store: Store = None,
    kafka: Kafka = None,
) -> None:
    """Run relay, intake and projector together until SIGTERM or SIGINT (embedded: projector only).

    With Kafka, creates the ledger's topics that do not exist yet, as `ledger topics create` does.
    Logs on stderr what starts and stops and each projector round and relay batch; serves
    Prometheus metrics on /metrics and health on /healthz and /readyz (docs/operators.md).

    Example: ledger serve --kafka localhost:9092 --store postgresql://postgres@db/ledger

    Also: ledger serve --only intake --kafka localhost:9092 --log-format json --metrics-port 9465
    """
    config = settings(data_dir, store, kafka)
    flags: dict[str, object] = {"log_level": log_level and log_level.value,
                                "log_format": log_format and log_format.value, "metrics_host": metrics_host}
    flags = {name: value for name, value in flags.items() if value is not None}
    if metrics_port is not None:
        flags["metrics_port"] = _port(metrics_port)  # None (off) included: it overrides the variable
    config = config.with_(**flags)
    chosen = parts(config, only or PART_NAMES)
    handler = logs.configure(config.serve.log_level, config.serve.log_format)
    try:
        stop = threading.Event()
        with stop_on_signals(stop):
            run_serve(config, stop, chosen)
    finally:
        logs.unconfigure(handler)


def _port(text: str) -> int | None:
    """--metrics-port: a port, 0 (any free one) or off; anything else is a usage error (exit 2)."""
    if text.strip().lower() == "off":
        return None
    if not (text.strip().isascii() and text.strip().isdigit() and int(text) <= 65535):
        raise SettingsError(f"--metrics-port must be a port number (0 to 65535, 0 picks a free one) or off, "
                            f"got {text!r}")
    return int(text)
