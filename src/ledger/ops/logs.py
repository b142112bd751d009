"""The log of a long-running `ledger serve`: on stderr, as text for people or JSON for a
log shipper, at the level the operator chose (ServeSettings).

JSON is one object per line: ``time`` (ISO-8601, UTC), ``level``, ``logger``, ``message``,
then whatever the call gave in ``extra`` (``part``, ``events``, ``seconds``, ``position``...),
so a shipper can filter on fields rather than parse sentences.

kafka-python logs every failed connection attempt (at error, several a second while a broker
is down) and much of its bookkeeping; what matters of it reaches our own log as the error a
part reports (`relay: cannot reach Kafka...; starting a new producer`), so its lines are
shown at debug only.
Commands other than serve configure nothing: what they have to say is their output or their
error message, and `quiet_libraries` keeps the libraries' own lines off their stderr.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}
"""Attributes every LogRecord has: what is left on a record besides them came from ``extra``."""

LIBRARY_LOGGERS = ("kafka",)
"""Third-party loggers that repeat, at length, what our own errors already say."""


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update((key, _plain(value)) for key, value in vars(record).items() if key not in _STANDARD)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """``2026-12-05T21:30:00Z info ledger.ops.serve: projector started``; extra fields are in
    the message already, said as a sentence."""

    def format(self, record: logging.LogRecord) -> str:
        when = datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        line = f"{when} {record.levelname.lower()} {record.name}: {record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def configure(level: str = "info", log_format: str = "text") -> logging.Handler:
    """Send every log record at `level` and above to stderr in `log_format`; return the
    handler (`unconfigure` takes it away again, for tests running serve in-process)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in LIBRARY_LOGGERS:
        library = logging.getLogger(name)
        library.setLevel(logging.DEBUG if level == "debug" else logging.CRITICAL)
        library.propagate = True  # undoes `quiet_libraries`: serve shows them, at its level
    return handler


def unconfigure(handler: logging.Handler) -> None:
    logging.getLogger().removeHandler(handler)


def quiet_libraries() -> None:
    """Keep the libraries' log lines off a command's stderr (Python prints warnings of an
    unconfigured logging to stderr): a failure reaches the user as the command's own message."""
    for name in LIBRARY_LOGGERS:
        library = logging.getLogger(name)
        if not library.handlers:
            library.addHandler(logging.NullHandler())
        library.propagate = False


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_plain(v) for v in value]
    return str(value)
