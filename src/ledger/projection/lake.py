"""The read models in a DuckLake: one store that any DuckDB client reads, on any machine.

With ``projection.store = ducklake`` the projector still builds its own file (readmodels.py:
the same SQL, the same keys and upserts, at single-file speed) and publishes it into the lake
instead of copying it: the rows that changed, in one lake transaction, views and macros made
again, so a reader sees the last publish or the one before, never half of one. The lake's
catalog is a PostgreSQL database (`projection.lake_catalog`, schema ``ledger_lake``) and its
data files are Parquet in `projection.lake_data`, a directory every projector and reader sees.

The DuckLake and PostgreSQL extensions are files inside two PyPI packages (the ``lake`` extra)
built for this DuckDB; they are loaded from there, and autoinstall is off, so nothing is ever
downloaded. Publishing an erasure writes every table anew, expires every older snapshot,
deletes the files only they held and vacuums the catalog: an erased customer's data leaves the
lake with that publish (`publish`).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

import duckdb
import psycopg

from ledger.errors import LakeUnavailableError, NotPublishedError, ReadModelError
from ledger.settings import Settings, without_password

LAKE = "lake"
"""The name the lake is attached under, in the projector's connection and readers'."""
METADATA_SCHEMA = "ledger_lake"
"""The PostgreSQL schema of the lake's catalog tables: apart from anything else in that database."""
KEEP_SNAPSHOTS = "10 minutes"
"""How long an older snapshot (and the files only it holds) stays readable after a publish: a
query that began on it finishes (an analyst's stops at 5, query.DEFAULT_TIMEOUT_S). An erasure
does not wait (see the module's docstring)."""
SMALL_FILES = 32
"""Files (data and deletion) in one lake table past which a publish compacts them."""
EXTENSIONS = (
    ("duckdb_extension_postgres_scanner", "postgres_scanner"),
    ("duckdb_extension_ducklake", "ducklake"),
)
"""(package, extension): the PostgreSQL scanner first, since DuckLake's catalog needs it."""
REFUSED_FUNCTIONS = frozenset({
    "query", "query_table", "glob", "amended_facts",
    # DuckLake's own macros, called through the lake (lake.snapshots(), ...): its history and upkeep.
    "snapshots", "current_snapshot", "last_committed_snapshot", "table_changes", "table_insertions",
    "table_deletions", "table_info", "list_files", "options", "settings", "set_option", "set_commit_message",
    "merge_adjacent_files", "expire_snapshots", "cleanup_old_files", "rewrite_data_files", "add_data_files",
    "flush_inlined_data", "delete_orphaned_files",
})
REFUSED_PREFIXES = ("postgres_", "ducklake_", "read_", "parquet_", "sniff_")
"""What an analyst's statement may not call on a lake: the PostgreSQL scanner's functions reach
any database the network does (DuckDB's external-access switch does not stop them), DuckLake's
show older snapshots or change its files, the file readers would read the lake's files beside
its tables, and query()/query_table() (amended_facts calls it) would read what this check never
saw."""
READABLE_SCHEMAS = frozenset({"", "main", "information_schema", "pg_catalog"})
"""The schemas a table reference may name (the last two: DuckDB's own catalog views)."""
FORGET_PENDING = "lake_forget_pending"
"""The projector_state key set with a batch that erased someone, until a publish into the lake
has deleted every older file; never published."""


@dataclass(frozen=True)
class Lake:
    """The read models' place when they are in a lake (query.published), for readers."""

    settings: Settings

    def __str__(self) -> str:
        return f"the lake {without_password(self.settings.lake_catalog_url)}"


def extension_files() -> list[Path]:
    """The two extension files for this DuckDB, or a ReadModelError saying what to install."""
    files = []
    for package, name in EXTENSIONS:
        try:
            module = importlib.import_module(package)
        except ImportError as exc:
            raise ReadModelError(
                f"projection.store is ducklake, which needs the {package.replace('_', '-')} package: "
                "install the lake extra (pip install -c constraints.txt -e '.[lake]')"
            ) from exc
        folder = Path(module.__file__ or "").parent / "extensions" / f"v{duckdb.__version__}"
        found = folder / f"{name}.duckdb_extension"
        if not found.is_file():
            built = sorted(p.name for p in folder.parent.glob("v*"))
            raise ReadModelError(
                f"the {name} extension installed is for DuckDB {', '.join(built) or 'no version'}, not "
                f"{duckdb.__version__}: install the versions constraints.txt pins"
            )
        files.append(found)
    return files


