"""Commands that record: one fact (record), a customer's erasure (erase); and the contract they
must fit (schemas)."""

from __future__ import annotations

import json
import sys
from contextlib import closing
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from ledger.cli.app import (
    EXIT_REJECTED,
    AsJson,
    DataDir,
    Store,
    app,
    command,
    err,
    out,
    print_rows,
    printable,
    settings,
)
from ledger.contract import compat
from ledger.contract.codec import SchemaVersion, default_codec, load_schema_version
from ledger.errors import InputError, SchemaError, ValidationError
from ledger.intake.files import json_fact
from ledger.ops.projecting import project_if_embedded, recording
from ledger.ops.status import waiting_facts
from ledger.write.application import Ledger
from ledger.write.erasure import erase as erase_customer
from ledger.write.erasure import unreadable_after_erasure


@command()
def record(
    event: Annotated[str, typer.Argument(help="One event: a JSON object with its `type` (as one line of ingest).")],
    no_project: Annotated[bool, typer.Option("--no-project", help="Only record; leave the read models.")] = False,
    data_dir: DataDir = None,
    store: Store = None,
) -> None:
    """Record one event; print its event_id, or why it was refused (exit 3).

    Recording the same (source, source_event_id) again changes nothing.

    Example: ledger record '{"type": "ContactLogged", "customer_id": "C42", "occurred_at": "2026-05-01T09:30:00Z",
    "source": "desk", "source_event_id": "t-981", "contact_id": "t-981", "channel": "phone", "direction": "inbound"}'
    """
    config = settings(data_dir, store)
    fact = json_fact(event.encode("utf-8", "surrogateescape"))
    with recording(config, then_project=not no_project):
        with closing(Ledger(config)) as ledger:
            try:
                if isinstance(fact, InputError):
                    raise fact
                outcome = ledger.record(fact)
            except (InputError, SchemaError, ValidationError) as error:
                err.print(Text("refused: ", style="bold red") + Text(printable(str(error))))
                raise typer.Exit(EXIT_REJECTED) from None
            already = "already recorded: " if outcome.status == "duplicate" else ""
            if outcome.status == "waiting":  # a refund before its order: kept, decided when the order arrives
                already = f"waiting for order {outcome.waits_for}: "
            out.print(f"{already}{outcome.event_type} {outcome.event_id}", highlight=False, markup=False)
            if not no_project:
                project_if_embedded(config, ledger)


@command()
def erase(
    customer_id: Annotated[str, typer.Argument(help="The customer to forget.")],
    reason: Annotated[str | None, typer.Option(help="Why, for the record: a request number, no personal data.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only list what would become unreadable.")] = False,
    no_project: Annotated[bool, typer.Option("--no-project", help="Only record; leave the read models.")] = False,
    as_json: AsJson = False,
    data_dir: DataDir = None,
    store: Store = None,
) -> None:
    """Erase a customer: record CustomerErased and destroy their data key, in one transaction.

    Every copy of their personal data (store, Kafka topics, dead letters, backups) is sealed
    under that key and becomes unreadable; their events stay countable. Nothing is accepted
    for them afterwards, under any spelling of their id that differs only in white space or
    Unicode form. Erasing again changes nothing.

    Example: ledger erase C000042 --reason "request 2026-118"
    """
    config = settings(data_dir, store)
    if dry_run:
        ledger = Ledger(config)
        try:
            kept_as, rows = unreadable_after_erasure(ledger, customer_id)
        finally:
            ledger.close()
        print_rows(["event_id", "event_type", "occurred_at", "personal_fields"],
                   [(r["event_id"], r["event_type"], r["occurred_at"], ", ".join(r["personal_fields"])) for r in rows],
                   as_json, title=f"erasing {kept_as} makes these unreadable")
        return
    with recording(config, then_project=not no_project):
        with closing(Ledger(config)) as ledger:
            erasure = erase_customer(ledger, customer_id, reason)
            if as_json:
                answer = {"customer_id": erasure.customer_id, "event_id": erasure.event_id,
                          "already_erased": erasure.already}
                if erasure.also:  # the other ids of a merged person
                    answer["also_erased"] = list(erasure.also)
                sys.stdout.write(json.dumps(answer, ensure_ascii=False) + "\n")
            elif erasure.already:
                out.print(f"{erasure.customer_id} was already erased", soft_wrap=True)
            else:
                if erasure.event_id is not None:
                    out.print(f"erased {erasure.customer_id} (event {erasure.event_id}); their data key is destroyed",
                              soft_wrap=True)
                for other in erasure.also:
                    out.print(f"erased {other} too: merged with {erasure.customer_id}, the same person", soft_wrap=True)
            if not erasure.already and not no_project:
                project_if_embedded(config, ledger)


