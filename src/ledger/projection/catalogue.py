"""The catalogue of read models: every ``projections/*.sql`` file, in dependency order.

A file is one read model named after its table(s). Its header declares what it reads
(``-- depends: events, orders``), and the build order is derived from those declarations,
so adding a model is adding a file; see ``projections/__init__.py`` for the sections.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import duckdb

from ledger.errors import ReadModelError

_SECTION = re.compile(r"^-- section: (\w+)\s*$", re.MULTILINE)
_DEPENDS = re.compile(r"^-- depends:(.*)$", re.MULTILINE)
_PARTIAL = re.compile(r"^-- partial:(.*)$", re.MULTILINE)

BOOKKEEPING = """
CREATE TABLE IF NOT EXISTS readmodel_migrations (
    model VARCHAR PRIMARY KEY, checksum VARCHAR NOT NULL, applied_at TIMESTAMP NOT NULL
);
CREATE TABLE IF NOT EXISTS projector_positions (
    source VARCHAR NOT NULL, key VARCHAR NOT NULL, position BIGINT NOT NULL,
    PRIMARY KEY (source, key)
);
CREATE TABLE IF NOT EXISTS projector_state (
    key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL
);
CREATE TABLE IF NOT EXISTS readmodel_upgrades (
    name VARCHAR NOT NULL, model VARCHAR NOT NULL, from_checksum VARCHAR NOT NULL,
    to_checksum VARCHAR NOT NULL, applied_at TIMESTAMP NOT NULL, PRIMARY KEY (name, model)
);
CREATE TABLE IF NOT EXISTS parked_events (
    source VARCHAR NOT NULL, position_key VARCHAR, position BIGINT, stage VARCHAR NOT NULL,
    event_id VARCHAR, event_type VARCHAR, customer_id VARCHAR, reason VARCHAR NOT NULL,
    payload BLOB NOT NULL, parked_at TIMESTAMP NOT NULL
);
CREATE TABLE IF NOT EXISTS ledger_position (
    source VARCHAR NOT NULL, partition VARCHAR NOT NULL, position BIGINT NOT NULL, as_of TIMESTAMP,
    published_at TIMESTAMP NOT NULL, PRIMARY KEY (source, partition)
);
"""
BOOKKEEPING_TABLES = frozenset({
    "readmodel_migrations", "readmodel_upgrades", "projector_positions", "projector_state", "parked_events",
    "customer_profile_keys",
})
"""The projector's own tables: how far it got, what it ran, what it parked, the merge's keys.
Not read models: exports leave them out (ledger_position is what says how fresh a copy is)."""


@dataclass(frozen=True)
class Model:
    name: str
    sections: dict[str, str]
    checksum: str
    depends: tuple[str, ...] = ()
    partial: tuple[str, ...] = ()
    """Tables each projector of a group holds only part of (`-- partial:`), rows for the
    same key in several partitions: its `combine` section makes them whole (slices.py)."""

    @property
    def file(self) -> str:
        return f"projections/{self.name}.sql"


def load_models() -> list[Model]:
    """Every read model under ``ledger.projections``, each after the models it reads."""
    folder = resources.files("ledger.projections")
    files = sorted((e for e in folder.iterdir() if e.name.endswith(".sql")), key=lambda e: e.name)
    return in_build_order([parse_model(e.name[:-4], e.read_text("utf-8")) for e in files])


def parse_model(name: str, text: str) -> Model:
    file = f"projections/{name}.sql"
    parts = _SECTION.split(text)
    sections = {parts[i]: parts[i + 1].strip() for i in range(1, len(parts) - 1, 2)}
    if "schema" not in sections:
        raise ReadModelError(f"{file} has no '-- section: schema'")
    # Only the header may declare dependencies: a "-- depends:" inside a section is SQL text.
    declared = _DEPENDS.findall(parts[0])
    if len(declared) != 1:
        raise ReadModelError(
            f"{file} needs one '-- depends: MODEL, ...' line before its first section "
            "(empty if it reads only the batch)"
        )
    depends = tuple(d.strip() for d in declared[0].split(",") if d.strip())
    # Only the schema counts: a changed apply or refresh needs no rebuild of existing tables.
    checksum = hashlib.sha256(sections["schema"].encode()).hexdigest()[:16]
    partial = tuple(t.strip() for line in _PARTIAL.findall(parts[0]) for t in line.split(",") if t.strip())
    if partial and "combine" not in sections:
        raise ReadModelError(f"{file} declares '-- partial:' tables but has no '-- section: combine'")
    return Model(name, sections, checksum, depends, partial)


def in_build_order(models: list[Model]) -> list[Model]:
    """`models` sorted so each comes after what it depends on; ties by name, so the order
    never depends on how the files were listed. `events` comes first whatever the others
    declare: every `apply` section sees the batch after it is in the timeline."""
    by_name = {m.name: m for m in models}
    first = ["events"] if "events" in by_name else []
    for model in models:
        unknown = [d for d in model.depends if d not in by_name]
        if unknown:
            raise ReadModelError(
                f"{model.file} depends on {', '.join(unknown)}, which no projections/*.sql defines"
            )
    ordered: list[Model] = [by_name[name] for name in first]
    placed: set[str] = set(first)
    waiting = sorted(set(by_name) - placed)
    while waiting:
        ready = [n for n in waiting if all(d in placed for d in by_name[n].depends)]
        if not ready:
            files = ", ".join(by_name[n].file for n in waiting)
            raise ReadModelError(f"read models depend on each other in a cycle: {files}")
        ordered.append(by_name[ready[0]])
        placed.add(ready[0])
        waiting.remove(ready[0])
    return ordered


SPLIT_OUT = {
    "lifecycle": ("f973fad35760e5ec", "orders"),
    "customer_profile": ("2687fb5b0f0568fe", "customer_spend"),
}
"""Until 2026-12, lifecycle.sql also created `orders` and customer_profile.sql also created
`customer_spend` (schema checksums on the left). The tables are the same; a file built then
has them, and only its migration records are brought up to date."""

AT_SPLIT = {
    "lifecycle": "9ef0af9412b3811f",
    "orders": "28bb6acdb34ce47d",
    "customer_profile": "5688e1cb062e188f",
    "customer_spend": "a7d66df0ebd699e5",
}
"""The schema checksums the split left: a file adopted from before it is at these, and the
upgrades below take it on from there."""


def views_of(name: str) -> tuple[str, ...]:
    """The views and macros of model `name`'s schema, as statements that replace them: an
    upgrade that changes only what they read. Taken from today's file, so such an upgrade must
    be the last of its model's (a later one that changes a table recreates the views itself)."""
    text = resources.files("ledger.projections").joinpath(f"{name}.sql").read_text("utf-8")
    schema = parse_model(name, text).sections["schema"]
    statements = []
    for statement in schema.split(";\n"):
        body = "\n".join(line for line in statement.splitlines() if not line.startswith("--")).strip()
        for kind in ("VIEW", "MACRO"):
            if body.startswith(f"CREATE {kind} "):
                statements.append(f"CREATE OR REPLACE {kind} " + body.removeprefix(f"CREATE {kind} "))
    return tuple(statements)


