"""What an operator needs at a glance: store head, projector positions, lag, staleness."""

from __future__ import annotations

from typing import Any

from ledger.ops.deployment import Deployment
from ledger.projection.engine import lag
from ledger.projection.query import open_for_reading, state
from ledger.settings import Settings
from ledger.write.application import Ledger


def status(settings: Settings, ledger: Ledger | None = None) -> dict[str, Any]:
    """A plain dict, ready for a table or ``--json``."""
    ledger = ledger or Ledger(settings)
    deployment = Deployment(settings)
    report: dict[str, Any] = {
        "mode": deployment.mode, "store": settings.store_shown, "store_head": ledger.head(),
    }
    positions: dict[str, dict[str, int]] = {}
    if not settings.published_path.exists():
        report["read_models"] = "not built yet"
        if deployment.uses_kafka:
            report.update(_kafka_status(settings, ledger, positions))
        return report
    con = open_for_reading(settings.published_path)
    try:
        for source, key, position in con.execute(
            "SELECT source, key, position FROM projector_positions ORDER BY source, key"
        ).fetchall():
            positions.setdefault(source, {})[key] = position
        report["read_models"] = str(settings.published_path)
        report["positions"] = positions
        report.update(state(con))
        report["events"] = con.execute("SELECT count(*) FROM events").fetchall()[0][0]
    finally:
        con.close()
    if deployment.uses_kafka:
        report.update(_kafka_status(settings, ledger, positions))
    else:
        report["lag"] = lag({"log": report["store_head"]}, positions.get("store", {}))
    return report


def _kafka_status(settings: Settings, ledger: Ledger, positions: dict[str, dict[str, int]]) -> dict[str, Any]:
    """Read-only, like all of status: a missing topic is shown as missing, never created."""
    from ledger.kafka.source import KafkaSource
    from ledger.kafka.topics import existing, ledger_topics

    relayed = ledger.recorder.max_tracking_id(f"relay:{settings.kafka.ledger_topic}") or 0
    found = existing(settings)
    report: dict[str, Any] = {
        "topics": {t.name: "present" if t.name in found else "missing" for t in ledger_topics(settings)},
        "relay_position": relayed,
        "relay_lag": max(0, ledger.head() - relayed),
    }
    if settings.kafka.ledger_topic not in found:
        report["lag"] = f"unknown: no topic {settings.kafka.ledger_topic!r} (run `ledger topics create`)"
        return report
    source = KafkaSource(settings)
    try:
        ends = source.head()
    finally:
        source.close()
    projected = positions.get(source.name, {})
    report["topic_end_offsets"] = ends
    report["partition_lag"] = {p: max(0, end - projected.get(p, 0)) for p, end in ends.items()}
    report["lag"] = lag(ends, projected)
    return report
