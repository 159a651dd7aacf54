"""The moderation queue page and API list at 100,000 pending comments across 1,000 posts, as a
ratio to the same pages with 100 pending (target: at most 2x), and each against a trivial Flask
app called the same way (in-process WSGI, so only the app's own work is measured)."""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from flask import Flask
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from bench.common import migrated_app
from moderation.config import load_settings
from moderation.models import Comment, Moderator, Post, Role, utcnow
from moderation.moderators import create_api_token, create_moderator, password_hasher
from moderation.sites import create_site

SIZES = (100, 100_000)
POSTS = 1_000
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "200"))
PASSWORD = "benchmark passphrase"


def trivial_app() -> Flask:
    app = Flask("trivial")

    @app.get("/")
    def index() -> str:
        return "ok"

    return app


def seeded_app(folder: Path, pending: int) -> tuple[Flask, str]:
    url = os.environ.get("BENCH_DATABASE_URL") or f"sqlite:///{folder / f'queue-{pending}.db'}"
    settings = load_settings(
        {}, env="testing", secret_key="b" * 40, fast_password_hashing=True, database_url=url
    )
    app = migrated_app(settings)
    engine = app.extensions["moderation.engine"]
    with Session(engine) as session:
        site = create_site(session, slug="bench", name="Bench", origins=["https://bench.example"])
        moderator = create_moderator(
            session, password_hasher(fast=True), login="bench", email="b@example.org",
            password=PASSWORD, role=Role.ADMIN,
        )  # fmt: skip
        session.execute(
            insert(Post),
            [{"site_id": site.id, "key": f"/p/{n}/", "title": f"Post {n}", "url": f"https://bench.example/p/{n}/"}
             for n in range(POSTS)],
        )  # fmt: skip
        post_ids = list(session.scalars(select(Post.id).order_by(Post.id)))
        now = utcnow()
        rows = [
            {
                "public_id": f"c{n:010d}",
                "post_id": post_ids[n % POSTS],
                "author_name": f"Author {n % 5000}",
                "author_email": f"author{n % 5000}@example.com",
                "body_text": f"Comment {n} with some words to read.",
                "body_html": f"<p>Comment {n} with some words to read.</p>",
                "signals": [],
                "submitted_at": now,
            }
            for n in range(pending)
        ]
        for start in range(0, len(rows), 10_000):
            session.execute(insert(Comment), rows[start : start + 10_000])
        _, token = create_api_token(session, session.get(Moderator, moderator.id), "bench", now=now)  # type: ignore[arg-type]
        session.commit()
    return app, token


def rate(call: Callable[[], int], rounds: int = ROUNDS) -> tuple[float, float]:
    """Requests per second and p50 latency (ms) of ``call`` (which returns a status code)."""
    for _ in range(5):
        assert call() == 200
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        status = call()
        times.append(time.perf_counter() - started)
        assert status == 200, status
    return 1 / statistics.mean(times), statistics.median(times) * 1000


def run() -> str:
    trivial = trivial_app().test_client()
    base_rps, base_p50 = rate(lambda: trivial.get("/").status_code, ROUNDS * 5)
    rows = [f"| trivial Flask app | {base_rps:,.0f} | {base_p50:.2f} | 1.00 | |"]
    results: dict[tuple[str, int], float] = {}
    with tempfile.TemporaryDirectory() as folder:
        for pending in SIZES:
            app, token = seeded_app(Path(folder), pending)
            client = app.test_client()
            page = client.get("/moderate/login").get_data(as_text=True)
            csrf = page.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
            client.post(
                "/moderate/login", data={"login": "bench", "password": PASSWORD, "csrf_token": csrf}
            )
            auth = {"Authorization": f"Bearer {token}"}
            for name, call in (
                ("queue page", lambda c=client: c.get("/moderate/").status_code),
                (
                    "queue API",
                    lambda c=client, h=auth: (
                        c.get("/api/v1/moderation/comments", headers=h).status_code
                    ),
                ),
            ):
                rps, p50 = rate(call)
                results[(name, pending)] = rps
                slowdown = ""
                if pending != SIZES[0]:
                    slowdown = f"{results[(name, SIZES[0])] / rps:.2f}x slower than at {SIZES[0]:,}"
                rows.append(
                    f"| {name}, {pending:,} pending | {rps:,.0f} | {p50:.2f} | {rps / base_rps:.3f} | {slowdown} |"
                )
            app.extensions["moderation.engine"].dispose()
    return "\n".join(
        [
            "## Moderation queue (target: 100,000 pending within 2x of 100)",
            "",
            f"In-process WSGI calls, {ROUNDS} requests each, 50 comments a page, {POSTS:,} posts.",
            "",
            "| scenario | requests/s | p50 ms | ratio to trivial | at 100,000 vs 100 |",
            "|---|---|---|---|---|",
            *rows,
        ]
    )
