"""ContactLogged v3 (language, sentiment) in the embedded path: recorded next to contacts the
ledger wrote with v1 and v2, read back in `events` with the new fields where they were given
and NULL where the writer did not have them; usable by segment rules; v2 readers read v3."""

from __future__ import annotations

import io
import json
from pathlib import Path

import fastavro
import pytest

from ledger.cli.main import app
from ledger.contract.codec import HEADER_LEN, default_codec
from ledger.contract.rules import check_rules
from ledger.errors import SchemaError, ValidationError
from ledger.projection.readmodels import ReadModels
from ledger.settings import Settings
from ledger.write.application import Ledger
from ledger.write.store import TOPIC_PREFIX
from tests.support.cli import StrictRunner
from tests.support.facts import CLOCK, DAY, T0, consent, fact
from tests.support.readmodels import Harness
from tests.support.versions import adapter_bytes, codec_before

CONTACTS = "SELECT customer_id, language, sentiment FROM events WHERE event_type = 'ContactLogged' ORDER BY 1"


def written_versions(ledger: Ledger) -> list[int]:
    """The ContactLogged schema version of each stored contact, from its bytes' fingerprint."""
    found = []
    for notification in ledger.recorder.select_notifications(0, 1000):
        if notification.topic.startswith(TOPIC_PREFIX):
            writer = ledger.codec.writer_of(notification.state)
            if writer.event_type == "ContactLogged":
                found.append(writer.version)
    return found