def conninfo(url: str) -> str:
    """A ``postgresql://`` URL as the libpq keyword string DuckLake's ATTACH takes."""
    parts = urlsplit(url)
    pairs = [("dbname", unquote(parts.path.lstrip("/"))), ("host", parts.hostname or "")]
    if parts.port:
        pairs.append(("port", str(parts.port)))
    if parts.username:
        pairs.append(("user", unquote(parts.username)))
    pairs += parse_qsl(parts.query)  # settings refuse a password: libpq reads it from a password file
    return " ".join(f"{key}='{_libpq(value)}'" for key, value in pairs)


def _libpq(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")


def sql_text(text: str) -> str:
    return text.replace("'", "''")


def attach(con: duckdb.DuckDBPyConnection, settings: Settings, *, read_only: bool = False, name: str = LAKE) -> None:
    """Attach the lake of `settings` to `con` as `name` (if it is not already)."""
    if con.execute("SELECT 1 FROM duckdb_databases() WHERE database_name = ?", [name]).fetchall():
        return
    for file in extension_files():
        con.execute(f"LOAD '{sql_text(str(file))}'")
    url, data = settings.lake_catalog_url, settings.lake_data_path
    if not read_only:
        data.mkdir(parents=True, exist_ok=True)
    # No rows inlined into the catalog: every row is in a data file, where an erasure's cleanup
    # finds it (and DuckLake 1.5 failed reading STRUCT columns of inlined rows).
    options = f"DATA_PATH '{sql_text(str(data))}/', METADATA_SCHEMA '{METADATA_SCHEMA}', DATA_INLINING_ROW_LIMIT 0"
    try:
        con.execute(f"ATTACH 'ducklake:postgres:{sql_text(conninfo(url))}' AS {name} "
                    f"({options}{', READ_ONLY' if read_only else ''})")
    except duckdb.Error as exc:
        raise LakeUnavailableError(
            f"cannot open the lake (catalog {without_password(url)!r}, data {data}): {str(exc).splitlines()[0]}"
        ) from exc


def open_for_reading(settings: Settings, sandbox: dict[str, object]) -> duckdb.DuckDBPyConnection:
    """A read-only connection to the lake, sandboxed as a published file's is: its own data
    directory is the only one it may read, and the configuration is locked."""
    try:
        con = duckdb.connect(config=dict(sandbox))
        attach(con, settings, read_only=True)
        con.execute(f"USE {LAKE}")
        con.execute(f"SET allowed_directories = ['{sql_text(str(settings.lake_data_path))}/']")
        con.execute("SET enable_external_access = false")
        con.execute("SET TimeZone = 'UTC'")
        con.execute("SET lock_configuration = true")
    except duckdb.Error as exc:
        raise ReadModelError(f"cannot read the lake: {exc}") from exc
    if not con.execute("SELECT 1 FROM duckdb_tables() WHERE database_name = ? AND table_name = 'projector_state'",
                       [LAKE]).fetchall():
        con.close()
        raise NotPublishedError("no read models in the lake yet: run `ledger project` or `ledger serve` first")
    return con


def refused(con: duckdb.DuckDBPyConnection, sql: str) -> str | None:
    """Why `sql` (one SELECT) may not run on the lake, or None. Read from DuckDB's own parse tree:
    no function of REFUSED_FUNCTIONS; every table reference a plain name in the lake (or one of
    DuckDB's catalog views), never another database (DuckLake's own attachment of its PostgreSQL
    catalog is one), a file path, or an older snapshot (AT ...). Without a parse tree, refused."""
    tree = json.loads(con.execute("SELECT json_serialize_sql(?)", [sql]).fetchall()[0][0])
    if tree.get("error"):
        return "DuckDB gives no parse tree for this statement, which the lake's sandbox checks: write a plain SELECT"
    for node in _nodes(tree):
        name = node.get("function_name")
        if isinstance(name, str) and (name.lower() in REFUSED_FUNCTIONS or name.lower().startswith(REFUSED_PREFIXES)):
            return f"{name}() reaches past the read models (other databases, the lake's files or history)"
        if node.get("type") == "BASE_TABLE":
            catalog, schema, table = (str(node.get(k) or "") for k in ("catalog_name", "schema_name", "table_name"))
            if catalog.lower() not in ("", LAKE) or schema.lower() not in READABLE_SCHEMAS:
                return f"{'.'.join(p for p in (catalog, schema, table) if p)} is not a read model: only the lake's own"
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", table):
                return f"{table!r} is not a read model: files are not read here"
            if node.get("at_clause"):
                return f"{table} AT (...): older snapshots are not read here"
    return None


def _nodes(tree: object) -> Iterator[dict[str, object]]:
    if isinstance(tree, dict):
        yield tree
        for value in tree.values():
            yield from _nodes(value)
    elif isinstance(tree, list):
        for value in tree:
            yield from _nodes(value)


def publish(con: duckdb.DuckDBPyConnection, settings: Settings, *, forget: bool) -> None:
    """Replace the lake's tables, views and macros by those of the file open on `con`, in one
    lake transaction; then let go of older snapshots (all of them at once if `forget`: an
    erasure was published) and delete the files no snapshot holds any more."""
    attach(con, settings)
    work = con.execute("SELECT current_database()").fetchall()[0][0]
    with _using(con, LAKE):
        con.execute("BEGIN")
        try:
            _replace_tables(con, work, whole=forget)
            con.execute(f"DELETE FROM {LAKE}.main.projector_state WHERE key = ?", [FORGET_PENDING])
            _replace_views_and_macros(con, work)
            con.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(duckdb.Error):
                con.execute("ROLLBACK")
            raise
    let_go(con, settings, forget=forget)


def let_go(con: duckdb.DuckDBPyConnection, settings: Settings, *, forget: bool) -> None:
    """After a publish: compact, expire the snapshots older than KEEP_SNAPSHOTS (every older one
    if `forget`, rewriting first each file with a deleted row) and delete the files no snapshot
    holds; after an erasure, vacuum the catalog too."""
    _compact(con)
    if forget:  # a deleted row stays in its file until the file is written again without it
        con.execute(f"CALL ducklake_rewrite_data_files('{LAKE}', delete_threshold => 0)")
    older = "now()" if forget else f"now() - INTERVAL '{KEEP_SNAPSHOTS}'"
    con.execute(f"CALL ducklake_expire_snapshots('{LAKE}', older_than => {older})")
    con.execute(f"CALL ducklake_cleanup_old_files('{LAKE}', cleanup_all => true)")
    if forget:
        _vacuum_catalog(settings)


def _vacuum_catalog(settings: Settings) -> None:
    """Rewrite the catalog's tables in PostgreSQL: the rows the expiry deleted (the old tables'
    statistics) stay in its files as dead row versions until a VACUUM FULL. PostgreSQL's own
    write-ahead log and backups keep them as long as they are kept (docs/scale.md)."""
    url = settings.lake_catalog_url
    try:
        with psycopg.connect(url, autocommit=True) as pg:
            tables = pg.execute("SELECT tablename FROM pg_tables WHERE schemaname = %s", [METADATA_SCHEMA]).fetchall()
            for (table,) in tables:
                pg.execute(f'VACUUM (FULL) {METADATA_SCHEMA}."{table}"')
    except psycopg.Error as exc:
        raise LakeUnavailableError(f"cannot vacuum the lake's catalog {without_password(url)!r}: {exc}") from exc


@contextlib.contextmanager
def _using(con: duckdb.DuckDBPyConnection, database: str) -> Iterator[None]:
    """`database` the default while inside: views and macros made then bind to its tables."""
    before = con.execute("SELECT current_database()").fetchall()[0][0]
    con.execute(f'USE "{database}"')
    try:
        yield
    finally:
        con.execute(f'USE "{before}"')


def columns(con: duckdb.DuckDBPyConnection, database: str, schema: str = "main") -> dict[str, list[tuple[str, str]]]:
    """Each table of `database`.`schema`: its (column, type) in order."""
    rows = con.execute(
        "SELECT table_name, column_name, data_type FROM duckdb_columns() WHERE database_name = ? "
        "AND schema_name = ? AND table_name IN (SELECT table_name FROM duckdb_tables() "
        "WHERE database_name = ? AND schema_name = ?) ORDER BY table_name, column_index",
        [database, schema, database, schema]).fetchall()
    tables: dict[str, list[tuple[str, str]]] = {}
    for table, column, kind in rows:
        tables.setdefault(table, []).append((column, kind))
    return tables


def _replace_tables(con: duckdb.DuckDBPyConnection, work: str, *, whole: bool) -> None:
    """Each table of `work` into the lake: where the lake's has the same columns, only the rows
    that changed (`changed_rows`), else (or if `whole`) made again with its comments; a lake
    table the file no longer has goes. Made again, a table starts new statistics: DuckLake
    widens a table's min and max in the catalog as rows come and never narrows them as they go,
    so after an erasure only a new table forgets the erased values."""
    ours, theirs = columns(con, work), columns(con, LAKE)
    for view in con.execute("SELECT view_name FROM duckdb_views() WHERE database_name = ? AND NOT internal",
                            [LAKE]).fetchall():
        con.execute(f'DROP VIEW IF EXISTS {LAKE}.main."{view[0]}"')
    for table in set(theirs) - set(ours):
        con.execute(f'DROP TABLE {LAKE}.main."{table}"')
    for table, names in ours.items():
        target, source = f'{LAKE}.main."{table}"', f'"{work}".main."{table}"'
        if theirs.get(table) == names and not whole:
            changed_rows(con, target, source, [n for n, _ in names])
            continue
        con.execute(f"DROP TABLE IF EXISTS {target}")
        con.execute(f"CREATE TABLE {target} AS SELECT * FROM {source}")
        _copy_comments(con, work, table)


def row_hash(names: list[str]) -> str:
    """SQL for the hash of a row's values in columns `names` (a row's identity when publishing)."""
    return "hash(row({}))".format(", ".join('"{}"'.format(n.replace('"', '""')) for n in names))


def changed_rows(con: duckdb.DuckDBPyConnection, target: str, source: str, names: list[str],
                 tagged: tuple[str, int] | None = None) -> None:
    """Make `target` (lake) hold the rows of `source` (the file) by deleting the rows the file no
    longer has and inserting those the lake lacks, matched by a hash of the whole row: a publish
    writes what changed, not the history. Identical rows share a hash, so the count of each hash
    is compared after: where one differs, the rows are written whole. With `tagged` (column,
    value), only the rows of `target` with that value in that column, its first, are the file's:
    the rest are other partitions' slices (slices.py). A target with none takes every row at once."""
    row = row_hash(names)
    mine = "true" if tagged is None else f'"{tagged[0]}" = {int(tagged[1])}'
    tag = "" if tagged is None else f"{int(tagged[1])}, "
    if not con.execute(f"SELECT 1 FROM {target} WHERE {mine} LIMIT 1").fetchall():
        con.execute(f"INSERT INTO {target} SELECT {tag}* FROM {source}")
        return
    con.execute(f"DELETE FROM {target} WHERE {mine} AND {row} NOT IN (SELECT {row} FROM {source})")
    con.execute(f"INSERT INTO {target} SELECT {tag}* FROM {source} "
                f"WHERE {row} NOT IN (SELECT {row} FROM {target} WHERE {mine})")
    apart = con.execute(
        f"SELECT count(*) FROM ((SELECT {row}, count(*) FROM {target} WHERE {mine} GROUP BY ALL) "
        f"EXCEPT (SELECT {row}, count(*) FROM {source} GROUP BY ALL))").fetchall()[0][0]
    if apart:
        con.execute(f"DELETE FROM {target} WHERE {mine}")
        con.execute(f"INSERT INTO {target} SELECT {tag}* FROM {source}")


def _compact(con: duckdb.DuckDBPyConnection) -> None:
    """Each publish adds small files (and deletion files): past `SMALL_FILES` in a table, merge
    them and rewrite those mostly deleted."""
    crowded = con.execute(f"SELECT 1 FROM ducklake_table_info('{LAKE}') WHERE file_count + delete_file_count > ?",
                          [SMALL_FILES]).fetchall()
    if crowded:
        con.execute(f"CALL ducklake_merge_adjacent_files('{LAKE}')")
        con.execute(f"CALL ducklake_rewrite_data_files('{LAKE}')")


def _copy_comments(con: duckdb.DuckDBPyConnection, work: str, table: str) -> None:
    (comment,) = con.execute("SELECT comment FROM duckdb_tables() WHERE database_name = ? AND table_name = ?",
                             [work, table]).fetchall()[0]
    if comment:
        con.execute(f"COMMENT ON TABLE {LAKE}.main.\"{table}\" IS '{sql_text(comment)}'")
    for column, text in con.execute(
            "SELECT column_name, comment FROM duckdb_columns() WHERE database_name = ? AND table_name = ? "
            "AND comment IS NOT NULL", [work, table]).fetchall():
        con.execute(f"COMMENT ON COLUMN {LAKE}.main.\"{table}\".\"{column}\" IS '{sql_text(text)}'")


def _replace_views_and_macros(con: duckdb.DuckDBPyConnection, work: str) -> None:
    """The file's macros, then its views in the order they were made (a view may read one made
    before it), made again in the lake (``USE lake``: their names bind to the lake's tables)."""
    for name, kind, parameters, body in con.execute(
            "SELECT function_name, function_type, parameters, macro_definition FROM duckdb_functions() "
            "WHERE database_name = ? AND schema_name = 'main' AND NOT internal "
            "AND function_type IN ('macro', 'table_macro') ORDER BY function_oid", [work]).fetchall():
        table = " TABLE" if kind == "table_macro" else ""
        con.execute(f'CREATE OR REPLACE MACRO "{name}"({", ".join(parameters)}) AS{table} {body}')
    for name, sql, comment in con.execute(
            "SELECT view_name, sql, comment FROM duckdb_views() WHERE database_name = ? AND schema_name = 'main' "
            "AND NOT internal ORDER BY view_oid", [work]).fetchall():
        con.execute(sql)
        if comment:
            con.execute(f"COMMENT ON VIEW \"{name}\" IS '{sql_text(comment)}'")
