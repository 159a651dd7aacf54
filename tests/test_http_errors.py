"""Every API error has the one JSON shape; pages outside the API get HTML error pages."""

from __future__ import annotations

import base64
import re
from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from moderation import create_app, schema
from tests.helpers import json_of, make_moderator, make_site, make_token, settings_for_tests


def test_unknown_api_paths_get_json_404(client: FlaskClient) -> None:
    response = client.get("/api/v1/nothing-here")
    assert response.status_code == 404
    assert json_of(response) == {
        "error": {"code": "not_found", "message": "Not found.", "fields": {}}
    }


def test_wrong_methods_get_json_405_with_allow(client: FlaskClient) -> None:
    response = client.delete("/api/v1/sites/luac/comments")
    assert response.status_code == 405
    assert json_of(response)["error"]["code"] == "method_not_allowed"
    assert "POST" in response.headers["Allow"]


def test_an_unexpected_failure_gets_json_500_without_details(app: Flask) -> None:
    @app.get("/api/v1/boom")
    def boom() -> str:
        raise RuntimeError("SELECT secret FROM somewhere")

    response = app.test_client().get("/api/v1/boom")
    assert response.status_code == 500
    body = response.get_data(as_text=True)
    assert json_of(response)["error"]["code"] == "internal_error"
    assert "SELECT" not in body


def test_html_pages_get_html_errors(client: FlaskClient) -> None:
    response = client.get("/embed/nope/thread?post=/x/")
    assert response.status_code == 404
    assert response.mimetype == "text/html"
    assert "There is no site with that name." in response.get_data(as_text=True)


def test_missing_post_parameter_is_a_400(client: FlaskClient, session: Session) -> None:
    make_site(session)
    response = client.get("/api/v1/sites/luac/comments")
    assert response.status_code == 400
    assert json_of(response)["error"]["fields"] == {"post": "Required"}


def test_the_openapi_description_lists_every_json_route(app: Flask, client: FlaskClient) -> None:
    spec = json_of(client.get("/api/v1/openapi.json"))
    assert spec["openapi"].startswith("3.1")
    documented = {(path, method.upper()) for path, item in spec["paths"].items() for method in item}
    routed = set()
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/"):
            continue
        path = re.sub(r"<(?:[^:>]+:)?(\w+)>", r"{\1}", rule.rule)
        for method in rule.methods or set():
            if method not in ("HEAD", "OPTIONS"):
                routed.add((path, method))
    assert documented == routed


def test_an_unreachable_database_gets_503_with_retry_after() -> None:
    app = create_app(settings_for_tests(database_url="postgresql://nobody@127.0.0.1:1/none"))
    response = app.test_client().get("/api/v1/sites/luac/comments?post=/x/")
    assert response.status_code == 503
    assert json_of(response)["error"]["code"] == "unavailable"
    assert int(response.headers["Retry-After"]) > 0


def test_out_of_range_ids_and_cursors_are_client_errors(
    client: FlaskClient, session: Session
) -> None:
    make_site(session)
    auth = {"Authorization": f"Bearer {make_token(session, make_moderator(session))}"}
    huge = "593388125203185532928"
    revoke = client.post(f"/api/v1/moderation/tokens/{huge}/revoke", headers=auth)
    assert revoke.status_code == 404
    cursor = base64.urlsafe_b64encode(f"c{huge}".encode()).decode().rstrip("=")
    listing = client.get(f"/api/v1/moderation/comments?cursor={cursor}", headers=auth)
    assert listing.status_code == 400
    assert client.get("/api/v1/moderation/comments?order=", headers=auth).status_code == 400
    assert client.get("/api/v1/moderation/comments?stauts=spam", headers=auth).status_code == 400


def test_an_exhausted_connection_pool_gets_503_with_retry_after(tmp_path: Path) -> None:
    """Every connection busy past the pool's timeout is the database unavailable, not a 500."""
    engine = create_engine(
        f"sqlite:///{tmp_path / 'busy.db'}", pool_size=1, max_overflow=0, pool_timeout=0.1
    )
    schema.upgrade(engine)
    app = create_app(settings_for_tests(), engine=engine)
    with engine.connect():  # the only connection, held by someone else
        response = app.test_client().get("/api/v1/sites/luac/comments?post=/x/")
    assert response.status_code == 503
    assert json_of(response)["error"]["code"] == "unavailable"
    assert int(response.headers["Retry-After"]) > 0
    engine.dispose()
