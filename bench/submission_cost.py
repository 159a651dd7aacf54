"""Where a submission's time goes: the CPU time of each stage of a realistic submission (about
1,000 characters with markup, a fifth hostile, bench/corpus.py) into a post with 120 recent
comments, in-process on SQLite (or BENCH_DATABASE_URL), one thread.

CPU time of the calling thread (``time.thread_time``), so other work sharing the cores changes
the figures far less than it changes wall time. The whole submission goes through the JSON API
(Flask's test client, which adds its own cost); the stages are the service's own functions called
on the same inputs: validation, sanitising, and each spam check with the post's real window.
Run: python -m bench bench.submission_cost
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from flask import Flask
from sqlalchemy import Engine, insert, select
from sqlalchemy.orm import Session, joinedload

from bench import corpus, peer
from moderation import create_app
from moderation.config import load_settings
from moderation.models import Comment, CommentStatus, Post, utcnow
from moderation.sanitising import render_comment
from moderation.spam import Candidate, Check, Evidence, issue_form_token
from moderation.validation import parse_submission
from moderation.web.screening import Screening

SAMPLES = int(os.environ.get("BENCH_COST_SAMPLES", "300"))
KEY = "/cost/busy/"


def _cpu_ms(action: Callable[[int], object], samples: int) -> float:
    """Median CPU milliseconds of ``action(n)`` over ``samples`` calls (after a few warm ones)."""
    for n in range(5):
        action(n)
    times = []
    for n in range(samples):
        started = time.thread_time()
        action(n)
        times.append((time.thread_time() - started) * 1000)
    return statistics.median(times)


def _run_check(
    check: Check, session: Session, candidate: Callable[[int], Candidate], n: int
) -> object:
    return check(session, candidate(n))


def run(samples: int = SAMPLES) -> str:
    with tempfile.TemporaryDirectory() as folder:
        url = os.environ.get("BENCH_DATABASE_URL") or f"sqlite:///{Path(folder) / 'cost.db'}"
        env = peer.service_env(url, folder)
        peer.prepare_service(env)
        app = create_app(load_settings(env))
        app.extensions["moderation.probes"] = None
        engine = app.extensions["moderation.engine"]
        try:
            return _measure(app, engine, samples, url)
        finally:
            engine.dispose()


def _measure(app: Flask, engine: Engine, samples: int, url: str) -> str:
    now = utcnow()
    window = corpus.submissions(120, seed=21)
    with Session(engine) as session:
        client = app.test_client()
        form_token = issue_form_token(peer.SECRET, peer.SLUG, now=now - dt.timedelta(minutes=1))
        first = client.post(
            f"/api/v1/sites/{peer.SLUG}/comments",
            json={"post": KEY, "post_title": "Busy", "author_name": "First",
                  "author_email": "first@example.net", "body": window[0],
                  "form_token": form_token},
        )  # fmt: skip
        assert first.status_code == 202, first.get_data(as_text=True)
        post = session.scalars(select(Post).where(Post.key == KEY)).one()
        session.execute(
            insert(Comment),
            [{"public_id": f"w{n}", "post_id": post.id, "author_name": "Reader",
              "author_email": f"w{n}@example.com", "body_text": body,
              "body_html": render_comment(body), "status": CommentStatus.APPROVED,
              "signals": [], "submitted_at": now - dt.timedelta(minutes=200 - n)}
             for n, body in enumerate(window[1:])],
        )  # fmt: skip
        session.commit()
    bodies = corpus.submissions(samples + 5, seed=22)
    total = len(bodies)

    def fields(n: int) -> dict[str, object]:
        return {"post": KEY, "author_name": f"Reader {n}", "author_email": f"reader{n}@example.net",
                "body": bodies[n % total], "form_token": form_token}  # fmt: skip

    def submit(n: int) -> None:
        response = client.post(f"/api/v1/sites/{peer.SLUG}/comments", json=fields(n))
        assert response.status_code == 202, response.get_data(as_text=True)

    stages: dict[str, float] = {}
    stages["whole submission through the JSON API (test client)"] = _cpu_ms(submit, samples)
    stages["validation (parse_submission, email-validator)"] = _cpu_ms(
        lambda n: parse_submission(fields(n)), samples
    )
    stages["sanitising (render_comment: bleach, links)"] = _cpu_ms(
        lambda n: render_comment(bodies[n % total]), samples
    )
    with app.app_context(), Session(engine) as session:
        pipeline = Screening(app, app.extensions["moderation.settings"]).pipeline
        post = session.scalars(
            select(Post).where(Post.key == KEY).options(joinedload(Post.site))
        ).one()

        def candidate(n: int) -> Candidate:
            return Candidate(
                site=post.site, post=post, author_name=f"Reader {n}",
                author_email=f"reader{n}@example.net", body=bodies[n % total],
                evidence=Evidence(form_token=form_token), now=utcnow(),
            )  # fmt: skip

        stages["spam pipeline, all checks"] = _cpu_ms(
            lambda n: pipeline.run(session, candidate(n)), samples
        )
        for check in pipeline.checks:
            stages[f"  check: {check.name}"] = _cpu_ms(
                functools.partial(_run_check, check, session, candidate), samples
            )
    backend = "PostgreSQL" if url.startswith("postgresql") else "SQLite"
    whole = stages["whole submission through the JSON API (test client)"]
    named = sum(ms for name, ms in stages.items() if not name.startswith(("whole", "  check")))
    lines = [
        "## Where a submission's time goes",
        "",
        f"{backend}; medians of {samples} calls, CPU time of the thread; bodies of about 1,000 "
        "characters with markup (a fifth hostile) into a post with 120 recent comments; the "
        "checks with the post's real window (the learned filter and the duplicate check as "
        "they are in this build).",
        "",
        "| stage | CPU ms | share of the whole |",
        "|---|---|---|",
        *(f"| {name} | {ms:.3f} | {ms / whole:.0%} |" for name, ms in stages.items()),
        f"| the rest: Flask, the test client, reads, inserts, commit | {whole - named:.3f} | "
        f"{(whole - named) / whole:.0%} |",
    ]
    return "\n".join(lines)
