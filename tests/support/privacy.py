"""Facts full of personal data, and where to look for it afterwards: the crypto-shredding tests.

Which fields are personal is the schemas' word (``"pii": true``), so the facts are built from
the codec: a personal field added to a schema gets a marker here without a change.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from ledger.contract.codec import default_codec
from tests.support.facts import DAY, OCCURRED, fact

FIRST_BIRTH_DATE = date(1901, 2, 3)


@dataclass
class MarkedHistory:
    """A customer's facts, every personal field of every type that has one set to a marker."""

    customer_id: str
    facts: list[dict[str, Any]] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    """Every personal text (values, and the keys of maps): found nowhere once erased."""
    dates: list[date] = field(default_factory=list)
    plain_texts: list[str] = field(default_factory=list)
    """Texts of the same facts that are not personal (order and contact ids): in the store in
    clear, so a scan that misses them could miss anything."""
    personal: dict[str, dict[str, Any]] = field(default_factory=dict)
    """source_event_id -> the personal fields that fact carries, as sent."""


def personal_types() -> dict[str, dict[str, bool]]:
    """Every event type whose newest schema has personal fields: type -> those fields."""
    codec = default_codec()
    return {t: dict(codec.newest(t).personal) for t in codec.event_types if codec.newest(t).personal}


def personal_columns() -> set[str]:
    """The union of every schema version's personal fields."""
    return {name for v in default_codec().versions for name in v.personal}


def marker(customer_id: str) -> str:
    """A text found nowhere else: random, so no compression of similar values hides it."""
    return f"pii{customer_id}x{uuid.uuid4().hex}"


def _field_type(event_type: str, name: str) -> Any:
    schema = default_codec().newest(event_type).schema
    (found,) = [f["type"] for f in schema["fields"] if f["name"] == name]
    branches = found if isinstance(found, list) else [found]
    (kind,) = [b for b in branches if b != "null"]
    return kind


def _personal_value(history: MarkedHistory, event_type: str, name: str, n: int) -> Any:
    kind = _field_type(event_type, name)
    if kind == "string":
        value = marker(history.customer_id)
        history.texts.append(value)
        return value
    if isinstance(kind, dict) and kind.get("logicalType") == "date":
        day = FIRST_BIRTH_DATE + n * DAY
        history.dates.append(day)
        return day
    if isinstance(kind, dict) and kind.get("type") == "map" and kind.get("values") == "string":
        key, value = marker(history.customer_id), marker(history.customer_id)
        history.texts += [key, value]
        return {key: value}
    raise AssertionError(f"{event_type}.{name} is personal and of a type tests/support/privacy.py "
                         f"cannot fill yet ({kind!r}): teach it")


def marked_history(customer_id: str, tag: str | None = None) -> MarkedHistory:
    """One fact of each type with personal fields (every one of them set), then a purchase
    (no personal field) for `customer_id`; distinct source ids per `tag` (default the id)."""
    tag = tag or customer_id
    history = MarkedHistory(customer_id)
    types = sorted(personal_types())
    types.remove("CustomerRegistered")
    for n, event_type in enumerate(["CustomerRegistered", *types]):
        values = {name: _personal_value(history, event_type, name, n)
                  for name in personal_types()[event_type]}
        ids = {"contact_id": f"K{tag}x{uuid.uuid4().hex[:12]}"} if event_type == "ContactLogged" else {}
        if event_type == "PurchaseRefunded":  # of an order of theirs: a refund of an unknown one waits
            ids = {"order_id": f"O{tag}x{uuid.uuid4().hex[:12]}"}
            history.facts.append(fact("PurchaseMade", customer_id, OCCURRED + n * DAY - DAY / 2,
                                      source_event_id=f"{tag}-{n}-buy", order_id=ids["order_id"]))
        history.plain_texts += list(ids.values())
        made = fact(event_type, customer_id, OCCURRED + n * DAY, source_event_id=f"{tag}-{n}", **ids, **values)
        history.personal[made["source_event_id"]] = values
        history.facts.append(made)
    order = f"O{tag}x{uuid.uuid4().hex[:12]}"
    history.plain_texts.append(order)
    history.facts.append(fact("PurchaseMade", customer_id, OCCURRED + 30 * DAY, source_event_id=f"{tag}-buy",
                              order_id=order, total_minor=4200))
    return history


def as_json(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON")


def write_jsonl(path: Path, facts: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(f, default=as_json) + "\n" for f in facts), encoding="utf-8")
    return path


def opened(audit: dict[str, Any], history: MarkedHistory) -> dict[str, dict[str, Any]]:
    """The personal fields of each of `history`'s facts as `ledger audit` shows them, by
    source_event_id."""
    return {e["source_event_id"]: {name: e[name] for name in history.personal[e["source_event_id"]]}
            for e in audit["events"] if e["source_event_id"] in history.personal}


def as_sent(history: MarkedHistory) -> dict[str, dict[str, Any]]:
    """The personal fields of `history`'s facts as JSON shows them (dates ISO-8601)."""
    return json.loads(json.dumps(history.personal, default=as_json))


def found_in(data: bytes, texts: list[str]) -> list[str]:
    """The texts of `texts` that `data` holds, as UTF-8 or as hex (a bytea column's dump)."""
    lowered = data.lower()
    return [t for t in texts if t.encode() in data or t.encode().hex().encode() in lowered]


def files_holding(directory: Path, texts: list[str]) -> dict[str, list[str]]:
    """Every file under `directory` (any name: logs, write-ahead logs, copies) that holds one
    of `texts`, with the texts it holds."""
    found = {}
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        held = found_in(path.read_bytes(), texts)
        if held:
            found[str(path.relative_to(directory))] = held
    return found


def ledger_process(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`ledger ARGS` in a process of its own, with no LEDGER_* setting but those in `env`."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    return subprocess.run([sys.executable, "-m", "ledger.cli", *args], env={**clean, **(env or {})},
                          capture_output=True, text=True, timeout=120)
