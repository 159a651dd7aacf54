"""Load without loss: 16 clients for a bounded time, 70% reads, 20% submissions, 10% moderation
actions, against gunicorn with 2 workers on SQLite, and against 2 app processes (two gunicorn
servers of one worker each, as behind a load balancer) on PostgreSQL. Zero 5xx, zero "database is
locked", every 202 is exactly one stored comment, every successful moderation exactly one audit
row and one event; no public response shows an author email, a client address or an unapproved
comment; each worker stays under 150 MB resident.

Runs on SQLite, and on PostgreSQL when MODERATION_TEST_DATABASE_URL is set. LOAD_SECONDS sets
the length (a few seconds in `make test`; `make soak` runs a minute).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, delete, select
from sqlalchemy.orm import Session

from moderation import schema
from moderation.db import make_engine
from moderation.models import AuditEvent, Comment, CommentStatus, Event, Moderator, Post, Site
from tests.helpers import make_moderator, make_site, make_token, remove_site
from tests.load import ORIGIN, SLUG, Client, Shared, record, run_clients, scan_for_leaks
from tests.servers import AppServer, MemoryProbe

pytestmark = pytest.mark.load

CLIENTS = 16
SECONDS = float(os.environ.get("LOAD_SECONDS", "6"))
RSS_LIMIT_MIB = 150


@pytest.fixture
def database(tmp_path: Path, engine: Engine) -> Iterator[tuple[str, Engine]]:
    """SQLite: a file of the test's own. PostgreSQL: the suite's database (built by the session's
    migrations), cleaned of the test's site afterwards."""
    if engine.dialect.name == "postgresql":
        yield engine.url.render_as_string(hide_password=False), engine
        remove_load_site(engine)
        return
    url = f"sqlite:///{tmp_path / 'load.db'}"
    own = make_engine(url)
    schema.upgrade(own)
    yield url, own
    own.dispose()


def remove_load_site(engine: Engine) -> None:
    with Session(engine) as session:
        remove_site(session, SLUG)
        session.execute(delete(Moderator).where(Moderator.login == "loader"))
        session.commit()


def test_load_loses_nothing(database: tuple[str, Engine], tmp_path: Path) -> None:
    url, engine = database
    with Session(engine) as session:
        make_site(session, SLUG, origin=ORIGIN)
        token = make_token(session, make_moderator(session, "loader"))
    on_postgresql = engine.dialect.name == "postgresql"
    if on_postgresql:
        servers = [AppServer(url, tmp_path, workers=1), AppServer(url, tmp_path, workers=1)]
    else:
        servers = [AppServer(url, tmp_path, workers=2)]
    shared = Shared()
    clients = [
        Client(servers[seed % len(servers)].address, token, seed, shared, seconds=SECONDS)
        for seed in range(CLIENTS)
    ]
    memory = MemoryProbe(servers)
    memory.start()
    try:
        run_clients(clients)
    finally:
        peaks = memory.stop()
        output = "".join(server.stop() for server in servers)
    assert "database is locked" not in output

    statuses = sum((c.statuses for c in clients), Counter())
    failures = [
        f"{f.method} {f.path} {f.status} {f.body[:200]!r}" for c in clients for f in c.failures
    ]
    accepted = {i: marker for c in clients for i, marker in c.accepted.items()}
    moderated = [i for c in clients for i in c.moderated]
    assert failures == []
    assert set(statuses) <= {200, 202, 409}, statuses
    assert len(accepted) > 20 and len(moderated) > 5, statuses
    with Session(engine) as session:
        site_id = session.scalars(select(Site.id).where(Site.slug == SLUG)).one()
        rows = session.execute(
            select(Comment.public_id, Comment.status).join(Post).where(Post.site_id == site_id)
        ).all()
        assert Counter(row[0] for row in rows) == Counter(accepted.keys()), (
            "every 202 is exactly one stored comment"
        )
        stored = dict(rows)
        audits = Counter(
            session.scalars(
                select(Comment.public_id).join(AuditEvent, AuditEvent.comment_id == Comment.id)
            )
        )
        assert audits == Counter(moderated), "every moderation is exactly one audit row"
        events = Counter(
            "submitted" if kind == "comment.submitted" else "decided"
            for kind in session.scalars(select(Event.type).where(Event.site_id == site_id))
        )
        expected = Counter(submitted=len(accepted), decided=len(moderated))
        assert events == expected, "every change is exactly one event"

    approved = {accepted[i] for i, status in stored.items() if status == CommentStatus.APPROVED}
    hidden = set(accepted.values()) - approved
    scan_for_leaks(clients, hidden)
    seen = set().union(*(c.seen_markers for c in clients))
    assert seen & approved, "the scan must see approved comments, or it proves nothing"

    database_name = "PostgreSQL, 2 app processes" if on_postgresql else "SQLite, 2 workers"
    worker_mib = sorted(round(kib / 1024, 1) for kib in peaks.values())
    print(
        f"\nload on {database_name}: {dict(sorted(statuses.items()))} over {SECONDS}s with "
        f"{CLIENTS} clients; peak RSS per worker {worker_mib} MiB"
    )
    record(
        "load",
        database=database_name,
        seconds=SECONDS,
        clients=CLIENTS,
        requests=sum(statuses.values()),
        statuses={str(k): v for k, v in sorted(statuses.items())},
        accepted=len(accepted),
        moderated=len(moderated),
        public_markers_seen=len(seen),
        rss_peak_mib=worker_mib,
    )
    assert len(peaks) == 2 and max(worker_mib) < RSS_LIMIT_MIB, worker_mib
