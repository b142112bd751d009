"""The `ledger` command (and ``python -m ledger.cli``).

Importing the commands loads DuckDB, Kafka and the store's drivers: a Ctrl-C in that second
is an interrupted command (exit 130) like any other, not a traceback."""

from __future__ import annotations

import sys


def main() -> None:
    try:
        from ledger.cli.main import app
        from ledger.ops.logs import quiet_libraries
    except KeyboardInterrupt:
        sys.exit(130)
    quiet_libraries()  # a Kafka client's own log lines would repeat our error message, as noise
    app(prog_name="ledger")


if __name__ == "__main__":
    main()
