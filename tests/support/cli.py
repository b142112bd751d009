"""The `ledger` command in-process, as typer's CliRunner runs it, but strict: an exception the
command did not turn into a message and an exit code propagates and fails the test, instead
of being caught into `result.exception`, where a "no traceback" check could never see it."""

from __future__ import annotations

from typing import Any

from typer.testing import CliRunner


class StrictRunner(CliRunner):
    def invoke(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("catch_exceptions", False)
        return super().invoke(*args, **kwargs)
