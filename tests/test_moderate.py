"""The moderators' side: login, sessions, CSRF, permissions, the API's tokens."""

from __future__ import annotations

import datetime as dt

import pytest
from argon2 import PasswordHasher
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Connection, Engine, func, select
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.test import TestResponse

from moderation import create_app
from moderation.errors import ValidationFailed
from moderation.models import (
    ApiToken,
    AuditEvent,
    Comment,
    CommentStatus,
    LoginAttempt,
    LoginSession,
    Role,
)
from moderation.moderators import check_password_rules
from tests.helpers import (
    PASSWORD,
    comment_json,
    csrf_from,
    json_of,
    login,
    make_moderator,
    make_site,
    make_token,
    settings_for_tests,
)


def pending_comment(client: FlaskClient, site: str = "luac") -> str:
    response = client.post(f"/api/v1/sites/{site}/comments", json=comment_json())
    assert response.status_code == 202
    comment_id: str = json_of(response)["id"]
    return comment_id


def test_the_queue_needs_a_login(client: FlaskClient) -> None:
    response = client.get("/moderate/")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/moderate/login")


def test_a_wrong_password_and_an_unknown_login_look_the_same(
    client: FlaskClient, session: Session
) -> None:
    make_moderator(session)
    csrf = csrf_from(client.get("/moderate/login").get_data(as_text=True))
    wrong = client.post(
        "/moderate/login", data={"login": "editor", "password": "nope", "csrf_token": csrf}
    )
    unknown = client.post(
        "/moderate/login", data={"login": "nobody", "password": "nope", "csrf_token": csrf}
    )
    assert wrong.status_code == unknown.status_code == 401
    message = "The login name or password is not correct."
    assert message in wrong.get_data(as_text=True) and message in unknown.get_data(as_text=True)


def test_login_needs_the_csrf_token(client: FlaskClient, session: Session) -> None:
    make_moderator(session)
    client.get("/moderate/login")
    response = client.post("/moderate/login", data={"login": "editor", "password": PASSWORD})
    assert response.status_code == 400
    assert client.get("/moderate/").status_code == 302


def test_login_starts_a_new_session_and_logout_ends_it_on_the_server(
    client: FlaskClient, session: Session
) -> None:
    make_moderator(session)
    client.get("/moderate/login")
    before = client.get_cookie(
        "moderation_session", domain="comments.example.org", path="/moderate"
    )
    assert before is not None
    login(client)
    after = client.get_cookie("moderation_session", domain="comments.example.org", path="/moderate")
    assert after is not None and after.value != before.value
    assert after.http_only and after.same_site == "Lax"

    queue = client.get("/moderate/").get_data(as_text=True)
    assert client.post("/moderate/logout", data={"csrf_token": csrf_from(queue)}).status_code == 303

    # Replaying the cookie from before the logout no longer works: the server forgot it.
    client.set_cookie(
        "moderation_session", after.value, domain="comments.example.org", path="/moderate"
    )
    assert client.get("/moderate/").status_code == 302


def test_an_idle_session_expires(app: Flask, client: FlaskClient, session: Session) -> None:
    make_moderator(session)
    login(client)
    with client.session_transaction("/moderate/") as browser:
        browser["seen"] = int((dt.datetime.now(dt.UTC) - dt.timedelta(minutes=31)).timestamp())
    assert client.get("/moderate/").status_code == 302


def test_every_moderation_form_post_needs_the_csrf_token(
    client: FlaskClient, session: Session
) -> None:
    make_site(session)
    make_moderator(session)
    comment_id = pending_comment(client)
    login(client)
    for data in ({}, {"csrf_token": "forged"}):
        response = client.post(f"/moderate/comments/{comment_id}/approve", data=data)
        assert response.status_code == 400
    assert session.scalar(select(Comment.status)) is CommentStatus.PENDING
    assert session.scalar(select(func.count()).select_from(AuditEvent)) == 0


