"""Webhook delivery throughput from one and two `moderation worker` processes to a consumer on
loopback, and what configured webhooks add to a submission (target: nothing: the request only
writes an outbox row; fan-out and delivery happen in the workers).

SQLite by default; set BENCH_DATABASE_URL to a PostgreSQL database to measure it there (its
schema is dropped and rebuilt).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select, text
from sqlalchemy.orm import Session

from bench.common import migrated_app
from moderation.config import load_settings
from moderation.events import Actor
from moderation.models import DeliveryStatus, Event, Site, WebhookDelivery, utcnow
from moderation.sites import create_site
from moderation.webhooks.endpoints import create_endpoint

EVENTS = int(os.environ.get("BENCH_WEBHOOK_EVENTS", "400"))
SUBMISSIONS = int(os.environ.get("BENCH_SUBMISSIONS", "150"))
SECRET = "b" * 40


class Sink(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()


def fresh_database(url: str) -> Any:
    # The spam checks' own cost is bench/spam_pipeline.py's; here DNS and rate limits are off so
    # only what webhooks add to a submission is measured.
    settings = load_settings(
        {},
        env="testing",
        secret_key=SECRET,
        database_url=url,
        log_level="WARNING",
        check_deliverability=False,
        ratelimit_enabled=False,
    )
    return migrated_app(settings)


def deliveries_per_second(url: str, consumer_url: str, workers: int) -> float:
    app = fresh_database(url)
    engine = app.extensions["moderation.engine"]
    with Session(engine) as session:
        site_id = create_site(
            session, slug="bench", name="Bench", origins=["https://bench.example"]
        ).id
        create_endpoint(
            session, actor=Actor("bench"), url=consumer_url, allow_http=True, now=utcnow()
        )
        session.commit()
    env = {
        **os.environ,
        "MODERATION_ENV": "testing",
        "MODERATION_SECRET_KEY": SECRET,
        "MODERATION_DATABASE_URL": url,
        "MODERATION_WEBHOOK_ALLOW_HTTP": "true",
        "MODERATION_WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8",
        "MODERATION_LOG_LEVEL": "WARNING",
    }
    command = [sys.executable, "-c", "from moderation.cli import main; main()", "worker"]
    processes = [
        subprocess.Popen([*command, "--interval", "0.02"], env=env) for _ in range(workers)
    ]
    time.sleep(2)  # the workers start and go idle: only delivery is timed
    with Session(engine) as session:
        session.execute(
            insert(Event),
            [
                {"public_id": f"msg_bench{n}", "type": "comment.approved", "site_id": site_id,
                 "payload": {"type": "comment.approved", "data": {"n": n}}, "created_at": utcnow()}
                for n in range(EVENTS)
            ],
        )  # fmt: skip
        session.commit()
    started = time.perf_counter()
    deadline = started + 60
    done = 0
    try:
        while time.perf_counter() < deadline:
            with Session(engine) as session:
                done = (
                    session.scalar(
                        select(func.count())
                        .select_from(WebhookDelivery)
                        .where(WebhookDelivery.status == DeliveryStatus.SUCCEEDED)
                    )
                    or 0
                )
            if done >= EVENTS:
                break
            time.sleep(0.02)
        elapsed = time.perf_counter() - started
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(10)
        engine.dispose()
    assert done >= EVENTS, f"only {done} of {EVENTS} delivered in time"
    return EVENTS / elapsed


def submission_p50(url: str, endpoints: int) -> float:
    app = fresh_database(url)
    engine = app.extensions["moderation.engine"]
    with Session(engine) as session:
        create_site(session, slug="bench", name="Bench", origins=["https://bench.example"])
        for n in range(endpoints):
            create_endpoint(
                session,
                actor=Actor("bench"),
                url=f"https://hooks{n}.example/in",
                allow_http=False,
                now=utcnow(),
            )
        session.commit()
    client = app.test_client()
    times = []
    for n in range(SUBMISSIONS):
        body = {
            "post": f"/p/{n % 10}/",
            "author_name": "Bench",
            "author_email": f"bench{n}@example.com",
            "body": f"Comment {n}.",
        }
        started = time.perf_counter()
        response = client.post(
            "/api/v1/sites/bench/comments", json=body, headers={"Origin": "https://bench.example"}
        )
        times.append(time.perf_counter() - started)
        assert response.status_code == 202, response.get_data(as_text=True)
    with Session(engine) as session:
        assert session.scalar(select(func.count()).select_from(Site)) == 1
        if engine.dialect.name == "postgresql":
            session.execute(text("SELECT 1"))
    engine.dispose()
    return statistics.median(times[10:]) * 1000


def run() -> str:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    consumer_url = f"http://127.0.0.1:{server.server_address[1]}/in"
    rows = []
    with tempfile.TemporaryDirectory() as folder:

        def url(name: str) -> str:
            return os.environ.get("BENCH_DATABASE_URL") or f"sqlite:///{Path(folder) / name}"

        backend = "PostgreSQL" if os.environ.get("BENCH_DATABASE_URL") else "SQLite"
        one = deliveries_per_second(url("one.db"), consumer_url, 1)
        two = deliveries_per_second(url("two.db"), consumer_url, 2)
        rows.append(f"| deliveries/s, one worker | {one:,.0f} | |")
        rows.append(f"| deliveries/s, two workers | {two:,.0f} | {two / one:.2f}x one worker |")
        base = submission_p50(url("none.db"), 0)
        hooked = submission_p50(url("five.db"), 5)
        rows.append(f"| submission p50 ms, no endpoints | {base:.2f} | |")
        rows.append(
            f"| submission p50 ms, 5 endpoints | {hooked:.2f} | {hooked / base:.2f}x without |"
        )
    server.shutdown()
    server.server_close()
    return "\n".join(
        [
            "## Webhooks (target: configured endpoints add nothing to a submission)",
            "",
            f"{backend}; {EVENTS} events to a consumer on loopback that answers 204 at once, "
            f"signed and SSRF-checked as in production; {SUBMISSIONS} in-process submissions.",
            "",
            "| scenario | figure | note |",
            "|---|---|---|",
            *rows,
        ]
    )


if __name__ == "__main__":
    print(run())
