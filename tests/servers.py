"""Real servers for the load and fault tests: the app under gunicorn, a private PostgreSQL server
the test may stop and start, and the resident memory of the app's workers.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable
from pathlib import Path

import pytest

from tests.helpers import TEST_SECRET


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_for_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (gunicorn's workers, for its master)."""
    found = []
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            fields = Path(stat).read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # the process ended while we looked
        if int(fields[1]) == pid:
            found.append(int(stat.split("/")[2]))
    return sorted(found)


def resident_kib(pid: int) -> int | None:
    """VmRSS of a process in KiB, or None when it has gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


class AppServer:
    """The app under gunicorn on a free loopback port, on ``database_url``.

    Output goes to a file: a pipe nobody reads fills up and blocks the workers once they log
    enough (as they do during a database outage).
    """

    def __init__(
        self, database_url: str, log_dir: Path, *, workers: int = 2, **settings: str
    ) -> None:
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.log = log_dir / f"gunicorn-{self.port}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("MODERATION_")}
        env.update(
            MODERATION_ENV="testing",
            MODERATION_SECRET_KEY=TEST_SECRET,
            MODERATION_DATABASE_URL=database_url,
            MODERATION_LOG_LEVEL="WARNING",
            # One client network and a few addresses send everything; no DNS leaves the machine.
            MODERATION_RATELIMIT_ENABLED="false",
            MODERATION_CHECK_DELIVERABILITY="false",
            # Clients name their address in X-Forwarded-For, as a reverse proxy would.
            MODERATION_TRUSTED_PROXY_HOPS="1",
        )
        env.update({f"MODERATION_{name.upper()}": value for name, value in settings.items()})
        with self.log.open("w") as output:
            self.process = subprocess.Popen(
                [str(Path(sys.executable).with_name("gunicorn")), "--workers", str(workers),
                 "--threads", "4", "--bind", self.address, "--log-level", "warning",
                 "moderation:create_app()"],
                env=env, stdout=output, stderr=subprocess.STDOUT,
            )  # fmt: skip
        try:
            wait_for_port(self.port)
            deadline = time.monotonic() + 30
            while len(self.worker_pids()) < workers and time.monotonic() < deadline:
                time.sleep(0.05)
        except BaseException:
            self.stop()
            raise

    def worker_pids(self) -> list[int]:
        return children(self.process.pid)

    def stop(self) -> str:
        """Stop the server; return everything it printed."""
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        return self.log.read_text(errors="replace")


class MemoryProbe(threading.Thread):
    """Samples the resident memory of the servers' workers; keeps each worker's peak in KiB."""

    def __init__(self, servers: Iterable[AppServer], interval: float = 0.25) -> None:
        super().__init__(daemon=True)
        self.servers, self.interval = list(servers), interval
        self.peaks: dict[int, int] = {}
        self.finished = threading.Event()

    def run(self) -> None:
        while not self.finished.is_set():
            self.sample()
            self.finished.wait(self.interval)

    def sample(self) -> None:
        for server in self.servers:
            for pid in server.worker_pids():
                kib = resident_kib(pid)
                if kib is not None:
                    self.peaks[pid] = max(kib, self.peaks.get(pid, 0))

    def stop(self) -> dict[int, int]:
        self.finished.set()
        self.join()
        self.sample()
        return self.peaks


class PrivatePostgres:
    """A PostgreSQL server of the test's own, which it may stop and start: initdb in a temp dir,
    trust auth, a free loopback port. Never the shared server.

    initdb refuses to run as root, so as root the server runs as the ``postgres`` account.
    """

    def __init__(self) -> None:
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
        pg_ctl = found[-1] if found else shutil.which("pg_ctl")
        if pg_ctl is None:
            pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
        self.bin = Path(pg_ctl).parent
        self.run_as: list[str] = []
        self.directory = Path(tempfile.mkdtemp(prefix="moderation-pg-"))
        if os.geteuid() == 0:
            try:
                account = pwd.getpwnam("postgres")
            except KeyError:
                pytest.skip("running as root and there is no postgres account to run initdb")
            os.chown(self.directory, account.pw_uid, account.pw_gid)
            self.run_as = ["runuser", "-u", "postgres", "--"]
        self.data = self.directory / "data"
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync",
                  "-E", "UTF8")  # fmt: skip
        self.start()

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run(
            [*self.run_as, str(self.bin / tool), *args],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60,
        )  # fmt: skip

    def start(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.directory} "
            "-c fsync=off -c max_connections=60 -c shared_buffers=16MB"
        )
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.directory / "server.log"),
                  "-o", options, "-w", "start")  # fmt: skip

    def stop(self, mode: str = "immediate") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def remove(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)