def test_a_moderator_sees_and_acts_only_on_assigned_sites(
    client: FlaskClient, session: Session
) -> None:
    make_site(session, "luac")
    make_site(session, "other", origin="https://other.blog.gov.uk")
    own = pending_comment(client, "luac")
    foreign_response = client.post(
        "/api/v1/sites/other/comments", json=comment_json(body="On the other blog")
    )
    foreign = json_of(foreign_response)["id"]
    moderator = make_moderator(session, "limited", role=Role.MODERATOR, sites=("luac",))
    auth = {"Authorization": f"Bearer {make_token(session, moderator)}"}

    listed = json_of(client.get("/api/v1/moderation/comments", headers=auth))["comments"]
    assert [c["id"] for c in listed] == [own]
    assert client.get(f"/api/v1/moderation/comments/{foreign}", headers=auth).status_code == 404
    refused = client.post(f"/api/v1/moderation/comments/{foreign}/approve", headers=auth)
    assert refused.status_code == 404

    login(client, "limited")
    queue = client.get("/moderate/").get_data(as_text=True)
    assert "On the other blog" not in queue
    client.post(f"/moderate/comments/{foreign}/approve", data={"csrf_token": csrf_from(queue)})
    statuses = set(session.scalars(select(Comment.status)))
    assert statuses == {CommentStatus.PENDING}
    assert session.scalar(select(func.count()).select_from(AuditEvent)) == 0


def test_the_api_refuses_missing_bad_and_revoked_tokens(
    client: FlaskClient, session: Session
) -> None:
    make_site(session)
    token = make_token(session, make_moderator(session))
    for header in ({}, {"Authorization": "Bearer mod_wrong"}, {"Authorization": "Basic x"}):
        response = client.get("/api/v1/moderation/comments", headers=header)
        assert response.status_code == 401
        assert json_of(response)["error"]["code"] == "unauthorized"
        assert response.headers["WWW-Authenticate"].startswith("Bearer")

    auth = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/v1/moderation/comments", headers=auth).status_code == 200
    stored = session.scalars(select(ApiToken)).one()
    assert stored.token_hash != token and token not in stored.token_hash
    assert stored.last_used_at is not None
    stored.revoked_at = dt.datetime.now(dt.UTC)
    session.commit()
    assert client.get("/api/v1/moderation/comments", headers=auth).status_code == 401


def test_a_tokens_use_is_recorded_to_the_minute(client: FlaskClient, session: Session) -> None:
    # So an integration that reads the queue often does not write (and, on SQLite, wait for
    # the lock every writer shares) on every request.
    make_site(session)
    auth = {"Authorization": f"Bearer {make_token(session, make_moderator(session))}"}
    assert client.get("/api/v1/moderation/comments", headers=auth).status_code == 200
    stored = session.scalars(select(ApiToken)).one()
    first = stored.last_used_at
    assert first is not None
    assert client.get("/api/v1/moderation/comments", headers=auth).status_code == 200
    session.expire_all()
    assert stored.last_used_at == first
    stored.last_used_at = first - dt.timedelta(seconds=61)
    session.commit()
    assert client.get("/api/v1/moderation/comments", headers=auth).status_code == 200
    session.expire_all()
    assert stored.last_used_at is not None and stored.last_used_at >= first


def test_moderation_pages_send_security_headers(client: FlaskClient, session: Session) -> None:
    response = client.get("/moderate/login")
    csp = response.headers["Content-Security-Policy"]
    for directive in ("frame-ancestors 'none'", "object-src 'none'", "base-uri 'none'"):
        assert directive in csp
    assert "'unsafe-inline'" not in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-store"


def test_the_login_redirect_stays_on_this_service(client: FlaskClient, session: Session) -> None:
    make_moderator(session)
    csrf = csrf_from(client.get("/moderate/login").get_data(as_text=True))
    for target in ("https://evil.example/", "//evil.example/moderate", "/moderate/../x\\y"):
        response = client.post(
            f"/moderate/login?next={target}",
            data={"login": "editor", "password": PASSWORD, "csrf_token": csrf},
        )
        assert response.headers["Location"] == "/moderate/"
        csrf = csrf_from(client.get("/moderate/").get_data(as_text=True))


