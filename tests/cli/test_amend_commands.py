"""The amending commands as an operator runs them: `ledger correct`, `retract`, `merge`,
`split`. The read models count the amended history at once (embedded), the timeline shows
the fact and its amendment, `--as-of`/`--known-at` before the amendment show the books as they
were, and a refusal says what is wrong with exit 3 and changes nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ledger.cli.app import EXIT_REJECTED
from ledger.cli.main import app
from tests.support.cli import StrictRunner

runner = StrictRunner()


def run(data: Path, *args: str, code: int = 0) -> Any:
    result = runner.invoke(app, [*args, "--data-dir", str(data)])
    assert result.exit_code == code, result.output
    return result


def rows(data: Path, sql: str, *flags: str) -> list[dict[str, Any]]:
    return json.loads(run(data, "query", sql, "--json", *flags).stdout)


def record(data: Path, **fact: Any) -> str:
    fact = {"occurred_at": "2026-05-01T09:00:00Z", "source": "desk", **fact}
    return run(data, "record", json.dumps(fact)).stdout.split()[-1]


def test_a_corrected_score_counts_and_the_timeline_keeps_both(tmp_path: Path) -> None:
    data = tmp_path / "d"
    score = record(data, type="FeedbackGiven", customer_id="C1", kind="nps", score=3, channel="email")
    before = rows(data, "SELECT max(recorded_at) AS k FROM events")[0]["k"]
    out = run(data, "correct", score, "--set", "score=9", "--reason", "agent pressed 3 for 9", "--by", "ops",
              "--json").stdout
    correction = json.loads(out)["event_id"]
    assert rows(data, "SELECT latest_nps FROM customer_profile") == [{"latest_nps": 9}]
    assert rows(data, "SELECT nps_promoters, nps_detractors FROM satisfaction_daily") == [
        {"nps_promoters": 1, "nps_detractors": 0}]
    timeline = rows(data, "SELECT event_id, event_type, score, status, target_event_id, changes, actor, reason "
                          "FROM events ORDER BY recorded_at")
    assert timeline == [
        {"event_id": score, "event_type": "FeedbackGiven", "score": 3, "status": "corrected", "target_event_id": None,
         "changes": None, "actor": None, "reason": None},
        {"event_id": correction, "event_type": "FactCorrected", "score": None, "status": None,
         "target_event_id": score, "changes": {"score": "9"}, "actor": "ops", "reason": "agent pressed 3 for 9"},
    ]
    assert rows(data, "SELECT latest_nps FROM customer_profile", "--known-at", before.replace(" ", "T") + "Z") == [
        {"latest_nps": 3}]
    assert rows(data, "SELECT latest_nps FROM customer_profile", "--as-of", "2026-06-01T00:00:00Z") == [
        {"latest_nps": 3}]
    assert rows(data, "SELECT event_type, status FROM events", "--as-of", "2026-06-01T00:00:00Z") == [
        {"event_type": "FeedbackGiven", "status": None}]  # the correction happened after: not yet marked


def test_a_retracted_purchase_leaves_the_spend_and_the_orders(tmp_path: Path) -> None:
    data = tmp_path / "d"
    kept = record(data, type="PurchaseMade", customer_id="C1", order_id="o1", currency="EUR", total_minor=700,
                  channel="web")
    wrong = record(data, type="PurchaseMade", customer_id="C1", order_id="o2", currency="EUR", total_minor=500,
                   channel="web")
    run(data, "retract", wrong, "--reason", "test order")
    assert rows(data, "SELECT purchased_minor FROM customer_spend") == [{"purchased_minor": 700}]
    assert rows(data, "SELECT order_id FROM orders") == [{"order_id": "o1"}]
    assert rows(data, "SELECT event_id, status FROM events WHERE event_type = 'PurchaseMade' ORDER BY recorded_at") == [
        {"event_id": kept, "status": None}, {"event_id": wrong, "status": "retracted"}]
    result = run(data, "retract", wrong, "--reason", "again", code=EXIT_REJECTED)
    assert "was retracted already" in result.output


def test_merge_counts_two_ids_as_one_person_and_split_undoes_it(tmp_path: Path) -> None:
    data = tmp_path / "d"
    record(data, type="ContactLogged", customer_id="WEB-1", contact_id="k1", channel="chat", direction="inbound")
    record(data, type="PurchaseMade", customer_id="CARD-7", order_id="o1", currency="EUR", total_minor=900,
           channel="store")
    profile = "SELECT customer_id, contacts, purchases, net_spend FROM customer_profile ORDER BY customer_id"
    apart = rows(data, profile)
    run(data, "merge", "WEB-1", "CARD-7", "--reason", "same loyalty e-mail")
    assert rows(data, profile) == [{"customer_id": "WEB-1", "contacts": 1, "purchases": 1, "net_spend": {"EUR": 900}}]
    assert rows(data, "SELECT customer_id, survivor_id, root_id FROM customer_merges") == [
        {"customer_id": "CARD-7", "survivor_id": "WEB-1", "root_id": "WEB-1"}]
    assert "split it first" in run(data, "merge", "X", "CARD-7", "--reason", "r", code=EXIT_REJECTED).output
    run(data, "split", "CARD-7", "--reason", "two people")
    assert rows(data, profile) == apart
    assert "is not merged" in run(data, "split", "CARD-7", "--reason", "r", code=EXIT_REJECTED).output


def test_refusals_name_what_is_wrong_and_record_nothing(tmp_path: Path) -> None:
    data = tmp_path / "d"
    score = record(data, type="FeedbackGiven", customer_id="C1", kind="csat", score=3, channel="email")
    head = rows(data, "SELECT count(*) AS n FROM events")
    for args, words in [
        (["correct", score, "--set", "score=6", "--reason", "r"], "csat score must be 1 to 5, got 6"),
        (["correct", score, "--set", "customer_id=\"C2\"", "--reason", "r"], "cannot be corrected"),
        (["correct", score, "--set", "score", "--reason", "r"], "write FIELD=VALUE"),
        (["correct", score, "--set", "score=4", "--reason", " "], "--reason"),
        (["correct", "no-such-event", "--set", "score=4", "--reason", "r"], "no event 'no-such-event'"),
        (["merge", "C1", "C1", "--reason", "r"], "cannot be merged into itself"),
        (["merge", "C1", "NOBODY", "--reason", "r"], "no customer 'NOBODY'"),
    ]:
        result = run(data, *args, code=EXIT_REJECTED)
        assert words in result.output, (args, result.output)
        assert "Traceback" not in result.output
    assert rows(data, "SELECT count(*) AS n FROM events") == head


def test_as_of_counts_a_fact_when_its_corrected_time_says(tmp_path: Path) -> None:
    data = tmp_path / "d"
    late = record(data, type="PurchaseMade", customer_id="C1", order_id="o1", currency="EUR", total_minor=1000,
                  channel="web", occurred_at="2026-05-20T00:00:00Z")
    early = record(data, type="PurchaseMade", customer_id="C1", order_id="o2", currency="EUR", total_minor=50,
                   channel="web", occurred_at="2026-05-01T00:00:00Z")
    for target, moved in ((late, "2026-05-02T00:00:00Z"), (early, "2026-05-25T00:00:00Z")):  # corrected on the 9th
        record(data, type="FactCorrected", customer_id="C1", occurred_at="2026-05-09T00:00:00Z", target_event_id=target,
               target_type="PurchaseMade", changes={"occurred_at": json.dumps(moved)}, reason="wrong day")
    at = ("--as-of", "2026-05-10T00:00:00Z")
    assert rows(data, "SELECT order_id FROM orders", *at) == [{"order_id": "o1"}]
    assert rows(data, "SELECT purchased_minor FROM customer_spend", *at) == [{"purchased_minor": 1000}]
