"""The `ledger` command: a thin layer over the library.

This module is the registry: importing it registers every command group on `app`. Command
modules import their shared pieces from ledger.cli.app, never from here, so there is no circle.
"""

from __future__ import annotations

from ledger.cli import (  # noqa: F401 - importing a command module registers its commands
    amend_commands,
    analyst_commands,
    demo_commands,
    insight_commands,
    intake_commands,
    kafka_commands,
    privacy_commands,
    readmodel_commands,
    record_commands,
    topics_commands,
)
from ledger.cli.app import app

__all__ = ["app"]
