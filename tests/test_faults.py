"""Faults: PostgreSQL stopped in the middle of a load run, a database that never answers, and a
full disk under SQLite.

During a PostgreSQL outage every failure is a 503 with Retry-After (the JSON error shape on the
API, the error page on the embed), nothing hangs, /readyz says 503; when the server is back the
same app processes serve again (no restart), /readyz says 200, and nothing is half-written. A
full disk refuses writes with 503 ``storage_full`` and leaves nothing half-written; service
resumes once space is freed.

The PostgreSQL tests run a server of their own (tests/servers.py), never the shared one.
FAULT_SECONDS sets the length of each phase (before, during and after the outage): a few
seconds in `make test`, longer in `make soak`.
"""

from __future__ import annotations

import contextlib
import errno
import http.client
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session
from werkzeug.test import TestResponse

from moderation import create_app, db, schema
from moderation.db import POSTGRESQL_CONNECT_TIMEOUT_SECONDS, make_engine
from moderation.models import AuditEvent, Comment, CommentStatus, Event, Post
from tests.helpers import make_moderator, make_site, make_token, settings_for_tests
from tests.load import ORIGIN, SLUG, Client, Exchange, Mix, Shared, record, scan_for_leaks
from tests.servers import AppServer, PrivatePostgres

pytestmark = pytest.mark.faults

FAULT_SECONDS = float(os.environ.get("FAULT_SECONDS", "2"))
CLIENTS = 8
# No request may take longer than this, outage or not: the connect timeout is 5 s, and this
# machine is shared (the bound catches a hang, not a slow second).
REQUEST_BOUND_SECONDS = 15
FAULT_MIX = Mix(reads=0.5, submits=0.35)


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    server = PrivatePostgres()
    try:
        yield server
    finally:
        server.remove()


def get(address: str, path: str) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection(address, timeout=REQUEST_BOUND_SECONDS)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def assert_unavailable(status: int, headers: dict[str, str], body: bytes, path: str) -> None:
    """A 503 with Retry-After: the JSON error shape on the API and probes, a page elsewhere."""
    assert status == 503, (status, path, body[:300])
    assert int(headers["retry-after"]) > 0, path
    if path.startswith("/embed/"):
        assert headers["content-type"].startswith("text/html"), path
        return
    assert headers["content-type"] == "application/json", (path, body[:300])
    error = json.loads(body)["error"]
    assert error["code"] == "unavailable" and error["message"] and error["fields"] == {}, error


def stored_integrity(engine: Engine) -> tuple[dict[str, tuple[CommentStatus, str]], Counter[str]]:
    """Every stored comment with its status and text, after checking that no change is
    half-written: each comment has exactly one comment.submitted event, each moderation its audit
    row and its event (one at most here), and no event or audit row lacks its comment."""
    with Session(engine) as session:
        comments = {
            row[0]: (row[1], row[2])
            for row in session.execute(
                select(Comment.public_id, Comment.status, Comment.body_text).join(Post)
            ).all()
        }

        def by_comment(table: type[Event] | type[AuditEvent], *where: Any) -> Counter[str]:
            query = select(Comment.public_id).join(table, table.comment_id == Comment.id)
            return Counter(session.scalars(query.where(*where)))

        submitted = by_comment(Event, Event.type == "comment.submitted")
        decided = by_comment(Event, Event.type != "comment.submitted")
        audited = by_comment(AuditEvent)
        events = session.scalar(select(func.count()).select_from(Event))
        audits = session.scalar(select(func.count()).select_from(AuditEvent))
    assert submitted == Counter(comments.keys()), "a comment without its event, or the reverse"
    assert decided == audited, "a moderation without its event or its audit row"
    assert (events, audits) == (submitted.total() + decided.total(), audited.total())
    for public_id, (status, _) in comments.items():
        assert (status != CommentStatus.PENDING) == (audited[public_id] == 1), public_id
    assert max(audited.values(), default=0) <= 1
    return comments, audited


