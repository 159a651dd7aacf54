"""Passkeys in headless Chromium with its virtual authenticator (DevTools protocol
WebAuthn.addVirtualAuthenticator): an admin forced to enrol adds one, logs in with it, and
loses it (the authenticator removed, then the passkey removed from the account)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from moderation.models import AuditEvent, Passkey, Role
from moderation.moderators import create_moderator, password_hasher
from tests.browser import LiveServer, axe_violations, live_server
from tests.helpers import PASSWORD

pytestmark = pytest.mark.browser


@pytest.fixture
def server(tmp_path: Any) -> Iterator[LiveServer]:
    for live in live_server(tmp_path, mfa_required="admins"):
        with live.session() as session:
            create_moderator(
                session,
                password_hasher(fast=True),
                login="editor",
                email="editor@example.gov.uk",
                password=PASSWORD,
                role=Role.ADMIN,
            )
            session.commit()
        # WebAuthn needs a relying party id that is a host name: localhost, not 127.0.0.1.
        live.url = live.url.replace("127.0.0.1", "localhost")
        yield live


def add_authenticator(context: Any, page: Any) -> tuple[Any, str]:
    cdp = context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    added = cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
                "automaticPresenceSimulation": True,
            }
        },
    )
    return cdp, str(added["authenticatorId"])


def log_in_with_password(page: Any, server: LiveServer) -> None:
    page.goto(f"{server.url}/moderate/login")
    page.fill("#login", "editor")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_load_state()


def log_out(page: Any) -> None:
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url("**/moderate/login")


def test_an_admin_enrols_a_passkey_logs_in_with_it_and_loses_it(
    browser: Any, server: LiveServer
) -> None:
    context = browser.new_context(bypass_csp=True)
    page = context.new_page()
    cdp, authenticator = add_authenticator(context, page)

    log_in_with_password(page, server)
    assert page.url.endswith("/moderate/security/")  # enrolment before any moderation page
    assert "You must set up a second factor" in page.content()
    assert axe_violations(page) == []
    page.fill("#passkey-name", "Laptop")
    page.get_by_role("button", name="Add a passkey").click()
    page.wait_for_url("**/moderate/security/passkeys")
    assert page.get_by_role("heading", name="Your recovery codes").is_visible()
    codes = re.findall(r"<li><code>([a-z2-7-]+)</code></li>", page.content())
    assert len(codes) == 10
    page.get_by_role("link", name="I have kept them").click()
    assert "Laptop, added" in page.content()
    page.goto(f"{server.url}/moderate/")
    assert page.url == f"{server.url}/moderate/"  # the queue, now
    credentials = cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator})
    assert len(credentials["credentials"]) == 1
    log_out(page)

    # The next login asks for the passkey, and the authenticator answers.
    log_in_with_password(page, server)
    assert "/moderate/security/verify" in page.url
    page.get_by_role("button", name="Use your passkey").click()
    page.wait_for_url(f"{server.url}/moderate/")
    assert "Logged in as editor" in page.content()
    with server.session() as session:
        passkey = session.scalars(select(Passkey)).one()
        assert passkey.last_used_at is not None
        assert passkey.sign_count >= 1
    log_out(page)

    # The authenticator is lost: the passkey cannot answer; a recovery code still lets them in.
    cdp.send("WebAuthn.removeVirtualAuthenticator", {"authenticatorId": authenticator})
    log_in_with_password(page, server)
    page.fill("#code", codes[0])
    page.get_by_role("button", name="Confirm").click()
    page.wait_for_url(f"{server.url}/moderate/")
    assert "You used a recovery code: 9 left" in page.content()

    # An admin must keep a second factor: the lost passkey goes once a new one is added.
    page.goto(f"{server.url}/moderate/security/")
    page.get_by_role("button", name="Remove Laptop").click()
    page.wait_for_selector("text=You must keep a second factor: add another one first")
    add_authenticator(context, page)
    page.fill("#passkey-name", "Phone")
    page.get_by_role("button", name="Add a passkey").click()
    page.wait_for_selector("text=Your passkey is added.")
    page.get_by_role("button", name="Remove Laptop").click()
    page.wait_for_selector("text=The passkey is removed.")
    with server.session() as session:
        assert [p.name for p in session.scalars(select(Passkey))] == ["Phone"]
        actions = [
            (e.action, e.after.get("name") or e.before.get("factor"))
            for e in session.scalars(
                select(AuditEvent).where(AuditEvent.action.like("moderator.mfa%"))
            )
        ]
        assert actions == [
            ("moderator.mfa_add", "Laptop"),
            ("moderator.mfa_add", "Phone"),
            ("moderator.mfa_remove", "passkey"),
        ]
    context.close()


def test_a_removed_passkey_is_refused_even_when_the_authenticator_still_has_it(
    browser: Any, server: LiveServer
) -> None:
    context = browser.new_context()
    page = context.new_page()
    add_authenticator(context, page)
    log_in_with_password(page, server)
    page.fill("#passkey-name", "Key A")
    page.get_by_role("button", name="Add a passkey").click()
    page.get_by_role("link", name="I have kept them").click()
    with server.session() as session:  # removed on the server (say, by its owner elsewhere)
        session.delete(session.scalars(select(Passkey)).one())
        session.commit()
    # The old page still offers the passkey; the authenticator answers with the removed one.
    page.goto(f"{server.url}/moderate/security/verify")
    page.evaluate(
        """() => {
            const form = document.createElement('form');
            form.method = 'post';
            form.action = '/moderate/security/verify/passkey';
            form.dataset.passkey = 'get';
            form.dataset.options = '/moderate/security/verify/passkey-options';
            form.innerHTML = '<input type="hidden" name="csrf_token" value="' +
                document.querySelector('input[name=csrf_token]').value +
                '"><input type="hidden" name="credential" value="">';
            document.body.append(form);
        }"""
    )
    page.add_script_tag(url=f"{server.url}/static/passkeys.js")
    page.evaluate("() => document.forms[document.forms.length - 1].requestSubmit()")
    page.wait_for_load_state()
    page.wait_for_selector("text=not registered for your account")
    context.close()


def test_the_sign_in_pages_pass_axe(browser: Any, server: LiveServer) -> None:
    """The second-factor and sessions pages meet WCAG 2.2 AA (axe-core), at 320 px too."""
    import pyotp

    context = browser.new_context(bypass_csp=True, viewport={"width": 320, "height": 800})
    page = context.new_page()
    log_in_with_password(page, server)
    page.goto(f"{server.url}/moderate/security/totp")
    assert axe_violations(page) == []
    secret = page.inner_text("#totp-key").replace(" ", "")
    page.fill("#code", pyotp.TOTP(secret).now())
    page.get_by_role("button", name="Turn it on").click()
    page.wait_for_selector("text=Your recovery codes")
    assert axe_violations(page) == []
    page.goto(f"{server.url}/moderate/account/sessions")
    assert "(this browser)" in page.content()
    assert axe_violations(page) == []
    page.goto(f"{server.url}/moderate/admin/moderators/editor/sessions")
    assert axe_violations(page) == []
    log_out(page)
    log_in_with_password(page, server)
    assert "/moderate/security/verify" in page.url
    assert axe_violations(page) == []
    page.fill("#code", "000000")
    page.get_by_role("button", name="Confirm").click()
    page.wait_for_selector("text=There is a problem")
    assert axe_violations(page) == []
    context.close()
