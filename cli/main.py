"""The `ledger` command: a thin layer over the library.

This module is the registry: importing it registers every command group on `app`. Command
modules import their shared pieces from ledger.cli.app, never from here, so there is no circle.
"""

from __future__ import annotations

from ledger.cli import commands, intake_commands, kafka_commands  # noqa: F401 - registers commands
from ledger.cli.app import app

__all__ = ["app"]