def test_login_throttling_refuses_before_checking_the_password(
    client: FlaskClient, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_moderator(session)
    csrf = csrf_from(client.get("/moderate/login").get_data(as_text=True))

    def attempt(password: str, login_name: str = "editor") -> TestResponse:
        return client.post(
            "/moderate/login",
            data={"login": login_name, "password": password, "csrf_token": csrf},
        )

    for _ in range(5):
        assert attempt("wrong guess").status_code == 401
    verified: list[str] = []
    original = PasswordHasher.verify

    def spy(self: PasswordHasher, hash: str, password: str) -> bool:
        verified.append(password)
        return original(self, hash, password)

    monkeypatch.setattr(PasswordHasher, "verify", spy)
    blocked = attempt(PASSWORD)
    assert blocked.status_code == 429
    assert int(blocked.headers["Retry-After"]) > 0
    assert "Too many failed attempts" in blocked.get_data(as_text=True)
    assert verified == [], "a throttled login must not cost a password hash"
    # Unknown accounts are throttled the same way, so throttling reveals nothing either.
    for _ in range(5):
        attempt("x", "nobody")
    assert attempt("x", "nobody").status_code == 429


def test_login_throttling_per_network_covers_many_accounts(
    client: FlaskClient, session: Session
) -> None:
    make_moderator(session)
    csrf = csrf_from(client.get("/moderate/login").get_data(as_text=True))
    for n in range(20):
        client.post(
            "/moderate/login",
            data={"login": f"guess{n}", "password": "x", "csrf_token": csrf},
            environ_base={"REMOTE_ADDR": "198.51.100.7"},
        )
    from_there = client.post(
        "/moderate/login",
        data={"login": "editor", "password": PASSWORD, "csrf_token": csrf},
        environ_base={"REMOTE_ADDR": "198.51.100.200"},
    )
    assert from_there.status_code == 429
    elsewhere = client.post(
        "/moderate/login",
        data={"login": "editor", "password": PASSWORD, "csrf_token": csrf},
        environ_base={"REMOTE_ADDR": "192.0.2.1"},
    )
    assert elsewhere.status_code == 303


@pytest.mark.parametrize(
    ("password", "ok"),
    [
        ("short", False),
        ("password1", False),
        ("qwertyuiop", False),
        ("x" * 8, True),
        ("only lower case words", True),
        ("ü" * 100, True),
        ("y" * 1025, False),
    ],
)
def test_password_rules_follow_asvs(password: str, ok: bool) -> None:
    if ok:
        check_password_rules(password)
    else:
        with pytest.raises(ValidationFailed):
            check_password_rules(password)


def test_a_login_ends_after_the_absolute_limit_even_when_active(
    client: FlaskClient, session: Session
) -> None:
    make_moderator(session)
    login(client)
    assert client.get("/moderate/").status_code == 200
    stored = session.scalars(select(LoginSession)).one()
    stored.created_at = dt.datetime.now(dt.UTC) - dt.timedelta(hours=12, minutes=1)
    session.commit()
    assert client.get("/moderate/").status_code == 302


def test_client_addresses_come_only_from_trusted_proxy_hops(
    engine: Engine, connection: Connection, session: Session
) -> None:
    make_moderator(session)
    for hops, expected in ((0, "127.0.0.0/24"), (1, "203.0.113.0/24")):
        app = create_app(settings_for_tests(trusted_proxy_hops=hops), engine=engine)
        app.extensions["moderation.sessionmaker"] = sessionmaker(
            bind=connection, join_transaction_mode="create_savepoint"
        )
        client = app.test_client()
        csrf = csrf_from(client.get("/moderate/login").get_data(as_text=True))
        client.post(
            "/moderate/login",
            data={"login": "editor", "password": "wrong", "csrf_token": csrf},
            headers={"X-Forwarded-For": "198.51.100.9, 203.0.113.5"},
        )
        session.expire_all()
        latest = session.scalars(select(LoginAttempt).order_by(LoginAttempt.id.desc())).first()
        assert latest is not None and latest.network == expected, hops
