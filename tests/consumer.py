"""A real webhook consumer on loopback that verifies every delivery with ``standardwebhooks``."""

from __future__ import annotations

import dataclasses
import json
import socket
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError


@dataclasses.dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    verified_with: list[int]

    @property
    def payload(self) -> Any:
        return json.loads(self.body)


@dataclasses.dataclass
class Consumer:
    """Answers each POST by the next behaviour in ``script`` (then ``default``)."""

    port: int = 0
    secrets: list[str] = dataclasses.field(default_factory=list)
    script: list[str] = dataclasses.field(default_factory=list)
    default: str = "200"
    received: list[Received] = dataclasses.field(default_factory=list)
    connections: int = 0
    release: threading.Event = dataclasses.field(default_factory=threading.Event)
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    def next_behaviour(self) -> str:
        with self.lock:
            return self.script.pop(0) if self.script else self.default

    def verify(self, headers: dict[str, str], body: bytes) -> list[int]:
        """Which of the secrets verify this delivery (by index)."""
        ok = []
        for index, secret in enumerate(self.secrets):
            try:
                Webhook(secret).verify(body, headers)
            except WebhookVerificationError:
                continue
            ok.append(index)
        return ok


def _handler(consumer: Consumer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            headers = {k.lower(): v for k, v in self.headers.items()}
            behaviour = consumer.next_behaviour()
            with consumer.lock:
                consumer.received.append(Received(headers, body, consumer.verify(headers, body)))
            if behaviour == "hang":
                consumer.release.wait(10)
                return
            if behaviour == "reset":
                self.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
                self.connection.close()
                return
            code, _, extra = behaviour.replace("echo", "200").partition(":")
            self.send_response(int(code))
            if code == "301":
                self.send_header("Location", extra or "http://127.0.0.1:1/")
            elif extra:
                self.send_header("Retry-After", extra)
            # "echo" answers with what it received, as some debugging consumers do.
            reply = body if behaviour == "echo" else b"ok " * 3000
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

    return Handler


@contextmanager
def running_consumer(**kwargs: Any) -> Iterator[Consumer]:
    consumer = Consumer(**kwargs)
    server = ThreadingHTTPServer(("127.0.0.1", consumer.port), _handler(consumer))
    server.daemon_threads = True
    original = server.get_request

    def counting_get_request() -> tuple[socket.socket, Any]:
        request = original()
        with consumer.lock:
            consumer.connections += 1
        return request

    server.get_request = counting_get_request  # type: ignore[method-assign]
    consumer.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield consumer
    finally:
        consumer.release.set()
        server.shutdown()
        server.server_close()
        thread.join(5)