def test_postgresql_outage_is_503_then_service_returns_without_restart(
    private_postgres: PrivatePostgres, tmp_path: Path
) -> None:
    engine = make_engine(private_postgres.url)
    schema.upgrade(engine)
    with Session(engine) as session:
        make_site(session, SLUG, origin=ORIGIN)
        token = make_token(session, make_moderator(session, "loader"))
    engine.dispose()
    server = AppServer(private_postgres.url, tmp_path, workers=2)
    workers = server.worker_pids()
    stop = threading.Event()
    shared = Shared()
    clients = [
        Client(server.address, token, seed, shared, seconds=3600, mix=FAULT_MIX, stop=stop)
        for seed in range(CLIENTS)
    ]
    try:
        for client in clients:
            client.start()
        # The outage must interrupt a working service: every client served, then a while more.
        deadline = time.monotonic() + 60
        while not all(c.served for c in clients):
            assert time.monotonic() < deadline, "the service never answered every client"
            time.sleep(0.05)
        time.sleep(FAULT_SECONDS)

        outage_started = time.monotonic()
        private_postgres.stop("immediate")
        time.sleep(0.5)
        assert_unavailable(*get(server.address, "/readyz"), "/readyz")
        time.sleep(FAULT_SECONDS)
        private_postgres.start()
        restarted = time.monotonic()

        deadline = time.monotonic() + 15
        while get(server.address, "/readyz")[0] != 200:
            assert time.monotonic() < deadline, "/readyz still not 200 15 s after the restart"
            time.sleep(0.2)
        recovered = time.monotonic()
        time.sleep(FAULT_SECONDS)
        stop.set()
        for client in clients:
            client.join(timeout=REQUEST_BOUND_SECONDS + 5)
            assert not client.is_alive(), "a client hung"
        assert server.worker_pids() == workers, "the app's workers were restarted"
    finally:
        stop.set()
        output = server.stop()
    assert "Traceback" not in output, output[-3000:]

    failures: list[Exchange] = [f for c in clients for f in c.failures]
    for failure in failures:
        assert_unavailable(failure.status, failure.headers, failure.body, failure.path)
        assert outage_started <= failure.started + failure.seconds, f"before the outage: {failure}"
        assert failure.started < recovered, f"a failure after /readyz said 200: {failure}"
    assert failures, "the outage must be seen by the clients, or the test proves nothing"
    slowest = max(c.slowest for c in clients)
    assert slowest < REQUEST_BOUND_SECONDS
    slowest_503 = max(failure.seconds for failure in failures)
    statuses = sum((c.statuses for c in clients), Counter())
    served_after = Counter(s for c in clients for started, s in c.timeline if started > recovered)
    assert served_after[200] > 0 and served_after[202] > 0, served_after

    accepted = {i: marker for c in clients for i, marker in c.accepted.items()}
    unanswered = set().union(*(c.unanswered for c in clients))
    moderated = Counter(i for c in clients for i in c.moderated)
    engine = make_engine(private_postgres.url)
    comments, audited = stored_integrity(engine)
    engine.dispose()
    assert set(accepted) <= set(comments), "a 202 lost"
    unacknowledged = set(comments) - set(accepted)
    for public_id in unacknowledged:
        # A commit whose acknowledgement the outage cut off: the client saw a 503, not a 202.
        assert comments[public_id][1].split()[0] in unanswered, public_id
    for public_id, count in moderated.items():
        assert count == 1 and audited[public_id] == 1, "a 200 without exactly one audit row"
    approved = {m for i, m in accepted.items() if comments[i][0] == CommentStatus.APPROVED}
    hidden = {body.split()[0] for _, body in comments.values()} - approved
    scan_for_leaks(clients, hidden | unanswered)
    back_after = recovered - restarted
    print(
        f"\nPostgreSQL outage of {FAULT_SECONDS}s under load: {dict(sorted(statuses.items()))}, "
        f"{len(failures)} answered 503 during the outage (slowest {slowest_503:.2f}s), "
        f"slowest request {slowest:.2f}s, "
        f"/readyz 200 again {back_after:.1f}s after the restart"
    )
    record(
        "postgresql outage",
        seconds=FAULT_SECONDS,
        requests=sum(statuses.values()),
        statuses={str(k): v for k, v in sorted(statuses.items())},
        unavailable=len(failures),
        slowest_seconds=round(slowest, 2),
        slowest_503_seconds=round(slowest_503, 2),
        ready_after_restart_seconds=round(back_after, 1),
        unacknowledged_commits=len(unacknowledged),
    )


