"""Load without loss: 16 clients against gunicorn (2 workers) for a bounded time, 70% reads, 20%
submissions, 10% moderation actions. Zero 5xx, zero "database is locked", every 202 is exactly one
stored comment, every successful moderation exactly one audit row and one event.

Runs on SQLite, and on PostgreSQL when MODERATION_TEST_DATABASE_URL is set. LOAD_SECONDS sets
the length (a few seconds in `make test`; `make soak` runs a minute).
"""

from __future__ import annotations

import http.client
import json
import os
import random
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, delete, func, select
from sqlalchemy.orm import Session

from moderation import schema
from moderation.db import make_engine
from moderation.models import AuditEvent, Comment, Event, Moderator, Post, Site
from tests.conftest import TEST_SECRET, make_moderator, make_site, make_token

CLIENTS = 16
SECONDS = float(os.environ.get("LOAD_SECONDS", "6"))
SLUG = "load"
ORIGIN = "https://load.example"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def target(tmp_path: Path) -> Iterator[tuple[str, Engine, str]]:
    """A gunicorn server (2 workers) on its own database; yields its address, engine, token."""
    url = os.environ.get("MODERATION_TEST_DATABASE_URL") or f"sqlite:///{tmp_path / 'load.db'}"
    engine = make_engine(url)
    if url.startswith("sqlite"):
        schema.upgrade(engine)
    with Session(engine) as session:
        make_site(session, SLUG, origin=ORIGIN)
        token = make_token(session, make_moderator(session, "loader"))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODERATION_")}
    env.update(
        MODERATION_ENV="testing",
        MODERATION_SECRET_KEY=TEST_SECRET,
        MODERATION_DATABASE_URL=url,
        MODERATION_LOG_LEVEL="WARNING",
        # One client address and one email send everything, and no DNS leaves the machine.
        MODERATION_RATELIMIT_ENABLED="false",
        MODERATION_CHECK_DELIVERABILITY="false",
    )
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("gunicorn")), "--workers", "2", "--threads", "4",
         "--bind", f"127.0.0.1:{port}", "--log-level", "warning", "moderation:create_app()"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                time.sleep(0.1)
        yield f"127.0.0.1:{port}", engine, token
    finally:
        server.terminate()
        output = server.communicate(timeout=30)[0]
        assert "database is locked" not in output
        with Session(engine) as session:
            site_ids = select(Site.id).where(Site.slug == SLUG)
            comment_ids = select(Comment.id).where(
                Comment.post_id.in_(select(Post.id).where(Post.site_id.in_(site_ids)))
            )
            session.execute(delete(AuditEvent).where(AuditEvent.comment_id.in_(comment_ids)))
            session.execute(delete(Event).where(Event.site_id.in_(site_ids)))
            session.execute(delete(Comment).where(Comment.id.in_(comment_ids)))
            session.execute(delete(Post).where(Post.site_id.in_(site_ids)))
            session.execute(delete(Site).where(Site.slug == SLUG))
            session.execute(delete(Moderator).where(Moderator.login == "loader"))
            session.commit()
        engine.dispose()


class Client(threading.Thread):
    def __init__(self, address: str, token: str, seed: int, shared: dict[str, list[str]]):
        super().__init__(daemon=True)
        self.address, self.token, self.random = address, token, random.Random(seed)
        self.shared = shared
        self.statuses: Counter[int] = Counter()
        self.accepted: list[str] = []
        self.moderated: list[str] = []
        self.errors: list[str] = []

    def request(
        self, connection: http.client.HTTPConnection, method: str, path: str, body: object = None
    ) -> tuple[int, bytes]:
        headers = {"Authorization": f"Bearer {self.token}", "Origin": ORIGIN}
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        connection.request(method, path, body=payload, headers=headers)
        response = connection.getresponse()
        data = response.read()
        self.statuses[response.status] += 1
        if response.status >= 500:
            self.errors.append(f"{method} {path} {response.status} {data[:200]!r}")
        return response.status, data

    def run(self) -> None:
        connection = http.client.HTTPConnection(self.address, timeout=30)
        stop = time.monotonic() + SECONDS
        while time.monotonic() < stop:
            post = f"/post/{self.random.randrange(5)}/"
            roll = self.random.random()
            if roll < 0.7:
                path = (
                    f"/embed/{SLUG}/thread?post={post}"
                    if roll < 0.35
                    else f"/api/v1/sites/{SLUG}/comments?post={post}"
                )
                self.request(connection, "GET", path)
            elif roll < 0.9:
                status, data = self.request(
                    connection, "POST", f"/api/v1/sites/{SLUG}/comments",
                    {"post": post, "author_name": "Load", "author_email": "load@example.com",
                     "body": f"load {self.random.random()}"},
                )  # fmt: skip
                if status == 202:
                    comment_id = json.loads(data)["id"]
                    self.accepted.append(comment_id)
                    self.shared["pending"].append(comment_id)
            elif self.shared["pending"]:
                comment_id = self.random.choice(self.shared["pending"])
                action = self.random.choice(["approve", "reject", "spam"])
                status, _ = self.request(
                    connection, "POST", f"/api/v1/moderation/comments/{comment_id}/{action}"
                )
                if status == 200:
                    self.moderated.append(comment_id)
        connection.close()


def test_load_loses_nothing(target: tuple[str, Engine, str]) -> None:
    address, engine, token = target
    shared: dict[str, list[str]] = {"pending": []}
    clients = [Client(address, token, seed, shared) for seed in range(CLIENTS)]
    for client in clients:
        client.start()
    for client in clients:
        client.join(timeout=SECONDS + 60)
    statuses = sum((c.statuses for c in clients), Counter())
    errors = [e for c in clients for e in c.errors]
    accepted = [i for c in clients for i in c.accepted]
    moderated = [i for c in clients for i in c.moderated]

    assert errors == []
    assert set(statuses) <= {200, 202, 409}, statuses
    assert len(accepted) > 20 and len(moderated) > 5, statuses
    with Session(engine) as session:
        site_id = session.scalars(select(Site.id).where(Site.slug == SLUG)).one()
        stored = Counter(
            session.scalars(select(Comment.public_id).join(Post).where(Post.site_id == site_id))
        )
        assert stored == Counter(accepted), "every 202 is exactly one stored comment"
        audits = Counter(
            session.scalars(
                select(Comment.public_id).join(AuditEvent, AuditEvent.comment_id == Comment.id)
            )
        )
        assert audits == Counter(moderated), "every moderation is exactly one audit row"
        decisions = session.scalar(
            select(func.count())
            .select_from(Event)
            .where(Event.site_id == site_id, Event.type != "comment.submitted")
        )
        submitted = session.scalar(
            select(func.count())
            .select_from(Event)
            .where(Event.site_id == site_id, Event.type == "comment.submitted")
        )
        assert (submitted, decisions) == (len(accepted), len(moderated))
    print(f"load: {dict(statuses)} over {SECONDS}s with {CLIENTS} clients")
