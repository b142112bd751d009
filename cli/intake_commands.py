"""Commands of the intake: ingest (files, or the Kafka intake topic) and dlq (dead letters)."""

from __future__ import annotations

from contextlib import closing
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import DownloadColumn, TimeRemainingColumn

from ledger.cli.app import (
    EXIT_REJECTED,
    AsJson,
    DataDir,
    Kafka,
    Store,
    app,
    command,
    err,
    out,
    print_mapping,
    print_rows,
    printable,
    progress_bar,
    settings,
)
from ledger.intake import dead_letters as dlq
from ledger.intake.ingest import FactFile, IngestReport, Rejection, ingest
from ledger.ops.projecting import project_if_embedded, recording
from ledger.projection.parked import LISTED as PARKED_LISTED
from ledger.projection.parked import parked_rows
from ledger.projection.query import open_for_reading, published
from ledger.settings import Settings
from ledger.write.application import Ledger

IntakeTopic = Annotated[
    str | None,
    typer.Option("--intake-topic", help="Topic adapters publish to (env LEDGER_INTAKE_TOPIC)."),
]
DlqTopic = Annotated[
    str | None,
    typer.Option("--dlq-topic", help="Topic of the dead letters (env LEDGER_DLQ_TOPIC)."),
]


def kafka_settings(
    kafka: str | None,
    intake_topic: str | None = None,
    dlq_topic: str | None = None,
    data_dir: Path | None = None,
    store: str | None = None,
) -> Settings:
    config = settings(data_dir, store, kafka)
    topics = {"intake_topic": intake_topic, "dlq_topic": dlq_topic}
    config = config.with_(**{name: value for name, value in topics.items() if value})
    config.kafka.client_options()  # fails early and clearly without --kafka
    return config


@command("ingest")
def ingest_(
    file: Annotated[
        Path | None,
        typer.Argument(
            help="JSON Lines (one event per line with its `type`) or CSV (.csv: a header row "
            "of schema fields, one event type per file)."
        ),
    ] = None,
    event_type: Annotated[
        str | None,
        typer.Option("--type", help="The event type of a CSV file's rows (or a `type` column)."),
    ] = None,
    from_kafka: Annotated[
        bool,
        typer.Option(
            "--from-kafka",
            help="Instead of a file, record what adapters published on the intake topic, up to "
            "its end when this began; refused records go to the dead-letter topic.",
        ),
    ] = False,
    no_project: Annotated[
        bool, typer.Option("--no-project", help="Only record; leave the read models as they are.")
    ] = False,
    data_dir: DataDir = None,
    store: Store = None,
    kafka: Kafka = None,
    intake_topic: IntakeTopic = None,
    dlq_topic: DlqTopic = None,
) -> None:
    """Record every valid event of a file (JSON Lines or CSV) or of the Kafka intake topic.

    Reports how many were recorded, already there (duplicates) and rejected, names each
    rejected line with its reason, and exits 3 if any was rejected (or dead-lettered).

    Example: ledger ingest contacts.jsonl --data-dir ./ledger-data

    Also: ledger ingest feedback.csv --type FeedbackGiven
    and:  ledger ingest --from-kafka --kafka localhost:9092
    """
    if from_kafka == (file is not None):
        raise typer.BadParameter("give a FILE or --from-kafka, not both and not neither")
    if from_kafka:
        _ingest_from_kafka(kafka_settings(kafka, intake_topic, dlq_topic, data_dir, store))
        return
    config = settings(data_dir, store, kafka)
    assert file is not None
    facts = FactFile(file, event_type)

    def show(rejection: Rejection) -> None:
        err.print(f"{file}:{rejection.line}: {rejection.reason}", highlight=False, markup=False)

    with recording(config, then_project=not no_project):
        with closing(Ledger(config)) as ledger:
            with progress_bar(DownloadColumn(), TimeRemainingColumn()) as bar:
                task = bar.add_task(printable(f"ingesting {file.name}"), total=facts.size)
                report: IngestReport = ingest(
                    ledger,
                    facts,
                    progress=lambda _: bar.update(task, completed=facts.position()),
                    on_rejection=show,
                )
            err.print(report.summary(), highlight=False)
            if not no_project:
                project_if_embedded(config, ledger)
    if report.rejected_count:
        raise typer.Exit(EXIT_REJECTED)


