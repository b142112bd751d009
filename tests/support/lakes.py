"""Lakes for tests and benchmarks: a catalog database of their own on the local PostgreSQL."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

import psycopg

SERVER = "postgresql://postgres@127.0.0.1:5432"
"""The PostgreSQL server (trust auth); its database `test` is where new ones are made from."""


@contextlib.contextmanager
def new_catalog(prefix: str = "lake") -> Iterator[str]:
    """A PostgreSQL database of its own for a lake's catalog, dropped afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(f"{SERVER}/test", autocommit=True) as con:
        con.execute(f"CREATE DATABASE {name}")
    try:
        yield f"{SERVER}/{name}"
    finally:
        with psycopg.connect(f"{SERVER}/test", autocommit=True) as con:
            con.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
