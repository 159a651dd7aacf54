"""/metrics: who may scrape, what moves as the service works, the database gauges, and the sum
over several processes in prometheus_client's multiprocess mode."""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Connection, Engine, select
from sqlalchemy.orm import Session, sessionmaker

from moderation import metrics, schema
from moderation.comments import submit_comment
from moderation.db import make_engine
from moderation.errors import ValidationFailed
from moderation.events import Actor
from moderation.models import Event
from moderation.outbox import webhooks as wd
from moderation.spam import DeliverabilityCheck, Evidence, MailDomain, Pipeline
from moderation.validation import parse_submission
from moderation.webhooks.endpoints import create_endpoint
from tests.consumer import running_consumer
from tests.helpers import (
    TEST_SECRET,
    comment_json,
    csrf_from,
    good_token,
    json_of,
    login,
    make_app,
    make_moderator,
    make_site,
    make_token,
    session_factory,
    webhook_settings,
)

TOKEN = "scraper-token-0123456789"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
ROOT = Path(__file__).resolve().parents[1]
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    """Every sample of a scrape, keyed by its name and labels (the official parser)."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture
def scraper(engine: Engine, connection: Connection) -> FlaskClient:
    return make_app(engine, connection, metrics_token=TOKEN).test_client()


def scrape(client: FlaskClient) -> Samples:
    response = client.get("/metrics", headers=BEARER)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "text/plain"
    assert response.headers["Cache-Control"] == "no-store"
    return parse(response.get_data(as_text=True))


def test_metrics_are_off_unless_a_token_or_an_allow_list_is_set(client: FlaskClient) -> None:
    response = client.get("/metrics", headers=BEARER)
    assert response.status_code == 404
    assert json_of(response)["error"]["code"] == "not_found"


def test_the_scraper_needs_the_token(scraper: FlaskClient) -> None:
    for headers in (
        {},
        {"Authorization": "Bearer wrong-token-0123456789"},
        {"Authorization": TOKEN},
    ):
        response = scraper.get("/metrics", headers=headers)
        assert response.status_code == 403, headers
        assert json_of(response)["error"]["code"] == "forbidden"
    assert scraper.get("/metrics", headers=BEARER).status_code == 200


def test_the_allow_list_admits_addresses_behind_trusted_proxy_hops_only(
    engine: Engine, connection: Connection
) -> None:
    direct = make_app(engine, connection, metrics_allow="10.1.0.0/16, 2001:db8::/32").test_client()
    assert direct.get("/metrics", environ_base={"REMOTE_ADDR": "10.1.2.3"}).status_code == 200
    assert direct.get("/metrics", environ_base={"REMOTE_ADDR": "2001:db8::7"}).status_code == 200
    refused = direct.get("/metrics", environ_base={"REMOTE_ADDR": "10.2.0.1"})
    assert refused.status_code == 403 and json_of(refused)["error"]["code"] == "forbidden"
    forged = {"X-Forwarded-For": "10.1.2.3"}
    outside = {"REMOTE_ADDR": "192.0.2.1"}
    assert direct.get("/metrics", headers=forged, environ_base=outside).status_code == 403

    proxied = make_app(
        engine, connection, metrics_allow="10.1.0.0/16", trusted_proxy_hops=1
    ).test_client()
    assert proxied.get("/metrics", headers=forged, environ_base=outside).status_code == 200
    assert (
        proxied.get(
            "/metrics", headers={"X-Forwarded-For": "10.2.0.1"}, environ_base=outside
        ).status_code
        == 403
    )


def test_counters_move_as_commenters_and_moderators_act(
    engine: Engine, connection: Connection, session: Session, scraper: FlaskClient
) -> None:
    make_site(session)
    make_site(session, "other", "https://other.blog.gov.uk")
    token = make_token(session, make_moderator(session))
    before = scrape(scraper)
    secret = {"author_email": "hidden.person@example.com", "body": "Very private words"}
    submitted = scraper.post(
        "/api/v1/sites/luac/comments",
        json=comment_json(form_token=good_token(), **secret),
        environ_base={"REMOTE_ADDR": "203.0.113.77"},
    )
    spam = scraper.post(
        "/api/v1/sites/luac/comments",
        json=comment_json(form_token=good_token(), website="http://pills.example"),
    )
    assert submitted.status_code == spam.status_code == 202
    after_submit = scrape(scraper)
    for verdict, moved in (("accept", 1), ("spam", 1), ("hold", 0)):
        delta = value(after_submit, "moderation_submissions_total", verdict=verdict) - value(
            before, "moderation_submissions_total", verdict=verdict
        )
        assert delta == moved, verdict
    assert value(after_submit, "moderation_queue_depth", site="luac") == 1
    assert value(after_submit, "moderation_queue_depth", site="other") == 0

    approved = scraper.post(
        f"/api/v1/moderation/comments/{json_of(submitted)['id']}/approve",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert approved.status_code == 200
    after = scrape(scraper)
    approve_api = {"action": "approve", "source": "api"}
    assert value(after, "moderation_actions_total", **approve_api) == 1 + value(
        before, "moderation_actions_total", **approve_api
    )
    count = "moderation_decision_seconds_count"
    assert value(after, count, action="approve") == 1 + value(before, count, action="approve")
    assert value(after, "moderation_queue_depth", site="luac") == 0
    latency = "moderation_request_duration_seconds_count"
    endpoint = "moderation_api.act"
    assert value(after, latency, endpoint=endpoint) == 1 + value(before, latency, endpoint=endpoint)

    text = scraper.get("/metrics", headers=BEARER).get_data(as_text=True)
    for personal in ("hidden.person", "203.0.113", "Very private", "Ada Lovelace", "pills"):
        assert personal not in text


def test_a_rolled_back_action_counts_nothing_and_the_ui_counts_as_ui(
    engine: Engine, connection: Connection, session: Session, scraper: FlaskClient
) -> None:
    make_site(session)
    make_moderator(session)
    comment_id = json_of(scraper.post("/api/v1/sites/luac/comments", json=comment_json()))["id"]
    before = scrape(scraper)
    login(scraper)
    page = scraper.get("/moderate/").get_data(as_text=True)
    for _ in range(2):  # the second is refused (already moderated) and rolled back
        scraper.post(
            f"/moderate/comments/{comment_id}/reject", data={"csrf_token": csrf_from(page)}
        )
    after = scrape(scraper)
    reject_ui = {"action": "reject", "source": "ui"}
    assert value(after, "moderation_actions_total", **reject_ui) == 1 + value(
        before, "moderation_actions_total", **reject_ui
    )
    count = "moderation_decision_seconds_count"
    assert value(after, count, action="reject") == 1 + value(before, count, action="reject")


def test_rejected_and_rate_limited_submissions_are_counted(
    engine: Engine, connection: Connection, session: Session
) -> None:
    make_site(session)
    client = make_app(
        engine, connection, metrics_token=TOKEN, ratelimit_enabled=True, ratelimit_email="1/minute"
    ).test_client()
    before = scrape(client)
    statuses = [
        client.post("/api/v1/sites/luac/comments", json=comment_json()).status_code
        for _ in range(2)
    ]
    assert statuses == [202, 429]
    with pytest.raises(ValidationFailed):
        submit_comment(
            session,
            "luac",
            parse_submission(comment_json()),
            now=dt.datetime.now(dt.UTC),
            pipeline=Pipeline([DeliverabilityCheck()]),
            evidence=Evidence(client_address=None, mail_domain=MailDomain.NO_MAIL),
        )
    after = scrape(client)
    for verdict in ("rate_limited", "reject"):
        name = "moderation_submissions_total"
        assert value(after, name, verdict=verdict) == 1 + value(before, name, verdict=verdict)


def test_webhook_deliveries_by_outcome_and_the_oldest_undelivered_event(
    connection: Connection, session: Session, scraper: FlaskClient
) -> None:
    make_site(session)
    factory: sessionmaker[Session] = session_factory(connection)
    t0 = dt.datetime.now(dt.UTC)
    with running_consumer(script=["500"]) as consumer:
        create_endpoint(session, actor=Actor("test"), url=consumer.url, allow_http=True, now=t0)
        session.commit()
        scraper.post("/api/v1/sites/luac/comments", json=comment_json())
        created = session.scalars(select(Event.created_at)).one()
        age = "moderation_oldest_undelivered_event_age_seconds"
        later = created + dt.timedelta(seconds=90)
        assert value(parse(metrics.render(session, later).decode()), age) == 90
        before = scrape(scraper)

        def deliver(now: dt.datetime) -> int:
            return wd.deliver_due(
                factory, webhook_settings(), now=now, owner="t", rng=random.Random(1)
            )

        assert deliver(later) == 1  # the consumer answers 500: tried again later
        assert value(parse(metrics.render(session, later).decode()), age) == 90
        assert deliver(later + dt.timedelta(minutes=1)) == 1
        after = scrape(scraper)
        assert value(parse(metrics.render(session, later).decode()), age) == 0
    name = "moderation_webhook_deliveries_total"
    for outcome in ("retrying", "succeeded"):
        assert value(after, name, outcome=outcome) == 1 + value(before, name, outcome=outcome)


@pytest.mark.subprocess
def test_request_latency_is_labelled_by_endpoint_not_url(scraper: FlaskClient) -> None:
    before = scrape(scraper)
    scraper.get("/healthz")
    scraper.get("/no/such/page/for-anyone@example.com")
    after = scrape(scraper)
    name = "moderation_request_duration_seconds_count"
    for endpoint in ("ops.healthz", "unmatched"):
        assert value(after, name, endpoint=endpoint) == 1 + value(before, name, endpoint=endpoint)
    assert all("example.com" not in str(labels) for _, labels in after)


# Several processes -----------------------------------------------------------------------------


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, dict[str, str], Engine]]:
    """gunicorn with two workers and the deployment's config, in multiprocess mode."""
    metrics_dir = tmp_path / "prometheus"
    metrics_dir.mkdir()
    url = f"sqlite:///{tmp_path / 'served.db'}"
    engine = make_engine(url)
    schema.upgrade(engine)
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODERATION_")}
    env |= {
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        "MODERATION_DATABASE_URL": url,
        "MODERATION_SECRET_KEY": TEST_SECRET,
        "MODERATION_METRICS_TOKEN": TOKEN,
        "MODERATION_BIND": f"127.0.0.1:{port}",
        "MODERATION_WORKERS": "2",
        "MODERATION_THREADS": "2",
        "MODERATION_WEBHOOK_ALLOW_HTTP": "true",
        "MODERATION_WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8",
        "MODERATION_RATELIMIT_ENABLED": "false",
        "MODERATION_CHECK_DELIVERABILITY": "false",
    }
    gunicorn = [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "deploy/gunicorn.conf.py")]
    log = tmp_path / "gunicorn.log"
    with log.open("wb") as out:
        process = subprocess.Popen(gunicorn, cwd=tmp_path, env=env, stdout=out, stderr=out)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{base}/healthz", timeout=1).close()
                break
            except OSError:
                assert process.poll() is None, log.read_text()
                assert time.monotonic() < deadline, "gunicorn did not start"
                time.sleep(0.1)
        yield base, env, engine
    finally:
        process.terminate()
        process.wait(timeout=30)
        engine.dispose()
    assert len(list(metrics_dir.glob("*.db"))) >= 2, "no files from several processes"


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _get(url: str, headers: dict[str, str] | None = None) -> str:
    request = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(request, timeout=10) as response:
        body: str = response.read().decode()
        return body