def _ingest_from_kafka(config: Settings) -> None:
    from ledger.intake.consumer import Intake

    stats = Intake(config, Ledger(config)).run_once()
    err.print(
        f"{stats.recorded} recorded, {stats.duplicates} duplicates, {stats.waiting} waiting for their order, "
        f"{stats.dead_letters} rejected "
        f"(sent to {config.kafka.dlq_topic}) of {stats.read} read from {config.kafka.intake_topic} "
        f"in {stats.seconds:.1f}s ({stats.rate:,.0f}/s)",
        highlight=False,
    )
    if stats.dead_letters:
        raise typer.Exit(EXIT_REJECTED)


dlq_app = typer.Typer(
    help="List, inspect and re-drive dead letters: intake records the ledger could not record; "
    "and list parked events: recorded events the projector could not apply.\n\n"
    "Example: ledger dlq list --kafka localhost:9092",
    no_args_is_help=True,
)
app.add_typer(dlq_app, name="dlq")

_LIST_COLUMNS = ["position", "failed_at", "source", "reason"]
"""What a person sees; --json gives every field (event type, error class, field, key, ...)."""


@command("list", group=dlq_app)
def dlq_list(
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="Show only the N most recent.")
    ] = None,
    as_json: AsJson = False,
    kafka: Kafka = None,
    dlq_topic: DlqTopic = None,
) -> None:
    """List the dead letters, oldest first, each once (even if the intake wrote it twice).

    An empty queue exits 0 and says so (`[]` with --json), also when the dead-letter topic
    was never created (a note names it: check --dlq-topic if you expected letters).

    Example: ledger dlq list --limit 20 --kafka localhost:9092
    """
    config = kafka_settings(kafka, dlq_topic=dlq_topic)
    try:
        letters = [letter.summary() for letter in dlq.read(config)]
    except dlq.NoDeadLetterTopic as missing:
        # An empty queue, not a failure (exit 0), but a misspelt --dlq-topic looks the same:
        # say that the topic is missing.
        letters = []
        err.print(f"note: {missing}", highlight=False)
    rows = sorted(letters, key=lambda s: (s["failed_at"], _position_key(s["position"])))
    total = len(rows)
    if limit is not None:
        rows = rows[-limit:]
    if as_json:
        columns = list(rows[0]) if rows else _LIST_COLUMNS
        print_rows(columns, [tuple(r.values()) for r in rows], as_json=True)
        return
    if not rows:
        out.print(f"No dead letters on {config.kafka.dlq_topic}.", soft_wrap=True)
        return
    table = [(r["position"], r["failed_at"][:19], r["source"], r["reason"]) for r in rows]
    print_rows(_LIST_COLUMNS, table, as_json=False, title=f"Dead letters on {config.kafka.dlq_topic}")
    shown = f"showing {len(rows)} of {total}" if len(rows) < total else f"{total}"
    err.print(f"{shown} dead letters", highlight=False)


@command("show", group=dlq_app)
def dlq_show(
    position: Annotated[
        str, typer.Argument(help="PARTITION:OFFSET of the dead letter, as `dlq list` shows it.")
    ],
    as_json: AsJson = False,
    kafka: Kafka = None,
    dlq_topic: DlqTopic = None,
    data_dir: DataDir = None,
    store: Store = None,
) -> None:
    """Show one dead letter: why it failed, where it came from, its headers and its value
    (decoded if it can be, and as hex). A value sealed for its customer is opened with their
    key from the store (--store or --data-dir); once they are erased it stays sealed.

    Example: ledger dlq show 0:42 --kafka localhost:9092
    """
    config = kafka_settings(kafka, dlq_topic=dlq_topic, data_dir=data_dir, store=store)
    (letter,) = dlq.get(config, [dlq.parse_position(position)])
    print_mapping(dlq.readable(config, letter).describe(), as_json)


