"""The one settings object: nested, frozen, validated.

Built once at the edge (the CLI) and passed down; nothing deeper reads ``os.environ``. Values
come, each overriding the one before: the defaults below, a TOML config file (``--config`` or
``LEDGER_CONFIG``), ``LEDGER_*`` environment variables, then flags. Every value is converted
to its field's type and checked; a value that cannot be used is a SettingsError naming where
it came from (``LEDGER_BATCH_SIZE``, ``ledger.toml [kafka] partitions``) and what is wrong.

The config file has the sections of `Settings` (the README shows one):

    data_dir = "/var/lib/ledger"
    [kafka]
    bootstrap = "kafka:9092"

Each field has one environment variable, kept from the flat settings of earlier versions
(`ENV_NAMES`): ``LEDGER_KAFKA`` is ``kafka.bootstrap``, ``LEDGER_STORE`` is ``store.url``,
``LEDGER_INTAKE_TOPIC`` is ``kafka.intake_topic``, and so on. The same flat names work as
keyword arguments of `Settings(...)` and `Settings.with_`, and read as attributes.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
        }
        if self.sasl_mechanism:
            options["sasl_mechanism"] = self.sasl_mechanism
            options["sasl_plain_username"] = self.sasl_username
            if self.sasl_password is not None:
                options["sasl_plain_password"] = self.sasl_password.value
        if self.ssl_cafile:
            options["ssl_cafile"] = self.ssl_cafile
        return options


@dataclass(frozen=True)
class ProjectionSettings:
    """The read models: refreshing, and the thresholds of the "as of" models."""

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


@dataclass(frozen=True)
class IntakeSettings:
    """What the ledger accepts at the door, from any adapter."""

    max_future_s: int = 86400
    """How far in the future an `occurred_at` may be (clock skew between systems)."""
    max_event_bytes: int = 900_000
    """The largest event recorded, encoded: below Kafka's default 1 MB message limit."""


SECTIONS = {
    "store": StoreSettings,
    "kafka": KafkaSettings,
    "projection": ProjectionSettings,
    "intake": IntakeSettings,
}

_RENAMED = {"kafka": ("kafka", "bootstrap"), "store": ("store", "url")}
_KAFKA_PREFIXED = ("security_protocol", "sasl_mechanism", "sasl_username", "sasl_password", "ssl_cafile")


def _flat_names() -> dict[str, tuple[str, str]]:
    """Each field's flat name (its LEDGER_* variable, lower case): (section, field)."""
    names: dict[str, tuple[str, str]] = dict(_RENAMED)
    for section, kind in SECTIONS.items():
        for f in dataclasses.fields(kind):
            if (section, f.name) in _RENAMED.values():
                continue
            flat = f"kafka_{f.name}" if section == "kafka" and f.name in _KAFKA_PREFIXED else f.name
            names[flat] = (section, f.name)
    return names


FLAT_NAMES = _flat_names()
ENV_NAMES = {
    **{f"LEDGER_{flat.upper()}": where for flat, where in FLAT_NAMES.items()},
    "LEDGER_DATA_DIR": ("", "data_dir"),
    "LEDGER_BATCH_SIZE": ("", "batch_size"),
}
"""Every environment variable the ledger reads (besides LEDGER_CONFIG): (section, field);
section "" is the top level."""


