"""What every `ledger` command shares: the typer app, option bundles, output and errors.

Each command parses its options, calls one library function and turns a LedgerError into a
message on stderr and a non-zero exit code: 1 failed, 2 bad settings or usage (typer's own
usage errors included), 3 some input was rejected, 4 another process is writing (try later),
130 interrupted. README.md has the table (tests/cli/test_exit_codes.py keeps it true).
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import json
import os
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from ledger import version
from ledger.contract.facts import parse_timestamp
from ledger.errors import LedgerError, SettingsError
from ledger.projection.answers import distinct, plain
from ledger.settings import Settings
from ledger.text import printable

app = typer.Typer(
    help="The customer interaction ledger: record facts, project read models, query them.",
    no_args_is_help=True,
    # --install-completion / --show-completion: two lines in `ledger --help`, and without
    # them typer registers no shells, so even `_LEDGER_COMPLETE=complete_bash` would fail.
    add_completion=True,
    pretty_exceptions_enable=False,
)


class _Verbatim(Console):
    """A console that prints text as it is: no markup, no emoji codes, nothing a terminal
    would obey (messages carry users' values, and rich reads ``[red]`` or ``:x:`` otherwise)."""

    def print(self, *objects: Any, **kwargs: Any) -> None:
        shown = [printable(o) if isinstance(o, str) else o for o in objects]
        super().print(*shown, **{"markup": False, "emoji": False, "highlight": False, **kwargs})


out = _Verbatim(markup=False, emoji=False, highlight=False)
err = _Verbatim(stderr=True, soft_wrap=True, markup=False, emoji=False, highlight=False)

EXIT_REJECTED = 3

DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir", help="Where the embedded store and read models live (env LEDGER_DATA_DIR; default ./ledger-data)."
    ),
]
Store = Annotated[
    str | None,
    typer.Option("--store", help="Event store URL: sqlite:///PATH or postgresql://... (env LEDGER_STORE)."),
]
Kafka = Annotated[
    str | None,
    typer.Option("--kafka", help="Kafka bootstrap servers HOST:PORT[,...] (env LEDGER_KAFKA)."),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead of tables.")]
AsOf = Annotated[
    str | None,
    typer.Option("--as-of", help="Compute time-dependent models as of this ISO-8601 time (default: now)."),
]

KnownAt = Annotated[
    str | None,
    typer.Option(
        "--known-at",
        help="Every model as the ledger knew it at this ISO-8601 time: only events recorded by then "
        "(recorded_at), in a temporary copy. With --as-of too: events that happened by --as-of and were "
        "recorded by --known-at.",
    ),
]

F = TypeVar("F", bound=Callable[..., Any])


def command(name: str | None = None, group: typer.Typer | None = None) -> Callable[[F], F]:
    """Register a command (on `group`, default the `ledger` app) whose LedgerErrors become a
    message and an exit code."""

    def register(function: F) -> F:
        @functools.wraps(function)
        def run(*args: Any, **kwargs: Any) -> Any:
            try:
                return function(*args, **kwargs)
            except LedgerError as error:
                err.print(Text("error: ", style="bold red") + Text(printable(str(error))))
                raise typer.Exit(error.exit_code) from None

        (group or app).command(name)(run)
        return function

    return register


def _print_version(wanted: bool) -> None:
    """--version: eager, so it answers before any command or setting is looked at."""
    if wanted:
        typer.echo(f"ledger {version()}")
        raise typer.Exit()


@app.callback()
def main(
    show_version: Annotated[
        bool,
        typer.Option(
            "--version", "-V", is_eager=True, callback=_print_version,
            help="Print the installed version (`ledger X.Y.Z`) and exit.",
        ),
    ] = False,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="A TOML file of settings, sections store, kafka, projection and intake (env LEDGER_CONFIG). "
            "Environment variables and flags override it.",
        ),
    ] = None,
) -> None:
    """The customer interaction ledger: record facts, project read models, query them."""
    _CONFIG.set(config)


_CONFIG: contextvars.ContextVar[Path | None] = contextvars.ContextVar("config", default=None)
"""The --config of this invocation, for `settings()` (typer gives commands no shared context)."""


def settings(data_dir: Path | None = None, store: str | None = None, kafka: str | None = None) -> Settings:
    """The settings of this command: config file, then LEDGER_* variables, then its flags."""
    config = _CONFIG.get()
    return Settings.from_env(os.environ, config_file=config, data_dir=data_dir, store=store, kafka=kafka)


def as_of_time(text: str | None, flag: str = "--as-of") -> datetime:
    """The time of --as-of (now if not given); a time that cannot be one is a usage error (exit 2)."""
    if text is None:
        return datetime.now(UTC)
    try:
        return parse_timestamp(flag, text)
    except LedgerError as error:
        raise SettingsError(str(error)) from error


def when_asked(text: str | None, flag: str = "--as-of") -> datetime | None:
    """The time of an --as-of or --known-at that recomputes in a copy; None: the published
    models as they are."""
    return None if text is None else as_of_time(text, flag)


def progress_bar(*counters: ProgressColumn) -> Progress:
    """A bar on stderr, only on a terminal; `counters` replace "done/total, time elapsed"."""
    return Progress(
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        *(counters or (MofNCompleteColumn(), TimeElapsedColumn())),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    )


@contextlib.contextmanager
def lag_bar(label: str) -> Iterator[Callable[[int, int], None]]:
    """A progress bar fed by the projector's (events read, lag remaining) callback."""
    with progress_bar() as bar:
        task = bar.add_task(label, total=None)
        yield lambda done, lag: bar.update(task, completed=done, total=done + lag)


def print_rows(columns: list[str], rows: list[tuple[Any, ...]], as_json: bool, title: str | None = None) -> None:
    """Rows as a table for people or JSON for scripts; every value verbatim (rich reads no
    markup or emoji codes in data: ``[red]`` and ``:x:`` print as they are)."""
    if as_json:
        names = distinct(columns)
        payload = [dict(zip(names, (plain(v) for v in row), strict=True)) for row in rows]
        sys.stdout.write(json.dumps(payload, ensure_ascii=False) + "\n")
        return
    table = Table(title=Text(printable(title)) if title else None)
    for column in columns:
        table.add_column(Text(printable(column)), overflow="fold")
    for row in rows:
        table.add_row(*(Text(_shown(v)) for v in row))
    out.print(table)


def print_mapping(values: dict[str, Any], as_json: bool) -> None:
    if as_json:
        sys.stdout.write(json.dumps(plain(values), indent=2, ensure_ascii=False) + "\n")
        return
    table = Table(show_header=False)
    for key, value in values.items():
        shown = json.dumps(plain(value), ensure_ascii=False) if isinstance(value, dict | list) else _shown(value)
        table.add_row(Text(printable(str(key))), Text(printable(shown)))
    out.print(table)


def _shown(value: Any) -> str:
    """A value as text in a table: JSON-like for nested values, ISO-8601 for times."""
    if value is None:
        return ""
    if isinstance(value, dict | list | tuple):
        return printable(json.dumps(plain(value), ensure_ascii=False))
    if isinstance(value, float):
        return str(value)  # nan and inf as they are; JSON alone has no word for them
    text = plain(value)
    return printable(text if isinstance(text, str) else str(text))
