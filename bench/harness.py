"""The benchmark harness of issue 7: every scenario against the service under gunicorn, beside a
trivial Flask app under the same server settings, at 1 and 16 keep-alive connections from wrk.

Each scenario runs in rounds, each the trivial app then the scenario at the same concurrency, so
every ratio compares two figures taken under the same machine load; the table gives medians.
One database (SQLite in a temporary folder, or BENCH_DATABASE_URL, whose schema is dropped)
serves every scenario, in table order: the reads, the queue at 100 pending, submissions, then
a bulk top-up to 100,000 pending for the queue again and the approvals.
Run: python -m bench bench.harness
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import html
import http.client
import json
import os
import statistics
import tempfile
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlencode, urlsplit

from sqlalchemy import Engine, func, insert, select, text
from sqlalchemy.orm import Session

from bench import floor
from bench.common import migrated_app
from bench.http import (
    MAX_CONNECTIONS,
    SERVER,
    Request,
    Result,
    Server,
    gunicorn,
    measure,
    wrk_version,
)
from moderation.config import load_settings
from moderation.db import begin_as_writer
from moderation.models import Comment, CommentStatus, Moderator, Post, Role, utcnow
from moderation.moderators import create_api_token, create_moderator, password_hasher
from moderation.sites import create_site
from moderation.spam import issue_form_token

SECONDS = int(os.environ.get("BENCH_SECONDS", "2"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
CONCURRENCY = (1, MAX_CONNECTIONS)
SECRET = "b" * 48
PASSWORD = "benchmark passphrase"
THREAD_KEY = "/2024/03/28/a-busy-post/"
THREAD_COMMENTS = 100
COUNT_POSTS = 50
QUEUE_POSTS = 1_000
SMALL_QUEUE, LARGE_QUEUE = 100, 100_000
TRIVIAL = Request("/")
MEMORY_MB = 150


@dataclasses.dataclass(frozen=True)
class Scenario:
    """A row pair of the table; ``ratio`` is its target against the trivial app, ``within`` a
    target against another scenario (at most that many times slower)."""

    name: str
    request: Request
    ratio: float | None = None
    within: tuple[str, float] | None = None
    prepare: Callable[[], None] | None = None
    floor: bool = False  # measured on bench.floor's app instead of the service


class Seeded:
    """The benchmark's database: a site, its posts and comments, a moderator and an API token."""

    def __init__(self, env: Mapping[str, str]):
        app = migrated_app(load_settings(env))
        self.engine: Engine = app.extensions["moderation.engine"]
        self.queued = 0  # pending comments q0, q1, ... inserted so far
        now = utcnow()
        with Session(self.engine) as session:
            site = create_site(
                session, slug="bench", name="Bench", origins=["https://bench.example"]
            )
            moderator = create_moderator(
                session, password_hasher(), login="bench", email="bench@example.org",
                password=PASSWORD, role=Role.ADMIN,
            )  # fmt: skip
            keys = [THREAD_KEY, "/submit/"]
            keys += [f"/count/{n}/" for n in range(COUNT_POSTS)]
            keys += [f"/q/{n}/" for n in range(QUEUE_POSTS)]
            session.execute(
                insert(Post),
                [{"site_id": site.id, "key": key, "title": f"Post {key}",
                  "url": f"https://bench.example{key}"} for key in keys],
            )  # fmt: skip
            posts = dict(session.execute(select(Post.key, Post.id)).all())
            self.queue_posts = [posts[f"/q/{n}/"] for n in range(QUEUE_POSTS)]
            approved = [(posts[THREAD_KEY], n) for n in range(THREAD_COMMENTS)]
            approved += [(posts[f"/count/{n}/"], n) for n in range(COUNT_POSTS) for _ in range(3)]
            session.execute(
                insert(Comment),
                [self._comment(f"a{i}", post_id, n, CommentStatus.APPROVED, now)
                 for i, (post_id, n) in enumerate(approved)],
            )  # fmt: skip
            user = session.get(Moderator, moderator.id)
            assert user is not None
            _, self.token = create_api_token(session, user, "bench", now=now)
            session.commit()
        self.top_up(SMALL_QUEUE)

    @staticmethod
    def _comment(
        public_id: str, post_id: int, n: int, status: CommentStatus, now: dt.datetime
    ) -> dict[str, object]:
        text = f"Comment {n}: a paragraph of thoughts on the post, with a few more words."
        return {
            "public_id": public_id, "post_id": post_id, "author_name": f"Reader {n % 5000}",
            "author_email": f"reader{n % 5000}@example.com", "body_text": text,
            "body_html": f"<p>{text}</p>", "status": status, "signals": [], "submitted_at": now,
        }  # fmt: skip

    def top_up(self, pending: int) -> None:
        """Bulk-insert pending comments (q<n>, across the queue posts) until ``pending`` wait."""
        now = utcnow()
        with Session(self.engine) as session:
            begin_as_writer(session)  # the count and the inserts under one SQLite write lock
            waiting = session.scalar(
                select(func.count()).where(Comment.status == CommentStatus.PENDING)
            )
            wanted = range(self.queued, self.queued + pending - (waiting or 0))
            rows = [
                self._comment(
                    f"q{n}", self.queue_posts[n % QUEUE_POSTS], n, CommentStatus.PENDING, now
                )
                for n in wanted
            ]
            for start in range(0, len(rows), 10_000):
                session.execute(insert(Comment), rows[start : start + 10_000])
            if self.engine.dialect.name == "postgresql":
                # Autovacuum would analyze the grown table within a minute; without statistics
                # the planner sorts every pending row to show the first 50.
                session.execute(text("ANALYZE comments"))
            session.commit()
            self.queued += len(rows)

    def time_trapped(self) -> int:
        """Submissions the time-trap held: must be none, the benchmark sends valid form tokens."""
        with Session(self.engine) as session:
            signals = session.scalars(
                select(Comment.signals).join(Post).where(Post.key == "/submit/")
            ).all()
        return sum(any(s.get("check") == "time_trap" for s in found) for found in signals)


