"""Sizing inputs for docs/scaling.md, measured on PostgreSQL (BENCH_DATABASE_URL, whose schema is
dropped): bytes and rows per comment, index sizes, queries per request by path, and the check of
the plan's weakest assumption, that the moderation queue and a submission cost the same whatever
the size of the comments table.

In-process (Flask's test client, so the figures are the app's own, without HTTP): the queue page
and a submission of a realistic 1 kB comment into a 100-comment post are timed with a small
table, then again after a bulk insert of BENCH_SCALE_ROWS comments (default 1,000,000: 98%
approved, 1% pending, 1% spam, 200 to 2,000 characters, over 10,000 posts). The insert stops at
BENCH_SCALE_MINUTES (default 8) to keep the run bounded; the report says how many rows it reached.
Not part of ``make bench`` (it takes minutes and gigabytes): ``python -m bench bench.scale``.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import Engine, event, insert, select, text
from sqlalchemy.orm import Session

from bench import corpus, peer
from moderation import create_app
from moderation.config import load_settings
from moderation.models import Comment, CommentStatus, Post, Site, utcnow
from moderation.spam import issue_form_token

ROWS = int(os.environ.get("BENCH_SCALE_ROWS", "1000000"))
MINUTES = float(os.environ.get("BENCH_SCALE_MINUTES", "8"))
POSTS = 10_000
CHUNK = 100_000
SAMPLES = 40
BUSY = "/scale/busy/"

BULK = text(
    """
    INSERT INTO comments (public_id, post_id, author_name, author_email, body_text, body_html,
                          status, signals, official, submitted_at, notify_decision,
                          notify_replies, lang)
    SELECT 'b' || g, CAST(:first_post AS bigint) + (g * 7919) % CAST(:posts AS bigint),
           'Reader ' || g % 50000,
           'reader' || g % 400000 || '@example.com', t.body, '<p>' || t.body || '</p>',
           CASE g % 100 WHEN 0 THEN 'pending' WHEN 1 THEN 'spam' ELSE 'approved' END,
           '[]', false, now() - make_interval(secs => (CAST(:last AS bigint) - g) * 3),
           false, false, 'en'
    FROM generate_series(CAST(:first AS bigint), CAST(:last AS bigint)) AS g,
         LATERAL (SELECT substr(CAST(:text AS text), CAST(1 + g % 997 AS integer),
                                   CAST(200 + (g * 7919) % 1801 AS integer)) AS body) AS t
    """
)


def _sizes(engine: Engine) -> list[tuple[str, int]]:
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' "
                "AND c.relkind IN ('r', 'i') AND (c.relname LIKE '%comments%' OR "
                "c.relname IN ('events', 'posts')) ORDER BY 2 DESC"
            )
        ).all()
    return [(name, size) for name, size in rows]


class Counted:
    """Counts the statements the app's engine runs."""

    def __init__(self, engine: Engine) -> None:
        self.statements = 0
        event.listen(engine, "before_cursor_execute", self._count)

    def _count(self, *_: Any) -> None:
        self.statements += 1


def _timed(action: Callable[[int], None], counted: Counted, first: int) -> tuple[float, float]:
    """Median CPU milliseconds of the app's thread for ``action`` over SAMPLES calls (CPU time,
    so other work on the cores changes it little; the database's side is in ``_plans``), and
    statements per call."""
    action(first)  # warm
    times = []
    before = counted.statements
    for n in range(first + 1, first + 1 + SAMPLES):
        started = time.thread_time()
        action(n)
        times.append((time.thread_time() - started) * 1000)
    return statistics.median(times), (counted.statements - before) / SAMPLES


# The statements whose cost could grow with the table, as the app runs them, for EXPLAIN: the
# queue's page and its capped count, the duplicate check's window, the author history.
PLANS = {
    "queue page (pending, oldest first)": (
        "SELECT id FROM comments WHERE status = 'pending' ORDER BY id LIMIT 51"
    ),
    "queue count (capped at 1,001)": (
        "SELECT count(*) FROM (SELECT id FROM comments WHERE status = 'pending' LIMIT 1001) AS c"
    ),
    "duplicate check window": (
        "SELECT body_text FROM comments WHERE post_id = (SELECT id FROM posts WHERE key = "
        "'/scale/busy/') AND submitted_at >= now() - interval '7 days' AND length(body_text) "
        "BETWEEN 500 AND 2000 ORDER BY submitted_at DESC LIMIT 100"
    ),
    "author history (one address)": (
        "SELECT status, count(*) FROM comments WHERE author_email = 'reader7@example.com' "
        "GROUP BY status"
    ),
}


def _plans(engine: Engine) -> dict[str, tuple[int, float]]:
    """Shared buffers each statement touched (hit or read) and its execution time in ms."""
    found = {}
    with engine.connect() as connection:
        for name, sql in PLANS.items():
            plan = connection.exec_driver_sql(
                f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {sql}"
            ).scalar_one()
            top = plan[0]
            buffers = top["Plan"].get("Shared Hit Blocks", 0) + top["Plan"].get(
                "Shared Read Blocks", 0
            )
            found[name] = (buffers, top["Execution Time"])
    return found


def run(rows: int = ROWS, minutes: float = MINUTES) -> str:
    url = os.environ.get("BENCH_DATABASE_URL")
    if not url:
        return "## Scale\n\nSkipped: needs BENCH_DATABASE_URL (PostgreSQL)."
    with tempfile.TemporaryDirectory() as folder:
        env = peer.service_env(url, folder)
        peer.prepare_service(env)
        app = create_app(load_settings(env))
        engine: Engine = app.extensions["moderation.engine"]
        app.extensions["moderation.probes"] = None  # every read reaches the app: its queries
        try:
            return _measure(app.test_client(), engine, rows, minutes)
        finally:
            engine.dispose()


