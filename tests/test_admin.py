"""Admins manage sites, moderators and tokens in the UI and the API; moderators cannot."""

from __future__ import annotations

import random
import time
import urllib.parse

from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.test import TestResponse

from moderation.models import ApiToken, AuditEvent, ModerationPolicy, Moderator, Role, Site
from tests.helpers import csrf_from, json_of, login, make_moderator, make_site, make_token


def form(client: FlaskClient, page: str, path: str, **data: str | list[str]) -> str:
    csrf = csrf_from(client.get(page).get_data(as_text=True))
    response = client.post(path, data={"csrf_token": csrf, **data}, follow_redirects=True)
    return response.get_data(as_text=True)


def test_an_admin_adds_and_configures_a_site_in_the_ui(
    client: FlaskClient, session: Session
) -> None:
    make_moderator(session)
    login(client)
    page = form(
        client,
        "/moderate/admin/sites",
        "/moderate/admin/sites",
        slug="news",
        name="News blog",
        origins="https://news.blog.gov.uk\nhttps://www.news.gov.uk",
    )
    assert "Added the site News blog." in page
    added = session.scalars(select(AuditEvent).where(AuditEvent.action == "site.add")).one()
    assert added.actor == "editor" and added.after["origins"] == [
        "https://news.blog.gov.uk",
        "https://www.news.gov.uk",
    ]
    page = form(
        client,
        "/moderate/admin/sites/news",
        "/moderate/admin/sites/news",
        name="News blog",
        origins="https://news.blog.gov.uk",
        policy="trusted",
        link_limit="1",
        close_after_days="30",
        privacy_notice_url="https://www.gov.uk/help/privacy-notice",
        comment_policy_url="",
        reject_reasons="Off topic\nAbusive",
    )
    assert "Saved the settings of News blog." in page
    session.expire_all()
    site = session.scalars(select(Site).where(Site.slug == "news")).one()
    assert site.origins == ["https://news.blog.gov.uk"]
    assert site.policy is ModerationPolicy.TRUSTED
    assert (site.link_limit, site.close_after_days) == (1, 30)
    assert site.reject_reasons == ["Off topic", "Abusive"]
    audit = session.scalars(select(AuditEvent).where(AuditEvent.action == "site.update")).one()
    assert audit.before["policy"] == "all" and audit.after["policy"] == "trusted"

    bad = client.post(
        "/moderate/admin/sites/news",
        data={"csrf_token": csrf_from(page), "origins": "not a url", "link_limit": "-3"},
    )
    assert bad.status_code == 422
    text = bad.get_data(as_text=True)
    assert "There is a problem" in text and "is not an origin" in text

    # Mail is off here: the page says so in words, never by an environment variable's name.
    no_mail = client.post(
        "/moderate/admin/sites/news",
        data={
            "csrf_token": csrf_from(page),
            "name": "News blog",
            "origins": "https://news.blog.gov.uk",
            "verify_email": "true",
        },
    )
    assert no_mail.status_code == 422
    text = no_mail.get_data(as_text=True)
    assert "Mail is not set up on this server" in text and "MODERATION_" not in text


def test_an_admin_manages_moderators_and_tokens_in_the_ui(
    client: FlaskClient, session: Session
) -> None:
    make_site(session)
    make_moderator(session)
    login(client)
    page = form(
        client,
        "/moderate/admin/moderators",
        "/moderate/admin/moderators",
        login="newbie",
        email="newbie@example.gov.uk",
        password="a good long passphrase",
        role="moderator",
        sites=["luac"],
    )
    assert "Added newbie." in page
    common = client.post(
        "/moderate/admin/moderators",
        data={
            "csrf_token": csrf_from(page),
            "login": "weak",
            "email": "weak@example.gov.uk",
            "password": "password123",
            "role": "moderator",
        },
    )
    assert common.status_code == 422
    form(client, "/moderate/admin/moderators", "/moderate/admin/moderators/newbie", role="admin")
    session.expire_all()
    newbie = session.scalars(select(Moderator).where(Moderator.login == "newbie")).one()
    assert newbie.role is Role.ADMIN and newbie.sites == []

    created = form(
        client, "/moderate/admin/tokens", "/moderate/admin/tokens", name="crm", moderator="newbie"
    )
    assert "it will not be shown again" in created
    token = session.scalars(select(ApiToken)).one()
    page = form(client, "/moderate/admin/tokens", f"/moderate/admin/tokens/{token.id}/revoke")
    assert "Revoked the token crm." in page
    session.expire_all()
    assert session.scalars(select(ApiToken)).one().revoked_at is not None
    actions = set(session.scalars(select(AuditEvent.action)))
    assert {"moderator.add", "moderator.update", "token.add", "token.revoke"} <= actions


