"""The image and CI install the same pinned versions (constraints.txt), the image runs as a
user of its own, and its build context carries nothing local. docker-compose.yml has its own
tests (test_compose.py). There is no Docker engine here: these read the files."""

from __future__ import annotations

import importlib.metadata
import re
import shlex
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from ledger.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
PROJECT = "customer-ledger"
PIP_ITSELF = {"pip", "setuptools", "wheel"}
"""What a venv brings along, whatever the project needs."""

_PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[A-Za-z0-9][A-Za-z0-9.+!_-]*)$")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    joined, parts = [], []
    for line in dockerfile.read_text().splitlines():
        if not parts and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            parts.append(line.rstrip()[:-1])
            continue
        joined.append(" ".join([*parts, line]).strip())
        parts = []
    return [(words[0].upper(), words[1].strip() if len(words) > 1 else "") for words in
            (line.split(None, 1) for line in joined)]


@pytest.fixture(scope="module")
def dockerfile() -> list[tuple[str, str]]:
    return instructions(ROOT / "Dockerfile")


@pytest.fixture(scope="module")
def pins() -> dict[str, str]:
    pinned: dict[str, str] = {}
    for number, line in enumerate((ROOT / "constraints.txt").read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = _PIN.match(line)
        assert match, f"constraints.txt:{number}: {line!r} is not NAME==VERSION"
        name = canonical(match["name"])
        assert name not in pinned, f"constraints.txt:{number}: {name} pinned twice"
        pinned[name] = match["version"]
    return pinned


def pip_installs(dockerfile: list[tuple[str, str]]) -> list[tuple[int, list[str]]]:
    """(index of the RUN, the words of one `pip install` command in it)."""
    found = []
    for index, (instruction, arguments) in enumerate(dockerfile):
        if instruction != "RUN":
            continue
        lexer = shlex.shlex(arguments, posix=True, punctuation_chars=";&|")
        lexer.whitespace_split = True
        words: list[str] = []
        for token in [*lexer, ";"]:
            if token and set(token) <= set(";&|"):  # the end of one command of the RUN
                if words[:2] == ["pip", "install"] or words[1:4] == ["-m", "pip", "install"]:
                    found.append((index, words))
                words = []
            else:
                words.append(token)
    return found


def test_the_image_installs_the_project_with_the_constraints_ci_uses(dockerfile):
    installs = pip_installs(dockerfile)
    assert installs, "the Dockerfile installs nothing with pip"
    copied = [(i, args) for i, (instruction, args) in enumerate(dockerfile) if instruction in ("COPY", "ADD")]
    for index, words in installs:
        assert "-c" in words and words[words.index("-c") + 1] == "constraints.txt", words
        assert any(i < index and "constraints.txt" in shlex.split(args)[:-1] for i, args in copied), (
            "constraints.txt is not copied into the image before the install")


def test_the_image_runs_as_a_user_that_is_not_root(dockerfile):
    users = [(i, args.split(":")[0]) for i, (instruction, args) in enumerate(dockerfile) if instruction == "USER"]
    assert users, "the Dockerfile has no USER: the ledger would run as root"
    last_index, user = users[-1]
    assert user not in ("root", "0"), user
    last_install = max(index for index, _ in pip_installs(dockerfile))
    assert last_index > last_install, "USER comes before the install: the ledger's files would not be root's"
    assert not any(instruction == "RUN" for instruction, _ in dockerfile[last_index:]), (
        "a RUN after the last USER runs as that user: keep the image's setup above it")


def test_the_image_exposes_the_metrics_port_serve_listens_on(dockerfile):
    exposed = {port.split("/")[0] for instruction, args in dockerfile if instruction == "EXPOSE"
               for port in args.split()}
    assert str(Settings().serve.metrics_port) in exposed, exposed


def test_psycopg_comes_with_its_binary_wheel_which_carries_libpq():
    """python:3.11-slim has no libpq and no compiler: only psycopg's binary wheel works there."""
    requires = [Requirement(r) for r in importlib.metadata.requires(PROJECT) or []]
    psycopg = [r for r in requires if canonical(r.name) == "psycopg" and not r.marker]
    assert psycopg and "binary" in psycopg[0].extras, [str(r) for r in requires]


def test_the_docker_build_context_leaves_out_local_state():
    ignored = {line.strip().rstrip("/") for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    for local in (".venv", ".git", "ledger-data", "*.duckdb", "*.sqlite"):
        assert local in ignored, f".dockerignore does not leave out {local}"
    for instruction, args in instructions(ROOT / "Dockerfile"):
        if instruction == "COPY":
            for source in shlex.split(args)[:-1]:
                assert source.rstrip("*") not in ignored, f"the Dockerfile copies {source}, which .dockerignore drops"


def test_constraints_pin_every_distribution_installed_here_but_the_project(pins):
    """The test venv is installed with -c constraints.txt (.ci/run): so what it holds is pinned, at that version."""
    assert canonical(PROJECT) not in pins, "constraints.txt pins the project itself"
    installed = {canonical(d.metadata["Name"]): d.version for d in importlib.metadata.distributions()}
    installed = {name: version for name, version in installed.items() if name not in PIP_ITSELF | {PROJECT}}
    unpinned = sorted(set(installed) - set(pins))
    assert not unpinned, f"installed but not in constraints.txt (regenerate it, see its header): {unpinned}"
    differ = {name: (version, pins[name]) for name, version in installed.items() if pins[name] != version}
    assert not differ, (
        f"installed at other versions than constraints.txt's (installed, pinned): {differ}; install with "
        "`pip install -c constraints.txt -e '.[test,bench,insight,lake]'`, or regenerate constraints.txt "
        "(see its header)")


def test_ci_runs_exactly_the_readme_test_command_with_the_constraints():
    def command(text: str) -> str:
        lines = [line.strip() for line in text.splitlines() if "bin/pytest" in line and "pip install" in line]
        assert len(lines) == 1, lines
        return lines[0]

    ci = command((ROOT / ".ci" / "run").read_text())
    assert ci == command((ROOT / "README.md").read_text())
    assert "-c constraints.txt" in ci, ci