def fetch(
    base: str, path: str, method: str = "GET", body: str | None = None, **headers: str
) -> tuple[int, http.client.HTTPMessage, str]:
    """One request on its own connection: the status, headers and body."""
    connection = http.client.HTTPConnection(urlsplit(base).netloc, timeout=30)
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.headers, response.read().decode()
    finally:
        connection.close()


def login(base: str) -> str:
    """Log in through the moderation pages; the Cookie header of the logged-in session."""
    _, headers, page = fetch(base, "/moderate/login")
    cookie = headers["Set-Cookie"].split(";")[0]
    csrf = html.unescape(page.split('name="csrf_token" value="', 1)[1].split('"', 1)[0])
    form = urlencode({"login": "bench", "password": PASSWORD, "csrf_token": csrf})
    kind = "application/x-www-form-urlencoded"
    status, headers, _ = fetch(
        base, "/moderate/login", "POST", form, Cookie=cookie, **{"Content-Type": kind}
    )
    if status != 303:
        raise RuntimeError(f"login answered {status}")
    return str(headers["Set-Cookie"]).split(";")[0]


def etag_of(base: str, path: str) -> str:
    return str(fetch(base, path)[1]["ETag"])


def scenarios(base: str, db: Seeded) -> list[Scenario]:
    """The scenario table, in the order it runs (later scenarios change the database)."""
    thread = "/embed/bench/thread?" + urlencode({"post": THREAD_KEY})
    listing = "/api/v1/sites/bench/comments?" + urlencode({"post": THREAD_KEY, "limit": 100})
    counts = "/api/v1/sites/bench/counts?" + urlencode(
        [("post", f"/count/{n}/") for n in range(COUNT_POSTS)]
    )
    # A form shown a minute ago: the time-trap accepts it, as it would a person's.
    token = issue_form_token(SECRET, "bench", now=utcnow() - dt.timedelta(minutes=1))
    submission = json.dumps(
        {
            "post": "/submit/",
            "author_name": "Reader {n}",
            "author_email": "reader{n}@example.net",
            "body": "Comment {n}: {words}.",
            "form_token": token,
        }
    )
    cookie = {"Cookie": login(base)}
    bearer = {"Authorization": f"Bearer {db.token}"}
    return [
        Scenario("thread fragment, full", Request(thread), ratio=0.5),
        Scenario(
            "thread fragment, 304",
            Request(thread, headers={"If-None-Match": etag_of(base, thread)}, status=304),
            ratio=0.8,
        ),
        Scenario("thread JSON, full", Request(listing), ratio=0.5),
        Scenario(
            "thread JSON, 304",
            Request(listing, headers={"If-None-Match": etag_of(base, listing)}, status=304),
            ratio=0.8,
        ),
        Scenario("counts, 50 posts", Request(counts)),
        Scenario("queue page, 100 pending", Request("/moderate/", headers=cookie)),
        Scenario(
            "submission",
            Request("/api/v1/sites/bench/comments", "POST", body=submission, status=202,
                    headers={"Content-Type": "application/json", "Origin": "https://bench.example"}),
            ratio=0.25,
        ),
        Scenario(
            "submission floor (bench/floor.py)",
            Request("/submit", "POST",
                    body=submission.replace('"/submit/"', json.dumps(floor.POST_KEY)), status=202,
                    headers={"Content-Type": "application/json"}),
            floor=True,
        ),
        Scenario(
            "submission floor, no duplicate check",
            Request("/submit/no-duplicate-check", "POST",
                    body=submission.replace('"/submit/"', json.dumps(floor.POST_KEY)),
                    status=202, headers={"Content-Type": "application/json"}),
            floor=True,
        ),
        Scenario(
            "queue page, 100,000 pending", Request("/moderate/", headers=cookie),
            within=("queue page, 100 pending", 2.0), prepare=lambda: db.top_up(LARGE_QUEUE),
        ),
        Scenario(
            "approval", Request("/api/v1/moderation/comments/q{n}/approve", "POST", headers=bearer),
            prepare=lambda: db.top_up(LARGE_QUEUE),
        ),
    ]  # fmt: skip