def test_an_admin_cannot_remove_their_own_admin_role(client: FlaskClient, session: Session) -> None:
    make_moderator(session)
    login(client)
    form(
        client, "/moderate/admin/moderators", "/moderate/admin/moderators/editor", role="moderator"
    )
    session.expire_all()
    assert session.scalars(select(Moderator)).one().role is Role.ADMIN


def test_moderators_cannot_reach_administration(client: FlaskClient, session: Session) -> None:
    make_site(session)
    plain = make_moderator(session, "plain", role=Role.MODERATOR, sites=("luac",))
    auth = {"Authorization": f"Bearer {make_token(session, plain)}"}
    login(client, "plain")
    assert client.get("/moderate/admin/sites").status_code == 403
    assert "Admin</a>" not in client.get("/moderate/").get_data(as_text=True)
    page = client.get("/moderate/").get_data(as_text=True)
    refused = client.post(
        "/moderate/admin/sites/luac", data={"csrf_token": csrf_from(page), "name": "Mine now"}
    )
    assert refused.status_code == 403
    for method, path, body in (
        ("GET", "/api/v1/moderation/sites", None),
        ("PATCH", "/api/v1/moderation/sites/luac", {"name": "Mine now"}),
        ("PATCH", "/api/v1/moderation/moderators/plain", {"role": "admin"}),
        ("POST", "/api/v1/moderation/tokens", {"name": "x", "moderator": "plain"}),
    ):
        response = client.open(path, method=method, json=body, headers=auth)
        assert response.status_code == 403, path
        assert json_of(response)["error"]["code"] == "forbidden"
    session.expire_all()
    assert session.scalars(select(Site)).one().name == "Blog luac"
    assert session.scalars(select(Moderator)).one().role is Role.MODERATOR


def test_the_admin_api(client: FlaskClient, session: Session) -> None:
    auth = {"Authorization": f"Bearer {make_token(session, make_moderator(session))}"}
    created = client.post(
        "/api/v1/moderation/sites",
        json={
            "slug": "luac",
            "name": "LUAC",
            "origins": ["https://levellingupadvisorycouncil.blog.gov.uk"],
            "link_limit": 3,
        },
        headers=auth,
    )
    assert created.status_code == 201
    assert json_of(created)["link_limit"] == 3
    patched = client.patch(
        "/api/v1/moderation/sites/luac", json={"reject_reasons": ["Spam"]}, headers=auth
    )
    assert json_of(patched)["reject_reasons"] == ["Spam"]
    unknown = client.patch("/api/v1/moderation/sites/luac", json={"slug": "x"}, headers=auth)
    assert unknown.status_code == 422
    # An unknown name is not repeated back, however long or however many.
    hostile = {"<script>" + "x" * 10_000: 1, **{f"field{n}": 1 for n in range(2_000)}}
    refused = client.patch("/api/v1/moderation/sites/luac", json=hostile, headers=auth)
    text = refused.get_data(as_text=True)
    assert refused.status_code == 422 and "reject_reasons" in text
    assert "<script>" not in text and "field1999" not in text and len(text) < 1_000
    assert (
        json_of(client.get("/api/v1/moderation/sites", headers=auth))["sites"][0]["slug"] == "luac"
    )

    moderators = json_of(client.get("/api/v1/moderation/moderators", headers=auth))["moderators"]
    assert moderators == [
        {
            "login": "editor",
            "email": "editor@example.gov.uk",
            "role": "admin",
            "sites": [],
            "mail_preference": "each",
            "disabled": False,
        }
    ]
    token = json_of(
        client.post(
            "/api/v1/moderation/tokens", json={"name": "ci", "moderator": "editor"}, headers=auth
        )
    )
    assert token["token"].startswith("mod_")
    listed = json_of(client.get("/api/v1/moderation/tokens", headers=auth))["tokens"]
    assert all("token" not in t for t in listed) and len(listed) == 2
    revoked = client.post(f"/api/v1/moderation/tokens/{token['id']}/revoke", headers=auth)
    assert json_of(revoked)["revoked_at"] is not None
    refused = client.get(
        "/api/v1/moderation/sites", headers={"Authorization": f"Bearer {token['token']}"}
    )
    assert refused.status_code == 401


