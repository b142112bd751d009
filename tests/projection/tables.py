"""Every table of a read-model file, to compare two files built from the same events."""

from __future__ import annotations

from ledger.projection.readmodels import ReadModels

BOOKKEEPING = {"readmodel_migrations", "readmodel_upgrades", "projector_positions", "ledger_position"}
"""How a file came to be, not what the events say: differs between equal read models."""


def snapshot(models: ReadModels, *, without: frozenset[str] = frozenset()) -> dict[str, list[tuple]]:
    """Each table's rows, sorted; bookkeeping and the tables in `without` left out."""
    names = [
        name
        for (name,) in models.con.execute(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_catalog = current_database() AND table_schema = 'main' ORDER BY 1"
        ).fetchall()
        if name not in BOOKKEEPING | without
    ]
    return {name: models.con.execute(f'SELECT * FROM "{name}" ORDER BY ALL').fetchall() for name in names}
