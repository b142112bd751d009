"""Where setting values come from as text or TOML: converted to each field's type, or a
SettingsError naming the origin (``LEDGER_BATCH_SIZE``, ``ledger.toml [kafka] partitions``)."""

from __future__ import annotations

import re
import tomllib
import types
import typing
from pathlib import Path
from typing import Any

from ledger.errors import SettingsError
from ledger.settings.sections import SECTIONS, Secret

_WHOLE = re.compile(r"[+-]?[0-9]+")
_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|[+-]?(?:inf|nan)", re.IGNORECASE)


_BOOLEANS = {"true": True, "1": True, "yes": True, "on": True, "false": False, "0": False, "no": False, "off": False}


def convert(value: Any, annotation: Any, origin: str) -> Any:
    """`value` (text from the environment, a TOML or Python value) as `annotation` says."""
    options = typing.get_args(annotation) if isinstance(annotation, types.UnionType) else (annotation,)
    if value is None:
        if type(None) in options:
            return None
        raise SettingsError(f"{origin}: a value is required")
    kind = next(o for o in options if o is not type(None))
    text = value if isinstance(value, str) else None
    if kind is int and type(None) in options and text is not None and text.strip().lower() == "off":
        return None  # an optional number switched off (LEDGER_METRICS_PORT=off)
    try:
        if kind is int:
            if isinstance(value, bool) or isinstance(value, float):
                raise ValueError
            if text is not None and not _WHOLE.fullmatch(text.strip()):
                raise ValueError  # int() takes "٣", "１２" and "1_000"; a setting is ASCII digits
            return int(text.strip()) if text is not None else int(value)
        if kind is float:
            if isinstance(value, bool):
                raise ValueError
            if text is not None and not _NUMBER.fullmatch(text.strip()):
                raise ValueError
            number = float(text.strip()) if text is not None else float(value)
            if number != number or number in (float("inf"), float("-inf")):
                raise ValueError
            return number
        if kind is Path:
            if not isinstance(value, str | Path) or not str(value).strip():
                raise ValueError
            return Path(value)
        if kind is bool:
            if isinstance(value, bool):
                return value
            if text is None or text.strip().lower() not in _BOOLEANS:
                raise ValueError
            return _BOOLEANS[text.strip().lower()]
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
    expected = {int: "a whole number", float: "a number", Path: "a path", str: "text",
                bool: "true or false"}.get(kind, kind.__name__)
    shown = repr(str(value)) if isinstance(value, Path) else repr(value)
    raise SettingsError(f"{origin} must be {expected}, got {shown}")


def read_config(path: Path) -> dict[str, tuple[Any, str]]:
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