@contextmanager
def services() -> Iterator[tuple[str, Server, Seeded, str]]:
    """The trivial app, the service and its seeded database, and the submission floor, all up."""
    with tempfile.TemporaryDirectory() as folder:
        url = os.environ.get("BENCH_DATABASE_URL") or f"sqlite:///{Path(folder) / 'bench.db'}"
        env = {
            "MODERATION_ENV": "production",
            "MODERATION_SECRET_KEY": SECRET,
            "MODERATION_DATABASE_URL": url,
            "MODERATION_INSTANCE_PATH": folder,
            "MODERATION_LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
            # Every submission must pass: no rate limit fires, and no DNS lookup leaves the host.
            "MODERATION_RATELIMIT_ENABLED": "false",
            "MODERATION_CHECK_DELIVERABILITY": "false",
        }
        db = Seeded(env)
        floor_env = {
            "BENCH_FLOOR_DATABASE": str(Path(folder) / "floor.db"),
            "MODERATION_SECRET_KEY": SECRET,
        }
        floor.prepare(floor_env["BENCH_FLOOR_DATABASE"])
        try:
            with (
                gunicorn("bench.trivial:app") as trivial,
                gunicorn("moderation.app:create_app()", env) as service,
                gunicorn("bench.floor:app", floor_env) as lowest,
            ):
                trivial.wait("/")  # all boot at once; a request answered means a worker is up
                service.wait("/healthz")
                lowest.wait("/submit")
                yield trivial.url, service, db, lowest.url
        finally:
            db.engine.dispose()


@dataclasses.dataclass(frozen=True)
class Figure:
    """A scenario at one concurrency: medians over rounds of the trivial app then the scenario."""

    rps: float
    p50_ms: float
    p99_ms: float
    trivial_rps: float
    ratio: float  # the median of the rounds' ratios
    errors: int


def figure(
    trivial: str,
    service: str,
    request: Request,
    *,
    connections: int,
    seconds: int,
    rounds: int,
    first: int,
) -> tuple[Figure, int]:
    """Measure ``request``; also the next unused ``{n}``."""
    pairs: list[tuple[Result, Result]] = []
    for _ in range(rounds):
        base = measure(trivial, TRIVIAL, connections=connections, seconds=seconds)
        got = measure(service, request, connections=connections, seconds=seconds, first=first)
        first += got.issued
        pairs.append((base, got))
    median = statistics.median
    return Figure(
        rps=median(got.rps for _, got in pairs),
        p50_ms=median(got.p50_ms for _, got in pairs),
        p99_ms=median(got.p99_ms for _, got in pairs),
        trivial_rps=median(base.rps for base, _ in pairs),
        ratio=median(got.rps / base.rps for base, got in pairs),
        errors=sum(base.errors + got.errors for base, got in pairs),
    ), first  # fmt: skip


