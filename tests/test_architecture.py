"""The house keeps its shape: imports go one way (import-linter, pyproject.toml), no module
imports itself through others, the CLI is a registry over command modules with no circle,
and no module grows into several rooms."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_MODULE_LINES = 400


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text("utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def test_the_import_rule_holds() -> None:
    lint_imports = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or "lint-imports"
    result = subprocess.run([lint_imports], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_no_module_of_the_library_imports_itself_through_others() -> None:
    import grimp

    graph = grimp.build_graph("ledger")
    modules = sorted(m for m in graph.modules if m.startswith("ledger."))
    circles = [
        (module, imported)
        for module in modules
        for imported in sorted(graph.find_modules_directly_imported_by(module))
        if imported.startswith("ledger.") and graph.chain_exists(importer=imported, imported=module)
    ]
    assert circles == []


def test_nothing_in_the_library_imports_the_cli() -> None:
    offenders = sorted(
        str(path.relative_to(ROOT))
        for path in (ROOT / "src" / "ledger").rglob("*.py")
        if any(name == "ledger.cli" or name.startswith("ledger.cli.") for name in imported_modules(path))
    )
    assert offenders == []


def test_cli_modules_form_no_circle_and_commands_never_import_the_registry() -> None:
    modules = {path.stem: path for path in (ROOT / "cli").glob("*.py") if path.stem != "__init__"}
    edges = {
        name: {m.split(".")[2] for m in imported_modules(path)
               if m.startswith("ledger.cli.") and m.split(".")[2] in modules}
        for name, path in modules.items()
    }
    for name, targets in edges.items():
        if name not in ("main", "__main__"):
            assert "main" not in targets, f"cli/{name}.py imports the registry"

    def reaches(start: str, goal: str, seen: frozenset[str] = frozenset()) -> bool:
        return any(t == goal or (t not in seen and reaches(t, goal, seen | {t})) for t in edges[start])

    circles = sorted(name for name in edges if reaches(name, name))
    assert circles == []


def test_no_module_is_over_400_lines() -> None:
    sizes = {
        str(path.relative_to(ROOT)): len(path.read_text("utf-8").splitlines())
        for folder in ("src/ledger", "cli")
        for path in (ROOT / folder).rglob("*.py")
    }
    assert {path: n for path, n in sizes.items() if n > MAX_MODULE_LINES} == {}