@pytest.mark.subprocess
def test_several_processes_sum_in_multiprocess_mode(
    served: tuple[str, dict[str, str], Engine],
) -> None:
    base, env, engine = served
    before = parse(_get(f"{base}/metrics", BEARER))
    for _ in range(20):
        _get(f"{base}/healthz")  # a new connection each: either worker may answer
    with running_consumer() as consumer, Session(engine) as session:
        make_site(session)
        create_endpoint(
            session,
            actor=Actor("test"),
            url=consumer.url,
            allow_http=True,
            now=dt.datetime.now(dt.UTC),
        )
        session.commit()
        request = urllib.request.Request(
            f"{base}/api/v1/sites/luac/comments",
            data=json.dumps(comment_json()).encode(),
            headers={"Content-Type": "application/json"},
        )
        urllib.request.urlopen(request, timeout=10).close()
        moderation = str(Path(sys.executable).with_name("moderation"))
        worker = subprocess.run(
            [moderation, "worker", "--once"], env=env, capture_output=True, text=True, timeout=60
        )
        assert worker.returncode == 0, worker.stderr
        assert len(consumer.received) == 1
    after = parse(_get(f"{base}/metrics", BEARER))
    name = "moderation_request_duration_seconds_count"
    healthz = value(after, name, endpoint="ops.healthz") - value(
        before, name, endpoint="ops.healthz"
    )
    assert healthz == 20
    assert value(after, "moderation_submissions_total", verdict="hold") == 1
    # Counted by the worker process, scraped from a gunicorn worker.
    assert value(after, "moderation_webhook_deliveries_total", outcome="succeeded") == 1
    assert value(after, "moderation_queue_depth", site="luac") == 1
