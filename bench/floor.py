"""The submission floor: the least a comment submission can cost with the packages the product is
fixed to and the service's own spam pipeline, for the harness to measure beside the real one
(gunicorn bench.floor:app).

It does only what the target names (validation, sanitising, spam checks, insert, outbox row), with
the service's own code for each: Flask parses the JSON; the service's validation (email-validator,
syntax only), sanitising (bleach, with the linkifier) and default spam pipeline (on a site and post
loaded once, so its duplicate check is the one query it makes, through SQLAlchemy Core); then, on
raw sqlite3, one SELECT of the post and, under BEGIN IMMEDIATE, the comment's INSERT, its outbox
event's INSERT and the COMMIT, into the service's real tables and indexes (WAL,
synchronous=NORMAL, as the service runs SQLite; a process's threads take turns to write, and wait
for SQLite's write lock by polling it as the service does). No ORM objects per request, no rate
limits, metrics, logging, CORS or origin check. Whatever ratio to the trivial app this reaches,
the real submission cannot beat on the same machine.

``/submit/no-duplicate-check`` is the same without the duplicate check, the one check that reads
the database: what a submission could reach if that check cost nothing at all. BENCH_FLOOR_DATABASE
names the SQLite file, made by ``prepare``; MODERATION_SECRET_KEY keys the time-trap's form tokens.
"""

from __future__ import annotations

import functools
import json
import os
import random
import secrets
import sqlite3
import threading
import time
from datetime import UTC, datetime
from typing import Any

from flask import Flask, request
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, joinedload

from moderation import schema
from moderation.db import WRITE_LOCK_POLL_SECONDS, make_engine
from moderation.models import Post, Site, utcnow
from moderation.sanitising import render_comment
from moderation.sites import create_site
from moderation.spam import (
    FORM_TOKEN_FIELD,
    Candidate,
    DuplicateCheck,
    Evidence,
    Outcome,
    Pipeline,
    Verdict,
    default_pipeline,
)
from moderation.validation import CommentSubmission, parse_submission

app = Flask("floor")
_local = threading.local()
_WRITING = threading.Lock()
POST_KEY = "/floor/"


def prepare(path: str) -> None:
    """Migrate a fresh SQLite database at ``path`` and add the site and post the floor writes to."""
    engine = make_engine(f"sqlite:///{path}")
    schema.upgrade(engine)
    with Session(engine) as session:
        # The harness's slug: its form tokens, issued for that site, pass the time-trap here too.
        site = create_site(session, slug="bench", name="Floor", origins=["https://floor.example"])
        session.add(Post(site=site, key=POST_KEY, title="Floor", url="https://floor.example/"))
        session.commit()
    engine.dispose()


def _connection() -> sqlite3.Connection:
    connection: sqlite3.Connection | None = getattr(_local, "connection", None)
    if connection is None:
        connection = sqlite3.connect(
            os.environ["BENCH_FLOOR_DATABASE"], isolation_level=None, timeout=0
        )
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        _local.connection = connection
    return connection


@functools.cache
def _screening(duplicates: bool) -> tuple[Engine, Pipeline, Site, Post]:
    """The engine for the duplicate check's query, the pipeline (with its duplicate check or
    without), and the site and post, loaded once and detached (the floor never changes them)."""
    engine = make_engine(f"sqlite:///{os.environ['BENCH_FLOOR_DATABASE']}")
    pipeline = default_pipeline(secret=os.environ["MODERATION_SECRET_KEY"])
    if not duplicates:
        pipeline = Pipeline([c for c in pipeline.checks if not isinstance(c, DuplicateCheck)])
    with Session(engine) as session:
        post = session.scalars(select(Post).options(joinedload(Post.site))).one()
        return engine, pipeline, post.site, post


@app.post("/submit")
def submit() -> tuple[dict[str, Any], int]:
    return _submit(duplicates=True)


@app.post("/submit/no-duplicate-check")
def submit_without_duplicate_check() -> tuple[dict[str, Any], int]:
    return _submit(duplicates=False)


def _submit(*, duplicates: bool) -> tuple[dict[str, Any], int]:
    fields = request.get_json()
    submission = parse_submission(fields)
    body_html = render_comment(submission.body)
    engine, pipeline, site, post = _screening(duplicates)
    with Session(engine) as session:
        outcome = pipeline.run(
            session,
            Candidate(
                site=site, post=post, author_name=submission.author_name,
                author_email=submission.author_email, body=submission.body,
                evidence=Evidence(form_token=fields.get(FORM_TOKEN_FIELD)), now=utcnow(),
            ),
        )  # fmt: skip
    status = "spam" if outcome.verdict is Verdict.SPAM else "pending"
    connection = _connection()
    site_id, post_id = connection.execute(
        "SELECT sites.id, posts.id FROM posts JOIN sites ON sites.id = posts.site_id "
        "WHERE sites.slug = 'bench' AND posts.key = ?",
        (submission.post,),
    ).fetchone()
    with _WRITING:  # the process's threads take turns; the processes poll for SQLite's lock
        return _write(connection, submission, body_html, site_id, post_id, status, outcome)


def _write(
    connection: sqlite3.Connection,
    submission: CommentSubmission,
    body_html: str,
    site_id: int,
    post_id: int,
    status: str,
    outcome: Outcome,
) -> tuple[dict[str, Any], int]:
    now = datetime.now(UTC).replace(tzinfo=None).isoformat(" ")
    public_id = secrets.token_urlsafe(12)
    while True:
        try:
            connection.execute("BEGIN IMMEDIATE")
            break
        except sqlite3.OperationalError:
            time.sleep(WRITE_LOCK_POLL_SECONDS * random.uniform(0.5, 1.5))
    try:
        comment_id = connection.execute(
            "INSERT INTO comments (public_id, post_id, author_name, author_email, body_text, "
            "body_html, status, signals, official, submitted_at, notify_decision, notify_replies) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, ?, 0, 0) RETURNING id",
            (public_id, post_id, submission.author_name, submission.author_email,
             submission.body, body_html, status, json.dumps(outcome.signals_json()), now),
        ).fetchone()[0]  # fmt: skip
        payload = json.dumps({"type": "comment.submitted", "data": {"id": public_id}})
        connection.execute(
            "INSERT INTO events (public_id, type, site_id, comment_id, payload, created_at) "
            "VALUES (?, 'comment.submitted', ?, ?, ?, ?)",
            (secrets.token_urlsafe(12), site_id, comment_id, payload, now),
        )
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    return {"id": public_id, "status": status}, 202
