"""The one settings object.

Built once at the edge (the CLI) from flags and ``LEDGER_*`` environment variables and passed
down; nothing deeper reads ``os.environ``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ledger.errors import SettingsError


@dataclass(frozen=True)
class Secret:
    """A value that must not show up in logs or reprs."""

    value: str = field(repr=False)

    def __repr__(self) -> str:
        return "Secret('***')"


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path("ledger-data")
    store: str | None = None
    """Event store URL: None or ``sqlite:///path`` (embedded) or ``postgresql://...``."""
    kafka: str | None = None
    """Bootstrap servers, ``host:port[,host:port]``; None means embedded mode."""
    ledger_topic: str = "ledger.events"
    intake_topic: str = "ledger.intake"
    dlq_topic: str = "ledger.intake.dlq"
    partitions: int = 4
    replication_factor: int = 1
    kafka_security_protocol: str = "PLAINTEXT"
    kafka_sasl_mechanism: str | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: Secret | None = None
    kafka_ssl_cafile: str | None = None
    consumer_group: str = "ledger-projector"
    intake_group: str | None = None
    """A consumer group to share the intake topic's partitions among several intake processes
    (a PostgreSQL store); None: the intake reads every partition itself."""
    batch_size: int = 20_000
    """Events per micro-batch (projector, relay, intake). Projector work per batch grows with
    the customers it touches, so larger batches are cheaper per event (200k events: 8.8k ev/s
    at 5,000, 14k ev/s at 20,000)."""
    refresh_idle_s: float = 60.0
    """A following projector with nothing new refreshes the "as of" models (time passing moves
    customers to at_risk, ...) and republishes at most this often; new events do it at once."""
    reporting_currency: str = "EUR"
    """RFM `monetary` counts net spend in this currency only (no FX conversion)."""
    new_days: int = 30
    """Lifecycle: `new` while the first purchase is at most this many days before as_of."""
    active_days: int = 90
    """Lifecycle: `active` (or `reactivated`) while the last purchase is at most this old."""
    churn_days: int = 180
    """Lifecycle: `at_risk` up to this age of the last purchase, `churned` beyond; a purchase
    more than this long after the one before it is a reactivation."""
    segments_dir: Path | None = None
    """Extra segment rule files (``NAME.sql``) besides those shipped in projections/segments."""
    max_future_s: int = 86400

    @property
    def store_path(self) -> Path:
        return self.data_dir / "store.sqlite"

    @property
    def store_url(self) -> str:
        return self.store or f"sqlite:///{self.store_path}"

    @property
    def store_shown(self) -> str:
        """`store_url` as it may be printed: never with a password."""
        url = self.store_url
        if "@" in url:
            scheme, rest = url.split("://", 1)
            url = f"{scheme}://***@{rest.split('@', 1)[1]}"
        return url

    @property
    def readmodel_path(self) -> Path:
        """The projector's own DuckDB file (one writer)."""
        return self.data_dir / "readmodels.duckdb"

    @property
    def published_path(self) -> Path:
        """The consistent read-only copy that analysts query."""
        return self.data_dir / "readmodels.published.duckdb"

    def kafka_client_options(self) -> dict[str, object]:
        """Connection and security options shared by every kafka-python client."""
        if not self.kafka:
            raise SettingsError("no Kafka bootstrap servers: give --kafka or LEDGER_KAFKA")
        options: dict[str, object] = {
            "bootstrap_servers": self.kafka.split(","),
            "security_protocol": self.kafka_security_protocol,
        }
        if self.kafka_sasl_mechanism:
            options["sasl_mechanism"] = self.kafka_sasl_mechanism
            options["sasl_plain_username"] = self.kafka_sasl_username
            if self.kafka_sasl_password is not None:
                options["sasl_plain_password"] = self.kafka_sasl_password.value
        if self.kafka_ssl_cafile:
            options["ssl_cafile"] = self.kafka_ssl_cafile
        return options

    def with_(self, **changes: object) -> Settings:
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_env(cls, environ: Mapping[str, str], **overrides: object) -> Settings:
        """Read ``LEDGER_<FIELD>`` variables, then apply non-None `overrides` (flags)."""
        values: dict[str, object] = {}
        for f in dataclasses.fields(cls):
            raw = environ.get(f"LEDGER_{f.name.upper()}")
            if raw is not None and raw != "":
                values[f.name] = _convert(f.name, f.type, raw)
        values.update({k: v for k, v in overrides.items() if v is not None})
        if "data_dir" in values:
            values["data_dir"] = Path(values["data_dir"])  # type: ignore[arg-type]
        settings = cls(**values)  # type: ignore[arg-type]
        settings.check()
        return settings

    def check(self) -> None:
        if self.partitions < 1:
            raise SettingsError(f"partitions must be at least 1, got {self.partitions}")
        if self.batch_size < 1:
            raise SettingsError(f"batch_size must be at least 1, got {self.batch_size}")
        if not (0 < self.new_days and 0 < self.active_days < self.churn_days):
            raise SettingsError(
                "lifecycle thresholds need 0 < new_days and 0 < active_days < churn_days, got "
                f"new_days={self.new_days}, active_days={self.active_days}, churn_days={self.churn_days}"
            )
        if not (len(self.reporting_currency) == 3 and self.reporting_currency.isascii()
                and self.reporting_currency.isupper()):
            raise SettingsError(
                f"reporting_currency must be an ISO 4217 code like EUR, got {self.reporting_currency!r}"
            )
        if self.store and not self.store.startswith(("sqlite:///", "postgresql://", "postgres://")):
            raise SettingsError(
                f"store must be sqlite:///PATH or postgresql://..., got {self.store!r}"
            )


def _convert(name: str, annotation: object, raw: str) -> object:
    text = str(annotation)
    try:
        if text.startswith("int"):
            return int(raw)
        if "Secret" in text:
            return Secret(raw)
        if "Path" in text:
            return Path(raw)
    except ValueError as exc:
        raise SettingsError(f"LEDGER_{name.upper()} must be a whole number, got {raw!r}") from exc
    return raw
