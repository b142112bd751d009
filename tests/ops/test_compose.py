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
from typer.testing import CliRunner

from ledger.ops.endpoint import Endpoint
from ledger.ops.metrics import Metrics
from ledger.ops.serve import PART_NAMES
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


@pytest.fixture(scope="module")
def long_running(ledger_services: dict[str, dict]) -> dict[str, dict]:
    """The ledger services that run until stopped (the others are one-shot jobs)."""
    return {name: s for name, s in ledger_services.items() if s.get("restart", "no") != "no"}


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
        shared = {key: environment(service).get(key) for key in wanted}
        assert shared == wanted, name  # the same topics, partitions and broker (a projector group adds its lake)
        if name != "topics":
            assert service["depends_on"]["topics"]["condition"] == "service_completed_successfully", name
    assert environment(compose["services"]["kafka"])["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"


def dependency_conditions(service: dict) -> dict[str, str]:
    depends = service.get("depends_on") or {}
    if isinstance(depends, list):  # the short form waits only for the start
        return dict.fromkeys(depends, "service_started")
    return {name: (how or {}).get("condition", "service_started") for name, how in depends.items()}


def health_test(service: dict) -> list[str]:
    check = service.get("healthcheck") or {}
    test = [] if check.get("disable") else check.get("test") or []
    words = shlex.split(test) if isinstance(test, str) else [str(w) for w in test]
    return [] if words[:1] == ["NONE"] else words


def test_every_service_has_a_health_check_or_is_a_one_shot_job_the_others_wait_for(compose):
    services = compose["services"]
    for name, service in services.items():
        if health_test(service):
            continue
        assert service.get("restart") == "no", f"service {name} runs on with no health check"
        waiting = {other: dependency_conditions(s)[name] for other, s in services.items()
                   if name in dependency_conditions(s)}
        assert waiting, f"one-shot service {name} has no health check and nothing waits for it"
        assert set(waiting.values()) == {"service_completed_successfully"}, (name, waiting)


def test_each_long_running_ledger_service_is_a_serve_with_health_and_metrics_on_its_exposed_port(long_running):
    assert long_running, "no long-running ledger service"
    for name, service in long_running.items():
        words = command_words(service)
        assert words[0] == "serve", f"service {name} runs `ledger {words[0]}`, which serves no metrics or health"
        serve = Settings.from_env(environment(service)).serve
        assert serve.metrics_port, f"service {name} runs no metrics endpoint"
        # Reachable from other containers (Prometheus) and from the check, which asks 127.0.0.1.
        assert serve.metrics_host == "0.0.0.0", (name, serve.metrics_host)
        exposed = {str(port).split("/")[0] for port in service.get("expose") or []}
        assert str(serve.metrics_port) in exposed, f"service {name} does not expose {serve.metrics_port}"
        test = health_test(service)
        assert f"http://127.0.0.1:{serve.metrics_port}/healthz" in " ".join(test), (name, test)


def leaf_command(words: list[str]) -> tuple[typer.core.TyperCommand, list[str]]:
    """The command `ledger WORDS` names, through its groups, and the arguments left for it.
    (Typer carries its own click: a group is what has `commands`.)"""
    command = typer.main.get_command(importlib.import_module("ledger.cli.main").app)
    rest = list(words)
    while isinstance(getattr(command, "commands", None), dict):
        assert rest, f"`ledger {' '.join(words)}` stops at a group"
        sub = command.commands.get(rest[0])
        assert sub is not None, f"`ledger {' '.join(words)}`: no command {rest[0]!r}"
        command, rest = sub, rest[1:]
    assert not hasattr(command, "commands"), command
    return command, rest


def test_each_ledger_service_command_is_accepted_by_the_real_cli(ledger_services):
    app = importlib.import_module("ledger.cli.main").app
    for name, service in ledger_services.items():
        words = command_words(service)
        result = CliRunner().invoke(app, [*words, "--help"])
        assert result.exit_code == 0, (name, words, result.output)
        # --help stops before values are checked: parse the arguments as a run would, without running.
        command, rest = leaf_command(words)
        params = command.make_context(command.name, rest).params
        assert set(params.get("only") or ()) <= set(PART_NAMES), (name, params)


def test_the_health_check_command_answers_0_while_healthy_and_1_once_a_part_failed(long_running):
    metrics = Metrics(["relay"])
    endpoint = Endpoint(metrics, "127.0.0.1", 0)  # a free port here, where 9464 may be taken
    endpoint.start()
    try:
        for name, service in long_running.items():
            test = health_test(service)
            assert test[:3] == ["CMD", "python", "-c"], (name, test)  # the slim image has no curl
            port = Settings.from_env(environment(service)).serve.metrics_port
            code = test[3].replace(f":{port}/", f":{endpoint.port}/")
            assert code != test[3], (name, code)

            def check(code: str = code) -> int:
                return subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=30).returncode

            metrics.set_state("relay", "running")
            assert check() == 0, name
            metrics.set_state("relay", "failed", "cannot reach Kafka")
            assert check() != 0, name
    finally:
        endpoint.close()
