"""A small webhook receiver on loopback: verifies the signature, drops repeats, keeps what came.

Used by ``gliowatch alerts sink`` (the demo's local sink) and by the tests, and meant as the
reference for a real receiver: check ``X-GlioWatch-Signature``, then drop any delivery key already
seen (a sender that crashed between sending and recording sends the same message again).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from engine.alerts.webhook import DELIVERY_KEY_HEADER, SIGNATURE_HEADER, verify_signature

log = logging.getLogger("gliowatch.alerts.receiver")
MAX_BODY_BYTES = 64 * 1024


class WebhookReceiver:
    """``with WebhookReceiver(hmac_key=...) as r: ... r.url ... r.received``."""

    def __init__(
        self, *, hmac_key: str, host: str = "127.0.0.1", port: int = 0, save_to: Path | None = None,
        on_alert: Callable[[dict[str, Any]], None] | None = None, clock: Callable[[], float] = time.time,
    ) -> None:
        if host not in ("127.0.0.1", "::1", "localhost"):
            msg = f"Argument 'host' must be a loopback address, got {host!r}"
            raise ValueError(msg)
        self.hmac_key = hmac_key
        self.save_to = save_to
        self.on_alert = on_alert
        self.clock = clock
        self.received: list[dict[str, Any]] = []  # accepted, first copies only
        self.bodies: list[bytes] = []  # every body that arrived, repeats and refusals included
        self.duplicates = 0
        self.refused = 0
        self.fail_with: int | None = None  # set to e.g. 503 to simulate an outage
        self._seen: set[str] = set()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer((host, port), self._handler_class())
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/alerts"

    def start(self) -> WebhookReceiver:
        self._thread = threading.Thread(target=self._server.serve_forever, name="webhook-receiver", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:  # shutdown() waits for serve_forever: only call it when serving
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()

    def serve_forever(self) -> None:
        """Serve in the calling thread until :meth:`request_stop` (or Ctrl-C)."""
        try:
            self._server.serve_forever()
        finally:
            self._server.server_close()

    def request_stop(self) -> None:
        """Stop ``serve_forever`` from any thread, a request handler's included."""
        threading.Thread(target=self._server.shutdown, name="webhook-receiver-stop", daemon=True).start()

    def __enter__(self) -> WebhookReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def accept(self, body: bytes, signature: str, delivery_key: str) -> HTTPStatus:
        """Decide on one request (the HTTP handler calls this)."""
        with self._lock:
            self.bodies.append(body)
            if self.fail_with is not None:
                return HTTPStatus(self.fail_with)
            if not verify_signature(signature, body, key=self.hmac_key, now=self.clock()):
                self.refused += 1
                return HTTPStatus.UNAUTHORIZED
            try:
                alert = json.loads(body)
            except json.JSONDecodeError:
                self.refused += 1
                return HTTPStatus.BAD_REQUEST
            key = str(alert.get("delivery_key") or delivery_key)
            if key in self._seen:
                self.duplicates += 1
                return HTTPStatus.OK  # accepted before: say so, keep nothing
            self._seen.add(key)
            self.received.append(alert)
            if self.save_to is not None:
                self.save_to.parent.mkdir(parents=True, exist_ok=True)
                with self.save_to.open("a", encoding="utf-8") as fh:
                    fh.write(json.dumps(alert, sort_keys=True) + "\n")
        if self.on_alert is not None:
            self.on_alert(alert)
        return HTTPStatus.OK

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_BODY_BYTES:
                    self.send_error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
                    return
                body = self.rfile.read(length)
                status = receiver.accept(body, self.headers.get(SIGNATURE_HEADER, ""),
                                         self.headers.get(DELIVERY_KEY_HEADER, ""))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
                log.debug("webhook receiver: " + format, *args)

        return Handler
