"""The customer interaction ledger (see docs/architecture.md for the rooms and their order)."""

from __future__ import annotations

from importlib import metadata

DISTRIBUTION = "customer-ledger"
"""The name in pyproject.toml: the version comes from what is installed, written once there."""


def version() -> str:
    """The installed distribution's version; "unknown" when run from a tree never installed."""
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return "unknown"
