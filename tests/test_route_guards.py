"""Every state-changing moderation route refuses a request without authentication or without a
valid CSRF token, and leaves the database as it was. Routes are enumerated from the URL map, so a
new route is covered the day it is added."""

from __future__ import annotations

import re

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from moderation.models import AuditEvent, Base, Comment, CommentStatus
from tests.helpers import comment_json, json_of, login, make_moderator, make_site

UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
OPEN_FORMS = {"moderate.do_login"}  # the login form checks CSRF but needs no session


def unsafe_routes(app: Flask, prefix: str) -> list[tuple[str, str, str]]:
    routes = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith(prefix):
            continue
        for method in sorted((rule.methods or set()) & UNSAFE):
            routes.append((rule.endpoint, method, rule.rule))
    return routes


def fill(rule: str, comment_id: str) -> str:
    path = rule.replace("<comment_id>", comment_id).replace("<action>", "approve")
    path = re.sub(r"<int:[^>]+>", "1", path)
    path = re.sub(r"<any\(\s*'?([\w-]+)'?[^>]*>", r"\1", path)  # the first allowed name
    return re.sub(r"<[^>]+>", "x", path)


def snapshot(session: Session) -> dict[str, int]:
    session.expire_all()
    counts = {
        table.name: session.scalar(select(func.count()).select_from(table)) or 0
        for table in Base.metadata.sorted_tables
    }
    counts["pending"] = (
        session.scalar(
            select(func.count()).select_from(Comment).where(Comment.status == CommentStatus.PENDING)
        )
        or 0
    )
    return counts


@pytest.fixture
def pending(client: FlaskClient, session: Session) -> str:
    make_site(session)
    make_moderator(session)
    response = client.post("/api/v1/sites/luac/comments", json=comment_json())
    comment_id: str = json_of(response)["id"]
    return comment_id


def test_there_are_state_changing_routes_to_check(app: Flask) -> None:
    assert len(unsafe_routes(app, "/moderate")) >= 13
    assert len(unsafe_routes(app, "/api/v1/moderation")) >= 4


def test_moderation_forms_refuse_without_csrf_even_when_logged_in(
    app: Flask, client: FlaskClient, session: Session, pending: str
) -> None:
    login(client)
    before = snapshot(session)
    for endpoint, method, rule in unsafe_routes(app, "/moderate"):
        for data in ({}, {"csrf_token": "forged"}):
            response = client.open(
                fill(rule, pending), method=method, data={**data, "ids": pending, "body": "x"}
            )
            assert response.status_code == 400, (endpoint, data, response.status_code)
    assert snapshot(session) == before


def test_moderation_forms_refuse_without_a_login(
    app: Flask, client: FlaskClient, session: Session, pending: str
) -> None:
    page = client.get("/moderate/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert csrf
    before = snapshot(session)
    for endpoint, method, rule in unsafe_routes(app, "/moderate"):
        if endpoint in OPEN_FORMS:
            continue
        response = client.open(
            fill(rule, pending),
            method=method,
            data={"csrf_token": csrf.group(1), "ids": pending, "body": "x"},
        )
        assert response.status_code == 401, (endpoint, response.status_code)
    assert snapshot(session) == before


def test_the_moderation_api_refuses_without_a_token(
    app: Flask, client: FlaskClient, session: Session, pending: str
) -> None:
    before = snapshot(session)
    for endpoint, method, rule in unsafe_routes(app, "/api/v1/moderation"):
        response = client.open(
            fill(rule, pending),
            method=method,
            json={"ids": [pending], "action": "approve", "body": "x"},
        )
        assert response.status_code == 401, (endpoint, response.status_code)
        assert json_of(response)["error"]["code"] == "unauthorized"
    assert snapshot(session) == before
    assert session.scalar(select(func.count()).select_from(AuditEvent)) == 0
