"""`ledger insight`: the models find what the demo plants and nothing in a history without it,
forget whoever may no longer be profiled, survive a replay row for row, and refuse bad input."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from ledger.cli.main import app
from ledger.errors import InsightError
from ledger.insight.population import sklearn
from tests.support.cli import StrictRunner

runner = StrictRunner()
INSIGHT_TABLES = ("churn_risk", "basket_pairs", "next_best_offer", "customer_clusters", "clusters", "insight_runs")
PER_CUSTOMER = ("churn_risk", "next_best_offer", "customer_clusters")


def ledger(*args: str) -> object:
    return runner.invoke(app, list(args))


def ok(*args: str) -> object:
    result = ledger(*args)
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo's history (1,500 customers) with every insight run once."""
    data = tmp_path_factory.mktemp("planted")
    ok("demo", "--customers", "1500", "--data-dir", str(data))
    for kind in ("churn", "basket", "clusters"):
        ok("insight", kind, "--data-dir", str(data))
    return data


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small demo (250 customers) with every insight run once: for the tests of mechanics."""
    data = tmp_path_factory.mktemp("small")
    ok("demo", "--customers", "250", "--data-dir", str(data))
    for kind in ("churn", "basket", "clusters"):
        ok("insight", kind, "--data-dir", str(data))
    return data


@pytest.fixture(scope="module")
def noise(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("noise")
    ok("demo", "--no-signal", "--customers", "1500", "--data-dir", str(data))
    return data


def copy_of(data: Path, tmp_path: Path) -> Path:
    target = tmp_path / "copy"
    shutil.copytree(data, target)
    return target


def rows(data: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(data / "readmodels.published.duckdb"), read_only=True) as con:
        return con.execute(sql).fetchall()


def test_churn_backtest_finds_the_planted_fading_customers(planted: Path) -> None:
    report = json.loads(ok("insight", "churn", "--train", "--json", "--data-dir", str(planted)).stdout)
    assert report["auc"] > 0.75, report
    assert report["customers"] > 100 and report["trained_on"] > 2 * report["customers"]
    assert 0 < report["precision_top_10pct"] <= 1 and len(report["calibration"]) == 5


def test_churn_finds_nothing_in_a_history_without_signal(noise: Path) -> None:
    report = json.loads(ok("insight", "churn", "--train", "--json", "--data-dir", str(noise)).stdout)
    assert 0.38 < report["auc"] < 0.62, report


def test_churn_risk_scores_each_profiled_customer_with_reasons_in_words(planted: Path) -> None:
    scored = rows(planted, "SELECT r.customer_id, r.score, r.band, r.reasons, p.consent_profiling, p.erased "
                           "FROM churn_risk r LEFT JOIN customer_profile p USING (customer_id)")
    assert len(scored) > 500
    assert all(consent and not erased for *_, consent, erased in scored)
    assert all(0 <= score <= 1 for _, score, *_ in scored)
    assert {band for _, _, band, *_ in scored} == {"low", "medium", "high"}
    words = [reason for *_, reasons, _, _ in scored for reason in reasons]
    assert any(w.startswith("no purchase for ") and ", usually every " in w for w in words)
    assert any(w.endswith(" in 30 days") and "complaint" in w for w in words)
    assert not any(w.startswith("0 ") for w in words)  # a count of nothing is no reason
    profiled = rows(planted, "SELECT count(*) FROM customer_profile WHERE consent_profiling AND NOT erased "
                             "AND purchases > 0")[0][0]
    assert len(scored) == profiled


def test_basket_finds_the_planted_pairs_and_no_others(planted: Path) -> None:
    pairs = {(a, b): lift for a, b, lift in rows(planted, "SELECT sku, with_sku, lift FROM basket_pairs")}
    for pair in (("SKU-4001", "SKU-5001"), ("SKU-5001", "SKU-4001"), ("SKU-2001", "SKU-5002")):
        assert pairs[pair] > 2, pairs
    planted_skus = {"SKU-4001", "SKU-5001", "SKU-2001", "SKU-5002"}
    others = [lift for (a, b), lift in pairs.items() if not {a, b} <= planted_skus]
    assert others and max(others) < 1.3


def test_basket_finds_no_pair_in_a_history_without_signal(noise: Path, tmp_path: Path) -> None:
    data = copy_of(noise, tmp_path)
    ok("insight", "basket", "--data-dir", str(data))
    lifts = [lift for (lift,) in rows(data, "SELECT lift FROM basket_pairs")]
    assert lifts and max(lifts) < 1.3 and min(lifts) > 0.75


def test_offers_leave_out_what_the_customer_bought_and_go_only_to_profiled_customers(planted: Path) -> None:
    bought_again = rows(planted, """
        SELECT o.customer_id, o.sku FROM next_best_offer o
        JOIN facts f ON f.customer_id = o.customer_id AND f.event_type = 'PurchaseMade'
        WHERE list_contains([l.sku FOR l IN f.lines], o.sku)""")
    assert bought_again == []
    unprofiled = rows(planted, "SELECT count(*) FROM next_best_offer o JOIN customer_profile p USING (customer_id) "
                               "WHERE NOT p.consent_profiling OR p.erased")
    assert unprofiled == [(0,)]
    ranks = rows(planted, "SELECT max(rank), count(DISTINCT customer_id), count(*) FROM next_best_offer")[0]
    assert ranks[0] == 3 and ranks[1] > 500
    why = rows(planted, "SELECT why FROM next_best_offer WHERE sku = 'SKU-5001' AND why LIKE 'bought with%' LIMIT 1")
    assert why and "SKU-4001" in why[0][0] and "lift" in why[0][0]


def test_clusters_are_described_numbered_by_size_and_repeatable(planted: Path, tmp_path: Path) -> None:
    groups = rows(planted, "SELECT cluster, customers, description FROM clusters ORDER BY cluster")
    sizes = [size for _, size, _ in groups]
    assert len(groups) == 5 and sizes == sorted(sizes, reverse=True)
    assert sum(sizes) == rows(planted, "SELECT count(*) FROM customer_clusters")[0][0]
    assert all(description for *_, description in groups)
    summary = json.loads(rows(planted, "SELECT summary FROM insight_runs WHERE kind = 'clusters'")[0][0])
    assert -1 <= summary["stability_ari_90d"] <= 1
    data = copy_of(planted, tmp_path)
    as_of = rows(planted, "SELECT strftime(as_of, '%Y-%m-%dT%H:%M:%S.%fZ') FROM insight_runs "
                          "WHERE kind = 'clusters'")[0][0]
    ok("insight", "clusters", "--as-of", as_of, "--data-dir", str(data))
    sql = "SELECT customer_id, cluster FROM customer_clusters ORDER BY customer_id"
    assert rows(data, sql) == rows(planted, sql)


def test_every_insight_table_survives_a_replay_row_for_row(planted: Path, tmp_path: Path) -> None:
    data = copy_of(planted, tmp_path)
    before = {t: rows(data, f"SELECT * FROM {t} ORDER BY ALL") for t in INSIGHT_TABLES}
    ok("replay", "--data-dir", str(data))
    after = {t: rows(data, f"SELECT * FROM {t} ORDER BY ALL") for t in INSIGHT_TABLES}
    assert all(before[t] for t in INSIGHT_TABLES)
    assert after == before
    dry = json.loads(ok("replay", "--dry-run", "--json", "--data-dir", str(data)).stdout)["tables"]
    moved = [t for t in dry if t["table"] in INSIGHT_TABLES and (t["added"] or t["removed"] or t["changed"])]
    assert moved == [] and {t["table"] for t in dry} >= set(INSIGHT_TABLES)


@pytest.mark.parametrize("spoil", [
    "UPDATE insight_runs SET kind = 'crystal_ball' WHERE kind = 'clusters'",
    "UPDATE insight_runs SET parameters = '{not json' WHERE kind = 'clusters'",
    "UPDATE insight_runs SET parameters = '[1]' WHERE kind = 'clusters'",
    "UPDATE insight_runs SET parameters = json_merge_patch(parameters, '{\"from_the_future\": 1}') "
    "WHERE kind = 'clusters'",
])
def test_a_replay_goes_on_past_a_run_record_it_cannot_read(small: Path, tmp_path: Path, spoil: str) -> None:
    data = copy_of(small, tmp_path)
    with duckdb.connect(str(data / "readmodels.duckdb")) as con:
        con.execute(spoil)
    ok("replay", "--data-dir", str(data))
    kinds = [kind for (kind,) in rows(data, "SELECT kind FROM insight_runs ORDER BY kind")]
    assert "basket" in kinds and "churn" in kinds and "crystal_ball" not in kinds
    assert rows(data, "SELECT count(*) > 50 FROM churn_risk") == [(True,)]
    if "from_the_future" in spoil:  # a parameter this version does not know is ignored: the run is made again
        assert "clusters" in kinds and rows(data, "SELECT count(*) > 0 FROM customer_clusters") == [(True,)]


def test_insight_is_not_recomputed_in_the_past_only_runs_made_as_of_then_show(small: Path, tmp_path: Path) -> None:
    data = copy_of(small, tmp_path)
    ok("insight", "churn", "--as-of", "2026-10-01T00:00:00Z", "--data-dir", str(data))
    shown = {when: json.loads(ok("query", "SELECT (SELECT count(*) FROM churn_risk) AS churn, (SELECT count(*) FROM "
                                  "customer_clusters) AS clusters", "--json", "--as-of", when,
                                  "--data-dir", str(data)).stdout)[0]
             for when in ("2026-09-01T00:00:00Z", "2026-11-01T00:00:00Z")}
    assert shown["2026-09-01T00:00:00Z"] == {"churn": 0, "clusters": 0}
    assert shown["2026-11-01T00:00:00Z"]["churn"] > 50 and shown["2026-11-01T00:00:00Z"]["clusters"] == 0


def test_an_erased_or_unconsenting_customer_leaves_every_insight_table_at_once_and_for_good(
    small: Path, tmp_path: Path
) -> None:
    data = copy_of(small, tmp_path)
    everywhere = ("SELECT customer_id FROM churn_risk JOIN customer_clusters USING (customer_id) "
                  "WHERE customer_id IN (SELECT customer_id FROM next_best_offer) ORDER BY customer_id LIMIT 2")
    erased, withdrawn = (c for (c,) in rows(data, everywhere))
    survivor, lost = (c for (c,) in rows(data, everywhere.replace("LIMIT 2", "LIMIT 2 OFFSET 2")))
    ok("erase", erased, "--reason", "gdpr request", "--data-dir", str(data))
    consent = {"type": "ConsentChanged", "customer_id": withdrawn, "source": "crm", "source_event_id": "withdraw-1",
               "occurred_at": "2026-12-01T00:00:00Z", "purpose": "profiling", "granted": False}
    ok("record", json.dumps(consent), "--data-dir", str(data))

    def left() -> list[tuple]:
        return [(t, c) for t in PER_CUSTOMER
                for (c,) in rows(data, f"SELECT customer_id FROM {t} WHERE customer_id IN ('{erased}', '{withdrawn}')")]

    assert left() == []
    # Merged, then the merged id withdraws: the survivor (one person) may no longer be profiled.
    ok("merge", survivor, lost, "--reason", "one person", "--data-dir", str(data))
    withdraw = {**consent, "customer_id": lost, "source_event_id": "withdraw-2"}
    ok("record", json.dumps(withdraw), "--data-dir", str(data))
    assert rows(data, f"SELECT consent_profiling FROM customer_profile WHERE customer_id = '{survivor}'") == [(False,)]
    gone = (erased, withdrawn, survivor, lost)
    assert [r for t in PER_CUSTOMER for r in rows(data, f"SELECT * FROM {t} WHERE customer_id IN {gone}")] == []
    ok("replay", "--data-dir", str(data))
    assert left() == []
    ok("insight", "churn", "--data-dir", str(data))
    assert left() == []
    assert rows(data, f"SELECT count(*) FROM churn_risk WHERE customer_id IN {gone}") == [(0,)]
    assert rows(data, "SELECT count(*) FROM churn_risk")[0][0] > 50


@pytest.mark.parametrize(("args", "message"), [
    (("churn", "--horizon", "ninety"), "--horizon must be a number of days"),
    (("churn", "--horizon", "0d"), "--horizon must be a number of days"),
    (("basket", "--horizon", "99999"), "--horizon must be a number of days"),
    (("churn", "--as-of", "2999-01-01T00:00:00Z"), "is in the future"),
    (("clusters", "--as-of", "yesterday"), "--as-of"),
])
def test_bad_flags_are_usage_errors_that_name_the_flag(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    result = ledger("insight", *args, "--data-dir", str(tmp_path))
    assert result.exit_code == 2, result.output
    assert message in result.stderr


def test_a_date_the_history_does_not_cover_is_refused_saying_why(small: Path, tmp_path: Path) -> None:
    data = copy_of(small, tmp_path)
    early = ledger("insight", "churn", "--as-of", "2001-01-01T00:00:00Z", "--data-dir", str(data))
    assert early.exit_code == 1 and "no customer with profiling consent had bought by the training date" in early.stderr
    late = ledger("insight", "churn", "--train", "--as-of", "2026-12-01T00:00:00Z", "--data-dir", str(data))
    assert late.exit_code == 1 and "choose an earlier --as-of or a shorter --horizon" in late.stderr
    empty = ledger("insight", "clusters", "--data-dir", str(tmp_path / "empty"))
    assert empty.exit_code == 1 and "no facts yet" in empty.stderr


def test_a_second_writer_is_refused_while_insight_would_write(small: Path, tmp_path: Path) -> None:
    data = copy_of(small, tmp_path)
    hold = ("import sys\nfrom pathlib import Path\nfrom ledger.write.locks import exclusive\n"
            "with exclusive(Path(sys.argv[1]), 'x'):\n    print('held', flush=True)\n    sys.stdin.read()\n")
    holder = subprocess.Popen([sys.executable, "-c", hold, str(data / "writer.lock")], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        busy = ledger("insight", "churn", "--data-dir", str(data))
        assert busy.exit_code == 4, busy.output
        readonly = ledger("insight", "churn", "--train", "--json", "--data-dir", str(data))
        assert readonly.exit_code == 0, readonly.output  # a backtest writes nothing: it needs no lock
    finally:
        holder.communicate("")


def test_a_model_without_scikit_learn_says_how_to_install_it() -> None:
    with pytest.raises(InsightError, match=r"pip install 'customer-ledger\[insight\]'"):
        sklearn("sklearn_that_is_not_installed")


def test_a_segment_rule_can_use_the_clusters_and_sees_a_run_at_once(
    small: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = copy_of(small, tmp_path)
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "cluster_two.sql").write_text("-- consent: profiling\n"
                                           "SELECT customer_id FROM customer_clusters WHERE cluster = 2\n")
    monkeypatch.setenv("LEDGER_SEGMENTS_DIR", str(rules))
    ok("insight", "clusters", "--data-dir", str(data))
    members = rows(data, "SELECT customer_id FROM segment_membership WHERE segment = 'cluster_two' "
                         "AND left_at IS NULL ORDER BY 1")
    clustered = rows(data, "SELECT customer_id FROM customer_clusters WHERE cluster = 2 ORDER BY 1")
    assert members and members == clustered


def test_status_says_how_old_each_run_is(planted: Path) -> None:
    shown = json.loads(ok("status", "--json", "--data-dir", str(planted)).stdout)["insight"]
    for kind, version in (("churn", "churn-logreg-1/"), ("basket", "basket-rules-1/"), ("clusters", "clusters-k")):
        assert f"{kind} as of 20" in shown and version in shown


def test_a_huge_or_hostile_order_gives_no_pairs_and_breaks_nothing(small: Path, tmp_path: Path) -> None:
    data = copy_of(small, tmp_path)
    customer = rows(data, "SELECT customer_id FROM churn_risk ORDER BY customer_id LIMIT 1")[0][0]
    lines = [{"sku": f"BULK-{n:04d}'); DROP TABLE facts; --", "quantity": 1, "unit_price_minor": 1} for n in range(500)]
    order = {"type": "PurchaseMade", "customer_id": customer, "source": "webshop", "source_event_id": "bulk-1",
             "occurred_at": "2026-12-01T12:00:00Z", "order_id": "BULK-1", "channel": "web", "currency": "EUR",
             "total_minor": 500, "lines": lines}
    ok("record", json.dumps(order), "--data-dir", str(data))
    ok("insight", "basket", "--data-dir", str(data))
    assert rows(data, "SELECT count(*) FROM basket_pairs WHERE sku LIKE 'BULK-%' OR with_sku LIKE 'BULK-%'") == [(0,)]
    pairs = {(a, b) for a, b in rows(data, "SELECT sku, with_sku FROM basket_pairs")}
    assert ("SKU-4001", "SKU-5001") in pairs and rows(data, "SELECT count(*) > 0 FROM facts") == [(True,)]
