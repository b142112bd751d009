"""Settings: nested sections, one source of truth for every LEDGER_* variable and config key,
every value converted and checked, each bad value named where it came from."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from ledger.errors import SettingsError
from ledger.settings import ENV_NAMES, Secret, Settings


def test_every_documented_variable_sets_its_field_with_the_right_type(tmp_path: Path) -> None:
    environ = {
        "LEDGER_DATA_DIR": str(tmp_path), "LEDGER_BATCH_SIZE": "7", "LEDGER_STORE": "sqlite:///x.db",
        "LEDGER_KAFKA": "k1:9092,k2:9092", "LEDGER_LEDGER_TOPIC": "l", "LEDGER_INTAKE_TOPIC": "i",
        "LEDGER_DLQ_TOPIC": "d", "LEDGER_PARTITIONS": "3", "LEDGER_REPLICATION_FACTOR": "2",
        "LEDGER_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "LEDGER_KAFKA_SASL_MECHANISM": "PLAIN",
        "LEDGER_KAFKA_SASL_USERNAME": "u", "LEDGER_KAFKA_SASL_PASSWORD": "hunter2",
        "LEDGER_KAFKA_SSL_CAFILE": "/ca.pem", "LEDGER_CONSUMER_GROUP": "g", "LEDGER_INTAKE_GROUP": "ig",
        "LEDGER_REFRESH_IDLE_S": "0.5", "LEDGER_REPORTING_CURRENCY": "GBP", "LEDGER_NEW_DAYS": "10",
        "LEDGER_ACTIVE_DAYS": "20", "LEDGER_CHURN_DAYS": "40", "LEDGER_SEGMENTS_DIR": str(tmp_path),
        "LEDGER_MAX_FUTURE_S": "60", "LEDGER_MAX_EVENT_BYTES": "5000",
        "LEDGER_MASTER_KEY_FILE": str(tmp_path / "m.key"), "LEDGER_MASTER_KEY": "a2V5",
        "LEDGER_CATCH_UP_BATCH_SIZE": "50000", "LEDGER_MEMORY_LIMIT": "512MB", "LEDGER_SEGMENT_HISTORY": "week",
        "LEDGER_KAFKA_TIMEOUT": "2.5", "LEDGER_LOG_LEVEL": "debug", "LEDGER_LOG_FORMAT": "json",
        "LEDGER_METRICS_HOST": "0.0.0.0", "LEDGER_METRICS_PORT": "9100",
        "LEDGER_EXCHANGE_RATES": str(tmp_path / "rates.csv"), "LEDGER_HORIZON_DAYS": "30",
        "LEDGER_BASKET_MIN_SUPPORT": "0.02", "LEDGER_BASKET_MIN_CONFIDENCE": "0.3", "LEDGER_OFFERS": "5",
        "LEDGER_CLUSTER_COUNT": "4", "LEDGER_MODEL_SEED": "11", "LEDGER_READMODEL_STORE": "ducklake",
        "LEDGER_LAKE_CATALOG": "postgresql://u@pg:5432/lake", "LEDGER_LAKE_DATA": str(tmp_path / "lake"),
        "LEDGER_PROJECTOR_GROUP": "yes",
    }
    assert set(environ) == set(ENV_NAMES)
    s = Settings.from_env(environ)
    assert (s.data_dir, s.batch_size, s.store.url) == (tmp_path, 7, "sqlite:///x.db")
    k = s.kafka
    assert (k.bootstrap, k.ledger_topic, k.intake_topic, k.dlq_topic) == ("k1:9092,k2:9092", "l", "i", "d")
    assert (k.partitions, k.replication_factor, k.consumer_group, k.intake_group) == (3, 2, "g", "ig")
    assert k.sasl_password == Secret("hunter2") and "hunter2" not in repr(s)
    assert k.client_options()["bootstrap_servers"] == ["k1:9092", "k2:9092"]
    assert k.client_options()["sasl_plain_password"] == "hunter2"
    assert k.timeout_s == 2.5 and k.client_options()["bootstrap_timeout_ms"] == 2500
    assert (s.serve.log_level, s.serve.log_format, s.serve.metrics_host, s.serve.metrics_port) == (
        "debug", "json", "0.0.0.0", 9100)
    p = s.projection
    assert (p.refresh_idle_s, p.reporting_currency, p.new_days, p.active_days, p.churn_days) == (
        0.5, "GBP", 10, 20, 40)
    assert (p.catch_up_batch_size, p.memory_limit, p.segment_history) == (50_000, "512MB", "week")
    assert p.exchange_rates == tmp_path / "rates.csv"
    assert (p.store, p.lake_catalog, s.lake_data_path) == (
        "ducklake", Secret("postgresql://u@pg:5432/lake"), tmp_path / "lake")
    assert p.projector_group is True
    assert p.segments_dir == tmp_path and s.intake.max_future_s == 60 and s.intake.max_event_bytes == 5000
    assert s.master_key_path == tmp_path / "m.key" and s.privacy.master_key == Secret("a2V5")
    i = s.insight
    assert (i.horizon_days, i.basket_min_support, i.basket_min_confidence, i.offers, i.cluster_count, i.model_seed) == (
        30, 0.02, 0.3, 5, 4, 11)
    # Flat names of earlier versions still read.
    assert (s.intake_topic, s.refresh_idle_s, s.max_future_s) == ("i", 0.5, 60)


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("LEDGER_BATCH_SIZE", "many", "LEDGER_BATCH_SIZE must be a whole number, got 'many'"),
        ("LEDGER_SEGMENT_HISTORY", "hourly", "segment_history \\(LEDGER_SEGMENT_HISTORY\\) must be one of month, week, "
         "day, refresh, got 'hourly'"),
        ("LEDGER_BATCH_SIZE", "0", r"batch_size \(LEDGER_BATCH_SIZE\) must be 1 to 1,000,000, got 0"),
        ("LEDGER_BATCH_SIZE", "9" * 30, r"batch_size \(LEDGER_BATCH_SIZE\) must be 1 to 1,000,000"),
        ("LEDGER_PARTITIONS", "1000000", r"kafka.partitions \(LEDGER_PARTITIONS\) must be 1 to 100,000"),
        ("LEDGER_CHURN_DAYS", "99999999", "must be 1 to 36,600"),
        ("LEDGER_REFRESH_IDLE_S", "soon", "LEDGER_REFRESH_IDLE_S must be a number"),
        ("LEDGER_REFRESH_IDLE_S", "nan", "LEDGER_REFRESH_IDLE_S must be a number"),
        ("LEDGER_REFRESH_IDLE_S", "-1", r"refresh_idle_s \(LEDGER_REFRESH_IDLE_S\) must be 0 to"),
        ("LEDGER_REFRESH_IDLE_S", "1e300", "must be 0 to 31,622,400"),
        ("LEDGER_PARTITIONS", "1.5", "LEDGER_PARTITIONS must be a whole number"),
        ("LEDGER_CATCH_UP_BATCH_SIZE", "0", r"catch_up_batch_size \(LEDGER_CATCH_UP_BATCH_SIZE\) must be 1 to"),
        ("LEDGER_MEMORY_LIMIT", "lots", r"memory_limit \(LEDGER_MEMORY_LIMIT\) must be a size such as 512MB"),
        ("LEDGER_MEMORY_LIMIT", "512MB; SET threads=1", "must be a size such as 512MB or 2GB"),
        ("LEDGER_MEMORY_LIMIT", "1KB", r"memory_limit \(LEDGER_MEMORY_LIMIT\) must be at least 64MiB"),
        ("LEDGER_MEMORY_LIMIT", "60MiB", "must be at least 64MiB"),
        ("LEDGER_REPORTING_CURRENCY", "eur", "reporting_currency must be an ISO 4217 code"),
        ("LEDGER_STORE", "mysql://x", r"store.url \(LEDGER_STORE\) must be sqlite:///PATH or postgresql://"),
        ("LEDGER_STORE", "postgresql://localhost:99999/x", r"store.url \(LEDGER_STORE\) is not a usable URL"),
        ("LEDGER_STORE", "postgresql://localhost", "names no database"),
        ("LEDGER_BATCH_SIZE", "\u0663", "LEDGER_BATCH_SIZE must be a whole number"),
        ("LEDGER_BATCH_SIZE", "1_000", "LEDGER_BATCH_SIZE must be a whole number"),
        ("LEDGER_REFRESH_IDLE_S", "\uff11", "LEDGER_REFRESH_IDLE_S must be a number"),
        ("LEDGER_KAFKA", "host:notaport", r"kafka.bootstrap \(LEDGER_KAFKA\) must be host:port"),
        ("LEDGER_KAFKA", ",,,", r"kafka.bootstrap \(LEDGER_KAFKA\) must be host:port"),
        ("LEDGER_KAFKA_SECURITY_PROTOCOL", "BOGUS", "must be one of PLAINTEXT, SSL"),
        ("LEDGER_KAFKA_SASL_MECHANISM", "NOPE", "must be one of PLAIN, SCRAM-SHA-256"),
        ("LEDGER_LEDGER_TOPIC", "bad topic/../x", r"kafka.ledger_topic \(LEDGER_LEDGER_TOPIC\) must be a Kafka topic"),
        ("LEDGER_CONSUMER_GROUP", " ", "must not be empty"),
        ("LEDGER_READMODEL_STORE", "lake", r"store \(LEDGER_READMODEL_STORE\) must be one of duckdb, ducklake"),
        ("LEDGER_READMODEL_STORE", "ducklake", r"needs projection.lake_catalog \(LEDGER_LAKE_CATALOG\)"),
        ("LEDGER_LAKE_CATALOG", "mysql://u:pw@h/x", r"lake_catalog \(LEDGER_LAKE_CATALOG\) must be a postgresql://"),
        ("LEDGER_LAKE_CATALOG", "postgresql://u:pw@h:99999/x", r"is not a usable URL .*'postgresql://\*\*\*@h:99999/x'"),
        ("LEDGER_LAKE_CATALOG", "postgresql://h", "names no host or database"),
        ("LEDGER_LAKE_CATALOG", "postgresql://u:hunter2@h/x", r"must not hold a password \('postgresql://\*\*\*@h/x'\)"),
        ("LEDGER_LAKE_CATALOG", "postgresql://u@h/x?sslmode=require&password=hunter2", "~/.pgpass"),
        ("LEDGER_PROJECTOR_GROUP", "maybe", r"PROJECTOR_GROUP must be true or false, got 'maybe'"),
        ("LEDGER_PROJECTOR_GROUP", "on", r"projector_group \(LEDGER_PROJECTOR_GROUP\) shares .* needs "
         "projection.store = ducklake"),
        ("LEDGER_LAKE_DATA", "/lake?x=1", r"lake_data \(LEDGER_LAKE_DATA\) must not contain '\?'"),
        ("LEDGER_DATA_DIR", "a\\b", r"must not contain '\\\\'"),
        ("LEDGER_CHURN_DAYS", "10", "active_days < churn_days"),
        ("LEDGER_DATA_DIR", "/tmp/a?b=1", r"data_dir \(LEDGER_DATA_DIR\) must not contain '\?'"),
        ("LEDGER_KAFKA_TIMEOUT", "0", r"kafka.timeout_s \(LEDGER_KAFKA_TIMEOUT\) must be 0.1 to 3,600 seconds"),
        ("LEDGER_LOG_LEVEL", "loud", r"serve.log_level \(LEDGER_LOG_LEVEL\) must be one of debug, info"),
        ("LEDGER_LOG_FORMAT", "xml", r"serve.log_format \(LEDGER_LOG_FORMAT\) must be one of text, json"),
        ("LEDGER_BASKET_MIN_SUPPORT", "1.5", r"basket_min_support \(LEDGER_BASKET_MIN_SUPPORT\) must be 0 to 1"),
        ("LEDGER_CLUSTER_COUNT", "1", r"insight.cluster_count \(LEDGER_CLUSTER_COUNT\) must be 2 to 50"),
        ("LEDGER_MODEL_SEED", "-1", r"insight.model_seed \(LEDGER_MODEL_SEED\) must be 0 to 4,294,967,295"),
        ("LEDGER_HORIZON_DAYS", "0", r"insight.horizon_days \(LEDGER_HORIZON_DAYS\) must be 1 to 3,660"),
        ("LEDGER_METRICS_PORT", "70000", r"serve.metrics_port \(LEDGER_METRICS_PORT\) must be 0 to 65,535 or off"),
        ("LEDGER_METRICS_PORT", "soon", "LEDGER_METRICS_PORT must be a whole number"),
    ],
)
def test_a_bad_variable_is_refused_naming_it(variable: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.from_env({variable: value})


def test_the_metrics_port_can_be_switched_off() -> None:
    assert Settings.from_env({"LEDGER_METRICS_PORT": "off"}).serve.metrics_port is None
    assert Settings.from_env({}).serve.metrics_port == 9464


def test_the_config_file_sets_sections_and_the_environment_and_flags_override_it(tmp_path: Path) -> None:
    config = tmp_path / "ledger.toml"
    config.write_text(
        'data_dir = "from-file"\nbatch_size = 300\n[kafka]\nbootstrap = "file:9092"\npartitions = 6\n'
        '[projection]\nreporting_currency = "USD"\nrefresh_idle_s = 2\n'
    )
    s = Settings.from_env({"LEDGER_CONFIG": str(config), "LEDGER_PARTITIONS": "8"}, kafka="flag:9092")
    assert (s.data_dir, s.batch_size) == (Path("from-file"), 300)
    assert (s.kafka.bootstrap, s.kafka.partitions) == ("flag:9092", 8)
    assert (s.projection.reporting_currency, s.projection.refresh_idle_s) == ("USD", 2.0)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[kafka]\npartitons = 3\n", "there is no setting 'kafka.partitons'"),
        ("colour = 'blue'\n", "there is no setting 'colour'"),
        ("[kafka]\npartitions = 'three'\n", r"\[kafka\] partitions must be a whole number"),
        ("kafka = 'host:9092'\n", r"\[kafka\] must be a table of settings"),
        ("[kafka\n", "not valid TOML"),
        ("[projection]\nrefresh_idle_s = true\n", "must be a number"),
    ],
)
def test_a_bad_config_file_is_refused_naming_the_key(tmp_path: Path, text: str, message: str) -> None:
    config = tmp_path / "ledger.toml"
    config.write_text(text)
    with pytest.raises(SettingsError, match=message):
        Settings.from_env({}, config_file=config)


def test_a_missing_config_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="cannot read the config file"):
        Settings.from_env({"LEDGER_CONFIG": str(tmp_path / "nope.toml")})


def test_flat_names_build_and_change_settings_and_unknown_ones_are_refused(tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path, kafka="k:9092", intake_topic="in", batch_size=5)
    assert s.kafka and str(s.kafka) == "k:9092" and s.kafka.intake_topic == "in"
    assert not s.with_(kafka=None).kafka and not Settings().store
    with pytest.raises(SettingsError, match="no setting 'intake_topik'"):
        s.with_(intake_topik="x")
    with pytest.raises(SettingsError, match="must be a whole number"):
        Settings(batch_size="5,000")


def test_the_cli_reads_a_config_file_and_names_a_bad_key_with_exit_2(tmp_path: Path) -> None:
    config = tmp_path / "ledger.toml"
    config.write_text("[kafka]\npartitions = 'x'\n")
    run = subprocess.run([sys.executable, "-m", "ledger.cli", "--config", str(config), "schemas"],
                         capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode == 0  # schemas reads no settings
    run = subprocess.run([sys.executable, "-m", "ledger.cli", "--config", str(config), "status"],
                         capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode == 2
    assert f"{config} [kafka] partitions must be a whole number, got 'x'" in run.stderr
    assert "Traceback" not in run.stderr


def test_a_misspelt_variable_is_refused_with_the_name_it_is_close_to() -> None:
    with pytest.raises(SettingsError, match=r"LEDGER_PARTITONS is not a setting \(did you mean LEDGER_PARTITIONS\?\)"):
        Settings.from_env({"LEDGER_PARTITONS": "8"})


def test_the_sources_are_checked_together_not_one_by_one(tmp_path: Path) -> None:
    config = tmp_path / "ledger.toml"
    config.write_text("[projection]\nactive_days = 200\n")  # valid only with the churn_days below
    s = Settings.from_env({"LEDGER_CONFIG": str(config), "LEDGER_CHURN_DAYS": "300"})
    assert (s.projection.active_days, s.projection.churn_days) == (200, 300)


def test_the_store_password_is_never_shown(tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path, store="postgresql://ledger:hunter2@db:5432/ledger")
    assert "hunter2" not in repr(s) and "hunter2" not in s.store_shown
    assert s.store.url == "postgresql://ledger:hunter2@db:5432/ledger"
    with pytest.raises(SettingsError) as refused:
        Settings(store="mysql://ledger:hunter2@db/ledger")
    assert "hunter2" not in str(refused.value)


def test_a_bad_value_is_named_by_where_it_came_from(tmp_path: Path) -> None:
    config = tmp_path / "ledger.toml"
    config.write_text("batch_size = 0\n[kafka]\npartitions = 0\n")
    with pytest.raises(SettingsError, match=re.escape(f"batch_size ({config} batch_size) must be 1 to")):
        Settings.from_env({}, config_file=config)
    config.write_text("[kafka]\npartitions = 0\n")
    with pytest.raises(SettingsError, match=re.escape(f"kafka.partitions ({config} [kafka] partitions) must be")):
        Settings.from_env({}, config_file=config)
    with pytest.raises(SettingsError, match=re.escape("store.url (--store) is not a usable URL")):
        Settings.from_env({}, store="postgresql://x:99999/y")
