"""Managing webhooks: the moderation API, the admin pages and the CLI; admins only."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from flask.testing import FlaskClient
from sqlalchemy import Connection, Engine, select
from sqlalchemy.orm import Session

from moderation.cli import main
from moderation.models import (
    AuditEvent,
    DeliveryStatus,
    Role,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    utcnow,
)
from moderation.outbox import webhooks as webhook_outbox
from tests.helpers import (
    TEST_SECRET,
    app_in_transaction,
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


def audits(session: Session) -> list[AuditEvent]:
    session.expire_all()
    return list(session.scalars(select(AuditEvent).order_by(AuditEvent.id)))


def test_every_change_of_an_endpoint_through_the_api_is_audited_without_its_secret(
    client: FlaskClient, session: Session
) -> None:
    make_site(session)
    admin = make_token(session, make_moderator(session, "boss", role=Role.ADMIN))
    base = "/api/v1/moderation/webhooks"
    url = "https://hooks.slack.example/services/T0/B0/credential-in-path"
    created = json_of(client.post(base, json={"url": url, "site": "luac"}, headers=bearer(admin)))
    endpoint_id, secrets = created["id"], [created["secret"]]
    patch = {"include_personal_data": True, "event_types": ["comment.approved"]}
    client.patch(f"{base}/{endpoint_id}", json=patch, headers=bearer(admin))
    client.patch(f"{base}/{endpoint_id}", json={"description": ""}, headers=bearer(admin))
    client.post(f"{base}/{endpoint_id}/disable", headers=bearer(admin))
    client.post(f"{base}/{endpoint_id}/enable", headers=bearer(admin))
    rotated = client.post(f"{base}/{endpoint_id}/rotate-secret", headers=bearer(admin))
    secrets.append(json_of(rotated)["secret"])
    client.post(f"{base}/{endpoint_id}/test", headers=bearer(admin))  # no change: no audit

    rows = audits(session)
    assert [r.action for r in rows] == [
        "webhook.add",
        "webhook.update",  # the unchanged description is no change
        "webhook.disable",
        "webhook.enable",
        "webhook.rotate_secret",
    ]
    assert {r.actor for r in rows} == {"boss (token integration)"}
    assert all(r.before["endpoint"] == r.after["endpoint"] == endpoint_id for r in rows[1:])
    assert all(r.site_id is not None for r in rows)
    added, updated, disabled, _, rotation = rows
    assert added.after["site"] == "luac" and added.after["include_personal_data"] is False
    assert added.after["url"].startswith("https://hooks.slack.example/… (sha256 ")
    assert updated.before == {
        "endpoint": endpoint_id, "include_personal_data": False, "event_types": ["all"]
    }  # fmt: skip
    assert updated.after == {
        "endpoint": endpoint_id, "include_personal_data": True, "event_types": ["comment.approved"]
    }  # fmt: skip
    assert disabled.after == {
        "endpoint": endpoint_id, "enabled": False, "reason": "disabled by an administrator"
    }  # fmt: skip
    assert rotation.after["secret"] == "new" and rotation.after["previous_secret_until"]
    recorded = " ".join(f"{r.before} {r.after}" for r in rows)
    assert "credential-in-path" not in recorded and "whsec_" not in recorded
    assert not any(secret in recorded or secret[6:] in recorded for secret in secrets)

    moved = client.patch(f"{base}/{endpoint_id}", json={"url": url + "-2"}, headers=bearer(admin))
    assert moved.status_code == 200
    change = audits(session)[-1]
    assert change.action == "webhook.update" and set(change.after) == {"endpoint", "url"}
    assert change.before["url"] != change.after["url"]


def test_endpoint_changes_in_the_admin_pages_and_by_the_worker_are_audited(
    client: FlaskClient, session: Session
) -> None:
    make_site(session)
    make_moderator(session, "editor", role=Role.ADMIN)
    login(client)
    page = client.get("/moderate/webhooks/").get_data(as_text=True)
    client.post(
        "/moderate/webhooks/",
        data={"url": "https://hooks.example.org/in", "csrf_token": csrf_from(page)},
    )
    endpoint = session.scalars(select(WebhookEndpoint)).one()
    detail_url = f"/moderate/webhooks/{endpoint.public_id}"
    token = csrf_from(client.get(detail_url).get_data(as_text=True))
    client.post(f"{detail_url}/rotate-secret", data={"csrf_token": token})
    client.post(f"{detail_url}/disable", data={"csrf_token": token})
    client.post(f"{detail_url}/disable", data={"csrf_token": token})  # already: nothing more
    client.post(f"{detail_url}/enable", data={"csrf_token": token})
    rows = audits(session)
    assert [(r.action, r.actor) for r in rows] == [
        ("webhook.add", "editor"),
        ("webhook.rotate_secret", "editor"),
        ("webhook.disable", "editor"),
        ("webhook.enable", "editor"),
    ]
    assert all(r.site_id is None and r.after["endpoint"] == endpoint.public_id for r in rows)

    endpoint = session.scalars(select(WebhookEndpoint)).one()
    webhook_outbox.disable(session, endpoint, "failing for 3 days", now=utcnow())
    session.commit()
    last = audits(session)[-1]
    assert (last.action, last.actor) == ("webhook.disable", "automatic (the endpoint kept failing)")
    assert last.after["reason"] == "failing for 3 days" and last.moderator_id is None

    log = client.get("/moderate/audit").get_data(as_text=True)
    assert "Rotated a webhook endpoint&#39;s secret" in log or "Rotated a webhook endpoint's" in log
    assert "Disabled a webhook endpoint" in log


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


def test_the_api_adds_a_slack_endpoint_and_refuses_personal_data_for_it(
    engine: Engine, connection: Connection, session: Session
) -> None:
    client = app_in_transaction(engine, connection, public_url="https://c.example").test_client()
    make_site(session)
    admin = bearer(make_token(session, make_moderator(session, "boss", role=Role.ADMIN)))
    base = "/api/v1/moderation/webhooks"
    created = client.post(
        base, json={"url": "https://hooks.slack.com/services/T0/B0/x", "format": "slack"},
        headers=admin,
    )  # fmt: skip
    assert created.status_code == 201 and json_of(created)["format"] == "slack"
    endpoint_id = json_of(created)["id"]
    personal = client.patch(
        f"{base}/{endpoint_id}", json={"include_personal_data": True}, headers=admin
    )
    assert personal.status_code == 422
    assert "include_personal_data" in json_of(personal)["error"]["fields"]
    bad = client.patch(f"{base}/{endpoint_id}", json={"format": "irc"}, headers=admin)
    assert bad.status_code == 422
    back = client.patch(f"{base}/{endpoint_id}", json={"format": "standard"}, headers=admin)
    assert json_of(back)["format"] == "standard"
    standard = json_of(client.post(base, json={"url": "https://x.example/"}, headers=admin))
    assert standard["format"] == "standard"