@command()
def waiting(
    limit: Annotated[int, typer.Option(help="At most this many, oldest first.")] = 1000,
    as_json: AsJson = False,
    data_dir: DataDir = None,
    store: Store = None,
) -> None:
    """List the refunds waiting for their order, and those rejected when it came (with why).

    A refund of an order the ledger does not know yet is kept, not refused; the batch that
    records the order records it, or rejects it here if it then breaks an invariant.

    Example: ledger waiting --json
    """
    rows = waiting_facts(settings(data_dir, store), limit)
    print_rows(["event_id", "customer_id", "order_id", "source", "source_event_id", "since", "status", "reason"],
               [tuple(r.values()) for r in rows], as_json, title=f"{len(rows)} waiting or rejected late")


schemas_app = typer.Typer(
    help="The Avro contract: list its event types and versions, or check that they evolve compatibly.\n\n"
    "Example: ledger schemas check",
)
app.add_typer(schemas_app, name="schemas", invoke_without_command=True)


@schemas_app.callback()
def schemas(ctx: typer.Context, as_json: AsJson = False) -> None:
    """List the event types and schema versions of the Avro contract, with fingerprints.

    Example: ledger schemas
    """
    if ctx.invoked_subcommand is not None:
        return
    rows = [(v.event_type, v.version, v.file_name, v.fingerprint.hex()) for v in default_codec().versions]
    print_rows(["event_type", "version", "file", "fingerprint"], rows, as_json)


@command("check", group=schemas_app)
def schemas_check(
    folder: Annotated[Path | None, typer.Option(
        "--dir", exists=True, file_okay=False, help="A folder of <event>.v<N>.avsc files to check instead of "
        "the shipped schemas (an adapter's, before it sends them).")] = None,
    as_json: AsJson = False,
) -> None:
    """Prove every schema version compatible both ways with each earlier one of its type.

    Backward: the newer version reads data written with the older; forward: the older reads
    the newer's (Avro schema resolution, then a round trip of sample records). Exit 3 naming
    each failure: the type, both versions, the direction, the field and the rule broken.

    Example: ledger schemas check --dir adapters/desk/schemas
    """
    try:
        versions = default_codec().versions if folder is None else schema_folder(folder)
    except SchemaError as error:
        err.print(Text("refused: ", style="bold red") + Text(printable(str(error))))
        raise typer.Exit(EXIT_REJECTED) from None
    report = compat.check(versions)
    if as_json:
        sys.stdout.write(json.dumps({"compatible": report.ok, "unsound": list(report.unsound), "types": [
            {"event_type": t.event_type, "versions": list(t.versions), "pairs": t.pairs,
             "failures": [{"newer": f.newer, "older": f.older, "direction": f.direction, "reader": f.reader,
                           "writer": f.writer, "path": f.problem.path, "rule": f.problem.rule,
                           "detail": f.problem.detail} for f in t.failures]}
            for t in report.types]}, ensure_ascii=False) + "\n")
    else:
        rows = [(t.event_type, ", ".join(f"v{v}" for v in t.versions), t.pairs, len(t.failures) or "compatible")
                for t in report.types]
        print_rows(["event_type", "versions", "pairs", "failures"], rows, False,
                   title="each pair checked backward and forward")
        for failure in report.failures:
            err.print(Text("incompatible: ", style="bold red") + Text(printable(str(failure))))
        for problem in report.unsound:
            err.print(Text("unsound: ", style="bold red") + Text(printable(problem)))
    if not report.ok:
        raise typer.Exit(EXIT_REJECTED)


def schema_folder(folder: Path) -> tuple[SchemaVersion, ...]:
    """The schema versions in `folder`; SchemaError naming a file that is not one."""
    files = sorted(folder.glob("*.avsc"))
    if not files:
        raise SchemaError(f"{folder}: no .avsc files (schema files are named <event>.v<N>.avsc)")
    versions = []
    for file in files:
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise SchemaError(f"{file}: cannot be read ({exc})") from exc
        versions.append(load_schema_version(file.name, text))
    return tuple(versions)
