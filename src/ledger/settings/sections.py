"""The sections of the settings (store, kafka, projection, intake): what each value means."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

from ledger.errors import SettingsError


@dataclass(frozen=True)
class Secret:
    """A value that must not show up in logs or reprs."""

    value: str = field(repr=False)

    def __repr__(self) -> str:
        return "Secret('***')"


@dataclass(frozen=True)
class StoreSettings:
    """The event store."""

    url: str | None = field(default=None, repr=False)
    """``sqlite:///PATH`` or ``postgresql://user:pass@host/db[?schema=NAME]``; None: the
    embedded SQLite file in the data directory. Never shown with its password."""

    def __bool__(self) -> bool:
        """True when a store URL was given (else the embedded file is used)."""
        return self.url is not None

    def __repr__(self) -> str:
        return f"StoreSettings(url={without_password(self.url)!r})"


def without_password(url: str | None) -> str | None:
    """A URL as it may be printed: ``scheme://***@host/...`` when it carries credentials."""
    if url is None or "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"


@dataclass(frozen=True)
class KafkaSettings:
    """The Kafka cluster and the ledger's topics; no bootstrap servers means embedded mode."""

    bootstrap: str | None = None
    """Bootstrap servers, ``host:port[,host:port]``."""
    ledger_topic: str = "ledger.events"
    intake_topic: str = "ledger.intake"
    dlq_topic: str = "ledger.intake.dlq"
    partitions: int = 4
    """Partitions of the topics `ledger topics create` (and serve, relay) create."""
    replication_factor: int = 1
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: Secret | None = None
    ssl_cafile: str | None = None
    consumer_group: str = "ledger-projector"
    intake_group: str | None = None
    """A consumer group to share the intake topic's partitions among several intake processes
    (a PostgreSQL store); None: the intake reads every partition itself."""
    timeout_s: float = 5.0
    """How long a client waits to reach the cluster at first (its bootstrap: a connection and
    the cluster's metadata) before the command fails naming the servers (``LEDGER_KAFKA_TIMEOUT``).
    kafka-python's own default is 30 s, a long silence for `ledger status` against a dead
    broker; a healthy broker answers in milliseconds. Requests after that keep the library's
    timeouts, which a loaded broker acknowledging a large batch may need."""

    def __bool__(self) -> bool:
        """True when Kafka is configured: the production path rather than embedded."""
        return bool(self.bootstrap)

    def __str__(self) -> str:
        return self.bootstrap or "(no Kafka)"

    def client_options(self) -> dict[str, object]:
        """Connection and security options shared by every kafka-python client."""
        if not self.bootstrap:
            raise SettingsError("no Kafka bootstrap servers: give --kafka or LEDGER_KAFKA")
        options: dict[str, object] = {
            "bootstrap_servers": self.bootstrap.split(","),
            "security_protocol": self.security_protocol,
            "bootstrap_timeout_ms": round(self.timeout_s * 1000),
        }
        if self.sasl_mechanism:
            options["sasl_mechanism"] = self.sasl_mechanism
            options["sasl_plain_username"] = self.sasl_username
            if self.sasl_password is not None:
                options["sasl_plain_password"] = self.sasl_password.value
        if self.ssl_cafile:
            options["ssl_cafile"] = self.ssl_cafile
        return options


SEGMENT_HISTORY = ("month", "week", "day", "refresh")
"""The values of `ProjectionSettings.segment_history`."""


