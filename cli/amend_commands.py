"""Commands that amend the books without rewriting them: correct or retract a fact, merge two
customer ids into one person, undo a merge. Each records one event; the read models count
the amended history (docs/read-models.md, "Amendments")."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from contextlib import closing
from typing import Annotated, Any

import typer
from rich.text import Text

from ledger.cli.app import EXIT_REJECTED, AsJson, DataDir, Store, command, err, out, printable, settings
from ledger.errors import InputError, SchemaError, ValidationError
from ledger.ops.projecting import project_if_embedded, recording
from ledger.write.application import Ledger, Outcome

Reason = Annotated[str, typer.Option("--reason", help="Why, for the record (required): a ticket number, no "
                                                      "personal data.")]
Actor = Annotated[str | None, typer.Option("--by", help="Who does it: an operator's name or a system.")]
NoProject = Annotated[bool, typer.Option("--no-project", help="Only record; leave the read models.")]


def _amend(data_dir: Any, store: Any, no_project: bool, as_json: bool, reason: str | None,
           act: Callable[[Ledger], Outcome], done: str) -> None:
    config = settings(data_dir, store)
    if reason is not None and not reason.strip():
        err.print(Text("refused: ", style="bold red") + Text("--reason: say why, for the record"))
        raise typer.Exit(EXIT_REJECTED)
    with recording(config, then_project=not no_project):
        with closing(Ledger(config)) as ledger:
            try:
                outcome = act(ledger)
            except (InputError, SchemaError, ValidationError) as error:
                err.print(Text("refused: ", style="bold red") + Text(printable(str(error))))
                raise typer.Exit(EXIT_REJECTED) from None
            if as_json:
                sys.stdout.write(json.dumps({"event_type": outcome.event_type, "event_id": outcome.event_id,
                                             "status": outcome.status}) + "\n")
            else:
                out.print(f"{done} ({outcome.event_type} {outcome.event_id})", highlight=False, markup=False,
                          soft_wrap=True)
            if not no_project:
                project_if_embedded(config, ledger)


@command()
def correct(
    event_id: Annotated[str, typer.Argument(help="The event to correct (its event_id).")],
    reason: Reason,
    set_: Annotated[list[str], typer.Option("--set", help="FIELD=VALUE, once per field (VALUE read as JSON, "
                                                          "else as text).")],
    by: Actor = None,
    no_project: NoProject = False,
    as_json: AsJson = False,
    data_dir: DataDir = None,
    store: Store = None,
) -> None:
    """Correct fields of a recorded fact: the read models count the new values, the timeline
    shows both (the fact marked corrected). Refused (exit 3) if the corrected fact would break
    a rule a new fact must keep.

    Example: ledger correct 7ecfadc4-18ae-56eb-8923-9dfc1a174a01 --set score=9 --reason "agent typo, ticket 118"
    """
    _amend(data_dir, store, no_project, as_json, reason,
           lambda ledger: ledger.correct(event_id, ledger.parse_settings(set_), reason, by),
           f"corrected {event_id}")


@command()
def retract(
    event_id: Annotated[str, typer.Argument(help="The event to withdraw (its event_id).")],
    reason: Reason,
    by: Actor = None,
    no_project: NoProject = False,
    as_json: AsJson = False,
    data_dir: DataDir = None,
    store: Store = None,
) -> None:
    """Withdraw a recorded fact: the read models leave it out, the timeline keeps it, marked
    retracted. A retraction is final; record the right fact anew.

    Example: ledger retract 7ecfadc4-18ae-56eb-8923-9dfc1a174a01 --reason "test purchase"
    """
    _amend(data_dir, store, no_project, as_json, reason,
           lambda ledger: ledger.retract(event_id, reason, by), f"retracted {event_id}")


@command()
def merge(
    survivor: Annotated[str, typer.Argument(help="The id the person is counted under from now on.")],
    merged: Annotated[str, typer.Argument(help="The other id of the same person.")],
    reason: Reason,
    by: Actor = None,
    no_project: NoProject = False,
    as_json: AsJson = False,
    data_dir: DataDir = None,
    store: Store = None,
) -> None:
    """Count MERGED as SURVIVOR in every read model: one person known under two ids. Nothing
    is rewritten; `ledger split MERGED` undoes it exactly.

    Example: ledger merge WEB-1001 CARD-77 --reason "same e-mail, confirmed by phone"
    """
    _amend(data_dir, store, no_project, as_json, reason,
           lambda ledger: ledger.merge(survivor, merged, reason, by), f"merged {merged} into {survivor}")


@command()
def split(
    merged: Annotated[str, typer.Argument(help="The id merged into another.")],
    reason: Annotated[str | None, typer.Option("--reason", help="Why, for the record: a ticket number, no "
                                                               "personal data.")] = None,
    by: Actor = None,
    no_project: NoProject = False,
    as_json: AsJson = False,
    data_dir: DataDir = None,
    store: Store = None,
) -> None:
    """Undo a merge: MERGED is a customer of its own again, and every read model is as if the
    merge had never been.

    Undoing a merge is its own reason; --reason is optional here.

    Example: ledger split CARD-77 --reason "two people sharing an e-mail"
    """
    _amend(data_dir, store, no_project, as_json, reason,
           lambda ledger: ledger.split(merged, reason, by), f"split {merged}")
