"""Who the models may look at, and the small pieces every model shares.

Only customers who hold profiling consent now and are not erased: a customer who withdrew
consent or was erased is neither scored nor learned from, whatever the date the model is as
of (erasure is final, and consent withdrawn covers what was already recorded). Merged ids are
not customers of their own: their facts count under the survivor (facts.sql).
"""

from __future__ import annotations

import hashlib
import importlib
from dataclasses import dataclass
from datetime import datetime
from types import ModuleType
from typing import Any

import duckdb
import pyarrow as pa

from ledger.errors import InsightError
from ledger.projection.readmodels import naive_utc as naive

PROFILED = """
SELECT customer_id FROM customer_profile
WHERE consent_profiling AND NOT erased
  AND customer_id NOT IN (SELECT customer_id FROM customer_merges)
"""
"""The customers insight may profile: profiling consent now, not erased, not merged away."""


@dataclass(frozen=True)
class Result:
    """A model's run: the tables it writes (name: rows) and what it found, for the run's record."""

    model_version: str
    tables: dict[str, pa.Table | None]
    summary: dict[str, Any]


def sklearn(module: str) -> ModuleType:
    """A scikit-learn module, or an error that says how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise InsightError(
            "this model needs scikit-learn, which the core install leaves out: "
            "pip install 'customer-ledger[insight]'"
        ) from exc


def quiet_days(con: duckdb.DuckDBPyConnection, as_of: datetime) -> float:
    """How many days before `as_of` the latest fact occurred: a model scoring as of a time
    the history has not reached (a projector behind, an adapter stopped) takes the silence for
    customers not buying, so the runs report it."""
    latest = last_fact(con)
    return 0.0 if latest is None else max(0.0, (naive(as_of) - latest).total_seconds() / 86400)


def held_out(customer_id: str, seed: int, share: int = 30) -> bool:
    """True for about `share` % of customers, the same ones for the same seed: the backtests'
    customers, never trained on."""
    digest = hashlib.sha256(f"{seed}:{customer_id}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % 100 < share


def last_fact(con: duckdb.DuckDBPyConnection) -> datetime | None:
    """When the latest fact occurred (None for an empty ledger)."""
    return con.execute("SELECT max(occurred_at) FROM facts").fetchall()[0][0]


def require_history(con: duckdb.DuckDBPyConnection, until: datetime | None, what: str) -> None:
    """Refuse a model that needs facts up to `until` (None: any fact) the ledger does not have yet."""
    latest = last_fact(con)
    if latest is None:
        raise InsightError("the read models hold no facts yet: record or ingest some, then run insight")
    if until is not None and latest < until:
        raise InsightError(f"{what} needs facts up to {until:%Y-%m-%d %H:%M}, and the latest fact in the read models "
                           f"occurred at {latest:%Y-%m-%d %H:%M}: choose an earlier --as-of or a shorter --horizon")