def test_a_database_that_never_answers_is_503_within_the_connect_timeout() -> None:
    """A PostgreSQL address that accepts connections and never answers (a hung server, a
    half-open network path): 503 after the connect timeout, once, not a request held for ever."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)
        port = silent.getsockname()[1]
        url = f"postgresql://postgres@127.0.0.1:{port}/moderation"
        app = create_app(settings_for_tests(database_url=url))
        started = time.monotonic()
        response = app.test_client().get(
            f"/api/v1/sites/{SLUG}/comments?post=/post/0/", headers={"Origin": ORIGIN}
        )
        elapsed = time.monotonic() - started
    headers = {k.lower(): v for k, v in response.headers.items()}
    assert_unavailable(response.status_code, headers, response.get_data(), "/api/v1/")
    # One connection attempt: the CORS hook must not wait for the database a second time.
    timeout = POSTGRESQL_CONNECT_TIMEOUT_SECONDS
    assert timeout - 0.5 < elapsed < timeout * 2, elapsed
    record("hung database", seconds=round(elapsed, 2))


@contextlib.contextmanager
def cut_off(port: int) -> Iterator[None]:
    """Drop every loopback packet to and from ``port``, as a network partition would: nothing is
    refused or reset, the other side just stops answering (iptables, as root)."""
    rules = [["OUTPUT", "-o", "lo", "-p", "tcp", flag, str(port), "-j", "DROP"]
             for flag in ("--dport", "--sport")]  # fmt: skip
    for rule in rules:
        subprocess.run(["iptables", "-I", *rule], check=True, capture_output=True)
    try:
        yield
    finally:
        for rule in rules:
            subprocess.run(["iptables", "-D", *rule], check=True, capture_output=True)


def require_iptables() -> None:
    """Skip where packets cannot be dropped (not root, no iptables), except in CI."""
    usable = os.geteuid() == 0 and shutil.which("iptables") is not None
    if not usable and not os.environ.get("CI"):
        pytest.skip("cutting a connection off needs iptables and root (apt install iptables)")
    assert usable, "CI must run as root with iptables installed"


def test_a_database_cut_off_mid_connection_is_503_then_back_without_restart(
    private_postgres: PrivatePostgres, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An open connection whose server stops answering (a partition, a dead host): the request
    fails with 503 once the unacknowledged data times out, not after the kernel's quarter of an
    hour of retransmissions, and the service is whole again when the path is."""
    require_iptables()
    monkeypatch.setattr(db, "POSTGRESQL_TCP_USER_TIMEOUT_MS", 1_000)
    app = create_app(settings_for_tests(database_url=private_postgres.url))
    engine = app.extensions["moderation.engine"]
    with engine.begin() as connection:
        connection.exec_driver_sql("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    schema.upgrade(engine)
    with Session(engine) as session:
        make_site(session, SLUG, ORIGIN)
    client = app.test_client()
    path = f"/api/v1/sites/{SLUG}/comments?post=/post/0/"
    assert client.get(path, headers={"Origin": ORIGIN}).status_code == 200  # a pooled connection

    answers: list[TestResponse] = []
    with cut_off(private_postgres.port):
        started = time.monotonic()
        asking = threading.Thread(
            target=lambda: answers.append(client.get(path, headers={"Origin": ORIGIN})),
            daemon=True,
        )
        asking.start()
        asking.join(timeout=REQUEST_BOUND_SECONDS)
        elapsed = time.monotonic() - started
        assert answers, f"the request was still waiting after {elapsed:.0f} s"
    (response,) = answers
    headers = {k.lower(): v for k, v in response.headers.items()}
    assert_unavailable(response.status_code, headers, response.get_data(), "/api/v1/")
    # The ping on the pooled connection gives up after the TCP user timeout (1 s here), and so
    # does the handshake of the new connection the pool then tries (before the connect timeout).
    assert elapsed < 2 * 1 + 3, elapsed
    assert client.get(path, headers={"Origin": ORIGIN}).status_code == 200
    engine.dispose()
    record("database cut off mid-connection", seconds=round(elapsed, 2))


@pytest.fixture
def small_filesystem() -> Iterator[Path]:
    """A 4 MiB tmpfs of the test's own (mounting needs root, as in CI)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small filesystem for the disk-full test needs root")
    directory = Path(tempfile.mkdtemp(prefix="moderation-full-"))
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", str(directory)],
        capture_output=True, text=True,
    )  # fmt: skip
    if mounted.returncode != 0:
        directory.rmdir()
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield directory
    finally:
        subprocess.run(["umount", "-l", str(directory)], check=True)
        directory.rmdir()


def fill(path: Path) -> None:
    """Write to ``path`` until the filesystem has no byte left."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT)
    try:
        for size in (1 << 20, 1 << 16, 1 << 12, 1 << 9, 1):
            try:
                while True:
                    os.write(descriptor, b"\0" * size)
            except OSError as error:
                assert error.errno == errno.ENOSPC
    finally:
        os.close(descriptor)


def test_sqlite_disk_full_is_503_storage_full_and_nothing_half_written(
    small_filesystem: Path,
) -> None:
    url = f"sqlite:///{small_filesystem / 'moderation.db'}"
    engine = make_engine(url)
    schema.upgrade(engine)
    with Session(engine) as session:
        make_site(session, SLUG, origin=ORIGIN)
        token = make_token(session, make_moderator(session, "loader"))
    client = create_app(settings_for_tests(database_url=url)).test_client()
    moderator = {"Authorization": f"Bearer {token}"}
    accepted: dict[str, str] = {}

    def submit(number: int) -> TestResponse:
        marker = f"marker-00-{number:06d}"
        response = client.post(
            f"/api/v1/sites/{SLUG}/comments",
            json={"post": "/post/0/", "author_name": "Full", "body": f"{marker} says hello",
                  "author_email": f"author.{number}@example.com"},
            headers={"Origin": ORIGIN},
        )  # fmt: skip
        if response.status_code == 202:
            accepted[response.get_json()["id"]] = marker
        return response

    assert submit(0).status_code == 202
    waiting = next(iter(accepted))
    filler = small_filesystem / "filler"
    fill(filler)
    for number in range(1, 500):
        refused = submit(number)
        if refused.status_code != 202:
            break
    else:
        pytest.fail("500 submissions fitted on a full disk: the test filled nothing")
    assert refused.status_code == 503, refused.get_data(as_text=True)
    assert refused.get_json()["error"]["code"] == "storage_full"
    assert int(refused.headers["Retry-After"]) > 0
    assert "marker" not in refused.get_data(as_text=True)
    # Every other kind of write is refused the same way while the disk stays full.
    again = submit(10_000)
    assert (again.status_code, again.get_json()["error"]["code"]) == (503, "storage_full")
    approve = client.post(f"/api/v1/moderation/comments/{waiting}/approve", headers=moderator)
    assert (approve.status_code, approve.get_json()["error"]["code"]) == (503, "storage_full")
    form = client.post(
        f"/embed/{SLUG}/thread?post=/post/0/",
        data={"author_name": "Full", "author_email": "form@example.com", "body": "by form"},
        headers={"Origin": ORIGIN},
    )
    assert form.status_code == 503 and form.mimetype == "text/html"
    assert int(form.headers["Retry-After"]) > 0
    assert client.get(f"/api/v1/sites/{SLUG}/comments?post=/post/0/").status_code == 200

    filler.unlink()
    assert submit(20_000).status_code == 202
    approve = client.post(f"/api/v1/moderation/comments/{waiting}/approve", headers=moderator)
    assert approve.status_code == 200, approve.get_data(as_text=True)

    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
    comments, audited = stored_integrity(engine)
    engine.dispose()
    assert set(comments) == set(accepted), "exactly the 202s are stored"
    assert audited == Counter({waiting: 1})
    print(f"\nSQLite disk full: {len(accepted)} stored, refused with 503 storage_full, resumed")
    record("sqlite disk full", stored=len(accepted), refused_status=refused.status_code)