@dataclass(frozen=True, init=False)
class Settings:
    data_dir: Path = Path("ledger-data")
    """Where the embedded store, the read models and their published copy live."""
    batch_size: int = 20_000
    """Events per micro-batch (projector, relay, intake). Projector work per batch grows with
    the customers it touches, so larger batches are cheaper per event (200k events: 8.8k ev/s
    at 5,000, 14k ev/s at 20,000)."""
    store: StoreSettings = StoreSettings()
    kafka: KafkaSettings = KafkaSettings()
    projection: ProjectionSettings = ProjectionSettings()
    intake: IntakeSettings = IntakeSettings()

    def __init__(self, **values: Any) -> None:
        """The defaults with `values`: top-level fields, whole sections, ``section.field``
        names, or flat names (``kafka="host:9092"``, ``intake_topic="t"``), all checked."""
        for f in dataclasses.fields(Settings):
            object.__setattr__(self, f.name, f.default)
        _assign(self, {name: (value, f"{name}=") for name, value in values.items()})

    @property
    def store_path(self) -> Path:
        return self.data_dir / "store.sqlite"

    @property
    def store_url(self) -> str:
        return self.store.url or f"sqlite:///{self.store_path}"

    @property
    def store_shown(self) -> str:
        """`store_url` as it may be printed: never with a password."""
        return without_password(self.store_url) or ""

    @property
    def readmodel_path(self) -> Path:
        """The projector's own DuckDB file (one writer)."""
        return self.data_dir / "readmodels.duckdb"

    @property
    def published_path(self) -> Path:
        """The consistent read-only copy that analysts query."""
        return self.data_dir / "readmodels.published.duckdb"

    # Flat names of earlier versions, read-only: new code reads the sections.

    def __getattr__(self, name: str) -> Any:
        where = FLAT_NAMES.get(name)
        if where is None or name in _RENAMED:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        return getattr(getattr(self, where[0]), where[1])

    def with_(self, **changes: Any) -> Settings:
        """A copy with `changes`, named as `Settings(...)` takes them, checked again."""
        return _apply(self, {name: (value, f"{name}=") for name, value in changes.items()})

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str], config_file: Path | None = None, **overrides: Any
    ) -> Settings:
        """Defaults, then the config file (`config_file`, else ``LEDGER_CONFIG``), then
        ``LEDGER_*`` variables, then the non-None `overrides` (flags, by flat name)."""
        unknown = sorted(v for v in environ if v.startswith("LEDGER_") and v not in ENV_NAMES and v != "LEDGER_CONFIG")
        if unknown:
            close = difflib.get_close_matches(unknown[0], [*ENV_NAMES, "LEDGER_CONFIG"], n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise SettingsError(f"{unknown[0]} is not a setting{hint}; the README lists them")
        settings = cls()
        path = config_file or (Path(environ["LEDGER_CONFIG"]) if environ.get("LEDGER_CONFIG") else None)
        layers = [_read_config(path)] if path is not None else []
        from_environment = {}
        for variable, (section, name) in ENV_NAMES.items():
            raw = environ.get(variable)
            if raw is not None and raw != "":
                from_environment[f"{section}.{name}" if section else name] = (raw, variable)
        layers.append(from_environment)
        layers.append({k: (v, f"--{k.replace('_', '-')}") for k, v in overrides.items() if v is not None})
        for layer in layers:
            _assign(settings, layer, check=False)  # each layer may lean on a later one
        settings.check()
        return settings

    def check(self) -> None:
        k, p = self.kafka, self.projection
        year = 366 * 86400
        for where, value, low, high in (
            ("batch_size", self.batch_size, 1, 1_000_000), ("kafka.partitions", k.partitions, 1, 100_000),
            ("kafka.replication_factor", k.replication_factor, 1, 100),
            ("intake.max_future_s", self.intake.max_future_s, 0, year),
            ("intake.max_event_bytes", self.intake.max_event_bytes, 1_000, 100_000_000),
            ("projection.refresh_idle_s", p.refresh_idle_s, 0, year),
            ("projection.new_days", p.new_days, 1, 36_600), ("projection.active_days", p.active_days, 1, 36_600),
            ("projection.churn_days", p.churn_days, 1, 36_600),
        ):
            if not low <= value <= high:
                raise SettingsError(f"{_named(where)} must be {low} to {high:,}, got {value:,}")
        if not (0 < p.new_days and 0 < p.active_days < p.churn_days):
            raise SettingsError(
                "lifecycle thresholds need 0 < new_days and 0 < active_days < churn_days, got "
                f"new_days={p.new_days}, active_days={p.active_days}, churn_days={p.churn_days}"
            )
        currency = p.reporting_currency
        if not (len(currency) == 3 and currency.isascii() and currency.isalpha() and currency.isupper()):
            raise SettingsError(f"reporting_currency must be an ISO 4217 code like EUR, got {currency!r}")
        url = self.store.url
        if url is not None and not url.startswith(("sqlite:///", "postgresql://", "postgres://")):
            raise SettingsError(f"store must be sqlite:///PATH or postgresql://..., got {self.store_shown!r}")
        if "?" in str(self.data_dir):  # DuckDB reads what follows a "?" in a file name as options
            raise SettingsError(f"{_named('data_dir')} must not contain '?', got {str(self.data_dir)!r}")


def _named(where: str) -> str:
    """``kafka.partitions (LEDGER_PARTITIONS)``: a setting as the config file and the
    environment name it."""
    section, _, name = where.rpartition(".")
    variable = next(v for v, w in ENV_NAMES.items() if w == (section, name))
    return f"{where} ({variable})"


def _apply(settings: Settings, values: Mapping[str, tuple[Any, str]]) -> Settings:
    """A copy of `settings` with `values` (see `_assign`)."""
    result = copy.copy(settings)
    _assign(result, values)
    return result


def _assign(settings: Settings, values: Mapping[str, tuple[Any, str]], check: bool = True) -> None:
    """Set `values` (name: (value, where it came from)) on a Settings being built, then check
    it (unless more is to come); names are top-level fields, ``section.field``, a section (a
    section object), or flat names."""
    top: dict[str, Any] = {}
    sections: dict[str, dict[str, Any]] = {}
    for name, (value, origin) in values.items():
        if name in SECTIONS and isinstance(value, SECTIONS[name]):
            top[name] = value
            continue
        if "." in name:
            section, field_name = name.split(".", 1)
        elif name in FLAT_NAMES:
            section, field_name = FLAT_NAMES[name]
        elif name in ("data_dir", "batch_size"):
            section, field_name = "", name
        else:
            raise SettingsError(f"{origin}: there is no setting {name!r}")
        kind = SECTIONS.get(section, Settings) if section else Settings
        hints = typing.get_type_hints(kind)
        if field_name not in hints or (section == "" and field_name in SECTIONS):
            raise SettingsError(f"{origin}: there is no setting {name!r}")
        converted = _convert(value, hints[field_name], origin)
        if section:
            sections.setdefault(section, {})[field_name] = converted
        else:
            top[field_name] = converted
    for section, changes in sections.items():
        top[section] = dataclasses.replace(top.get(section, getattr(settings, section)), **changes)
    for name, value in top.items():
        object.__setattr__(settings, name, value)
    if check:
        settings.check()


def _convert(value: Any, annotation: Any, origin: str) -> Any:
    """`value` (text from the environment, a TOML or Python value) as `annotation` says."""
    options = typing.get_args(annotation) if isinstance(annotation, types.UnionType) else (annotation,)
    if value is None:
        if type(None) in options:
            return None
        raise SettingsError(f"{origin}: a value is required")
    kind = next(o for o in options if o is not type(None))
    text = value if isinstance(value, str) else None
    try:
        if kind is int:
            if isinstance(value, bool) or isinstance(value, float):
                raise ValueError
            return int(text.strip()) if text is not None else int(value)
        if kind is float:
            if isinstance(value, bool):
                raise ValueError
            number = float(text.strip()) if text is not None else float(value)
            if number != number or number in (float("inf"), float("-inf")):
                raise ValueError
            return number
        if kind is Path:
            if not isinstance(value, str | Path) or not str(value).strip():
                raise ValueError
            return Path(value)
        if kind is Secret:
            return value if isinstance(value, Secret) else Secret(str(value))
        if kind is str:
            if not isinstance(value, str):
                raise ValueError
            return value
    except (ValueError, TypeError):
        pass
    else:
        return value
    expected = {int: "a whole number", float: "a number", Path: "a path", str: "text"}.get(kind, kind.__name__)
    raise SettingsError(f"{origin} must be {expected}, got {value!r}")


def _read_config(path: Path) -> dict[str, tuple[Any, str]]:
    try:
        document = tomllib.loads(path.read_text("utf-8"))
    except OSError as exc:
        raise SettingsError(f"cannot read the config file {path}: {exc.strerror}") from exc
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise SettingsError(f"config file {path} is not valid TOML: {exc}") from exc
    values: dict[str, tuple[Any, str]] = {}
    for key, value in document.items():
        if key in SECTIONS:
            if not isinstance(value, dict):
                raise SettingsError(f"{path}: [{key}] must be a table of settings")
            for name, item in value.items():
                values[f"{key}.{name}"] = (item, f"{path} [{key}] {name}")
        elif key in ("data_dir", "batch_size"):
            values[key] = (value, f"{path} {key}")
        else:
            known = ", ".join(["data_dir", "batch_size", *(f"[{s}]" for s in SECTIONS)])
            raise SettingsError(f"{path}: there is no setting {key!r} (known: {known})")
    return values