def test_a_v3_contact_recorded_by_the_cli_is_read_back_next_to_v1_and_v2_contacts(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    for version, customer in ((1, "OLD1"), (2, "OLD2")):  # the ledger before v2, then before v3
        older = Ledger(settings, clock=lambda: CLOCK, codec=codec_before("ContactLogged", version))
        assert older.record(fact("ContactLogged", customer, T0)).status == "recorded"
        older.close()
    line = {"type": "ContactLogged", "customer_id": "NEW3", "occurred_at": "2026-01-02T10:00:00Z", "source": "desk",
            "source_event_id": "t-1", "contact_id": "t-1", "channel": "chat", "direction": "inbound",
            "language": "pt-BR", "sentiment": -0.6}

    result = StrictRunner().invoke(app, ["record", json.dumps(line), "--data-dir", str(settings.data_dir)])

    assert result.exit_code == 0, result.output
    ledger = Ledger(settings, clock=lambda: CLOCK)
    try:
        assert written_versions(ledger) == [1, 2, 3]
    finally:
        ledger.close()
    with ReadModels(settings.readmodel_path, settings=settings) as models:
        rows = models.con.execute(CONTACTS).fetchall()
    assert rows == [("NEW3", "pt-BR", -0.6), ("OLD1", None, None), ("OLD2", None, None)]


def test_a_segment_rule_selects_customers_by_the_sentiment_of_their_contacts(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "unhappy.sql").write_text(
        "-- Customers whose scored contacts of the 30 days up to as_of average below -0.3.\n"
        "SELECT customer_id FROM events\n"
        "WHERE event_type = 'ContactLogged' AND sentiment IS NOT NULL\n"
        "  AND occurred_at <= getvariable('as_of') AND occurred_at > getvariable('as_of') - INTERVAL 30 DAY\n"
        "GROUP BY customer_id HAVING avg(sentiment) < -0.3\n"
    )
    h = Harness(tmp_path, Settings(data_dir=tmp_path / "data", segments_dir=rules))
    try:
        h.record(
            *(consent(c, T0) for c in ("SAD", "MIXED", "UNSCORED", "PT")),
            fact("ContactLogged", "SAD", T0 + DAY, sentiment=-0.8, language="en"),
            fact("ContactLogged", "SAD", T0 + 2 * DAY, sentiment=-0.2, language="en"),
            fact("ContactLogged", "MIXED", T0 + DAY, sentiment=-0.9),
            fact("ContactLogged", "MIXED", T0 + 2 * DAY, sentiment=0.7),
            fact("ContactLogged", "UNSCORED", T0 + DAY),
            fact("ContactLogged", "PT", T0 + DAY, sentiment=-1.0, language="pt-BR"),
        )
        h.project(T0 + 10 * DAY)
        members = h.rows("SELECT customer_id FROM segment_membership WHERE segment = 'unhappy' AND left_at IS NULL "
                         "ORDER BY 1")
        assert members == [("PT",), ("SAD",)]
        assert h.rows("SELECT language, count(*) FROM events WHERE language IS NOT NULL GROUP BY 1 ORDER BY 1") == [
            ("en", 2), ("pt-BR", 1)]
    finally:
        h.close()


def test_the_newest_reader_reads_v1_and_v2_data_and_a_v2_reader_reads_v3_data() -> None:
    codec = default_codec()
    base = {"event_id": "00000000-0000-0000-0000-000000000001", "customer_id": "C1", "occurred_at": 0,
            "recorded_at": 0, "source": "desk", "contact_id": "K1", "channel": "phone", "direction": "inbound"}
    for file_name in ("contact_logged.v1.avsc", "contact_logged.v2.avsc"):
        event_type, record = codec.decode(adapter_bytes(file_name, base))
        assert (event_type, record["language"], record["sentiment"], record["contact_id"]) == (
            "ContactLogged", None, None, "K1")

    v3_data = adapter_bytes("contact_logged.v3.avsc", {**base, "language": "en", "sentiment": 0.25})
    versions = {v.version: v for v in codec.versions if v.event_type == "ContactLogged"}
    assert codec.writer_of(v3_data) is versions[3]
    for old in (1, 2):  # an older consumer, given the writer's schema, reads with its own
        body = io.BytesIO(v3_data[HEADER_LEN:])
        record = fastavro.schemaless_reader(body, versions[3].parsed, versions[old].parsed)
        assert "language" not in record and record["contact_id"] == "K1"


@pytest.mark.parametrize("language", ["en", "pt-BR", "zh-Hant-TW", "es-419", "sgn-BE-FR", "x-klingon"])
def test_a_bcp_47_language_tag_is_accepted(language: str) -> None:
    check_rules("ContactLogged", v3_record(language=language), CLOCK, DAY)


@pytest.mark.parametrize(("fields", "field", "reason"), [
    ({"language": "English"}, "language", "not a BCP 47 language tag"),
    ({"language": "pt_BR"}, "language", "not a BCP 47 language tag"),
    ({"language": "e"}, "language", "not a BCP 47 language tag"),
    ({"language": "en-" + "-".join(["abcdefgh"] * 4)}, "language", "not a BCP 47 language tag"),
    ({"sentiment": 1.5}, "sentiment", "from -1.0 to 1.0, got 1.5"),
    ({"sentiment": -1.01}, "sentiment", "from -1.0 to 1.0"),
    ({"sentiment": float("nan")}, "sentiment", "got nan"),
    ({"sentiment": float("-inf")}, "sentiment", "got -inf"),
    ({"sentiment": True}, "sentiment", "got True"),
])
def test_a_language_that_is_no_tag_or_a_sentiment_off_the_scale_is_refused(
    fields: dict, field: str, reason: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        check_rules("ContactLogged", v3_record(**fields), CLOCK, DAY)
    assert refused.value.field == field and reason in refused.value.reason


def test_the_ledger_refuses_a_sentiment_off_the_scale_and_records_nothing(tmp_path: Path) -> None:
    ledger = Ledger(Settings(data_dir=tmp_path / "data"), clock=lambda: CLOCK)
    try:
        with pytest.raises(ValidationError, match="sentiment: must be a number from -1.0 to 1.0, got 2.0"):
            ledger.record(fact("ContactLogged", "C1", T0, sentiment=2.0))
        with pytest.raises(SchemaError, match="sentiment"):
            ledger.record(fact("ContactLogged", "C1", T0, sentiment="very bad"))
        assert written_versions(ledger) == []
    finally:
        ledger.close()


def v3_record(**fields: object) -> dict[str, object]:
    return {"customer_id": "C1", "source": "desk", "occurred_at": T0, "contact_id": "K1", "channel": "phone",
            "direction": "inbound", **fields}
