"""The HTTP endpoint of `ledger serve`: /metrics for Prometheus, /healthz and /readyz for an
orchestrator, on one small stdlib server in a thread of its own.

/healthz is 200 while no part failed, 503 once one did (serve then stops, but a probe may ask
in between); /readyz is 200 once every part runs and the projector has caught up and published
at least once, 503 before. Both answer a small JSON body naming each part's state.

The port is bound before any part starts, so a port already taken stops serve at once with a
SettingsError (exit 2) that names it, and never leaves a half-started deployment behind.
"""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client.exposition import CONTENT_TYPE_LATEST

from ledger.errors import SettingsError
from ledger.ops.metrics import Metrics

log = logging.getLogger(__name__)


class Endpoint:
    """Listening from construction, answering from `start`, until `close`."""

    def __init__(self, metrics: Metrics, host: str, port: int):
        handler = type("Handler", (_Handler,), {"metrics": metrics})
        try:
            self.server = ThreadingHTTPServer((host, port), handler)
        except OSError as exc:
            raise SettingsError(
                f"cannot serve metrics on {host}:{port}: {exc.strerror or exc}; choose another port with "
                "--metrics-port or LEDGER_METRICS_PORT (0 picks a free one, off runs no HTTP server)"
            ) from exc
        self.server.daemon_threads = True
        self.host, self.port = host, self.server.server_address[1]
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> None:
        self._thread = threading.Thread(target=self.server.serve_forever, name="metrics", daemon=True,
                                        kwargs={"poll_interval": 0.2})
        self._thread.start()
        log.info("metrics and health on %s (/metrics, /healthz, /readyz)", self.url,
                 extra={"host": self.host, "port": self.port})

    def close(self) -> None:
        if self._thread is not None:
            self.server.shutdown()
            self._thread.join()
        self.server.server_close()


class _Handler(BaseHTTPRequestHandler):
    metrics: Metrics

    def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            self._answer(200, self.metrics.exposition(), CONTENT_TYPE_LATEST)
        elif path in ("/healthz", "/readyz"):
            good, body = self.metrics.health() if path == "/healthz" else self.metrics.readiness()
            self._answer(200 if good else 503, json.dumps(body).encode(), "application/json")
        else:
            self._answer(404, b'{"error": "not found: try /metrics, /healthz or /readyz"}', "application/json")

    def _answer(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
        """Each scrape at debug, not on stderr: Prometheus asks every few seconds."""
        log.debug("%s %s", self.address_string(), format % args)
