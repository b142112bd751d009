"""docker-compose.yml is a valid Compose file and agrees with the CLI and the settings."""

from __future__ import annotations

import importlib
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from ruamel.yaml import YAML

from ledger.settings import ENV_NAMES, Settings

COMPOSE_FILE = Path(__file__).resolve().parents[2] / "docker-compose.yml"

# What Compose does to ${VAR:-default}, ${VAR-default}, ${VAR} and $$, with no VAR set: the
# tests read the file as a fresh checkout runs it, whatever this shell exports.
_INTERPOLATION = re.compile(r"\$\$|\$\{(?P<name>\w+)(?::?-(?P<default>[^}]*))?\}")


def interpolate(value: object) -> str:
    return _INTERPOLATION.sub(
        lambda m: "$" if m.group(0) == "$$" else (m.group("default") or ""), str(value)
    )


@pytest.fixture(scope="module")
def compose() -> dict:
    return YAML(typ="safe").load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def ledger_services(compose: dict) -> dict[str, dict]:
    """The services built from the repository's Dockerfile (entrypoint `ledger`)."""
    services = {name: s for name, s in compose["services"].items() if "build" in s}
    assert services, "no service is built from the repository's Dockerfile"
    return services


def environment(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {name: interpolate(value) for name, value in env.items()}


def command_words(service: dict) -> list[str]:
    command = service.get("command")
    if command is None:
        return []
    return shlex.split(command) if isinstance(command, str) else [str(w) for w in command]


def test_compose_file_is_valid_against_the_compose_spec():
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "check_jsonschema",
            "--builtin-schema",
            "vendor.compose-spec",
            str(COMPOSE_FILE),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_ledger_service_runs_a_command_of_the_ledger_cli(ledger_services):
    app = importlib.import_module("ledger.cli.main").app
    cli = typer.main.get_command(app)
    commands = set(getattr(cli, "commands", {}))
    for name, service in ledger_services.items():
        words = command_words(service)
        assert words, f"service {name} has no command"
        assert words[0] in commands, (
            f"service {name} runs `ledger {words[0]}`, but the CLI's commands are"
            f" {sorted(commands)}"
        )


def test_every_ledger_variable_is_a_settings_field(compose):
    fields = set(ENV_NAMES) | {"LEDGER_CONFIG"}
    for name, service in compose["services"].items():
        unknown = {v for v in environment(service) if v.startswith("LEDGER_")} - fields
        assert not unknown, f"service {name} sets {sorted(unknown)}, which Settings ignores"


def test_ledger_services_environment_builds_settings_for_kafka_and_postgres(ledger_services):
    for name, service in ledger_services.items():
        settings = Settings.from_env(environment(service))
        assert settings.kafka, f"service {name} has no LEDGER_KAFKA"
        assert settings.store and settings.store.url.startswith("postgresql://"), name


def test_kafka_advertises_the_address_the_ledger_services_use(compose, ledger_services):
    advertised = environment(compose["services"]["kafka"])["KAFKA_ADVERTISED_LISTENERS"]
    addresses = {listener.split("://", 1)[1] for listener in advertised.split(",")}
    for name, service in ledger_services.items():
        bootstrap = Settings.from_env(environment(service)).kafka.bootstrap or ""
        assert set(bootstrap.split(",")) <= addresses, (name, bootstrap, advertised)


def test_the_topics_service_creates_the_ledger_topics_with_the_settings_of_the_others(compose, ledger_services):
    topics = compose["services"]["topics"]
    assert command_words(topics) == ["topics", "create"]
    assert topics["depends_on"]["kafka"]["condition"] == "service_healthy"
    wanted = environment(topics)
    for name, service in ledger_services.items():
        assert environment(service) == wanted, name  # the same topics, partitions and broker
        if name != "topics":
            assert service["depends_on"]["topics"]["condition"] == "service_completed_successfully", name
    assert environment(compose["services"]["kafka"])["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
