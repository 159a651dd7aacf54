"""Submission rate limits per client network, email address and post: 429 with Retry-After."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import redis
from flask.testing import FlaskClient
from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session

from moderation import schema
from moderation.comments import client_network
from moderation.db import make_engine
from moderation.sites import create_site
from tests.helpers import ORIGIN, SUBMIT, comment_json, good_token, json_of, make_app, make_site

REDIS_URL = os.environ.get("MODERATION_TEST_REDIS_URL", "redis://127.0.0.1:6379/3")


def limited_client(engine: Engine, connection: Connection, **limits: str) -> FlaskClient:
    values = {"ratelimit_network": "100/minute", "ratelimit_email": "100/minute"}
    values["ratelimit_post"] = "100/minute"
    values.update(limits)
    return make_app(engine, connection, ratelimit_enabled=True, **values).test_client()


def post(client: FlaskClient, address: str = "127.0.0.1", **fields: str) -> int:
    data = comment_json(form_token=good_token(), body=f"Words {uuid.uuid4()}") | fields
    response = client.post(SUBMIT, json=data, environ_base={"REMOTE_ADDR": address})
    if response.status_code == 429:
        error = json_of(response)["error"]
        assert error["code"] == "rate_limited"
        assert "try again" in error["message"]
        assert 1 <= int(response.headers["Retry-After"]) <= 60
    return response.status_code


def test_one_email_address_is_limited(
    session: Session, engine: Engine, connection: Connection
) -> None:
    make_site(session)
    client = limited_client(engine, connection, ratelimit_email="2/minute")
    statuses = [post(client, address=f"198.51.{i}.1") for i in range(3)]
    assert statuses == [202, 202, 429]
    assert post(client, author_email="someone.else@example.com") == 202


def test_a_network_is_limited_by_its_24_or_48_prefix(
    session: Session, engine: Engine, connection: Connection
) -> None:
    make_site(session)
    client = limited_client(engine, connection, ratelimit_network="2/minute")
    v4 = [
        post(client, address=f"203.0.113.{i}", author_email=f"p{i}@example.com") for i in (1, 2, 3)
    ]
    assert v4 == [202, 202, 429]
    assert post(client, address="203.0.114.1", author_email="q@example.com") == 202
    v6 = [
        post(client, address=a, author_email=f"r{i}@example.com")
        for i, a in enumerate(["2001:db8:1:2::5", "2001:db8:1:ffff::9", "2001:db8:1::1"])
    ]
    assert v6 == [202, 202, 429]
    assert post(client, address="2001:db8:2::1", author_email="s@example.com") == 202


def test_a_post_is_limited(session: Session, engine: Engine, connection: Connection) -> None:
    make_site(session)
    client = limited_client(engine, connection, ratelimit_post="2/minute")
    statuses = [
        post(client, address=f"192.0.{i}.1", author_email=f"t{i}@example.com") for i in range(3)
    ]
    assert statuses == [202, 202, 429]
    assert post(client, post="/another/post/", author_email="u@example.com") == 202


def test_the_no_js_form_is_limited_too(
    session: Session, engine: Engine, connection: Connection
) -> None:
    make_site(session)
    client = limited_client(engine, connection, ratelimit_email="1/minute")
    form = {"author_name": "Ada", "author_email": "ada@example.com", "body": "Hello"}
    path = "/embed/luac/thread?post=/2024/03/28/from-industrial-decline/"
    assert client.post(path, data=form).status_code == 303
    second = client.post(path, data=form | {"body": "Hello again"})
    assert second.status_code == 429
    assert "Retry-After" in second.headers


PROCESS = """
import json, sys
from moderation import create_app
from tests.helpers import settings_for_tests, comment_json
from tests.helpers import good_token

db_url, redis_url, email, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
app = create_app(settings_for_tests(
    database_url=db_url, ratelimit_enabled=True, ratelimit_storage_url=redis_url,
    ratelimit_key_prefix=sys.argv[6],
    ratelimit_email="5/minute",
))
client = app.test_client()
out = []
for i in range(count):
    data = comment_json(author_email=email, body=f"Process comment {i} {sys.argv[5]}",
                        form_token=good_token())
    r = client.post("/api/v1/sites/luac/comments", json=data)
    out.append([r.status_code, r.headers.get("Retry-After")])
print(json.dumps(out))
"""


@pytest.mark.subprocess
def test_limits_are_shared_by_processes_through_redis(tmp_path: Path) -> None:
    store = redis.Redis.from_url(REDIS_URL)
    try:
        store.ping()
    except redis.ConnectionError:
        pytest.skip(f"no Redis at {REDIS_URL}")
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    engine = make_engine(url)
    schema.upgrade(engine)
    with engine.begin() as connection, Session(connection) as session:
        create_site(session, slug="luac", name="Blog", origins=[ORIGIN])
        session.commit()
    engine.dispose()

    tag = uuid.uuid4().hex
    email = f"shared-{tag}@example.com"
    script = tmp_path / "process.py"
    script.write_text(PROCESS)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODERATION_")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent)
    try:
        processes = [
            subprocess.Popen(
                [sys.executable, str(script), url, REDIS_URL, email, "4", f"{tag}-{n}", tag],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
            )
            for n in range(2)
        ]
        results = []
        for process in processes:
            out, err = process.communicate(timeout=120)
            assert process.returncode == 0, err
            results += json.loads(out.strip().splitlines()[-1])
    finally:
        for key in store.scan_iter(f"*{tag}*"):
            store.delete(key)
    statuses = sorted(status for status, _ in results)
    # Eight submissions, five allowed per minute for the address, whichever process got them.
    assert statuses == [202] * 5 + [429] * 3
    assert all(1 <= int(after) <= 60 for status, after in results if status == 429)


def test_ipv4_clients_behind_a_dual_stack_listener_are_not_one_ipv6_network(
    session: Session, engine: Engine, connection: Connection
) -> None:
    """``::ffff:1.2.3.4`` (a dual-stack listener, a proxy forwarding mapped addresses), 6to4,
    Teredo and NAT64 addresses carry an IPv4 client: limited by its /24, like any other."""
    make_site(session)
    client = limited_client(engine, connection, ratelimit_network="2/minute")
    mapped = [
        post(client, address=f"::ffff:203.0.113.{i}", author_email=f"m{i}@example.com")
        for i in (1, 2, 3)
    ]
    assert mapped == [202, 202, 429]
    assert post(client, address="203.0.113.77", author_email="n@example.com") == 429
    others = ["::ffff:198.51.100.1", "2002:c633:6401::1", "64:ff9b::c633:6402"]
    assert [
        post(client, address=a, author_email=f"o{i}@example.com") for i, a in enumerate(others)
    ] == [202, 202, 429]
    assert client_network("2001:0:4136:e378:8000:63bf:3fff:fdd2") == "192.0.2.0/24"  # Teredo
    assert client_network("::ffff:192.0.2.9") == "192.0.2.0/24"
