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
import re
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ledger.errors import SettingsError
from ledger.settings.sections import (
    SECTIONS,
    SEGMENT_HISTORY,
    InsightSettings,
    IntakeSettings,
    KafkaSettings,
    PrivacySettings,
    ProjectionSettings,
    Secret,
    ServeSettings,
    StoreSettings,
    check_kafka,
    check_lake,
    check_serve,
    without_password,
)
from ledger.settings.sources import convert, read_config

__all__ = [
    "ENV_NAMES", "FLAT_NAMES", "SECTIONS", "InsightSettings", "IntakeSettings", "KafkaSettings", "PrivacySettings",
    "ProjectionSettings", "Secret",
    "ServeSettings", "Settings", "StoreSettings", "without_password",
]


_RENAMED = {
    "kafka": ("kafka", "bootstrap"), "store": ("store", "url"), "kafka_timeout": ("kafka", "timeout_s"),
    "readmodel_store": ("projection", "store"),
}
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


MIN_MEMORY_LIMIT = 64 * 2**20
"""The least `projection.memory_limit` taken: with 1KB DuckDB failed opening the read models,
after the facts were recorded."""


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
    privacy: PrivacySettings = PrivacySettings()
    serve: ServeSettings = ServeSettings()
    insight: InsightSettings = InsightSettings()

    def __init__(self, **values: Any) -> None:
        """The defaults with `values`: top-level fields, whole sections, ``section.field``
        names, or flat names (``kafka="host:9092"``, ``intake_topic="t"``), all checked."""
        for f in dataclasses.fields(Settings):
            object.__setattr__(self, f.name, f.default)
        object.__setattr__(self, "_origins", {})
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
    def master_key_path(self) -> Path:
        """The master key file: as set, else beside an SQLite store (so a command given
        another --data-dir but the same store finds it), else in the data directory."""
        if self.privacy.master_key_file is not None:
            return self.privacy.master_key_file
        if self.store.url is not None and self.store.url.startswith("sqlite:///"):
            return Path(self.store.url[len("sqlite:///"):]).parent / "master.key"
        return self.data_dir / "master.key"

    @property
    def readmodel_path(self) -> Path:
        """The projector's own DuckDB file (one writer)."""
        return self.data_dir / "readmodels.duckdb"

    @property
    def lake_catalog_url(self) -> str:
        """The lake catalog's URL (`projection.lake_catalog`), "" if none is set."""
        return self.projection.lake_catalog.value if self.projection.lake_catalog else ""

    @property
    def lake_data_path(self) -> Path:
        """Where the lake's data files go (`projection.lake_data`, else ``lake`` here)."""
        return self.projection.lake_data or self.data_dir / "lake"

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
        layers = [read_config(path)] if path is not None else []
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

    def _named(self, where: str) -> str:
        """``kafka.partitions (LEDGER_PARTITIONS)``: a setting by its name in the config file
        and where its value came from (a variable, a flag, a config file), else its variable."""
        origin = self._origins.get(where, "")
        if not origin.startswith(("LEDGER_", "--")) and " " not in origin:
            section, _, name = where.rpartition(".")
            origin = next(v for v, w in ENV_NAMES.items() if w == (section, name))
        return f"{where} ({origin})"

    def check(self) -> None:
        k, p, i = self.kafka, self.projection, self.insight
        year = 366 * 86400
        for where, value, low, high in (
            ("batch_size", self.batch_size, 1, 1_000_000), ("kafka.partitions", k.partitions, 1, 100_000),
            ("kafka.replication_factor", k.replication_factor, 1, 100),
            ("intake.max_future_s", self.intake.max_future_s, 0, year),
            ("intake.max_event_bytes", self.intake.max_event_bytes, 1_000, 100_000_000),
            ("projection.refresh_idle_s", p.refresh_idle_s, 0, year),
            ("projection.new_days", p.new_days, 1, 36_600), ("projection.active_days", p.active_days, 1, 36_600),
            ("projection.churn_days", p.churn_days, 1, 36_600),
            ("projection.catch_up_batch_size", p.catch_up_batch_size, 1, 1_000_000),
            ("insight.horizon_days", i.horizon_days, 1, 3_660), ("insight.offers", i.offers, 1, 100),
            ("insight.cluster_count", i.cluster_count, 2, 50), ("insight.model_seed", i.model_seed, 0, 2**32 - 1),
            ("insight.basket_min_support", i.basket_min_support, 0, 1),
            ("insight.basket_min_confidence", i.basket_min_confidence, 0, 1),
        ):
            if not low <= value <= high:
                raise SettingsError(f"{self._named(where)} must be {low} to {high:,}, got {value:,}")
        size = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT])(i?)B\s*", p.memory_limit, re.IGNORECASE)
        if not size:
            raise SettingsError(f"{self._named('projection.memory_limit')} must be a size such as 512MB or 2GB, "
                                f"got {p.memory_limit!r}")
        unit = (1024 if size[3] else 1000) ** ("KMGT".index(size[2].upper()) + 1)
        if float(size[1]) * unit < MIN_MEMORY_LIMIT:
            raise SettingsError(f"{self._named('projection.memory_limit')} must be at least 64MiB (DuckDB cannot "
                                f"even open the read models with less), got {p.memory_limit!r}")
        if not (0 < p.new_days and 0 < p.active_days < p.churn_days):
            raise SettingsError(
                "lifecycle thresholds need 0 < new_days and 0 < active_days < churn_days, got "
                f"new_days={p.new_days}, active_days={p.active_days}, churn_days={p.churn_days}"
            )
        if p.segment_history not in SEGMENT_HISTORY:
            choices = ", ".join(SEGMENT_HISTORY)
            raise SettingsError(f"{self._named('projection.segment_history')} must be one of {choices}, "
                                f"got {p.segment_history!r}")
        currency = p.reporting_currency
        if not (len(currency) == 3 and currency.isascii() and currency.isalpha() and currency.isupper()):
            raise SettingsError(f"reporting_currency must be an ISO 4217 code like EUR, got {currency!r}")
        url = self.store.url
        if url is not None and not url.startswith(("sqlite:///", "postgresql://", "postgres://")):
            raise SettingsError(f"{self._named('store.url')} must be sqlite:///PATH or postgresql://..., got "
                                f"{self.store_shown!r}")
        if url is not None and not url.startswith("sqlite:///"):
            try:
                parts = urlsplit(url)
                parts.port  # noqa: B018 - reading it checks it
            except ValueError as exc:
                raise SettingsError(
                    f"{self._named('store.url')} is not a usable URL ({exc}): {self.store_shown!r}"
                ) from exc
            if not parts.path.strip("/"):
                raise SettingsError(f"{self._named('store.url')} names no database: {self.store_shown!r}")
        for mark in ("?", "\\"):  # DuckDB reads what follows "?" as options, and "\\" as "/"
            if mark in str(self.data_dir):
                raise SettingsError(f"{self._named('data_dir')} must not contain {mark!r}, got {str(self.data_dir)!r}")
        check_lake(p, self._named)
        check_kafka(self.kafka, self._named)
        if p.projector_group and (p.store != "ducklake" or not self.kafka):
            raise SettingsError(f"{self._named('projection.projector_group')} shares the ledger topic among "
                                "projectors publishing into one lake: it needs projection.store = ducklake "
                                "(LEDGER_READMODEL_STORE) and Kafka (LEDGER_KAFKA)")
        check_serve(self.serve, self._named)


def _apply(settings: Settings, values: Mapping[str, tuple[Any, str]]) -> Settings:
    """A copy of `settings` with `values` (see `_assign`)."""
    result = copy.copy(settings)
    object.__setattr__(result, "_origins", dict(settings._origins))
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
        converted = convert(value, hints[field_name], origin)
        settings._origins[f"{section}.{field_name}" if section else field_name] = origin
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