@command("redrive", group=dlq_app)
def dlq_redrive(
    positions: Annotated[
        list[str] | None, typer.Argument(help="PARTITION:OFFSET of each dead letter to re-drive.")
    ] = None,
    every: Annotated[
        bool, typer.Option("--all", help="Re-drive every dead letter (see --reason-contains).")
    ] = False,
    reason_contains: Annotated[
        str | None,
        typer.Option(
            "--reason-contains", help="With --all: only those whose reason has TEXT (any case)."
        ),
    ] = None,
    as_json: AsJson = False,
    kafka: Kafka = None,
    intake_topic: IntakeTopic = None,
    dlq_topic: DlqTopic = None,
    data_dir: DataDir = None,
    store: Store = None,
) -> None:
    """Publish dead letters back to the intake topic, bytes and headers as they arrived.

    Use it once the cause is fixed (a schema version deployed, a clock corrected). A fact
    that was re-driven before is recorded once, however often it is re-driven. A value
    sealed for its customer is opened with their key from the store (--store or
    --data-dir); a dead letter of a customer erased since is refused.

    Example: ledger dlq redrive 0:42 1:7 --kafka localhost:9092
    """
    config = kafka_settings(kafka, intake_topic, dlq_topic, data_dir=data_dir, store=store)
    if bool(positions) == every:
        raise typer.BadParameter("give PARTITION:OFFSET positions or --all, not both, not neither")
    if reason_contains is not None and not every:
        raise typer.BadParameter("--reason-contains goes with --all")
    chosen = [dlq.parse_position(p) for p in positions] if positions else None
    sent = dlq.redrive(config, chosen, reason_contains)
    rows = [(s.position, s.source, s.event_type, s.reason) for s in sent]
    print_rows(["position", "source", "event_type", "reason"], rows, as_json)
    err.print(f"re-drove {len(sent)} dead letters to {config.kafka.intake_topic}", highlight=False)


_PARKED_COLUMNS = ["source", "position", "event_type", "customer_id", "reason", "parked_at"]
"""What a person sees; --json gives every column of ``parked_events``, the payload as hex."""


@command("parked", group=dlq_app)
def dlq_parked(
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="Show only the N most recent.")
    ] = None,
    as_json: AsJson = False,
    data_dir: DataDir = None,
) -> None:
    """List the events the projector parked, oldest first: recorded in the store, but left
    out of the read models because they could not be decoded or applied (with the reason).

    Read from the published read models; changes nothing. None parked exits 0 and says so
    (`[]` with --json); no read models yet is a failure (exit 1). Once the cause is fixed,
    `ledger replay` tries every event again, and those that apply are no longer parked.

    Example: ledger dlq parked --limit 20 --data-dir ./ledger-data
    """
    config = settings(data_dir)
    con = open_for_reading(published(config))
    try:
        total, rows = parked_rows(con, limit)
    finally:
        con.close()
    if as_json:
        print_rows(PARKED_LISTED, [tuple(r.values()) for r in rows], as_json=True)
        return
    if not rows:
        out.print(f"No parked events in {published(config)}.", soft_wrap=True)
        return
    table = [
        (
            r["source"] if r["position_key"] is None else f"{r['source']} {r['position_key']}",
            r["position"], r["event_type"], r["customer_id"], r["reason"], str(r["parked_at"])[:19],
        )
        for r in rows
    ]
    print_rows(_PARKED_COLUMNS, table, as_json=False, title=f"Parked events in {published(config)}")
    shown = f"showing {len(rows)} of {total}" if len(rows) < total else f"{total}"
    err.print(f"{shown} parked events", highlight=False)


def _position_key(position: str) -> tuple[int, int]:
    partition, offset = position.split(":")
    return int(partition), int(offset)