@dataclass(frozen=True)
class ProjectionSettings:
    """The read models: refreshing, and the thresholds of the "as of" models."""

    refresh_idle_s: float = 60.0
    """A following projector with nothing new refreshes the "as of" models (time passing moves
    customers to at_risk, ...) and republishes at most this often; new events do it at once."""
    reporting_currency: str = "EUR"
    """The currency RFM `monetary`, the orders' and profiles' converted amounts and the report's
    revenue are given in. Without `exchange_rates` only orders in this currency are counted."""
    exchange_rates: Path | None = None
    """A CSV file ``date,currency,rate`` (1 unit of `currency` is `rate` units of the reporting
    currency from `date` on), read at each refresh and kept in the `exchange_rates` read model;
    orders in other currencies are converted at the rate in force on their purchase date
    (projection/rates.py). None: no conversion."""
    new_days: int = 30
    """Lifecycle: `new` while the first purchase is at most this many days before as_of."""
    active_days: int = 90
    """Lifecycle: `active` (or `reactivated`) while the last purchase is at most this old."""
    churn_days: int = 180
    """Lifecycle: `at_risk` up to this age of the last purchase, `churned` beyond; a purchase
    more than this long after the one before it is a reactivation."""
    segments_dir: Path | None = None
    """Extra segment rule files (``NAME.sql``) besides those shipped in projections/segments."""
    catch_up_batch_size: int = 250_000
    """Events per transaction while a projector is far behind (a replay, a backfill, a long
    stop): much of a batch's SQL costs the same for 20,000 events as for 100,000 (the merge of
    the touched customers' profiles, the days whose satisfaction is recomputed). A replay of
    1M events took 41.6 s in batches of 20,000, 23.9 s in batches of 100,000 and 21.4 s in
    batches of 245,760, at the same peak memory (DuckDB's `memory_limit` is most of it); with
    491,520, 250 MB more. Near the head batches stay `batch_size`, so events show up soon."""
    segment_history: str = "month"
    """When segment membership is recorded (history.py): at the first of each `month`, each
    `week` (Monday) or each `day`, 00:00 UTC, and at the last refresh, so that a replay rebuilds
    the same history; `refresh`: at each refresh only, as it happened (a replay keeps one point).
    A replay evaluates every boundary of the history, each one refresh of the as-of models."""
    memory_limit: str = "1GB"
    """The most memory DuckDB takes for the read models (its ``memory_limit``; beyond it, it
    evicts pages and spills to disk): its default, 80 % of the machine, let a replay's process
    grow with the history."""
    store: str = "duckdb"
    """Where readers find the read models (``LEDGER_READMODEL_STORE``): ``duckdb``, the
    published copy of the projector's file in the data directory (one machine); ``ducklake``,
    a DuckLake whose catalog is the PostgreSQL database `lake_catalog` and whose data files are
    in `lake_data`, which any DuckDB client can read (lake.py, docs/scale.md)."""
    lake_catalog: Secret | None = None
    """The lake's catalog: a ``postgresql://user@host[:port]/database`` URL. Its tables go in the
    schema ``ledger_lake``. No password here (it would show as the lake's path to every reader):
    libpq reads it from ~/.pgpass or the file PGPASSFILE names."""
    lake_data: Path | None = None
    """The directory of the lake's data files, shared by every projector and reader; None:
    ``lake`` in the data directory."""
    projector_group: bool = False
    """Projectors share the ledger topic's partitions in the consumer group `kafka.consumer_group`
    (``LEDGER_PROJECTOR_GROUP``), each publishing its partitions into the lake, one combining them
    (ops/group.py, docs/scale.md). Needs Kafka and the ducklake store."""


@dataclass(frozen=True)
class IntakeSettings:
    """What the ledger accepts at the door, from any adapter."""

    max_future_s: int = 86400
    """How far in the future an `occurred_at` may be (clock skew between systems)."""
    max_event_bytes: int = 900_000
    """The largest event recorded, encoded: below Kafka's default 1 MB message limit."""


@dataclass(frozen=True)
class PrivacySettings:
    """Crypto-shredding: the master key that wraps each customer's own data key."""

    master_key_file: Path | None = None
    """A file holding the master key (32 random bytes, base64); None: ``master.key`` in the
    data directory, made with mode 0600 the first time the ledger needs one. Every process of
    one ledger needs the same key; keep a copy apart from the data (without it nothing
    personal can be read back; with it and a backup, everything not erased can)."""
    master_key: Secret | None = None
    """The master key itself (base64), e.g. from a secret store; wins over the file."""


@dataclass(frozen=True)
class InsightSettings:
    """The insight models (`ledger insight`, docs/insight.md): their horizons and thresholds."""

    horizon_days: int = 90
    """Churn: a customer has churned who makes no purchase in this many days; the model is
    trained on the history this long before the time it scores, and backtested this far ahead."""
    basket_min_support: float = 0.01
    """Items bought together: the least share of all orders a pair must be in to be kept."""
    basket_min_confidence: float = 0.1
    """Items bought together: the least share of one item's orders that also hold the other."""
    offers: int = 3
    """Next best offer: how many items to suggest per customer."""
    cluster_count: int = 5
    """Behavioural clusters: how many groups k-means makes."""
    model_seed: int = 7
    """The seed of every random choice the models make (the held-out customers, k-means'
    starts): the same seed and history give the same tables."""


LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("text", "json")


@dataclass(frozen=True)
class ServeSettings:
    """What `ledger serve` tells operators: its log and its HTTP endpoint (metrics, health)."""

    log_level: str = "info"
    """debug, info, warning or error. At info a running serve says what started and stopped,
    the topics it created and each projector round and publish; never a line per event."""
    log_format: str = "text"
    """text (for people) or json (one object per line, for a log shipper)."""
    metrics_host: str = "127.0.0.1"
    """Where /metrics, /healthz and /readyz listen; 0.0.0.0 to be scraped from elsewhere
    (a container). Loopback by default: nothing is exposed that was not asked for."""
    metrics_port: int | None = 9464
    """Their port; 0 picks a free one (logged); ``off`` (None) runs no HTTP server."""


SECTIONS = {
    "store": StoreSettings,
    "kafka": KafkaSettings,
    "projection": ProjectionSettings,
    "intake": IntakeSettings,
    "privacy": PrivacySettings,
    "serve": ServeSettings,
    "insight": InsightSettings,
}


SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER", "GSSAPI")
_TOPIC = re.compile(r"[A-Za-z0-9._-]{1,249}")


