"""The peer comparison of issue 21: this service beside Isso, the Python peer, side by side.

Isso (pinned in bench/isso-requirements.txt, installed by ``make bench-peer`` in its own virtual
environment, bench/.isso-venv) and this service run under the same gunicorn settings
(:data:`bench.http.SERVER`); both are seeded through their own HTTP APIs with the same generated
corpus (bench/corpus.py): a 50-comment thread, a 500-comment one, a 120-comment one that receives
the submissions, and 17 more small threads for the counts. Isso is seeded with moderation off,
then restarted with it on (comments held, as here). Each scenario runs in rounds of Isso, then
this service (then this service on PostgreSQL when BENCH_DATABASE_URL is set), wrk at 16
connections for BENCH_SECONDS each; the table gives medians, the ratio is the median of the
rounds' ratios, and the CPU time per request is the server's (master and workers, from /proc).
Run: python -m bench bench.peer
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import datetime as dt
import http.client
import json
import os
import statistics
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from sqlalchemy.orm import Session

from bench import corpus
from bench.common import migrated_app
from bench.http import MAX_CONNECTIONS, SERVER, Request, Server, gunicorn, measure, wrk_version
from moderation.config import load_settings
from moderation.models import Moderator, Role, utcnow
from moderation.moderators import create_api_token, create_moderator, password_hasher
from moderation.sites import create_site
from moderation.spam import issue_form_token

SECONDS = int(os.environ.get("BENCH_SECONDS", "2"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
ISSO_VENV = Path(__file__).resolve().with_name(".isso-venv")
ISSO_PYTHON = ISSO_VENV / "bin" / "python"
ISSO_VERSION = "0.14.0"  # as pinned in bench/isso-requirements.txt
SECRET = "p" * 48
SLUG = "bench"
ORIGIN = "https://bench.example"
# The threads: key, comments, corpus seed. /busy/ receives the submissions.
THREADS = [("/t50/", 50, 1), ("/t500/", 500, 2), ("/busy/", 120, 3)]
THREADS += [(f"/c{n}/", n % 9, 100 + n) for n in range(17)]
COUNT_KEYS = [key for key, _, _ in THREADS]  # 20 posts
SUBMISSION_BODIES = 4000
ISSO_CONFIG = """\
[general]
dbpath = {dbpath}
host = http://127.0.0.1:9/
notify = stdout
gravatar = false
[moderation]
enabled = {moderated}
[guard]
# The guard is Isso's rate limiter (per-address limits on new comments and replies): off, as
# this service's rate limits are.
enabled = false
[server]
listen = http://127.0.0.1:8080/
"""


@dataclasses.dataclass(frozen=True)
class Target:
    """One service under test and how each scenario is asked of it."""

    name: str
    server: Server
    requests: dict[str, Request]


@dataclasses.dataclass(frozen=True)
class Row:
    scenario: str
    target: str
    rps: float
    cpu_ms: float
    isso_rps: float
    isso_cpu_ms: float
    ratio: float | None  # None: Isso answered nothing in any round (a loaded machine)
    errors: int

    @property
    def cpu_ratio(self) -> float:
        """How many times the CPU Isso spends per request this service spends."""
        return self.isso_cpu_ms / max(self.cpu_ms, 1e-9)


class Client:
    """A keep-alive HTTP connection for seeding, JSON in and out."""

    def __init__(self, base: str) -> None:
        self.connection = http.client.HTTPConnection(urlsplit(base).netloc, timeout=60)

    def post(self, path: str, body: object, **headers: str) -> tuple[int, Any]:
        headers = {"Content-Type": "application/json", **headers}
        self.connection.request("POST", path, body=json.dumps(body), headers=headers)
        response = self.connection.getresponse()
        raw = response.read()
        return response.status, json.loads(raw) if raw.strip() else None

    def close(self) -> None:
        self.connection.close()


def _seed(
    seed_thread: Callable[[Client, str, list[corpus.Comment]], None], base: str, scale: float
) -> None:
    """Seed every thread (``scale`` times its size), four at a time (threads are independent;
    comments in a thread are posted in order, so a reply's parent exists)."""

    def one(spec: tuple[str, int, int]) -> None:
        key, size, seed = spec
        client = Client(base)
        try:
            seed_thread(client, key, corpus.thread(seed, round(size * scale)))
        finally:
            client.close()

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        list(pool.map(one, THREADS))


def seed_isso(base: str, scale: float = 1.0) -> None:
    def thread(client: Client, key: str, comments: list[corpus.Comment]) -> None:
        ids: list[int] = []
        for comment in comments:
            status, created = client.post(
                f"/new?uri={quote(key)}",
                {"text": comment.body, "author": comment.author, "email": comment.email,
                 "parent": ids[comment.parent] if comment.parent is not None else None,
                 "title": f"Post {key}"},
            )  # fmt: skip
            if status != 201:
                raise RuntimeError(f"Isso answered {status} to a seed comment")
            ids.append(created["id"])

    _seed(thread, base, scale)


def seed_service(base: str, token: str, scale: float = 1.0) -> None:
    form_token = issue_form_token(SECRET, SLUG, now=utcnow() - dt.timedelta(minutes=1))
    bearer = {"Authorization": f"Bearer {token}"}

    def thread(client: Client, key: str, comments: list[corpus.Comment]) -> None:
        ids: list[str] = []
        for comment in comments:
            status, created = client.post(
                f"/api/v1/sites/{SLUG}/comments",
                {"post": key, "post_title": f"Post {key}", "author_name": comment.author,
                 "author_email": comment.email, "body": comment.body, "form_token": form_token,
                 "parent_id": ids[comment.parent] if comment.parent is not None else None},
                Origin=ORIGIN,
            )  # fmt: skip
            if status != 202:
                raise RuntimeError(f"the service answered {status} to a seed comment: {created}")
            # Approved at once (from pending, or from spam for the hostile ones the checks
            # filed), so that replies to it can follow.
            status, _ = client.post(
                f"/api/v1/moderation/comments/{created['id']}/approve", {}, **bearer
            )
            if status != 200:
                raise RuntimeError(f"the service answered {status} to an approval")
            ids.append(created["id"])

    _seed(thread, base, scale)


def service_env(url: str, folder: str) -> dict[str, str]:
    return {
        "MODERATION_ENV": "production",
        "MODERATION_SECRET_KEY": SECRET,
        "MODERATION_DATABASE_URL": url,
        "MODERATION_INSTANCE_PATH": folder,
        "MODERATION_LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
        # Every check on but these two, as for Isso (its guard is off).
        "MODERATION_RATELIMIT_ENABLED": "false",
        "MODERATION_CHECK_DELIVERABILITY": "false",
    }


def prepare_service(env: dict[str, str]) -> str:
    """Migrate the service's empty database and add the site and a moderator; an API token."""
    app = migrated_app(load_settings(env))
    engine = app.extensions["moderation.engine"]
    try:
        with Session(engine) as session:
            create_site(session, slug=SLUG, name="Bench", origins=[ORIGIN])
            moderator = create_moderator(
                session, password_hasher(), login="bench", email="bench@example.org",
                password="benchmark passphrase", role=Role.ADMIN,
            )  # fmt: skip
            user = session.get(Moderator, moderator.id)
            assert user is not None
            _, token = create_api_token(session, user, "bench", now=utcnow())
            session.commit()
    finally:
        engine.dispose()
    return token


def _bodies(folder: str) -> str:
    """The submissions' bodies, one JSON string's contents a line, for wrk's "{body}"."""
    path = Path(folder) / "bodies.txt"
    lines = (json.dumps(body)[1:-1] for body in corpus.submissions(SUBMISSION_BODIES))
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def isso_requests(bodies: str) -> dict[str, Request]:
    submission = '{"author": "Reader {n}", "email": "reader{n}@example.net", "text": "{body}"}'
    json_type = {"Content-Type": "application/json"}
    return {
        "thread read, 50 comments": Request("/?" + urlencode({"uri": "/t50/"})),
        # The first 50 comments of the thread, as this service's first page has.
        "thread read, 500 comments (first page)": Request(
            "/?" + urlencode({"uri": "/t500/", "limit": 50, "nested_limit": 0})
        ),
        "counts, 20 posts": Request(
            "/count", "POST", body=json.dumps(COUNT_KEYS), headers=json_type
        ),
        "submission, 1 kB with markup, 120+ comment post": Request(
            "/new?" + urlencode({"uri": "/busy/"}), "POST", body=submission, status=202,
            headers=json_type, bodies=bodies,
        ),
    }  # fmt: skip


def service_requests(bodies: str) -> dict[str, Request]:
    token = issue_form_token(SECRET, SLUG, now=utcnow() - dt.timedelta(minutes=1))
    submission = json.dumps(
        {"post": "/busy/", "author_name": "Reader {n}", "author_email": "reader{n}@example.net",
         "body": "{body}", "form_token": token}
    )  # fmt: skip
    listing = f"/api/v1/sites/{SLUG}/comments?"
    return {
        "thread read, 50 comments": Request(listing + urlencode({"post": "/t50/"})),
        "thread read, 500 comments (first page)": Request(listing + urlencode({"post": "/t500/"})),
        "counts, 20 posts": Request(
            f"/api/v1/sites/{SLUG}/counts?" + urlencode([("post", key) for key in COUNT_KEYS])
        ),
        "submission, 1 kB with markup, 120+ comment post": Request(
            f"/api/v1/sites/{SLUG}/comments", "POST", body=submission, status=202,
            headers={"Content-Type": "application/json", "Origin": ORIGIN}, bodies=bodies,
        ),
    }  # fmt: skip


# What each scenario must reach against Isso (issue 21), by target name.
TARGETS: dict[tuple[str, str], float] = {
    ("counts, 20 posts", "SQLite"): 2.0,
    ("counts, 20 posts", "PostgreSQL"): 2.0,
    ("submission, 1 kB with markup, 120+ comment post", "SQLite"): 2.0,
    ("submission, 1 kB with markup, 120+ comment post", "PostgreSQL"): 2.0,
    ("thread read, 50 comments", "PostgreSQL"): 100.0,
}


@contextmanager
def isso(folder: str, scale: float = 1.0) -> Iterator[Server]:
    """Isso seeded through its API with moderation off, then serving with moderation on."""
    if not ISSO_PYTHON.exists():
        raise RuntimeError("Isso is not installed: make bench-peer-install")
    config = Path(folder) / "isso.cfg"
    dbpath = Path(folder) / "isso.db"
    config.write_text(ISSO_CONFIG.format(dbpath=dbpath, moderated="false"))
    env = {"ISSO_SETTINGS": str(config)}
    with gunicorn("isso.run:application", env, python=str(ISSO_PYTHON)) as seeding:
        seeding.wait("/info")
        seed_isso(seeding.url, scale)
    config.write_text(ISSO_CONFIG.format(dbpath=dbpath, moderated="true"))
    with gunicorn("isso.run:application", env, python=str(ISSO_PYTHON)) as serving:
        serving.wait("/info")
        yield serving


@contextmanager
def service(folder: str, url: str, scale: float = 1.0) -> Iterator[Server]:
    env = service_env(url, folder)
    token = prepare_service(env)
    with gunicorn("moderation.app:create_app()", env) as server:
        server.wait("/healthz")
        seed_service(server.url, token, scale)
        yield server


def _round(
    target: Target, scenario: str, first: int, seconds: int
) -> tuple[float, float, int, int]:
    """requests/s, server CPU ms per request, errors, numbers issued."""
    before = target.server.cpu_seconds()
    got = measure(
        target.server.url, target.requests[scenario], connections=MAX_CONNECTIONS,
        seconds=seconds, first=first,
    )  # fmt: skip
    cpu = target.server.cpu_seconds() - before
    return got.rps, 1000 * cpu / max(got.requests, 1), got.errors, got.issued


def compare(
    targets: Sequence[Target], scenarios: Sequence[str], *, seconds: int, rounds: int, warmup: int
) -> list[Row]:
    """Each scenario in rounds of every target in turn (Isso first); a row per service target."""
    rows: list[Row] = []
    for scenario in scenarios:
        first = {t.name: 0 for t in targets}
        if warmup:
            for t in targets:
                first[t.name] += _round(t, scenario, first[t.name], warmup)[3]
        figures: dict[str, list[tuple[float, float, int]]] = {t.name: [] for t in targets}
        for _ in range(rounds):
            for t in targets:
                rps, cpu, errors, issued = _round(t, scenario, first[t.name], seconds)
                first[t.name] += issued
                figures[t.name].append((rps, cpu, errors))
        peer = figures[targets[0].name]
        for t in targets[1:]:
            mine = figures[t.name]
            rows.append(
                Row(
                    scenario, t.name,
                    rps=statistics.median(f[0] for f in mine),
                    cpu_ms=statistics.median(f[1] for f in mine),
                    isso_rps=statistics.median(f[0] for f in peer),
                    isso_cpu_ms=statistics.median(f[1] for f in peer),
                    ratio=_median_ratio([(m[0], p[0]) for m, p in zip(mine, peer, strict=True)]),
                    errors=sum(f[2] for f in mine) + sum(f[2] for f in peer),
                )
            )  # fmt: skip
    return rows


def _median_ratio(pairs: list[tuple[float, float]]) -> float | None:
    """The median of mine / Isso's over the rounds where Isso answered anything."""
    ratios = [mine / peer for mine, peer in pairs if peer > 0]
    return statistics.median(ratios) if ratios else None


def verdict(row: Row) -> str:
    """Against the target, on the throughput ratio; on the CPU ratio if Isso answered nothing."""
    wanted = TARGETS.get((row.scenario, row.target))
    if wanted is None:
        return ""
    if row.ratio is None:
        return f">= {wanted:g}x: {'MET' if row.cpu_ratio >= wanted else 'MISSED'} (by CPU)"
    return f">= {wanted:g}x: {'MET' if row.ratio >= wanted else 'MISSED'}"


def run(
    seconds: int = SECONDS,
    rounds: int = ROUNDS,
    warmup: int = 1,
    scenarios: Sequence[str] = (),
    scale: float = 1.0,
) -> str:
    """Seed Isso and the service (and the service on PostgreSQL), compare; the Markdown section.
    ``scale`` shrinks the threads (for the suite's smoke test)."""
    database = os.environ.get("BENCH_DATABASE_URL")
    with tempfile.TemporaryDirectory() as folder, ExitStack() as stack:
        bodies = _bodies(folder)
        peer = stack.enter_context(isso(folder, scale))
        targets = [Target("Isso", peer, isso_requests(bodies))]
        sqlite = f"sqlite:///{Path(folder) / 'service.db'}"
        mine = stack.enter_context(service(folder, sqlite, scale))
        targets.append(Target("SQLite", mine, service_requests(bodies)))
        if database:
            on_pg = stack.enter_context(service(folder, database, scale))
            targets.append(Target("PostgreSQL", on_pg, service_requests(bodies)))
        load_before = os.getloadavg()
        wanted = list(scenarios) or list(targets[0].requests)
        rows = compare(targets, wanted, seconds=seconds, rounds=rounds, warmup=warmup)
        load_after = os.getloadavg()
    lines = [
        f"| {r.scenario} | {r.target} | {r.isso_rps:,.1f} | {r.rps:,.0f} | "
        f"{'-' if r.ratio is None else f'{r.ratio:.1f}x'} | {r.isso_cpu_ms:.2f} | {r.cpu_ms:.2f} "
        f"| {r.cpu_ratio:.1f}x | {verdict(r)} | {r.errors} |"
        for r in rows
    ]
    return "\n".join(
        [
            f"## Peer: this service beside Isso {ISSO_VERSION}, same gunicorn settings",
            "",
            f"gunicorn `{SERVER}` for both; {wrk_version()} at {MAX_CONNECTIONS} keep-alive "
            f"connections. Both seeded through their own APIs with the same generated corpus "
            f"(bench/corpus.py: 200 to 2,000 characters of prose with links and inline markup, "
            f"a fifth with hostile markup, 30% replies): threads of 50, 500 and 120 comments "
            f"and 17 small ones, {sum(n for _, n, _ in THREADS)} comments. Isso on SQLite "
            f"(the only database it has), moderation on, its guard (rate limits) off; "
            f"this service with every check but rate limits and the DNS lookup. "
            f"Reads: the JSON of the 50-comment "
            f"thread (all of it from both), and of the 500-comment thread's first 50 comments "
            f"(Isso: `limit=50&nested_limit=0`); counts: the same 20 posts (Isso: POST /count); "
            f"submissions: distinct bodies of about 1,000 characters with markup (a fifth "
            f"hostile) into the 120-comment thread, held for moderation by both. {rounds} rounds "
            f"of {seconds} s per target after a {warmup} s warm-up, alternating; medians; the "
            f'ratio is the median of the rounds\' ratios ("-": Isso answered nothing within a '
            f"round); CPU is the server's (all its processes, from /proc, read once it is quiet) "
            f"per request sent, and the CPU ratio is Isso's over this service's: the cost "
            f"comparison, steadier than throughput when other work shares the cores. "
            f"Load average (1 min) {load_before[0]:.2f} at the start, "
            f"{load_after[0]:.2f} at the end.",
            "",
            "| scenario | this service on | Isso requests/s | this service requests/s | ratio "
            "| Isso CPU ms/request | this service CPU ms/request | CPU ratio | target | errors |",
            "|---|---|---|---|---|---|---|---|---|---|",
            *lines,
        ]
    )