@dataclass(frozen=True)
class Upgrade:
    """A named change of one model's existing tables, made in place instead of a rebuild:
    run on a file whose record of `model` says `before`, it leaves the tables as a fresh build
    from the schema with checksum `after` would."""

    name: str
    model: str
    before: str
    after: str
    statements: tuple[str, ...]
    emptied: tuple[str, ...] = ()
    """Tables rebuilt in full at every refresh whose rows go first, in a transaction of their
    own (DuckDB 1.5 refuses an ALTER after a DELETE in one; a crash between the two leaves an
    empty table that the upgrade, run again, empties again and the next refresh fills)."""


UPGRADES = (
    # Sums of money as HUGEINT: two legal amounts near the BIGINT limit overflowed it and every
    # later batch failed. Widening a column keeps every value as it was.
    Upgrade("sums_in_hugeint", "customer_spend", "a7d66df0ebd699e5", "2f58dc6b31a253a8", (
        "ALTER TABLE customer_spend ALTER purchased_minor TYPE HUGEINT",
        "ALTER TABLE customer_spend ALTER refunded_minor TYPE HUGEINT",
        "ALTER TABLE customer_spend ALTER net_minor TYPE HUGEINT",
    )),
    Upgrade("sums_in_hugeint", "orders", "28bb6acdb34ce47d", "0d8f1d519920e6a0", (
        "ALTER TABLE orders ALTER refunded_minor TYPE HUGEINT",
        "ALTER TABLE orders ALTER net_minor TYPE HUGEINT",
    )),
    Upgrade("sums_in_hugeint", "rfm", "598e8dc2f31dba03", "cefeae5fad7eadcf", (
        "ALTER TABLE rfm ALTER monetary TYPE HUGEINT",
    )),
    Upgrade("sums_in_hugeint", "customer_profile", "5688e1cb062e188f", "e081e878943ecd02", (
        "ALTER TABLE customer_profile ALTER net_spend TYPE MAP(VARCHAR, HUGEINT)",
    )),
    # Consent drives segments: only customers with profiling consent are scored, and a segment
    # keeps only members holding its consent. rfm is rebuilt in full at every refresh, so its
    # rows, scored without asking, go now; the next refresh scores whoever consented.
    Upgrade("consent_drives_segments", "rfm", "cefeae5fad7eadcf", "c98a86f32543ecb4", (
        *(f"ALTER TABLE rfm ALTER {column} DROP NOT NULL"
          for column in ("r_score", "f_score", "m_score", "fm_score", "rfm_cell", "segment")),
        "ALTER TABLE rfm ADD COLUMN profiled BOOLEAN DEFAULT false",
        "ALTER TABLE rfm ALTER profiled SET NOT NULL",
        "ALTER TABLE rfm ALTER profiled DROP DEFAULT",
    ), emptied=("rfm",)),
    Upgrade("consent_drives_segments", "segments", "d2f012fda68c9fad", "193e1b83483dc2be", (
        "ALTER TABLE segments ADD COLUMN consent VARCHAR",
        "ALTER TABLE segments ADD COLUMN without_consent BIGINT",
    )),
    # A customer's timeline is looked up by an index instead of a scan of every event.
    Upgrade("timeline_index", "events", "ce0a30cb951bd5cc", "e1e6ae123e0de37a", (
        "CREATE INDEX IF NOT EXISTS events_by_customer ON events (customer_id)",
    )),
    # Feedback about a contact the ledger does not know is accepted and counted as such. The
    # count of the days built before is made from the events; the rollup and its views are
    # made again to carry it.
    Upgrade("feedback_unknown_contact", "satisfaction", "080f5e58349bb88e", "b817fff43c2f265c", (
        # DuckDB cannot add NOT NULL after an UPDATE in the same transaction: 0, then the counts.
        "ALTER TABLE satisfaction_daily ADD COLUMN feedback_unknown_contact BIGINT DEFAULT 0",
        "ALTER TABLE satisfaction_daily ALTER feedback_unknown_contact SET NOT NULL",
        "ALTER TABLE satisfaction_daily ALTER feedback_unknown_contact DROP DEFAULT",
        "UPDATE satisfaction_daily s SET feedback_unknown_contact = (SELECT count(*) FROM feedback_attributed f "
        "WHERE f.day = s.day AND f.channel = s.channel AND f.about_contact_id IS NOT NULL "
        "AND NOT f.attributed_to_contact)",
        "CREATE OR REPLACE MACRO satisfaction_rollup(grain) AS TABLE\n"
        "SELECT date_trunc(grain, day)::DATE AS period, channel,\n"
        "       sum(csat_responses)::BIGINT AS csat_responses,\n"
        "       sum(csat_satisfied)::BIGINT AS csat_satisfied,\n"
        "       100.0 * sum(csat_satisfied) / nullif(sum(csat_responses), 0) AS csat_pct,\n"
        "       sum(nps_responses)::BIGINT AS nps_responses,\n"
        "       sum(nps_promoters)::BIGINT AS nps_promoters,\n"
        "       sum(nps_passives)::BIGINT AS nps_passives,\n"
        "       sum(nps_detractors)::BIGINT AS nps_detractors,\n"
        "       100.0 * (sum(nps_promoters) - sum(nps_detractors)) / nullif(sum(nps_responses), 0) AS nps,\n"
        "       sum(ces_responses)::BIGINT AS ces_responses,\n"
        "       sum(ces_sum)::BIGINT AS ces_sum,\n"
        "       sum(ces_sum) / nullif(sum(ces_responses), 0) AS ces_avg,\n"
        "       sum(contacts)::BIGINT AS contacts,\n"
        "       sum(complaints)::BIGINT AS complaints,\n"
        "       sum(complaints) / nullif(sum(contacts), 0) AS complaint_rate,\n"
        "       sum(feedback_unknown_contact)::BIGINT AS feedback_unknown_contact\n"
        "FROM satisfaction_daily\n"
        "GROUP BY ALL",
        "CREATE OR REPLACE VIEW satisfaction_weekly AS "
        "SELECT * RENAME (period AS week) FROM satisfaction_rollup('week')",
        "CREATE OR REPLACE VIEW satisfaction_monthly AS "
        "SELECT * RENAME (period AS month) FROM satisfaction_rollup('month')",
    )),
    # ContactLogged v3's language and sentiment reach the timeline. Adding columns keeps every
    # row; the rows already there were written without the fields, so NULL is their value.
    Upgrade("contact_language_sentiment", "events", "e1e6ae123e0de37a", "6fde2395bb20a8ee", (
        "ALTER TABLE events ADD COLUMN language VARCHAR",
        "ALTER TABLE events ADD COLUMN sentiment DOUBLE",
    )),
    # Amendments (facts.sql): the timeline holds their fields and marks what they amended; no
    # amendment existed before, so NULL is every old row's value. The models read `facts`.
    Upgrade("amendments", "events", "6fde2395bb20a8ee", "644bb4ec721c1bc0", (
        *(f"ALTER TABLE events ADD COLUMN {column}" for column in (
            "target_event_id VARCHAR", "target_type VARCHAR", "changes MAP(VARCHAR, VARCHAR)",
            "survivor_id VARCHAR", "actor VARCHAR", "status VARCHAR")),
    )),
    Upgrade("amendments", "satisfaction", "b817fff43c2f265c", "a12d539608fda546", views_of("satisfaction")),
    # Exchange rates: orders in the reporting currency beside their own, RFM monetary over every
    # converted order. orders and rfm are rebuilt in full at every refresh, so their rows go now
    # and the next refresh fills the new columns; the profile's new sum is NULL until then.
    # DuckDB 1.5 checks a new NOT NULL against rows deleted in the same transaction: a default
    # for the old rows, then none.
    Upgrade("exchange_rates", "orders", "0d8f1d519920e6a0", "7b13e251e7c0ceab", (
        "ALTER TABLE orders ADD COLUMN IF NOT EXISTS reporting_currency VARCHAR DEFAULT ''",
        "ALTER TABLE orders ALTER reporting_currency SET NOT NULL",
        "ALTER TABLE orders ALTER reporting_currency DROP DEFAULT",
        "ALTER TABLE orders ADD COLUMN IF NOT EXISTS rate DECIMAL(38, 12)",
        "ALTER TABLE orders ADD COLUMN IF NOT EXISTS rate_from DATE",
        "ALTER TABLE orders ADD COLUMN IF NOT EXISTS total_reporting_minor HUGEINT",
        "ALTER TABLE orders ADD COLUMN IF NOT EXISTS net_reporting_minor HUGEINT",
    ), emptied=("orders",)),
    Upgrade("exchange_rates", "rfm", "c98a86f32543ecb4", "51e9e499d7bbc2b7", (
        "ALTER TABLE rfm ADD COLUMN IF NOT EXISTS monetary_by_currency MAP(VARCHAR, HUGEINT) DEFAULT MAP {}",
        "ALTER TABLE rfm ALTER monetary_by_currency SET NOT NULL",
        "ALTER TABLE rfm ALTER monetary_by_currency DROP DEFAULT",
    ), emptied=("rfm",)),
    Upgrade("exchange_rates", "customer_profile", "e081e878943ecd02", "8d6d1885fb32f16f", (
        "ALTER TABLE customer_profile ADD COLUMN IF NOT EXISTS net_spend_reporting HUGEINT",
    )),
)
"""In the order they were written; a file several upgrades behind gets each in turn."""


