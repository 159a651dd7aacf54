"""The public thread of a 100-comment post under gunicorn, as a ratio to a trivial Flask app
served the same way: the embed fragment and the comments JSON, full and revalidated (304).
Targets: full >= 0.5, 304 >= 0.8 of the trivial app."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from sqlalchemy import insert
from sqlalchemy.orm import Session

from bench.http import (
    CLIENTS,
    SECONDS,
    THREADS,
    WORKERS,
    Target,
    etag_of,
    gunicorn,
    measure,
    table,
)
from moderation import schema
from moderation.db import make_engine
from moderation.models import Comment, CommentStatus, Post, utcnow
from moderation.sites import create_site

COMMENTS = 100
KEY = "/2024/03/28/a-busy-post/"
TARGETS = {"fragment, full": 0.5, "fragment, 304": 0.8, "JSON, full": 0.5, "JSON, 304": 0.8}


def seed(url: str) -> None:
    engine = make_engine(url)
    schema.upgrade(engine)
    now = utcnow()
    with Session(engine) as session:
        site = create_site(session, slug="bench", name="Bench", origins=["https://bench.example"])
        post = Post(site=site, key=KEY, title="A busy post", url="https://bench.example" + KEY)
        session.add(post)
        session.flush()
        session.execute(
            insert(Comment),
            [
                {
                    "public_id": f"c{n:010d}", "post_id": post.id, "author_name": f"Reader {n}",
                    "author_email": f"reader{n}@example.com",
                    "body_text": f"Comment {n}: a paragraph of thoughts on the post.",
                    "body_html": f"<p>Comment {n}: a paragraph of thoughts on the post.</p>",
                    "status": CommentStatus.APPROVED, "signals": [], "submitted_at": now,
                }
                for n in range(COMMENTS)
            ],
        )  # fmt: skip
        session.commit()
    engine.dispose()


def run() -> str:
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{Path(folder) / 'embed.db'}"
        seed(url)
        env = {
            "MODERATION_ENV": "production",
            "MODERATION_SECRET_KEY": "b" * 48,
            "MODERATION_DATABASE_URL": url,
            "MODERATION_INSTANCE_PATH": folder,
            "MODERATION_LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
        }
        with gunicorn("bench.trivial:app") as trivial:
            baseline = measure(Target("trivial Flask app", trivial, "/"))
        with gunicorn("moderation.app:create_app()", env) as service:
            fragment = f"/embed/bench/thread?post={KEY}"
            listing = f"/api/v1/sites/bench/comments?post={KEY}&limit={COMMENTS}"
            targets = [
                Target("fragment, full", service, fragment),
                Target("fragment, 304", service, fragment,
                       {"If-None-Match": etag_of(service + fragment)}, 304),
                Target("JSON, full", service, listing),
                Target("JSON, 304", service, listing,
                       {"If-None-Match": etag_of(service + listing)}, 304),
            ]  # fmt: skip
            results = [measure(target) for target in targets]
    return "\n".join(
        [
            "## Public thread: embed fragment and comments JSON (targets: full >= 0.5, 304 >= 0.8)",
            "",
            f"gunicorn gthread, {WORKERS} workers x {THREADS} threads, for both apps; load from a "
            f"separate process, {CLIENTS} keep-alive connections, {SECONDS:g} s each; SQLite; "
            f"one post with {COMMENTS} approved comments (all on one page). Request log level "
            "WARNING (BENCH_LOG_LEVEL to change).",
            "",
            *table(results, baseline, TARGETS),
        ]
    )