def _login(client: FlaskClient) -> None:
    page = client.get("/moderate/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert csrf is not None
    form = {"login": "bench", "password": "benchmark passphrase", "csrf_token": csrf.group(1)}
    assert client.post("/moderate/login", data=form).status_code == 303


def _measure(client: FlaskClient, engine: Engine, rows: int, minutes: float) -> str:
    now = utcnow()
    with Session(engine) as session:
        site_id = session.scalars(select(Site.id)).one()
        session.execute(
            insert(Post),
            [{"site_id": site_id, "key": f"/scale/{n}/", "title": f"Post {n}",
              "url": f"https://bench.example/scale/{n}/"} for n in range(POSTS)]
            + [{"site_id": site_id, "key": BUSY, "title": "Busy",
                "url": f"https://bench.example{BUSY}"}],
        )  # fmt: skip
        first_post = session.scalar(select(Post.id).where(Post.key == "/scale/0/"))
        busy = session.scalar(select(Post.id).where(Post.key == BUSY))
        assert first_post is not None and busy is not None
        # The busy post's 100 comments, and 1,000 pending ones for the queue.
        bodies = corpus.submissions(1100, seed=11)
        session.execute(
            insert(Comment),
            [{"public_id": f"s{n}", "post_id": busy if n < 100 else first_post + n % POSTS,
              "author_name": "Reader", "author_email": f"r{n}@example.com", "body_text": body,
              "body_html": f"<p>{body}</p>",
              "status": CommentStatus.APPROVED if n < 100 else CommentStatus.PENDING,
              "signals": [], "submitted_at": now - dt.timedelta(minutes=1100 - n)}
             for n, body in enumerate(bodies)],
        )  # fmt: skip
        session.commit()
    _login(client)
    counted = Counted(engine)
    form_token = issue_form_token(peer.SECRET, peer.SLUG, now=now - dt.timedelta(minutes=1))
    submissions = corpus.submissions(400, seed=12)

    def submit(n: int) -> None:
        response = client.post(
            f"/api/v1/sites/{peer.SLUG}/comments",
            json={"post": BUSY, "author_name": f"Reader {n}", "body": submissions[n],
                  "author_email": f"reader{n}@example.net", "form_token": form_token},
        )  # fmt: skip
        assert response.status_code == 202, response.get_data(as_text=True)

    def queue(_: int) -> None:
        assert client.get("/moderate/").status_code == 200

    small = {"queue page": _timed(queue, counted, 0), "submission": _timed(submit, counted, 0)}
    small_plans = _plans(engine)

    started = time.monotonic()
    inserted = 0
    template = " ".join(corpus.submissions(4, seed=13, length=1000))
    while inserted < rows and time.monotonic() - started < minutes * 60:
        last = min(inserted + CHUNK, rows)
        with engine.begin() as connection:
            connection.execute(
                BULK,
                {"first": inserted + 1, "last": last, "first_post": first_post, "posts": POSTS,
                 "text": template},
            )  # fmt: skip
        inserted = last
    insert_minutes = (time.monotonic() - started) / 60
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM ANALYZE comments"))
    large = {
        "queue page": _timed(queue, counted, 100),
        "submission": _timed(submit, counted, 100 + SAMPLES + 1),
    }
    large_plans = _plans(engine)
    with Session(engine) as session:
        total = session.scalar(select(Comment.id).order_by(Comment.id.desc()).limit(1)) or 0
        events = session.scalar(text("SELECT count(*) FROM events")) or 0
    sizes = _sizes(engine)
    # Events: one per submission and per moderation action; the bulk rows have none.
    per_row = {
        name: size / max(events if name.startswith(("events", "ix_events")) else total, 1)
        for name, size in sizes
    }
    lines = [
        "## Scale: the queue and a submission as the comments table grows (PostgreSQL)",
        "",
        f"In-process (Flask test client), medians of {SAMPLES}, CPU time of the app's thread. "
        f"{inserted:,} comments bulk-"
        f"inserted in {insert_minutes:.1f} minutes (bounded at {minutes:g}; asked for "
        f"{rows:,}), {total:,} in all, over {POSTS:,} posts; then VACUUM ANALYZE.",
        "",
        "| path | CPU ms, 1,100 comments | statements "
        f"| CPU ms, at {total:,} | statements | ratio |",
        "|---|---|---|---|---|---|",
    ]
    for path, (ms, statements) in small.items():
        big_ms, big_statements = large[path]
        lines.append(
            f"| {path} | {ms:.2f} | {statements:.1f} | {big_ms:.2f} | {big_statements:.1f} "
            f"| {big_ms / ms:.2f}x |"
        )
    lines += [
        "",
        "The database's side: each statement whose cost could grow with the table, under "
        "EXPLAIN (ANALYZE, BUFFERS): shared buffers touched and execution time.",
        "",
        f"| statement | buffers, 1,100 | ms | buffers, {total:,} | ms |",
        "|---|---|---|---|---|",
        *(
            f"| {name} | {small_plans[name][0]} | {small_plans[name][1]:.2f} | "
            f"{large_plans[name][0]} | {large_plans[name][1]:.2f} |"
            for name in PLANS
        ),
        "",
        f"Sizes at {total:,} comments (table and each index, with TOAST), bytes per comment "
        f"(per event for the events table and its indexes: {events:,} events) and projected "
        "to 10 million:",
        "",
        "| relation | MB | bytes per comment | GB at 10 million |",
        "|---|---|---|---|",
        *(
            f"| {name} | {size / 2**20:,.0f} | {per_row[name]:,.0f} | "
            f"{per_row[name] * 10_000_000 / 2**30:,.1f} |"
            for name, size in sizes
        ),
    ]
    return "\n".join(lines)
