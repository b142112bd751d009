"""Projectors sharing the ledger topic in a consumer group, publishing one lake (issue 16).

Real parts only: the Tansu broker, the local PostgreSQL (the lake's catalog), `ledger`
processes. The lake the group publishes must equal, table by table and row for row, the read
models a single projector builds from the same topic, however the partitions moved between
the members (one killed with SIGKILL holding some, another joining later).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest

from ledger.errors import LakeUnavailableError
from ledger.projection import lake
from ledger.settings import Settings
from tests.ops.test_chaos import NOT_COMPARED, clean_environment, history, ledger_cli, run, tables
from tests.projection.test_lake import _catalog_texts, _lake_texts, _sorting_last
from tests.support.broker import TansuBroker, high_watermarks
from tests.support.lakes import new_catalog
from tests.support.privacy import marked_history, write_jsonl

LOGGED = (
    "import faulthandler, logging, runpy, signal, sys; faulthandler.register(signal.SIGUSR1); "
    "logging.basicConfig(level=logging.INFO, format='%(asctime)s %(name)s %(message)s'); "
    "logging.getLogger('kafka').setLevel(logging.WARNING); sys.argv[0] = 'ledger'; "
    "runpy.run_module('ledger.cli', run_name='__main__')"
)
"""`ledger` with its log on stderr at info (`project` leaves logging to the caller): what each
member did is in its log file when the test fails."""
AS_OF = datetime(2026, 11, 1, tzinfo=UTC)
WAIT_S = 240


class Group:
    """A ledger topic with events on it, a lake, and the environment of the group's members."""

    def __init__(self, tmp_path: Path, bootstrap: str, topic: str, catalog: str, group: str):
        self.tmp, self.bootstrap, self.topic = tmp_path, bootstrap, topic
        self.writer = tmp_path / "writer"
        self.store = Settings(data_dir=self.writer).store_url
        self.env = clean_environment(
            LEDGER_LEDGER_TOPIC=topic, LEDGER_BATCH_SIZE="200", LEDGER_KAFKA=bootstrap, LEDGER_STORE=self.store)
        self.group_env = {
            **self.env, "LEDGER_PROJECTOR_GROUP": "true", "LEDGER_READMODEL_STORE": "ducklake",
            "LEDGER_LAKE_CATALOG": catalog, "LEDGER_LAKE_DATA": str(tmp_path / "lake"), "LEDGER_CONSUMER_GROUP": group,
            "LEDGER_REFRESH_IDLE_S": "3600",
        }
        self.settings = Settings(data_dir=tmp_path / "reader", readmodel_store="ducklake", lake_catalog=catalog,
                                 lake_data=tmp_path / "lake")

    def record(self, facts: list[dict[str, Any]], name: str) -> None:
        """Record `facts` in the store and relay them onto the topic."""
        run(ledger_cli("ingest", str(write_jsonl(self.tmp / f"{name}.jsonl", facts)), "--data-dir", str(self.writer)),
            self.env)
        run(ledger_cli("relay", "--once", "--data-dir", str(self.writer)), self.env)

    @contextmanager
    def member(self, name: str) -> Iterator[subprocess.Popen[bytes]]:
        """`ledger project --as-of AS_OF` following, in a data directory of its own."""
        log = (self.tmp / f"{name}.log").open("wb")
        process = subprocess.Popen(
            [sys.executable, "-c", LOGGED, "project", "--as-of", AS_OF.isoformat(), "--data-dir", str(self.tmp / name)],
            env=self.group_env, stdout=log, stderr=subprocess.STDOUT)
        try:
            yield process
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    process.kill()
            log.close()

    def status(self) -> dict[str, Any]:
        done = subprocess.run(ledger_cli("status", "--json", "--data-dir", str(self.tmp / "reader")),
                              env=self.group_env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    def status_partitions(self) -> dict[str, list[int]]:
        """The partitions of each member but A (killed: its row stays, with the time it was last
        seen), by data directory, as `ledger status` shows them."""
        return {Path(m["member"].split(":", 2)[2]).name: sorted(int(p) for p in m["partitions"])
                for m in self.status()["group_members"] if not m["member"].endswith("/a")}

    def head(self) -> dict[int, int]:
        return high_watermarks(self.bootstrap, self.topic)

    def sliced(self) -> dict[int, int]:
        """Each partition's position in its slice in the lake."""
        return self._positions("SELECT _partition, position FROM lake.slices.projector_positions")

    def published(self) -> dict[int, int]:
        """Each partition's position in the analysts' tables (the last combine)."""
        return self._positions("SELECT partition, position FROM lake.main.ledger_position")

    def _positions(self, sql: str) -> dict[int, int]:
        with duckdb.connect() as con:
            try:
                lake.attach(con, self.settings, read_only=True)
                return {int(p): at for p, at in con.execute(sql).fetchall()}
            except (LakeUnavailableError, duckdb.CatalogException):  # nothing published yet
                return {}

    def lake_tables(self) -> dict[str, list[tuple]]:
        with duckdb.connect() as con:
            lake.attach(con, self.settings, read_only=True)
            con.execute("SET TimeZone = 'UTC'")
            names = [n for (n,) in con.execute(
                "SELECT table_name FROM duckdb_tables() WHERE database_name = 'lake' AND schema_name = 'main'"
            ).fetchall()]
            return {n: con.execute(f'SELECT * FROM lake.main."{n}" ORDER BY ALL').fetchall() for n in names}


def wait_for(condition: Callable[[], bool], what: str, processes: list[subprocess.Popen[bytes]]) -> None:
    """Until `condition` holds; a member that died on its own fails the test at once."""
    deadline = time.monotonic() + WAIT_S
    while not condition():
        for process in processes:
            assert process.poll() is None, f"a member exited with {process.returncode} before {what}"
        if time.monotonic() > deadline:
            for process in processes:  # where each member is, into its log
                process.send_signal(signal.SIGUSR1)
            time.sleep(1)
            raise AssertionError(f"never {what}")
        time.sleep(0.5)


@pytest.fixture
def group(kafka_broker: TansuBroker, topic_factory: Callable[..., str], unique_group: str,
          tmp_path: Path) -> Iterator[Group]:
    with new_catalog() as catalog:
        yield Group(tmp_path, kafka_broker.bootstrap, topic_factory(partitions=6), catalog, unique_group)


@pytest.mark.kafka
@pytest.mark.timeout(600)  # three group joins, a member's death noticed, and two combines: about 1.5 min alone
def test_three_projectors_one_killed_and_one_joining_later_publish_what_a_single_projector_builds(
    group: Group, tmp_path: Path,
) -> None:
    facts = history(random.Random(16), 2400, prefix="g")
    group.record(facts[:1200], "first")
    with group.member("a") as a, group.member("b") as b:
        # Both have published slices of the first half; then A dies holding its partitions.
        wait_for(lambda: group.sliced() == group.head(), "sliced the first half", [a, b])
        os.kill(a.pid, signal.SIGKILL)
        a.wait()
        group.record(facts[1200:], "second")
        with group.member("c") as c:
            wait_for(lambda: group.published() == group.head(), "published the whole topic", [b, c])
            # `ledger status` shows the two members alive sharing the six partitions, and A's last word.
            wait_for(lambda: sorted(sum(group.status_partitions().values(), [])) == list(range(6)),
                     "shown sharing the partitions in status", [b, c])
            assert set(group.status_partitions()) <= {"b", "c"}
            # A replay now would have them publish files of the old SQL over it: refused, saying so.
            done = subprocess.run(ledger_cli("replay", "--data-dir", str(tmp_path / "r")), env=group.group_env,
                                  capture_output=True, text=True, timeout=120)
            assert done.returncode == 1 and "stop them first" in done.stderr, done.stderr
    assert sum(group.head().values()) == len(facts)

    single = tmp_path / "single"
    run(ledger_cli("replay", "--as-of", AS_OF.isoformat(), "--data-dir", str(single)), group.env)
    theirs = {n: rows for n, rows in tables(single / "readmodels.duckdb").items() if n not in NOT_COMPARED}
    ours = {n: rows for n, rows in group.lake_tables().items() if n not in NOT_COMPARED}
    assert sorted(ours) == sorted(theirs)
    for name in sorted(theirs):
        assert ours[name] == theirs[name], f"{name}: the group's lake differs from a single projector's"
    assert len(ours["events"]) == len(facts)
    assert len(ours["satisfaction_daily"]) > 0 and len(ours["rfm"]) > 0


@pytest.mark.kafka
@pytest.mark.timeout(600)
def test_in_a_group_an_erasure_leaves_every_file_of_the_lake_and_insight_runs_stay_through_combines(
    group: Group, tmp_path: Path,
) -> None:
    c1, c2 = _sorting_last(marked_history("C1")), marked_history("C2")
    group.record(c1.facts + c2.facts + history(random.Random(5), 300, prefix="e"), "marked")
    member = ["project", "--once", "--as-of", AS_OF.isoformat(), "--data-dir", str(tmp_path / "m")]
    run(ledger_cli(*member), group.group_env)
    folder, catalog = tmp_path / "lake", group.group_env["LEDGER_LAKE_CATALOG"]
    assert _lake_texts(folder, c1.texts) and _catalog_texts(catalog, c1.texts)  # in slices and tables alike
    # An insight run goes into the combine, and every later combine runs it again.
    run(ledger_cli("insight", "basket", "--as-of", AS_OF.isoformat(), "--data-dir", str(tmp_path / "m")),
        group.group_env)
    assert [row[0] for row in group.lake_tables()["insight_runs"]] == ["basket"]

    run(ledger_cli("erase", "C1", "--data-dir", str(group.writer)), group.env)
    run(ledger_cli("relay", "--once", "--data-dir", str(group.writer)), group.env)
    run(ledger_cli(*member), group.group_env)
    assert _lake_texts(folder, c1.texts) == [] and _catalog_texts(catalog, c1.texts) == []
    assert _lake_texts(folder, c2.texts)  # nobody else forgotten
    # Nor in the member's own working files.
    for path in (tmp_path / "m" / "partitions").glob("*.duckdb"):
        assert not [t for t in c1.texts if t.encode() in path.read_bytes()], path
    tables = group.lake_tables()
    assert [row[0] for row in tables["insight_runs"]] == ["basket"]
    erased = [row for row in tables["customer_profile"] if row[0] == "C1"]
    assert len(erased) == 1
    # A replay rebuilds every partition's slice from the topic and combines them: the same rows.
    # (Not the merge keys' provenance: C1's sealed fields cannot be opened any more, so a replay
    # finds no latest value of them, where the first pass found them before the erasure.)
    compared = NOT_COMPARED | {"customer_profile_keys"}
    before = {n: rows for n, rows in tables.items() if n not in compared}
    run(ledger_cli("replay", "--as-of", AS_OF.isoformat(), "--data-dir", str(tmp_path / "m")), group.group_env)
    after = {n: rows for n, rows in group.lake_tables().items() if n not in compared}
    assert sorted(after) == sorted(before)
    for name in sorted(before):
        assert after[name] == before[name], f"{name} differs after the group's replay"
    assert _lake_texts(folder, c1.texts) == []
