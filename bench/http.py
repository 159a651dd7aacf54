"""Shared tools for benchmarks over real HTTP: a gunicorn server on a free loopback port, and a
load generator that runs in a separate process (so it never shares the server's interpreter).

A scenario module builds its servers with :func:`gunicorn`, lists :class:`Target`s and calls
:func:`measure`; :func:`table` renders the Markdown rows. See bench/embed.py for an example.
"""

from __future__ import annotations

import contextlib
import dataclasses
import http.client
import multiprocessing
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORKERS = int(os.environ.get("BENCH_WORKERS", "2"))
THREADS = int(os.environ.get("BENCH_THREADS", "4"))
CLIENTS = int(os.environ.get("BENCH_CLIENTS", "8"))
SECONDS = float(os.environ.get("BENCH_SECONDS", "6"))


@dataclasses.dataclass(frozen=True)
class Target:
    """One measured request: a name for the table, the path, headers and the status expected."""

    name: str
    base: str
    path: str
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict)
    status: int = 200


@dataclasses.dataclass(frozen=True)
class Result:
    target: Target
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int

    @property
    def rps(self) -> float:
        return self.requests / self.seconds


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def gunicorn(app: str, env: Mapping[str, str] | None = None) -> Iterator[str]:
    """Serve the WSGI ``app`` ("module:callable") under gunicorn (gthread, WORKERS x THREADS)."""
    port = free_port()
    command = [
        sys.executable, "-m", "gunicorn", app, "--bind", f"127.0.0.1:{port}",
        "--workers", str(WORKERS), "--threads", str(THREADS), "--worker-class", "gthread",
        "--keep-alive", "5", "--log-level", "warning",
    ]  # fmt: skip
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"gunicorn {app} did not start") from None
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def etag_of(url: str) -> str:
    with urllib.request.urlopen(url) as response:
        etag: str = response.headers["ETag"]
        return etag


def _client(target: Target, until: float, out: list[float], errors: list[int]) -> None:
    host, port = target.base.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    while time.perf_counter() < until:
        started = time.perf_counter()
        try:
            connection.request("GET", target.path, headers=dict(target.headers))
            response = connection.getresponse()
            response.read()
            ok = response.status == target.status
            if response.getheader("Connection", "").lower() == "close":
                connection.close()
        except (OSError, http.client.HTTPException):
            connection.close()
            ok = False
        out.append(time.perf_counter() - started)
        if not ok:
            errors.append(1)


def _load(target: Target, seconds: float, clients: int, queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    until = time.perf_counter() + 0.5
    warm: list[float] = []
    _client(target, until, warm, [])  # warm-up: imports, caches, connections
    times: list[float] = []
    errors: list[int] = []
    started = time.perf_counter()
    until = started + seconds
    threads = [
        threading.Thread(target=_client, args=(target, until, times, errors))
        for _ in range(clients)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    queue.put((times, time.perf_counter() - started, len(errors)))


def measure(target: Target, seconds: float = SECONDS, clients: int = CLIENTS) -> Result:
    """Drive ``target`` for ``seconds`` from a separate process with ``clients`` connections."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_load, args=(target, seconds, clients, queue))
    process.start()
    times, elapsed, errors = queue.get(timeout=seconds + 60)
    process.join()
    times.sort()
    p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
    return Result(target, len(times), elapsed, statistics.median(times) * 1000, p99 * 1000, errors)


def table(results: list[Result], baseline: Result, targets: Mapping[str, float]) -> list[str]:
    """Markdown rows: requests/s, p50, p99, the ratio to the baseline and the target."""
    rows = [
        "| scenario | requests/s | p50 ms | p99 ms | ratio to trivial | target | errors |",
        "|---|---|---|---|---|---|---|",
    ]
    for result in [baseline, *results]:
        ratio = result.rps / baseline.rps
        goal = targets.get(result.target.name)
        verdict = "" if goal is None else f">= {goal} {'met' if ratio >= goal else 'MISSED'}"
        rows.append(
            f"| {result.target.name} | {result.rps:,.0f} | {result.p50_ms:.2f} | "
            f"{result.p99_ms:.2f} | {ratio:.2f} | {verdict} | {result.errors} |"
        )
    return rows
