"""Offboarding: a disabled moderator loses every way in at once (sessions, API tokens, mailed
links, login), hears of nothing more, and the audit log keeps naming them."""

from __future__ import annotations

import datetime as dt

from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from moderation.mail import links, outbox
from moderation.models import ApiToken, AuditEvent, Role, utcnow
from tests.helpers import (
    PASSWORD,
    TEST_SECRET,
    comment_json,
    csrf_from,
    json_of,
    login,
    make_moderator,
    make_site,
    make_token,
)


def submit(client: FlaskClient, body: str) -> str:
    response = client.post("/api/v1/sites/luac/comments", json=comment_json(body=body))
    comment_id: str = json_of(response)["id"]
    return comment_id


def test_a_disabled_moderator_loses_every_way_in_and_stays_in_the_audit(
    client: FlaskClient, session: Session
) -> None:
    make_site(session)
    editor = make_moderator(session)
    bob = make_moderator(session, "bob", role=Role.MODERATOR, sites=("luac",))
    bob_token = make_token(session, bob)
    bob_client = client.application.test_client()
    login(bob_client, "bob")
    first, second = submit(client, "A first comment"), submit(client, "Another one")
    page = bob_client.get("/moderate/").get_data(as_text=True)
    bob_client.post(f"/moderate/comments/{first}/approve", data={"csrf_token": csrf_from(page)})
    mailed = links.sign(
        TEST_SECRET, links.ACT, {"c": second, "m": bob.id, "a": "approve"},
        now=utcnow(), valid_for=dt.timedelta(days=1),
    )  # fmt: skip
    assert client.get(f"/mail/act/{mailed}").status_code == 200

    login(client)
    admin_page = client.get("/moderate/admin/moderators").get_data(as_text=True)
    assert "Disable bob" in admin_page and "Disable editor" not in admin_page
    response = client.post(
        "/moderate/admin/moderators/bob/disabled",
        data={"csrf_token": csrf_from(admin_page), "disabled": "1"},
        follow_redirects=True,
    )
    assert "Disabled bob: their logins ended" in response.get_data(as_text=True)
    assert "Enable bob" in response.get_data(as_text=True)

    # Their open session, their token, their mailed link and their password: all refused.
    assert bob_client.get("/moderate/").status_code == 302
    auth = {"Authorization": f"Bearer {bob_token}"}
    assert client.get("/api/v1/moderation/comments", headers=auth).status_code == 401
    assert client.get(f"/mail/act/{mailed}").status_code == 403
    page = bob_client.get("/moderate/login").get_data(as_text=True)
    refused = bob_client.post(
        "/moderate/login",
        data={"login": "bob", "password": PASSWORD, "csrf_token": csrf_from(page)},
    )
    assert refused.status_code == 401
    assert "The login name or password is not correct." in refused.get_data(as_text=True)
    # No more mail goes to them.
    assert [m.login for m in outbox.site_moderators(session, bob.sites[0].id)] == ["editor"]

    # The audit log still names them for what they did, and records who disabled them.
    audit_page = client.get("/moderate/audit?moderator=bob").get_data(as_text=True)
    assert "pending → approved" in audit_page and '<td data-label="Who">bob</td>' in audit_page
    rows = session.execute(select(AuditEvent.actor, AuditEvent.action).order_by(AuditEvent.id))
    assert [tuple(r) for r in rows if r.action != "token.add"][-2:] == [
        ("bob", "approve"),
        ("editor", "moderator.disable"),
    ]

    # Enabled again through the API: bob logs in; the old token stays revoked.
    admin_auth = {"Authorization": f"Bearer {make_token(session, editor)}"}
    enabled = client.patch(
        "/api/v1/moderation/moderators/bob", json={"disabled": False}, headers=admin_auth
    )
    assert enabled.status_code == 200 and json_of(enabled)["disabled"] is False
    login(bob_client, "bob")
    assert bob_client.get("/moderate/").status_code == 200
    assert client.get("/api/v1/moderation/comments", headers=auth).status_code == 401


def test_the_api_disables_a_moderator_and_refuses_nonsense(
    client: FlaskClient, session: Session
) -> None:
    make_site(session)
    editor = make_moderator(session)
    bob = make_moderator(session, "bob", role=Role.MODERATOR, sites=("luac",))
    make_token(session, bob)
    auth = {"Authorization": f"Bearer {make_token(session, editor)}"}

    listed = json_of(client.get("/api/v1/moderation/moderators", headers=auth))["moderators"]
    assert {m["login"]: m["disabled"] for m in listed} == {"bob": False, "editor": False}
    disabled = client.patch(
        "/api/v1/moderation/moderators/bob", json={"disabled": True}, headers=auth
    )
    assert disabled.status_code == 200
    assert json_of(disabled)["disabled"] is True
    assert json_of(disabled)["sites"] == ["luac"]  # nothing else changed
    session.expire_all()
    assert all(
        t.revoked_at
        for t in session.scalars(select(ApiToken).where(ApiToken.moderator_id == bob.id))
    )

    nonsense = client.patch(
        "/api/v1/moderation/moderators/bob", json={"disabled": "yes"}, headers=auth
    )
    assert nonsense.status_code == 422
    assert json_of(nonsense)["error"]["fields"] == {"disabled": "Give true or false"}
    yourself = client.patch(
        "/api/v1/moderation/moderators/editor", json={"disabled": True}, headers=auth
    )
    assert yourself.status_code == 422
    assert json_of(yourself)["error"]["fields"] == {
        "disabled": "You cannot disable your own account"
    }
    actions = session.scalars(
        select(AuditEvent.action).where(AuditEvent.action.like("moderator.%"))
    ).all()
    assert actions.count("moderator.disable") == 1


def test_a_refused_password_keeps_what_the_admin_typed(
    client: FlaskClient, session: Session
) -> None:
    make_site(session)
    make_moderator(session)
    login(client)
    page = client.get("/moderate/admin/moderators").get_data(as_text=True)
    refused = client.post(
        "/moderate/admin/moderators",
        data={"csrf_token": csrf_from(page), "login": "carol", "email": "carol@example.gov.uk",
              "password": "short", "role": "moderator", "sites": "luac"},
    )  # fmt: skip
    assert refused.status_code == 422
    html = refused.get_data(as_text=True)
    assert 'name="login" autocomplete="off" value="carol"' in html
    assert 'value="carol@example.gov.uk"' in html
    assert 'id="new-site-luac" name="sites" value="luac" checked' in html
    assert "short" not in html.split('id="password"')[1][:200]  # never the password
