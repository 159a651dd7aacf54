"""Bans in a real browser: "Ban this address" on a comment's page, the bans page and lifting a
ban, by keyboard-reachable controls; every page passes axe-core's WCAG 2.2 AA rules and fits a
320 px screen."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from moderation.comments import submit_comment
from moderation.models import Ban, BanKind, utcnow
from moderation.validation import CommentSubmission
from tests.browser import LiveServer, axe_violations, live_server, require_browser
from tests.helpers import PASSWORD, make_moderator, make_site

pytestmark = pytest.mark.browser
OVERFLOW = "document.documentElement.scrollWidth - window.innerWidth"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    require_browser()
    yield from live_server(tmp_path_factory.mktemp("live"))


def seed(server: LiveServer) -> str:
    with server.session() as session:
        make_site(session)
        make_moderator(session)
        comment = submit_comment(
            session,
            "luac",
            CommentSubmission(
                post="/2024/bans/",
                author_name="Troll",
                author_email="troll.with.a.rather.long.address@mail.example.com",
                body="Something abusive.",
            ),
            now=utcnow(),
            client_address="2001:db8:abcd:12::7",
        )
        session.commit()
        return comment.public_id


def log_in(page: Any, server: LiveServer) -> None:
    page.goto(f"{server.url}/moderate/login")
    page.fill("#login", "editor")
    page.fill("#password", PASSWORD)
    page.press("#password", "Enter")
    page.wait_for_url(f"{server.url}/moderate/")


@pytest.mark.parametrize("width", [1024, 320])
def test_ban_this_address_then_lift_it_in_the_browser(
    server: LiveServer, browser: Any, width: int, tmp_path: Path
) -> None:
    comment_id = seed(server) if width == 1024 else _existing(server)
    context = browser.new_context(bypass_csp=True, viewport={"width": width, "height": 800})
    page = context.new_page()
    log_in(page, server)
    page.goto(f"{server.url}/moderate/comments/{comment_id}")
    page.click("summary:has-text('Ban this address')")
    assert axe_violations(page) == []
    assert page.evaluate(OVERFLOW) <= 0
    page.check("input[name=target][value=network]")
    page.select_option("#ban-duration", "week")
    page.fill("#ban-reason", "Abuse from this network")
    page.click("form[action$='/ban'] button[type=submit]")
    page.wait_for_url(f"**/moderate/comments/{comment_id}")
    assert "Banned on this site." in page.inner_text("main")
    with server.session() as session:
        made = session.scalars(select(Ban)).one()
        assert (made.kind, made.value) == (BanKind.NETWORK, "2001:db8:abcd::/48")
    page.goto(f"{server.url}/moderate/bans")
    assert "2001:db8:abcd::/48" in page.inner_text("table.bans")
    assert axe_violations(page) == []
    assert page.evaluate(OVERFLOW) <= 0, f"/moderate/bans scrolls sideways at {width}px"
    page.click("table.bans button:has-text('Lift')")
    page.wait_for_url(f"{server.url}/moderate/bans")
    assert "Lifted the ban." in page.inner_text("main")
    assert axe_violations(page) == []
    with server.session() as session:
        assert session.scalars(select(Ban)).all() == []
    # An error on the bans page is announced, linked to its field, and passes axe.
    page.select_option("#kind", "domain")
    page.fill("#value", "not a domain")
    page.fill("#reason", "spam")
    page.click("form[action$='/bans'] button[type=submit]")
    assert "Enter a domain" in page.inner_text(".error-summary")
    assert page.get_attribute("#value", "aria-invalid") == "true"
    assert axe_violations(page) == []
    assert page.evaluate(OVERFLOW) <= 0
    context.close()


def _existing(server: LiveServer) -> str:
    from moderation.models import Comment

    with server.session() as session:
        found = session.scalar(select(Comment.public_id).limit(1))
        assert found is not None
        return found
