"""Commands of the data subject's rights and of the keys: audit (right of access), keys."""

from __future__ import annotations

import json
import sys
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any
from uuid import UUID

import typer

from ledger.cli.app import DataDir, Store, app, command, out, settings
from ledger.write.application import Ledger
from ledger.write.erasure import history
from ledger.write.rotation import new_key_text, rotate

keys_app = typer.Typer(
    help="The master key that wraps every customer's data key.\n\nExample: ledger keys rotate",
    no_args_is_help=True,
)
app.add_typer(keys_app, name="keys")


@command()
def audit(
    customer_id: Annotated[str, typer.Argument(help="The customer asking for their data.")],
    data_dir: DataDir = None,
    store: Store = None,
) -> None:
    """Print, as JSON, everything the ledger recorded about a customer, personal fields
    opened: the copy a data subject asking for access receives. After an erasure the events
    remain, without personal data.

    Example: ledger audit C000042 > C000042.json
    """
    ledger = Ledger(settings(data_dir, store))
    try:
        found = history(ledger, customer_id)
    finally:
        ledger.close()
    sys.stdout.write(json.dumps(found, ensure_ascii=False, indent=2, default=_json) + "\n")


@command("rotate", group=keys_app)
def rotate_command(
    new_key_file: Annotated[Path | None, typer.Option(
        "--new-key-file", help="The new master key (a file as `ledger keys new` writes); default: make one.")] = None,
    data_dir: DataDir = None,
    store: Store = None,
) -> None:
    """Re-wrap every customer's data key with a new master key; no event is touched.

    Example: ledger keys rotate
    """
    config = settings(data_dir, store)
    ledger = Ledger(config)
    try:
        done = rotate(ledger, new_key_file)
    finally:
        ledger.close()
    out.print(f"re-wrapped {done.rows:,} customer keys: master key {done.old} -> {done.new}"
              + ("" if config.privacy.master_key is not None else f" (in {config.master_key_path})"),
              highlight=False, markup=False)


@command("new", group=keys_app)
def new_key() -> None:
    """Print a new random master key (base64), for LEDGER_MASTER_KEY or a key file.

    Example: ledger keys new > /run/secrets/ledger-master.key
    """
    sys.stdout.write(new_key_text() + "\n")


def _json(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    raise TypeError(f"{type(value).__name__} is not JSON")
