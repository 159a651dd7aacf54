"""Managing webhooks: the moderation API, the admin pages and the CLI; admins only."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from moderation.cli import main
from moderation.models import DeliveryStatus, Role, WebhookAttempt, WebhookDelivery
from tests.helpers import (
    TEST_SECRET,
    csrf_from,
    json_of,
    login,
    make_moderator,
    make_site,
    make_token,
)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_the_api_manages_endpoints_for_admins_only(client: FlaskClient, session: Session) -> None:
    make_site(session)
    admin = make_token(session, make_moderator(session, "boss", role=Role.ADMIN))
    editor = make_token(
        session, make_moderator(session, "ed", role=Role.MODERATOR, sites=("luac",))
    )
    base = "/api/v1/moderation/webhooks"

    denied = client.get(base, headers=bearer(editor))
    assert denied.status_code == 403 and json_of(denied)["error"]["code"] == "forbidden"
    assert client.get(base).status_code == 401

    bad = client.post(base, json={"url": "ftp://x.example/"}, headers=bearer(admin))
    assert bad.status_code == 422 and "url" in json_of(bad)["error"]["fields"]
    bad = client.post(
        base, json={"url": "https://x.example/", "event_types": ["nope"]}, headers=bearer(admin)
    )
    assert bad.status_code == 422

    created = client.post(
        base,
        json={
            "url": "https://hooks.example.org/in",
            "event_types": ["comment.approved"],
            "site": "luac",
        },
        headers=bearer(admin),
    )
    assert created.status_code == 201
    body = json_of(created)
    endpoint_id, secret = body["id"], body["secret"]
    assert secret.startswith("whsec_") and body["site"] == "luac" and body["enabled"] is True

    listed = json_of(client.get(base, headers=bearer(admin)))["endpoints"]
    assert [e["id"] for e in listed] == [endpoint_id] and "secret" not in listed[0]

    patched = client.patch(
        f"{base}/{endpoint_id}", json={"include_personal_data": True}, headers=bearer(admin)
    )
    assert json_of(patched)["include_personal_data"] is True
    disabled = client.post(f"{base}/{endpoint_id}/disable", headers=bearer(admin))
    assert json_of(disabled)["enabled"] is False
    enabled = client.post(f"{base}/{endpoint_id}/enable", headers=bearer(admin))
    assert json_of(enabled)["enabled"] is True

    rotated = json_of(client.post(f"{base}/{endpoint_id}/rotate-secret", headers=bearer(admin)))
    assert rotated["secret"] != secret and rotated["previous_secret_expires_at"]

    test = json_of(client.post(f"{base}/{endpoint_id}/test", headers=bearer(admin)))
    assert test["event_type"] == "webhook.test" and test["status"] == "pending"
    delivery = session.get(WebhookDelivery, test["id"])
    assert delivery is not None
    delivery.status = DeliveryStatus.FAILED
    delivery.attempts = 8
    session.add(
        WebhookAttempt(
            delivery_id=delivery.id, webhook_timestamp=1, status_code=500, error="HTTP 500"
        )
    )
    session.commit()

    log = json_of(client.get(f"{base}/{endpoint_id}/deliveries", headers=bearer(admin)))
    [entry] = log["deliveries"]
    assert entry["status"] == "failed" and entry["attempt_log"][0]["status_code"] == 500

    again = client.post(
        f"{base}/{endpoint_id}/deliveries/{delivery.id}/redeliver", headers=bearer(admin)
    )
    redelivered = json_of(again)
    assert redelivered["status"] == "pending" and redelivered["attempts"] == 0
    assert redelivered["webhook_id"] == entry["webhook_id"]
    assert client.get(f"{base}/ep_missing", headers=bearer(admin)).status_code == 404


def test_the_admin_pages_add_test_rotate_and_redeliver(
    client: FlaskClient, session: Session
) -> None:
    make_site(session)
    make_moderator(session, "editor", role=Role.ADMIN)
    login(client)
    page = client.get("/moderate/webhooks/").get_data(as_text=True)
    assert "There are no webhook endpoints yet." in page

    without_csrf = client.post("/moderate/webhooks/", data={"url": "https://a.example/"})
    assert without_csrf.status_code == 400

    invalid = client.post(
        "/moderate/webhooks/", data={"url": "javascript:alert(1)", "csrf_token": csrf_from(page)}
    )
    assert invalid.status_code == 422 and "There is a problem" in invalid.get_data(as_text=True)

    added = client.post(
        "/moderate/webhooks/",
        data={
            "url": "https://hooks.example.org/in",
            "event_types": ["comment.approved", "comment.spam"],
            "csrf_token": csrf_from(page),
        },
    )
    assert added.status_code == 200
    assert 'id="webhook-secret">whsec_' in added.get_data(as_text=True)

    page = client.get("/moderate/webhooks/").get_data(as_text=True)
    assert "comment.approved, comment.spam" in page
    from moderation.models import WebhookEndpoint

    endpoint = session.scalars(select(WebhookEndpoint)).one()
    detail_url = f"/moderate/webhooks/{endpoint.public_id}"
    token = csrf_from(client.get(detail_url).get_data(as_text=True))
    assert client.post(f"{detail_url}/test", data={"csrf_token": token}).status_code == 303
    rotated = client.post(f"{detail_url}/rotate-secret", data={"csrf_token": token})
    assert "also signs deliveries for 24 hours" in rotated.get_data(as_text=True)
    assert client.post(f"{detail_url}/disable", data={"csrf_token": token}).status_code == 303
    listing = client.get("/moderate/webhooks/").get_data(as_text=True)
    assert "disabled by an administrator" in listing

    detail = client.get(detail_url).get_data(as_text=True)
    assert "webhook.test" in detail
    delivery = session.scalars(select(WebhookDelivery)).one()
    redo = client.post(
        f"{detail_url}/deliveries/{delivery.id}/redeliver", data={"csrf_token": token}
    )
    assert redo.status_code == 303


def test_the_admin_pages_refuse_moderators(client: FlaskClient, session: Session) -> None:
    make_site(session)
    make_moderator(session, "editor", role=Role.MODERATOR, sites=("luac",))
    login(client)
    assert client.get("/moderate/webhooks/").status_code == 403
    fresh = client.application.test_client()
    assert fresh.get("/moderate/webhooks/").status_code == 302


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    env = {
        "MODERATION_ENV": "testing",
        "MODERATION_SECRET_KEY": TEST_SECRET,
        "MODERATION_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
        "MODERATION_FAST_PASSWORD_HASHING": "true",
    }
    runner = CliRunner()
    assert runner.invoke(main, ["db", "upgrade"], env=env).exit_code == 0
    return env


def test_the_cli_manages_endpoints(cli_env: dict[str, str]) -> None:
    runner = CliRunner()

    def run(*args: str) -> str:
        result = runner.invoke(main, list(args), env=cli_env)
        assert result.exit_code == 0, result.output
        return result.output

    refused = runner.invoke(main, ["webhook", "add", "http://hooks.example.org/"], env=cli_env)
    assert refused.exit_code != 0 and "https" in refused.output
    added = run("webhook", "add", "https://hooks.example.org/", "--event", "comment.approved")
    assert "whsec_" in added
    endpoint_id = added.split()[3]
    assert endpoint_id.startswith("ep_")
    assert "comment.approved" in run("webhook", "list")
    run("webhook", "disable", endpoint_id)
    assert "disabled by an administrator" in run("webhook", "list")
    run("webhook", "enable", endpoint_id)
    assert "\tenabled" in run("webhook", "list")
    assert "whsec_" in run("webhook", "rotate-secret", endpoint_id)
    assert "Queued test delivery" in run("webhook", "test", endpoint_id)