def check_kafka(kafka: KafkaSettings, named: Callable[[str], str]) -> None:
    """Refuse Kafka settings that would fail only later, after a client's timeouts: servers
    that are not ``host:port``, a protocol or mechanism kafka-python does not know, a topic
    name Kafka refuses, an empty group. `named` names a setting as the user gave it."""
    if kafka.bootstrap is not None:
        for server in kafka.bootstrap.split(","):
            host, _, port = server.strip().rpartition(":")
            if not host or not (port.isascii() and port.isdigit() and 0 < int(port) < 65536):
                raise SettingsError(f"{named('kafka.bootstrap')} must be host:port[,host:port...], got "
                                    f"{kafka.bootstrap!r}")
    if kafka.security_protocol not in SECURITY_PROTOCOLS:
        raise SettingsError(f"{named('kafka.security_protocol')} must be one of {', '.join(SECURITY_PROTOCOLS)}, "
                            f"got {kafka.security_protocol!r}")
    if kafka.sasl_mechanism is not None and kafka.sasl_mechanism not in SASL_MECHANISMS:
        raise SettingsError(f"{named('kafka.sasl_mechanism')} must be one of {', '.join(SASL_MECHANISMS)}, "
                            f"got {kafka.sasl_mechanism!r}")
    for name in ("ledger_topic", "intake_topic", "dlq_topic"):
        topic = getattr(kafka, name)
        if not _TOPIC.fullmatch(topic) or topic in (".", ".."):
            raise SettingsError(f"{named('kafka.' + name)} must be a Kafka topic name (letters, digits, '.', "
                                f"'_', '-'; at most 249), got {topic!r}")
    if not 0.1 <= kafka.timeout_s <= 3600:
        raise SettingsError(f"{named('kafka.timeout_s')} must be 0.1 to 3,600 seconds, got {kafka.timeout_s:g}")
    for name in ("consumer_group", "intake_group"):
        group = getattr(kafka, name)
        if group is not None and not group.strip():
            raise SettingsError(f"{named('kafka.' + name)} must not be empty")


READMODEL_STORES = ("duckdb", "ducklake")
"""The values of `ProjectionSettings.store`."""


def check_lake(projection: ProjectionSettings, named: Callable[[str], str]) -> None:
    """Refuse a read-model store the ledger does not know, a lake without a catalog, a catalog
    that is not a PostgreSQL URL naming a database, and a data path DuckDB would misread."""
    if projection.store not in READMODEL_STORES:
        raise SettingsError(f"{named('projection.store')} must be one of {', '.join(READMODEL_STORES)}, "
                            f"got {projection.store!r}")
    catalog = projection.lake_catalog.value if projection.lake_catalog is not None else None
    if projection.store == "ducklake" and not catalog:
        raise SettingsError(f"{named('projection.store')} is ducklake, which needs projection.lake_catalog "
                            "(LEDGER_LAKE_CATALOG): the PostgreSQL database of the lake's catalog, as "
                            "postgresql://user@host:port/database")
    if catalog:
        shown = without_password(catalog)
        if not catalog.startswith(("postgresql://", "postgres://")):
            raise SettingsError(f"{named('projection.lake_catalog')} must be a postgresql://user@host:port/database "
                                f"URL, got {shown!r}")
        try:
            parts = urlsplit(catalog)
            parts.port  # noqa: B018 - reading it checks it
        except ValueError as exc:
            raise SettingsError(f"{named('projection.lake_catalog')} is not a usable URL ({exc}): {shown!r}") from exc
        if not parts.path.strip("/") or not parts.hostname:
            raise SettingsError(f"{named('projection.lake_catalog')} names no host or database: {shown!r}")
        if parts.password or {"password", "sslpassword"} & {k.lower() for k, _ in parse_qsl(parts.query)}:
            raise SettingsError(
                f"{named('projection.lake_catalog')} must not hold a password ({shown!r}): every reader's "
                "DuckDB would show it (the lake's attached path); put it in a PostgreSQL password file "
                "(~/.pgpass, or the file PGPASSFILE names), which the catalog's connections read")
    if projection.lake_data is not None:
        for mark in ("?", "\\"):  # as for the data directory: DuckDB reads them as options and "/"
            if mark in str(projection.lake_data):
                raise SettingsError(f"{named('projection.lake_data')} must not contain {mark!r}, "
                                    f"got {str(projection.lake_data)!r}")


def check_serve(serve: ServeSettings, named: Callable[[str], str]) -> None:
    """Refuse a log level, log format or port that `ledger serve` could only fail on later."""
    if serve.log_level not in LOG_LEVELS:
        raise SettingsError(f"{named('serve.log_level')} must be one of {', '.join(LOG_LEVELS)}, "
                            f"got {serve.log_level!r}")
    if serve.log_format not in LOG_FORMATS:
        raise SettingsError(f"{named('serve.log_format')} must be one of {', '.join(LOG_FORMATS)}, "
                            f"got {serve.log_format!r}")
    if serve.metrics_port is not None and not 0 <= serve.metrics_port <= 65535:
        raise SettingsError(f"{named('serve.metrics_port')} must be 0 to 65,535 or off, got {serve.metrics_port}")
    if not serve.metrics_host.strip():
        raise SettingsError(f"{named('serve.metrics_host')} must not be empty")
