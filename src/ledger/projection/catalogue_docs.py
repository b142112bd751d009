"""The read models as analysts find them, for `ledger models` and docs/read-models.md.

Apart from descriptions.py because it opens read-model files (a fresh catalogue, or the
published copy), and the projector's own module imports descriptions.py to write comments.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from ledger.errors import NotPublishedError
from ledger.projection.descriptions import Table, describe, render_docs
from ledger.projection.lake import Lake
from ledger.projection.query import open_for_reading
from ledger.projection.readmodels import ReadModels


def read_models(published: Path | Lake | None = None) -> list[Table]:
    """The tables as analysts find them: those of the published copy when there is one (what
    they query), else of a fresh, empty catalogue (what the projector will build)."""
    if published is not None:
        try:
            con = open_for_reading(published)
        except NotPublishedError:
            pass
        else:
            try:
                return describe(con)
            finally:
                con.close()
    with tempfile.TemporaryDirectory() as folder, ReadModels(Path(folder) / "describe.duckdb") as models:
        return describe(models.con)


def main(argv: list[str]) -> None:
    """Rewrite the column blocks of the Markdown files named in `argv` from a fresh catalogue."""
    tables = read_models()
    for name in argv:
        path = Path(name)
        path.write_text(render_docs(path.read_text(encoding="utf-8"), tables), encoding="utf-8")


if __name__ == "__main__":
    main(sys.argv[1:])
