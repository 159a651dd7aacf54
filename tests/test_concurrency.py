"""Real concurrency on committed data: several processes writing, moderators racing."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import pytest
from argon2 import PasswordHasher
from flask.testing import FlaskClient
from sqlalchemy import Engine, delete, func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from moderation import create_app, schema
from moderation.actions import moderate_comment
from moderation.comments import submit_comment
from moderation.db import begin_as_writer, make_engine
from moderation.errors import AlreadyModerated
from moderation.events import Actor
from moderation.models import (
    AuditEvent,
    Comment,
    Event,
    LoginAttempt,
    Moderator,
    Post,
    Role,
    Site,
    utcnow,
)
from moderation.moderators import MAX_FAILURES_PER_ACCOUNT, create_moderator, password_hasher
from moderation.sites import create_site
from moderation.validation import CommentSubmission
from tests.helpers import csrf_from, remove_site, settings_for_tests

pytestmark = pytest.mark.concurrency

WRITERS = 8
PER_WRITER = 25
WRITER = textwrap.dedent(
    """
    import sys
    from sqlalchemy.orm import Session
    from moderation.comments import submit_comment
    from moderation.db import make_engine
    from moderation.models import utcnow
    from moderation.validation import CommentSubmission

    engine = make_engine(sys.argv[1])
    for n in range(int(sys.argv[2])):
        with Session(engine) as session:  # a reader: submit_comment takes the lock to write
            submit_comment(session, "race", CommentSubmission(
                post="/busy/", author_name="Writer", author_email="w@example.com",
                body=f"{sys.argv[3]}-{n}"), now=utcnow())
            session.commit()
    """
)


@pytest.fixture
def committed(engine: Engine) -> Iterator[sessionmaker[Session]]:
    """Sessions that really commit, on a site of their own that is removed afterwards."""
    factory = sessionmaker(engine, expire_on_commit=False)
    yield factory
    with factory() as session:
        remove_site(session, "race")
        session.execute(delete(Moderator).where(Moderator.login.in_(["racer-a", "racer-b"])))
        session.commit()


def test_eight_writer_processes_on_sqlite_lose_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'busy.db'}"
    engine = make_engine(url)
    schema.upgrade(engine)
    with Session(engine) as session:
        create_site(session, slug="race", name="Race", origins=["https://race.example"])
        session.commit()
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, url, str(PER_WRITER), str(n)],
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(WRITERS)
    ]
    errors = [writer.communicate(timeout=120)[1] for writer in writers]
    assert [writer.returncode for writer in writers] == [0] * WRITERS, errors
    with Session(engine) as session:
        assert session.scalar(select(func.count()).select_from(Comment)) == WRITERS * PER_WRITER
        assert session.scalar(select(func.count()).select_from(Event)) == WRITERS * PER_WRITER
    engine.dispose()


def test_a_submission_reads_without_the_write_lock_and_then_writes(tmp_path: Path) -> None:
    """Its checks hold no lock, so other writers go on meanwhile; then become_writer takes the lock
    for its writes, although others committed since it first read."""
    engine = make_engine(f"sqlite:///{tmp_path / 'split.db'}")
    schema.upgrade(engine)
    with Session(engine) as session:
        create_site(session, slug="race", name="Race", origins=["https://race.example"])
        session.commit()
    submission = CommentSubmission(
        post="/split/", author_name="A", author_email="a@example.com", body="First"
    )
    with Session(engine) as reader, Session(engine) as other:
        reader.get(Site, 1)  # the reader's snapshot begins
        begin_as_writer(other)  # would wait for the 10 s busy timeout if the reader held the lock
        submit_comment(other, "race", submission, now=utcnow())
        other.commit()
        # The control: a reader that writes after someone else committed is refused at once.
        reader.add(Post(site_id=1, key="/control/", title="", url="https://race.example/c"))
        with pytest.raises(OperationalError, match="locked"):
            reader.flush()
    with Session(engine) as reader, Session(engine) as other:
        reader.get(Site, 1)
        begin_as_writer(other)
        submit_comment(other, "race", submission, now=utcnow())
        other.commit()
        comment = submit_comment(reader, "race", submission, now=utcnow())  # become_writer
        reader.commit()
        assert comment.post.key == "/split/"
    with Session(engine) as session:
        assert session.scalar(select(func.count()).select_from(Comment)) == 3
        assert session.scalar(select(func.count()).select_from(Post)) == 1
    engine.dispose()


def test_two_moderators_racing_moderate_each_comment_once(
    committed: sessionmaker[Session],
) -> None:
    with committed() as session:
        create_site(session, slug="race", name="Race", origins=["https://race.example"])
        racers = [
            create_moderator(
                session,
                password_hasher(fast=True),
                login=login,
                email=f"{login}@example.org",
                password="long enough password",
                role=Role.ADMIN,
            )
            for login in ("racer-a", "racer-b")
        ]
        ids = [
            submit_comment(
                session,
                "race",
                CommentSubmission(
                    post="/busy/", author_name="A", author_email="a@example.com", body=f"{n}"
                ),
                now=utcnow(),
            ).public_id
            for n in range(10)
        ]
        session.commit()

    outcomes: list[str] = []
    lock = threading.Lock()

    def act(moderator: Moderator, comment_id: str, action: str, barrier: threading.Barrier) -> None:
        with committed() as session:
            barrier.wait()
            begin_as_writer(session)
            try:
                moderate_comment(
                    session,
                    session.get(Moderator, moderator.id),  # type: ignore[arg-type]
                    comment_id,
                    action,
                    actor=Actor(moderator.login, moderator.id),
                    now=utcnow(),
                )
                session.commit()
                result = "done"
            except AlreadyModerated:
                session.rollback()
                result = "refused"
        with lock:
            outcomes.append(result)

    for comment_id in ids:
        barrier = threading.Barrier(2)
        threads = [
            threading.Thread(target=act, args=(racers[0], comment_id, "approve", barrier)),
            threading.Thread(target=act, args=(racers[1], comment_id, "spam", barrier)),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)

    assert sorted(outcomes) == ["done"] * 10 + ["refused"] * 10
    with committed() as session:
        audits = session.scalar(
            select(func.count())
            .select_from(AuditEvent)
            .join(Comment, AuditEvent.comment_id == Comment.id)
            .where(Comment.public_id.in_(ids))
        )
        assert audits == 10


class CountingHasher(PasswordHasher):
    """argon2id as the tests use it, counting the passwords it checks."""

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=1024, parallelism=1)
        self.checked = 0
        self._lock = threading.Lock()

    def verify(self, hash: str | bytes, password: str | bytes) -> Literal[True]:
        with self._lock:
            self.checked += 1
        return super().verify(hash, password)


def test_forty_concurrent_wrong_passwords_cost_at_most_five_password_checks(
    engine: Engine, committed: sessionmaker[Session]
) -> None:
    """The attempt is counted (and committed) before the password is checked, so concurrent
    guesses count each other: at most 5 checks, the documented limit, and 429 for the rest."""
    with committed() as session:
        create_moderator(
            session,
            password_hasher(fast=True),
            login="racer-a",
            email="racer-a@example.org",
            password="long enough password",
            role=Role.ADMIN,
        )
        session.commit()
    app = create_app(settings_for_tests(), engine=engine)
    counting = CountingHasher()
    app.extensions["moderation.hasher"] = counting
    clients = [app.test_client() for _ in range(40)]
    tokens = [csrf_from(c.get("/moderate/login").get_data(as_text=True)) for c in clients]
    barrier = threading.Barrier(len(clients))
    statuses: list[int] = []
    lock = threading.Lock()

    def guess(client: FlaskClient, token: str) -> None:
        barrier.wait()
        response = client.post(
            "/moderate/login",
            data={"login": "racer-a", "password": "wrong guess", "csrf_token": token},
        )
        with lock:
            statuses.append(response.status_code)

    threads = [
        threading.Thread(target=guess, args=pair) for pair in zip(clients, tokens, strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    try:
        assert counting.checked <= MAX_FAILURES_PER_ACCOUNT
        # Each attempt sees at least every one committed before it counts: on SQLite (writers
        # in turn) the first five are checked; on PostgreSQL a burst may be refused entirely.
        assert set(statuses) <= {401, 429} and len(statuses) == 40
        assert statuses.count(401) == counting.checked
    finally:
        with committed() as session:
            session.execute(delete(LoginAttempt).where(LoginAttempt.login == "racer-a"))
            session.commit()


def test_passwords_are_checked_with_no_transaction_open(tmp_path: Path) -> None:
    """argon2 takes a while: SQLite's write lock (one for every process) is not held meanwhile,
    so a flood of logins cannot stall submissions."""
    path = tmp_path / "login.db"
    engine = make_engine(f"sqlite:///{path}")
    schema.upgrade(engine)
    with Session(engine) as session:
        create_moderator(
            session,
            password_hasher(fast=True),
            login="editor",
            email="editor@example.org",
            password="long enough password",
            role=Role.ADMIN,
        )
        session.commit()
    lock_free: list[bool] = []

    class Probing(PasswordHasher):
        def verify(self, hash: str | bytes, password: str | bytes) -> Literal[True]:
            other = sqlite3.connect(path, timeout=0)
            try:
                other.execute("BEGIN IMMEDIATE")
                other.rollback()
                lock_free.append(True)
            except sqlite3.OperationalError:
                lock_free.append(False)
            finally:
                other.close()
            return super().verify(hash, password)

    app = create_app(settings_for_tests(), engine=engine)
    app.extensions["moderation.hasher"] = Probing(time_cost=1, memory_cost=8, parallelism=1)
    client = app.test_client()
    token = csrf_from(client.get("/moderate/login").get_data(as_text=True))
    for password, status in (("wrong guess", 401), ("long enough password", 303)):
        response = client.post(
            "/moderate/login",
            data={"login": "editor", "password": password, "csrf_token": token},
        )
        assert response.status_code == status
    assert lock_free == [True, True]
    engine.dispose()