def verdict(scenario: Scenario, ratio: float, slower: float | None) -> str:
    if scenario.ratio is not None:
        return f">= {scenario.ratio}: {'MET' if ratio >= scenario.ratio else 'MISSED'}"
    if scenario.within is not None and slower is not None:
        factor, met = scenario.within[1], slower <= scenario.within[1]
        return f"{slower:.2f}x the time at 100, <= {factor:g}x: {'MET' if met else 'MISSED'}"
    return ""


def run(
    seconds: int = SECONDS,
    only: Collection[str] = (),
    concurrency: tuple[int, ...] = CONCURRENCY,
    rounds: int = ROUNDS,
    warmup: int = 1,
) -> str:
    """Measure every scenario (or those named in ``only``); the Markdown section."""
    rows: list[str] = []
    figures: dict[tuple[str, int], Figure] = {}
    on_postgresql = bool(os.environ.get("BENCH_DATABASE_URL"))
    with services() as (trivial, server, db, lowest):
        load_before = os.getloadavg()
        if warmup:
            measure(trivial, TRIVIAL, connections=max(concurrency), seconds=warmup)
        for scenario in scenarios(server.url, db):
            if (only and scenario.name not in only) or (scenario.floor and on_postgresql):
                continue  # the floor writes with sqlite3: a yardstick for SQLite runs only
            service = lowest if scenario.floor else server.url
            if scenario.prepare:
                scenario.prepare()
            # Warm-up: every worker imports, connects and fills its caches before the figures.
            first = 0
            if warmup:
                first = measure(
                    service, scenario.request, connections=max(concurrency), seconds=warmup
                ).issued
            for connections in concurrency:
                got, first = figure(
                    trivial, service, scenario.request, connections=connections,
                    seconds=seconds, rounds=rounds, first=first,
                )  # fmt: skip
                figures[(scenario.name, connections)] = got
                reference = (
                    figures.get((scenario.within[0], connections)) if scenario.within else None
                )
                slower = reference.rps / max(got.rps, 1e-9) if reference else None
                rows.append(
                    f"| {scenario.name} | {connections} | {got.rps:,.0f} | {got.p50_ms:.2f} | "
                    f"{got.p99_ms:.2f} | {got.trivial_rps:,.0f} | {got.ratio:.2f} | "
                    f"{verdict(scenario, got.ratio, slower)} | {got.errors} |"
                )
        load_after = os.getloadavg()
        memory = server.worker_rss_mb()
        trapped = db.time_trapped()
    if trapped:
        raise RuntimeError(f"the time-trap held {trapped} benchmark submissions")
    backend = "PostgreSQL" if on_postgresql else "SQLite"
    return "\n".join(
        [
            "## Harness: the service against a trivial Flask app, same gunicorn settings",
            "",
            f"gunicorn `{SERVER}` for both apps; {wrk_version()} from its own process on "
            f"loopback, keep-alive connections. Each scenario, after a {warmup} s warm-up, runs "
            f"{rounds} rounds of the trivial app then the scenario, {seconds} s each, at the same "
            "concurrency; the table gives the medians over the rounds (the ratio is the median "
            f"of the rounds' ratios). {backend}; a {THREAD_COMMENTS}-comment thread (one "
            f"page), {COUNT_POSTS} posts for counts, pending comments across {QUEUE_POSTS:,} "
            "posts; rate limits and the DNS deliverability lookup off, every other spam check "
            "on, submissions carry a valid form token (held by the time-trap: none); each "
            "approval approves a different pending comment through the JSON API. The submission "
            "floor is bench/floor.py: the same submission with only what the target names, by the "
            "service's own validation, sanitising and spam pipeline, then raw sqlite3 writes (no "
            "ORM, rate limits, metrics or logging), on a database of its own: what no submission "
            "on this pipeline can beat on this machine (SQLite runs only); its second row leaves "
            "out the duplicate check, the one check that reads the database, as though it cost "
            "nothing. Load average "
            f"(1 min) {load_before[0]:.2f} at the start, {load_after[0]:.2f} at the end. Resident "
            f"memory of each app worker after the run: {', '.join(f'{mb:.0f}' for mb in memory)} "
            f"MB (target under {MEMORY_MB} MB: {'MET' if max(memory) < MEMORY_MB else 'MISSED'}).",
            "",
            "| scenario | connections | requests/s | p50 ms | p99 ms | trivial app requests/s "
            "| ratio to trivial | target | errors |",
            "|---|---|---|---|---|---|---|---|---|",
            *rows,
        ]
    )
