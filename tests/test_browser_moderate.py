"""A moderator works the queue in headless Chromium with the keyboard alone, and the moderation
pages pass axe-core's WCAG 2.2 AA rules."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from moderation.comments import submit_comment
from moderation.mail import links
from moderation.models import Comment, CommentStatus, Moderator, utcnow
from moderation.validation import CommentSubmission
from tests.browser import (
    LiveServer,
    axe_violations,
    live_server,
    require_browser,
)
from tests.helpers import PASSWORD, TEST_SECRET, make_moderator, make_site

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    require_browser()
    yield from live_server(tmp_path_factory.mktemp("live"))


def seed(server: LiveServer, count: int) -> list[str]:
    with server.session() as session:
        if not session.scalar(select(Comment.id).limit(1)):
            make_site(session)
            make_moderator(session)
        ids = [
            submit_comment(
                session,
                "luac",
                CommentSubmission(
                    post="/2024/keyboard/",
                    author_name=f"Reader {n}",
                    author_email=f"reader{n}@example.com",
                    body=f"Keyboard comment {n}",
                ),
                now=utcnow(),
            ).public_id
            for n in range(count)
        ]
        session.commit()
    return ids


def statuses(server: LiveServer, ids: list[str]) -> list[CommentStatus]:
    with server.session() as session:
        found = dict(session.execute(select(Comment.public_id, Comment.status)).all())
    return [found[i] for i in ids]


def keyboard_login(page: Any, server: LiveServer) -> None:
    page.goto(f"{server.url}/moderate/")
    page.keyboard.press("Tab")  # skip link
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "login"
    page.keyboard.type("editor")
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(f"{server.url}/moderate/")


def test_a_moderator_works_the_queue_with_the_keyboard_alone(
    server: LiveServer, browser: Any
) -> None:
    ids = seed(server, 4)
    context = browser.new_context()
    page = context.new_page()
    keyboard_login(page, server)

    page.keyboard.press("j")
    assert page.evaluate("document.activeElement.id") == f"queue-{ids[0]}"
    with page.expect_navigation():
        page.keyboard.press("a")
    assert statuses(server, ids)[0] is CommentStatus.APPROVED
    assert page.locator(".undo button").is_visible()

    # Shortcuts never fire while typing in a field.
    page.focus("#q")
    page.keyboard.type("sa")
    assert statuses(server, ids)[1] is CommentStatus.PENDING
    page.keyboard.press("Escape")
    page.evaluate("document.activeElement.blur()")

    page.keyboard.press("?")
    assert page.locator("#shortcuts").is_visible()
    page.keyboard.press("Escape")

    for _ in range(2):
        page.keyboard.press("j")
        page.keyboard.press("x")
    page.keyboard.press("j")
    page.keyboard.press("x")
    for _ in range(40):
        if page.evaluate("document.activeElement.textContent.trim()") == "Apply":
            break
        page.keyboard.press("Shift+Tab")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert "3 comments updated." in page.content()
    assert statuses(server, ids) == [CommentStatus.APPROVED] * 4
    context.close()


def test_moderation_pages_have_no_axe_violations(server: LiveServer, browser: Any) -> None:
    (comment_id,) = seed(server, 1)
    context = browser.new_context(bypass_csp=True)
    page = context.new_page()
    page.goto(f"{server.url}/moderate/login")
    assert axe_violations(page) == []
    keyboard_login(page, server)
    assert axe_violations(page) == []
    page.goto(f"{server.url}/moderate/comments/{comment_id}")
    assert axe_violations(page) == []
    for path in ("/moderate/audit", "/moderate/admin/sites", "/moderate/admin/moderators",
                 "/moderate/admin/tokens", "/moderate/admin/sites/luac",
                 "/moderate/admin/personal-data", "/moderate/account"):  # fmt: skip
        page.goto(server.url + path)
        assert axe_violations(page) == [], path
    context.close()


@pytest.mark.parametrize("lang", ["en", "cy"])
def test_the_pages_of_mailed_links_have_no_axe_violations(
    server: LiveServer, browser: Any, lang: str
) -> None:
    """What a commenter or a moderator sees on opening a link from an email, before and after
    pressing its button, and on a link that is not valid. A commenter's pages are in the
    language of their comment; a moderator's are English."""
    (comment_id,) = seed(server, 1)
    with server.session() as session:
        comment = session.scalars(select(Comment).where(Comment.public_id == comment_id)).one()
        comment.status = CommentStatus.UNCONFIRMED
        comment.lang = lang
        editor = session.scalars(select(Moderator).where(Moderator.login == "editor")).one()
        session.commit()
        editor_id = editor.id

    def link(purpose: str, **payload: object) -> str:
        token = links.sign(TEST_SECRET, purpose, payload, now=utcnow(), valid_for=dt.timedelta(1))
        return f"{server.url}/mail/{purpose}/{token}"

    context = browser.new_context(bypass_csp=True)
    page = context.new_page()
    welsh = lang == "cy"
    for url, done, page_lang in [
        (
            link(links.CONFIRM, c=comment_id),
            "wedi'i gadarnhau" if welsh else "your email address is confirmed",
            lang,
        ),
        (
            link(links.ACT, c=comment_id, m=editor_id, a="reject"),
            "the comment is now rejected",
            "en",
        ),
        (
            link(links.UNSUBSCRIBE, c=comment_id),
            "Ni fyddwch yn cael rhagor" if welsh else "You will get no more emails",
            lang,
        ),
    ]:
        page.goto(url)
        assert page.evaluate("document.documentElement.lang") == page_lang, url
        assert axe_violations(page) == [], url
        page.locator("main button[type=submit]").click()
        page.wait_for_load_state()
        assert done in page.locator("h1").inner_text()
        assert axe_violations(page) == [], (url, "done")
    page.goto(f"{server.url}/mail/confirm/not-a-token")
    assert "not valid" in page.locator("h1").inner_text()
    assert axe_violations(page) == []
    context.close()


def test_the_queue_is_usable_at_320_px(server: LiveServer, browser: Any, tmp_path: Path) -> None:
    seed(server, 1)
    context = browser.new_context(viewport={"width": 320, "height": 800})
    page = context.new_page()
    keyboard_login(page, server)
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the queue scrolls sideways by {overflow}px at 320px"
    context.close()
