"""What every `ledger` command shares: the typer app, option bundles, output and errors.

Each command parses its options, calls one library function and turns a LedgerError into a
message on stderr and a non-zero exit code (1: failed, 2: bad settings or usage, 3: some
input was rejected).
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import json
import os
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, TypeVar
from uuid import UUID

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from ledger.contract.facts import parse_timestamp
from ledger.errors import LedgerError
from ledger.settings import Settings

app = typer.Typer(
    help="The customer interaction ledger: record facts, project read models, query them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console()
err = Console(stderr=True, soft_wrap=True)

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
                err.print(f"[bold red]error:[/] {escape(str(error))}", highlight=False)
                raise typer.Exit(error.exit_code) from None

        (group or app).command(name)(run)
        return function

    return register


@app.callback()
def main(
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


def as_of_time(text: str | None) -> datetime:
    return datetime.now(UTC) if text is None else parse_timestamp("--as-of", text)


def progress_bar(*counters: ProgressColumn) -> Progress:
    """A bar on stderr, only on a terminal; `counters` replace "done/total, time elapsed"."""
    return Progress(
        TextColumn("{task.description}"),
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
    if as_json:
        payload = [dict(zip(columns, row, strict=True)) for row in rows]
        sys.stdout.write(json.dumps(payload, default=_json_value, ensure_ascii=False) + "\n")
        return
    table = Table(title=title)
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row))
    out.print(table)


def print_mapping(values: dict[str, Any], as_json: bool) -> None:
    if as_json:
        sys.stdout.write(json.dumps(values, default=_json_value, indent=2) + "\n")
        return
    table = Table(show_header=False)
    for key, value in values.items():
        table.add_row(key, json.dumps(value, default=_json_value) if isinstance(value, dict | list) else str(value))
    out.print(table)


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    raise TypeError(f"cannot show {type(value).__name__} as JSON")