def _adopt_split_models(
    con: duckdb.DuckDBPyConnection, models: list[Model], applied: dict[str, str]
) -> None:
    """Record the split-out models of a file built before the split, in one transaction, so
    it opens without a rebuild."""
    by_name = {m.name: m for m in models}
    moves = [
        (name, split) for name, (old, split) in SPLIT_OUT.items()
        if applied.get(name) == old and split not in applied and name in by_name and split in by_name
    ]
    if not moves:
        return
    con.execute("BEGIN")
    try:
        for name, split in moves:
            con.execute(
                "UPDATE readmodel_migrations SET checksum = ?, applied_at = now()::TIMESTAMP WHERE model = ?",
                [AT_SPLIT[name], name],
            )
            con.execute(
                "INSERT INTO readmodel_migrations VALUES (?, ?, now()::TIMESTAMP)",
                [split, AT_SPLIT[split]],
            )
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    for name, split in moves:
        applied[name], applied[split] = AT_SPLIT[name], AT_SPLIT[split]


def _upgraded(model: str, checksum: str) -> str:
    """The checksum the upgrades take a file's `model` to from `checksum`."""
    for upgrade in UPGRADES:
        if upgrade.model == model and upgrade.before == checksum:
            checksum = upgrade.after
    return checksum


def _upgrade(con: duckdb.DuckDBPyConnection, model: str, applied: dict[str, str]) -> None:
    """Run every upgrade of `model` that applies to the file, each in a transaction with its
    record in ``readmodel_upgrades`` and the model's new checksum, so a crash leaves either
    both or neither."""
    for upgrade in UPGRADES:
        if upgrade.model != model or applied.get(upgrade.model) != upgrade.before:
            continue
        for table in upgrade.emptied:
            con.execute(f"DELETE FROM {table}")
        con.execute("BEGIN")
        try:
            for statement in upgrade.statements:
                con.execute(statement)
            con.execute(
                "UPDATE readmodel_migrations SET checksum = ?, applied_at = now()::TIMESTAMP WHERE model = ?",
                [upgrade.after, upgrade.model],
            )
            con.execute(
                "INSERT INTO readmodel_upgrades VALUES (?, ?, ?, ?, now()::TIMESTAMP)",
                [upgrade.name, upgrade.model, upgrade.before, upgrade.after],
            )
            con.execute("COMMIT")
        except duckdb.Error as exc:
            con.execute("ROLLBACK")
            raise ReadModelError(
                f"upgrade {upgrade.name!r} of read model {upgrade.model!r} failed: {exc}; "
                "run `ledger replay` to rebuild the read models"
            ) from exc
        applied[upgrade.model] = upgrade.after


