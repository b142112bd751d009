"""Bad events for the parking tests: a test-only model that refuses a marked contact, a way to
damage one stored payload in the real store file, and the log replayed without the parked."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from ledger.contract.codec import default_codec
from ledger.projection.catalogue import in_build_order, load_models, parse_model
from ledger.projection.decode import RawDecoder
from ledger.projection.engine import Projector
from ledger.projection.readmodels import ReadModels
from ledger.write.key_reader import KeyReader
from ledger.write.log import NotificationLogSource
from tests.projection.tables import snapshot
from tests.support.facts import DAY, T0, event_id, fact
from tests.support.readmodels import Harness

AS_OF = T0 + 60 * DAY
CODEC = default_codec()
POISON = parse_model(
    "poison",
    """-- A test-only model whose SQL refuses any contact with the reason 'poison'.
-- depends: events
-- section: schema
CREATE TABLE poison_seen (event_id VARCHAR NOT NULL);
-- section: apply
INSERT INTO poison_seen
SELECT CASE WHEN reason = 'poison' THEN error('poison in ' || event_id) ELSE event_id END
FROM batch_events WHERE event_type = 'ContactLogged';
""",
)
WITH_POISON = in_build_order([*load_models(), POISON])


def contact(n: int, **fields: Any) -> dict[str, Any]:
    return fact("ContactLogged", f"C{n % 3}", T0 + n * DAY, **fields)


def positions(h: Harness) -> dict[str, int]:
    """event_id -> the notification id the store gave it (recording groups facts by customer,
    so the log's order is not the order of the facts given)."""
    return {str(CODEC.decode(n.state)[1]["event_id"]): n.id for n in h.ledger.notifications(0, 10_000)}


def position(h: Harness, fact: dict[str, Any]) -> int:
    return positions(h)[event_id(fact)]


def corrupt(h: Harness, notification_id: int, cut: int = 14) -> bytes:
    """Cut the stored payload of one notification short (as a damaged disk or a buggy writer
    would), in the real store file; returns the bytes now stored."""
    with sqlite3.connect(h.settings.data_dir / "store.sqlite") as con:
        (state,) = con.execute("SELECT state FROM stored_events WHERE rowid = ?", [notification_id]).fetchone()
        con.execute("UPDATE stored_events SET state = ? WHERE rowid = ?", [state[:cut], notification_id])
    return state[:cut]


def clean_replay(h: Harness, path: Path, models: list | None = None) -> dict[str, list[tuple]]:
    """The tables of the store's log without the events parked in `h`, applied in one batch
    to a fresh file, bypassing the projector's parking."""
    parked = {p for (p,) in h.rows("SELECT position FROM parked_events")}
    payloads = [n.state for n in h.ledger.notifications(0, 10_000) if n.id not in parked]
    with ReadModels(path, models, settings=h.settings) as replayed:
        replayed.apply(RawDecoder(CODEC, KeyReader(h.settings)).table(payloads), "store", {"log": h.ledger.head()})
        replayed.refresh(AS_OF)
        return snapshot(replayed, without=frozenset({"parked_events"}))


def with_models(tmp_path: Path, models: list, batch_size: int = 1000) -> Harness:
    """A harness whose read models are `models` (the catalogue plus a test-only model, say)."""
    h = Harness(tmp_path, batch_size=batch_size)
    h.models.close()
    h.models = ReadModels(tmp_path / "with-models.duckdb", models, settings=h.settings)
    h.projector = Projector(h.models, NotificationLogSource(h.ledger), batch_size=batch_size,
                            keys=KeyReader(h.settings))
    return h
