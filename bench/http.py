"""Benchmarks over real HTTP: gunicorn on a free loopback port, and load from wrk.

Every app is served with the same gunicorn settings (:data:`SERVER`). The load comes from wrk (a
C load generator from the Debian package of that name) in its own process, over keep-alive
connections, driven by bench/load.lua: a Python client spends more CPU per request than a small
Flask view, so at 16 connections on two cores it, not the server, would set the pace.

Each worker takes at most its share of wrk's 16 connections (``--worker-connections``, 8 for two
workers). Without the cap, whichever worker woke first kept most of the connections, so a round
ran on one core or on two by chance: eight rounds of the trivial app at 16 connections gave
2,169 to 7,398 requests/s, and 5,432 to 6,171 with it. The cap is the benchmark's, for rounds
that compare like with like; deploy/gunicorn.conf.py keeps gunicorn's default.
"""

from __future__ import annotations

import contextlib
import dataclasses
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = Path(__file__).with_name("load.lua")
WORKERS = int(os.environ.get("BENCH_WORKERS", "2"))
THREADS = int(os.environ.get("BENCH_THREADS", "4"))
MAX_CONNECTIONS = 16  # the most wrk opens
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
SERVER = (
    f"--workers {WORKERS} --threads {THREADS} --worker-class gthread --keep-alive 5 "
    f"--worker-connections {-(-MAX_CONNECTIONS // WORKERS)} --log-level warning"
)


@dataclasses.dataclass(frozen=True)
class Request:
    """One request shape; ``{n}`` (path, body) and ``{words}`` (body) vary per request."""

    path: str
    method: str = "GET"
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict)
    body: str = ""
    status: int = 200
    bodies: str = ""  # a file of JSON string contents, one a line, for "{body}"


@dataclasses.dataclass(frozen=True)
class Result:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int  # transport errors and responses with an unexpected status
    issued: int  # numbers handed out for {n}
    sent: int = 0  # requests sent, including those still unanswered when the round ended

    @property
    def rps(self) -> float:
        return self.requests / self.seconds


@dataclasses.dataclass(frozen=True)
class Server:
    url: str
    process: subprocess.Popen[bytes]  # gunicorn's master

    def wait(self, path: str, timeout: float = 60) -> None:
        """Return once the app answers ``path`` (its workers have booted), whatever the status."""
        deadline = time.monotonic() + timeout
        while True:
            connection = http.client.HTTPConnection(urlsplit(self.url).netloc, timeout=timeout)
            try:
                connection.request("GET", path)
                connection.getresponse().read()
                return
            except (OSError, http.client.HTTPException):
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"gunicorn on {self.url} did not start") from None
                time.sleep(0.1)
            finally:
                connection.close()

    def workers(self) -> list[int]:
        pid = self.process.pid
        return [
            int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        ]

    def cpu_seconds(self) -> float:
        """CPU time (user and system) the master and its workers have used so far, from /proc."""
        ticks = 0
        for pid in [self.process.pid, *self.workers()]:
            # Fields after the command name (which may hold spaces): utime and stime are 14, 15.
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])
        return ticks / CLOCK_TICKS

    def busy(self) -> bool:
        """Whether any thread of the master or its workers is running or waiting to run."""
        for pid in [self.process.pid, *self.workers()]:
            for task in Path(f"/proc/{pid}/task").iterdir():
                try:
                    state = (task / "stat").read_text().rsplit(")", 1)[1].split()[0]
                except (OSError, IndexError):
                    continue  # a thread that has just ended
                if state == "R":
                    return True
        return False

    def settled_cpu_seconds(self, timeout: float = 120.0) -> float:
        """CPU time once the server has gone quiet (it finishes the requests a round left
        unanswered: on a slow path, many seconds of work), so that every request sent is paid
        for and the next round starts on an idle server. Quiet: no thread runnable in three
        samples in a row (CPU ticks alone would look quiet on a starved, busy server)."""
        deadline = time.monotonic() + timeout
        idle = 0
        while idle < 3 and time.monotonic() < deadline:
            idle = 0 if self.busy() else idle + 1
            time.sleep(0.05)
        return self.cpu_seconds()

    def worker_rss_mb(self) -> list[float]:
        """Resident memory of each worker process, in MB."""
        sizes = []
        for child in self.workers():
            status = Path(f"/proc/{child}/status").read_text()
            kilobytes = next(line for line in status.splitlines() if line.startswith("VmRSS:"))
            sizes.append(int(kilobytes.split()[1]) / 1024)
        return sizes


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def gunicorn(
    app: str, env: Mapping[str, str] | None = None, *, python: str = sys.executable
) -> Iterator[Server]:
    """Start the WSGI ``app`` ("module:callable") with :data:`SERVER` under the interpreter
    ``python`` (a peer's own virtual environment); ``wait`` for it."""
    port = free_port()
    command = [python, "-m", "gunicorn", app, "--bind", f"127.0.0.1:{port}"]
    process = subprocess.Popen(
        [*command, *SERVER.split()],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield Server(f"http://127.0.0.1:{port}", process)
    finally:
        process.terminate()
        process.wait(timeout=30)


def wrk_version() -> str:
    wrk = shutil.which("wrk")
    if wrk is None:
        raise RuntimeError("the benchmark needs wrk: apt-get install wrk")
    run = subprocess.run([wrk, "--version"], capture_output=True, text=True, check=False)
    return (run.stdout or run.stderr).split(" Copyright")[0].strip()


def measure(
    base: str, request: Request, *, connections: int, seconds: int, first: int = 0
) -> Result:
    """Drive ``request`` against ``base`` with ``connections`` keep-alive connections."""
    headers = [f"{name}: {value}" for name, value in request.headers.items()]
    command = [
        "wrk", "--threads", "1", "--connections", str(connections), "--duration", f"{seconds}s",
        "--timeout", "10s", "--script", str(SCRIPT), base, "--",
        request.method, request.path, request.body, str(request.status), str(first),
        request.bodies, *headers,
    ]  # fmt: skip
    run = subprocess.run(command, capture_output=True, text=True, check=True)
    out = json.loads(run.stdout.strip().splitlines()[-1])
    return Result(
        requests=out["requests"],
        seconds=out["duration_us"] / 1e6,
        p50_ms=out["p50_us"] / 1000,
        p99_ms=out["p99_us"] / 1000,
        errors=out["errors"] + out["unexpected"],
        issued=out["issued"],
        sent=out.get("sent", 0),
    )