def migrate(con: duckdb.DuckDBPyConnection, models: list[Model], path: Path) -> None:
    """Create the tables of models the file does not have yet, each in a transaction with
    its record; bring tables an upgrade knows up to date in place (`UPGRADES`); refuse a file
    whose existing models were built from another definition.

    Every checksum is compared before anything is created, so a file built by an older
    catalogue gets the rebuild message rather than a clash with its old tables.
    """
    con.execute(BOOKKEEPING)
    applied = dict(con.execute("SELECT model, checksum FROM readmodel_migrations").fetchall())
    _adopt_split_models(con, models, applied)
    for model in models:
        if model.name in applied and _upgraded(model.name, applied[model.name]) != model.checksum:
            raise ReadModelError(
                f"the definition of read model {model.name!r} changed since {path} was "
                "built; run `ledger replay` to rebuild the read models"
            )
    # In build order, so that a model's upgrade may read a model created just before it.
    for model in models:
        if model.name in applied:
            _upgrade(con, model.name, applied)
            continue
        con.execute("BEGIN")
        try:
            con.execute(model.sections["schema"])
            con.execute(
                "INSERT INTO readmodel_migrations VALUES (?, ?, now()::TIMESTAMP)",
                [model.name, model.checksum],
            )
            con.execute("COMMIT")
        except duckdb.Error as exc:
            con.execute("ROLLBACK")
            raise ReadModelError(f"{model.file}: schema failed: {exc}") from exc
