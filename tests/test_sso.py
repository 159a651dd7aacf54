"""Single sign-on against a real OpenID Provider (oidc-provider on loopback), through the real
redirects in headless Chromium: sign-in, the refusals (tampered, wrong audience, expired ID
tokens, a replayed state, a domain not allowed, an unknown person), key rotation, a changed
e-mail address, and the provider refusing a refresh."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import delete, select

from moderation.events import Actor
from moderation.models import AuditEvent, LoginSession, Moderator, Role, SsoIdentity
from moderation.moderators import create_moderator, password_hasher
from moderation.outbox.worker import refresh_sso_if_due
from moderation.sso import link_identity
from tests.browser import LiveServer, live_server
from tests.helpers import PASSWORD
from tests.mailserver import free_port
from tests.oidc import CLIENT_ID, CLIENT_SECRET, OpenIDProvider, require_provider

pytestmark = pytest.mark.browser

ACCOUNTS = {
    "alice": {"email": "alice@example.gov.uk", "email_verified": True, "name": "Alice"},
    "mallory": {"email": "mallory@elsewhere.example", "email_verified": True},
    "stranger": {"email": "stranger@example.gov.uk", "email_verified": True},
    "unverified": {"email": "editor2@example.gov.uk", "email_verified": False},
}


@pytest.fixture(scope="module")
def sso(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, OpenIDProvider]]:
    require_provider()
    port = free_port()
    server_gen = live_server(
        tmp_path_factory.mktemp("sso"),
        oidc_issuer=f"http://127.0.0.1:{port}",
        oidc_client_id=CLIENT_ID,
        oidc_client_secret=CLIENT_SECRET,
        oidc_allowed_domains="example.gov.uk",
        oidc_provider_name="Test Identity",
    )
    server = next(server_gen)
    provider = OpenIDProvider(port, f"{server.url}/moderate/sso/callback", dict(ACCOUNTS))
    provider.start()
    with server.session() as session:
        for login in ("alice", "editor2"):
            create_moderator(
                session,
                password_hasher(fast=True),
                login=login,
                email=f"{login}@example.gov.uk",
                password=PASSWORD,
                role=Role.MODERATOR,
            )
        session.commit()
    try:
        yield server, provider
    finally:
        provider.stop()
        next(server_gen, None)


def sign_in(browser: Any, server: LiveServer, account: str) -> tuple[Any, Any, list[str]]:
    """Click "Sign in with Test Identity" and log in at the provider; returns the page, its
    context and the callback URLs the browser was sent to."""
    context = browser.new_context()
    page = context.new_page()
    callbacks: list[str] = []
    page.on(
        "request",
        lambda request: callbacks.append(request.url) if "/sso/callback" in request.url else None,
    )
    page.goto(f"{server.url}/moderate/")
    page.get_by_role("link", name="Sign in with Test Identity").click()
    page.fill("input[name=login]", account)
    page.fill("input[name=password]", "any password")
    page.click("button[type=submit]")
    page.wait_for_load_state()
    if "/moderate" not in page.url:  # the provider's consent page
        page.click("button[type=submit]")
    page.wait_for_url(f"{server.url}/moderate/**")
    return page, context, callbacks


def audits(server: LiveServer, action: str) -> list[AuditEvent]:
    with server.session() as session:
        return list(
            session.scalars(
                select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)
            )
        )


def test_a_moderator_signs_in_through_the_provider_and_a_replayed_state_is_refused(
    browser: Any, sso: tuple[LiveServer, OpenIDProvider]
) -> None:
    server, provider = sso
    page, context, callbacks = sign_in(browser, server, "alice")
    assert page.url.startswith(f"{server.url}/moderate/")
    assert "Logged in as alice" in page.content(), audits(server, "moderator.sso_refused")[-1].after
    with server.session() as session:
        identity = session.scalars(select(SsoIdentity).where(SsoIdentity.subject == "alice")).one()
        assert identity.moderator.login == "alice"
        assert identity.issuer == provider.issuer
        login = session.scalars(
            select(LoginSession).where(LoginSession.moderator_id == identity.moderator_id)
        ).one()
        assert login.method.value == "sso"
        assert login.refresh_token and "alice" not in login.refresh_token  # sealed
    assert audits(server, "moderator.sso_login")[-1].after["login"] == "alice"

    # The same callback again (state and code already used): refused, with a clear page.
    response = page.goto(callbacks[-1])
    assert response.status == 403
    assert "used already or has expired" in page.content()
    assert audits(server, "moderator.sso_refused")[-1].after["reason"] == "state"
    context.close()


@pytest.mark.parametrize(
    ("mode", "reason", "says"),
    [
        ("tamper", "bad_token", "failed its checks"),
        ("aud", "bad_token", "failed its checks"),
        ("expired", "expired", "has expired"),
    ],
)
def test_a_bad_id_token_is_refused_and_audited(
    browser: Any, sso: tuple[LiveServer, OpenIDProvider], mode: str, reason: str, says: str
) -> None:
    server, provider = sso
    before = len(audits(server, "moderator.sso_login"))
    provider.control(mode=mode)
    try:
        page, context, _ = sign_in(browser, server, "alice")
    finally:
        provider.control(mode="")
    assert "/moderate/sso/callback" in page.url
    assert says in page.content()
    assert "Logged in as" not in page.content()
    assert audits(server, "moderator.sso_refused")[-1].after["reason"] == reason
    assert len(audits(server, "moderator.sso_login")) == before
    # Nothing was signed in: the queue still asks for a login.
    page.goto(f"{server.url}/moderate/")
    assert "/moderate/login" in page.url
    context.close()


@pytest.mark.parametrize(
    ("account", "reason", "says"),
    [
        ("mallory", "domain", "not in a domain that may sign in"),
        ("stranger", "unknown", "no moderator account for you"),
        ("unverified", "unverified", "not verified your e-mail"),
    ],
)
def test_who_may_not_enter_is_refused_and_audited(
    browser: Any, sso: tuple[LiveServer, OpenIDProvider], account: str, reason: str, says: str
) -> None:
    server, _ = sso
    page, context, _ = sign_in(browser, server, account)
    assert says in page.content()
    refusal = audits(server, "moderator.sso_refused")[-1]
    assert refusal.after["reason"] == reason
    assert refusal.after["subject"] == account
    assert "@" not in str(refusal.after)  # the domain only, never the address
    with server.session() as session:
        assert session.scalar(select(Moderator).where(Moderator.login == account)) is None
    context.close()


def test_a_changed_email_signs_in_to_the_same_account(
    browser: Any, sso: tuple[LiveServer, OpenIDProvider]
) -> None:
    server, provider = sso
    sign_in(browser, server, "alice")[1].close()  # linked by sub
    provider.control(set={"alice": {"email": "alice.smith@example.gov.uk", "email_verified": True}})
    try:
        page, context, _ = sign_in(browser, server, "alice")
    finally:
        provider.control(set={"alice": ACCOUNTS["alice"]})
    assert "Logged in as alice" in page.content()
    with server.session() as session:
        identities = list(
            session.scalars(select(SsoIdentity).where(SsoIdentity.subject == "alice"))
        )
        assert len(identities) == 1
        assert identities[0].email == "alice.smith@example.gov.uk"
        assert (
            session.scalar(
                select(Moderator)
                .where(Moderator.login.like("alice%"))
                .where(Moderator.login != "alice")
            )
            is None
        )
    context.close()


def test_a_rotated_signing_key_is_fetched_from_the_provider(
    browser: Any, sso: tuple[LiveServer, OpenIDProvider]
) -> None:
    server, provider = sso
    sign_in(browser, server, "alice")[1].close()  # the app now holds the provider's keys
    provider.rotate_keys()
    page, context, _ = sign_in(browser, server, "alice")
    assert "Logged in as alice" in page.content()
    context.close()


def test_an_address_an_admin_linked_signs_in_without_a_verified_claim(
    browser: Any, sso: tuple[LiveServer, OpenIDProvider]
) -> None:
    server, provider = sso
    with server.session() as session:
        editor2 = session.scalars(select(Moderator).where(Moderator.login == "editor2")).one()
        link_identity(
            session,
            editor2,
            issuer=provider.issuer,
            email="Editor2@example.gov.uk",
            actor=Actor("admin"),
            now=dt.datetime.now(dt.UTC),
        )
        session.commit()
    page, context, _ = sign_in(browser, server, "unverified")  # email_verified: false
    assert "Logged in as editor2" in page.content()
    with server.session() as session:
        linked = session.scalars(select(SsoIdentity).where(SsoIdentity.subject == "unverified"))
        assert [i.moderator.login for i in linked] == ["editor2"]
    context.close()


def test_the_provider_refusing_a_refresh_ends_the_login(
    browser: Any, sso: tuple[LiveServer, OpenIDProvider]
) -> None:
    server, provider = sso
    with server.session() as session:
        session.execute(delete(LoginSession))
        session.commit()
    page, context, _ = sign_in(browser, server, "alice")
    settings = server.app.extensions["moderation.settings"]
    factory = server.app.extensions["moderation.sessionmaker"]
    later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=settings.session_idle_minutes / 2 + 1)

    refresh_sso_if_due(factory, settings, later)  # the provider still lets alice in
    with server.session() as session:
        login = session.scalars(select(LoginSession)).one()
        assert login.refreshed_at == later
    page.reload()
    assert "Logged in as alice" in page.content()

    provider.control(disable="alice")
    refresh_sso_if_due(factory, settings, later + dt.timedelta(minutes=16))
    with server.session() as session:
        assert session.scalars(select(LoginSession)).all() == []
    assert audits(server, "moderator.sso_ended")[-1].after["login"] == "alice"
    page.reload()
    assert "/moderate/login" in page.url
    context.close()
