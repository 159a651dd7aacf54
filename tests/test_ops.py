"""Operators' endpoints and logs: health, readiness, request ids, nothing personal in logs."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from moderation import create_app, schema
from moderation.db import make_engine
from tests.helpers import comment_json, json_of, make_site, run_command, settings_for_tests


def test_healthz_and_readyz(client: FlaskClient) -> None:
    assert json_of(client.get("/healthz")) == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert json_of(ready)["revision"] == schema.head_revision()


def test_readyz_is_503_without_a_database_or_with_an_old_schema(tmp_path: Path) -> None:
    down = create_app(settings_for_tests(database_url="postgresql://nobody@127.0.0.1:1/none"))
    response = down.test_client().get("/readyz")
    assert response.status_code == 503
    assert json_of(response)["error"]["code"] == "unavailable"
    assert response.headers["Retry-After"]

    url = f"sqlite:///{tmp_path / 'old.db'}"
    schema.upgrade(make_engine(url), "0001")
    old = create_app(settings_for_tests(database_url=url)).test_client().get("/readyz")
    assert old.status_code == 503
    assert "moderation db upgrade" in json_of(old)["error"]["message"]


def test_every_response_has_a_request_id_and_one_log_line_without_personal_data(
    client: FlaskClient, session: Session, caplog: pytest.LogCaptureFixture
) -> None:
    make_site(session)
    caplog.set_level(logging.INFO, logger="moderation.requests")
    response = client.post(
        "/api/v1/sites/luac/comments",
        json=comment_json(author_email="secret.person@example.com", body="Private words"),
        headers={"X-Request-ID": "abc-123"},
    )
    assert response.headers["X-Request-ID"] == "abc-123"
    client.get("/moderate/?q=secret.person@example.com")
    generated = client.get("/healthz", headers={"X-Request-ID": "bad id <script>"})
    assert len(generated.headers["X-Request-ID"]) == 16
    lines = [r.getMessage() for r in caplog.records if r.name == "moderation.requests"]
    assert len(lines) == 3
    assert lines[0].startswith("POST /api/v1/sites/luac/comments 202 ")
    assert "id=abc-123" in lines[0]
    everything = "\n".join(r.getMessage() for r in caplog.records)
    assert "secret.person" not in everything and "Private words" not in everything


def test_json_log_lines(session: Session, caplog: pytest.LogCaptureFixture) -> None:
    app = create_app(settings_for_tests(log_format="json"))
    caplog.set_level(logging.INFO, logger="moderation.requests")
    app.test_client().get("/healthz")
    (line,) = [r.getMessage() for r in caplog.records if r.name == "moderation.requests"]
    assert json.loads(line)["path"] == "/healthz"


def test_moderation_check_reports_what_is_wrong(tmp_path: Path) -> None:
    stale = run_command(tmp_path, "check")
    assert stale.returncode == 1
    assert "run 'moderation db upgrade'" in stale.stderr
    run_command(tmp_path, "db", "upgrade")
    fine = run_command(tmp_path, "check")
    assert fine.returncode == 0, fine.stderr
    assert "ok: database answers" in fine.stdout
    broken = run_command(
        tmp_path, "check", env={"MODERATION_ENV": "production", "MODERATION_SECRET_KEY": "short"}
    )
    assert broken.returncode == 1 and "MODERATION_SECRET_KEY must be set" in broken.stderr
