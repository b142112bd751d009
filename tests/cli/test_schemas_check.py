"""`ledger schemas check`: the shipped schemas evolve compatibly (this is how CI runs the
check), and a folder with an incompatible version is refused with each failure named."""

from __future__ import annotations

import json
from pathlib import Path

from ledger.cli.main import app
from ledger.contract.codec import default_codec
from tests.support.cli import StrictRunner

runner = StrictRunner()
INCOMPATIBLE = Path(__file__).resolve().parents[1] / "contract" / "fixtures" / "incompatible"


def test_the_shipped_schemas_pass_the_check_with_a_table_of_types_and_versions() -> None:
    result = runner.invoke(app, ["schemas", "check"])
    assert result.exit_code == 0, result.output
    assert "ContactLogged" in result.stdout and "v1, v2, v3" in result.stdout and "compatible" in result.stdout

    result = runner.invoke(app, ["schemas", "check", "--json"])
    report = json.loads(result.stdout)
    assert report["compatible"] is True
    assert {t["event_type"]: t["versions"] for t in report["types"]}["ContactLogged"] == [1, 2, 3]


def test_an_incompatible_version_is_refused_with_exit_3_naming_type_versions_direction_field_and_rule() -> None:
    result = runner.invoke(app, ["schemas", "check", "--dir", str(INCOMPATIBLE)])
    assert result.exit_code == 3
    assert ("incompatible: ContactLogged v3 against v1, backward (v3 reading data written with v1): priority: a "
            "reader's field missing from the writer must have a default") in result.stderr
    assert "ContactLogged v3 against v2, forward (v2 reading data written with v3): duration_s:" in result.stderr

    result = runner.invoke(app, ["schemas", "check", "--dir", str(INCOMPATIBLE), "--json"])
    assert result.exit_code == 3
    report = json.loads(result.stdout)
    assert report["compatible"] is False
    (contact,) = report["types"]
    assert {(x["newer"], x["older"], x["direction"], x["path"]) for x in contact["failures"]} >= {
        (3, 1, "backward", "priority"), (3, 2, "forward", "duration_s")}


def test_a_folder_without_schemas_or_with_a_broken_one_is_refused_naming_it(tmp_path: Path) -> None:
    result = runner.invoke(app, ["schemas", "check", "--dir", str(tmp_path)])
    assert result.exit_code == 3 and "no .avsc files" in result.stderr

    (tmp_path / "contact_logged.v1.avsc").write_text("{not json")
    result = runner.invoke(app, ["schemas", "check", "--dir", str(tmp_path)])
    assert result.exit_code == 3 and "contact_logged.v1.avsc: not a valid Avro schema" in result.stderr

    result = runner.invoke(app, ["schemas", "check", "--dir", str(tmp_path / "missing")])
    assert result.exit_code == 2


def test_bare_schemas_still_lists_every_version_with_its_fingerprint() -> None:
    result = runner.invoke(app, ["schemas", "--json"])
    assert result.exit_code == 0
    assert json.loads(result.stdout) == [
        {"event_type": v.event_type, "version": v.version, "file": v.file_name, "fingerprint": v.fingerprint.hex()}
        for v in default_codec().versions
    ]
    result = runner.invoke(app, ["schemas"])
    assert result.exit_code == 0 and "contact_logged.v3.avsc" in result.stdout


def test_a_file_named_for_another_type_is_refused(tmp_path: Path) -> None:
    """A record renamed by mistake would otherwise pass as a new type of one version."""
    text = (INCOMPATIBLE / "contact_logged.v1.avsc").read_text()
    (tmp_path / "contact_logged.v1.avsc").write_text(text)
    (tmp_path / "contact_loged.v2.avsc").write_text(text)
    result = runner.invoke(app, ["schemas", "check", "--dir", str(tmp_path)])
    assert result.exit_code == 3
    assert ("unsound: contact_loged.v2.avsc: holds ContactLogged, so it must be named contact_logged.v<N>.avsc"
            in result.stderr)