def test_a_site_sets_its_own_privacy_text(client: FlaskClient, session: Session) -> None:
    make_site(session)
    auth = {"Authorization": f"Bearer {make_token(session, make_moderator(session))}"}
    fragment = "/embed/luac/thread?post=/a/"
    default = "We only ask for your email address so we know you&#39;re a real person."
    assert default in client.get(fragment).get_data(as_text=True)
    text = "We use your address only to contact you about your comment."
    patched = client.patch(
        "/api/v1/moderation/sites/luac", json={"privacy_text": text}, headers=auth
    )
    assert json_of(patched)["privacy_text"] == text
    page = client.get(fragment).get_data(as_text=True)
    assert text in page and default not in page


def _unsplittable(value: str) -> bool:
    """Whether urllib's urlsplit refuses the value (or its port): the values that gave a 500."""
    try:
        urllib.parse.urlsplit(value.strip()).port  # noqa: B018
    except ValueError:
        return True
    return False


def _hostile_urls() -> list[str]:
    named = [
        "http://[",
        "https://[",
        "http://[::1",
        "https://[::1]:99999",
        "http://]",
        "https://[zz::1]",
        "https://[fe80::1%25eth0",
        "https://x:99999",
        "https://x:-1",
        "https://x:port",
        "https://x:1:2",
        "http://[" * 1200,  # about 10 kB
        "https://[" + ":" * 9980 + "]",
        "https://user@[::1:",
        "  http://[  ",
    ]
    pieces = ["[", "]", ":", "::1", "%", "@", "/", "?", "#", "x", "99999", "-1", "v1."]
    generated = [
        random.Random(seed).choice(["http://", "https://"])
        + "".join(random.Random(seed).choices(pieces, k=6))
        for seed in range(400)
    ]
    return named + [v for v in dict.fromkeys(generated) if _unsplittable(v)][:30]


HOSTILE_URLS = _hostile_urls()


def _refused(response: TestResponse, field: str, value: str) -> None:
    """A 422 in the documented error shape, naming the field, never repeating the value."""
    assert response.status_code == 422, (value[:40], response.get_data(as_text=True)[:300])
    error = json_of(response)["error"]
    assert error["code"] == "validation_failed" and set(error) == {"code", "message", "fields"}
    assert field in error["fields"]
    if len(value.strip()) > 8:
        assert value.strip() not in response.get_data(as_text=True)


def test_urls_urlsplit_cannot_take_are_a_422_in_every_admin_path(
    client: FlaskClient, session: Session
) -> None:
    """``http://[`` (and a port that is no port) made urlsplit raise: a 500 from the sites'
    origins and addresses and from webhook endpoint URLs, in the API and the admin pages."""
    assert len(HOSTILE_URLS) > 30 and all(_unsplittable(v) for v in HOSTILE_URLS)
    make_site(session)
    auth = {"Authorization": f"Bearer {make_token(session, make_moderator(session))}"}
    endpoint = json_of(
        client.post(
            "/api/v1/moderation/webhooks",
            json={"url": "https://hooks.example.org/in"},
            headers=auth,
        )
    )["id"]
    login(client)
    csrf = csrf_from(client.get("/moderate/admin/sites").get_data(as_text=True))
    costs: list[float] = []  # CPU seconds of each API request
    for value in HOSTILE_URLS:
        api: list[tuple[str, str, str, dict[str, object]]] = [
            ("post", "/api/v1/moderation/sites", "origins", {"slug": "s", "name": "S"}),
            ("patch", "/api/v1/moderation/sites/luac", "origins", {}),
            ("patch", "/api/v1/moderation/sites/luac", "privacy_notice_url", {}),
            ("patch", "/api/v1/moderation/sites/luac", "comment_policy_url", {}),
            ("post", "/api/v1/moderation/webhooks", "url", {}),
            ("patch", f"/api/v1/moderation/webhooks/{endpoint}", "url", {}),
        ]
        for method, path, field, rest in api:
            body = {**rest, field: [value] if field == "origins" else value}
            started = time.thread_time()
            response = getattr(client, method)(path, json=body, headers=auth)
            costs.append(time.thread_time() - started)
            _refused(response, field, value)
        pages = [
            ("/moderate/admin/sites", {"slug": "s", "name": "S", "origins": value}),
            ("/moderate/admin/sites/luac", {"privacy_notice_url": value}),
            ("/moderate/webhooks/", {"url": value}),
        ]
        for path, data in pages:
            page = client.post(path, data={"csrf_token": csrf, **data})
            assert page.status_code == 422, (path, value[:40])
            # The form keeps what was typed (escaped, in its field); no message repeats it.
    # Bounded: a backtracking check would take seconds on the 10 kB values (a wide margin for
    # a loaded machine's pauses; typical is under 10 ms).
    assert max(costs) < 1.0 and sum(costs) / len(costs) < 0.05, (max(costs), sum(costs))
    assert session.scalars(select(Site.slug)).all() == ["luac"]
