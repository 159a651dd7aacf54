"""A moderator works the queue in headless Chromium with the keyboard alone, and the moderation
pages pass axe-core's WCAG 2.2 AA rules."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from moderation.actions import edit_comment, moderate_comment
from moderation.comments import submit_comment
from moderation.events import Actor
from moderation.mail import links
from moderation.models import Comment, CommentStatus, Moderator, Site, WebhookAttempt, utcnow
from moderation.validation import CommentSubmission
from moderation.webhooks.endpoints import create_endpoint, send_test_event
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


def seed(server: LiveServer, count: int, post: str = "/2024/keyboard/") -> list[str]:
    with server.session() as session:
        if not session.scalar(select(Comment.id).limit(1)):
            make_site(session)
            make_moderator(session)
        ids = [
            submit_comment(
                session,
                "luac",
                CommentSubmission(
                    post=post,
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
    page.keyboard.press("a")
    page.locator(".undo button").wait_for()
    assert statuses(server, ids)[0] is CommentStatus.APPROVED
    assert page.evaluate("document.activeElement.id") == f"queue-{ids[1]}"
    page.keyboard.press("z")
    page.locator(".undo").wait_for(state="hidden")
    assert statuses(server, ids)[0] is CommentStatus.PENDING
    assert page.evaluate("document.activeElement.id") == f"queue-{ids[0]}"
    assert "is pending again" in page.locator("#queue-status").inner_text()
    page.keyboard.press("a")
    page.locator(".undo button").wait_for()
    assert statuses(server, ids)[0] is CommentStatus.APPROVED

    # Shortcuts never fire while typing in a field.
    page.focus("#q")
    page.keyboard.type("sa")
    assert statuses(server, ids)[1] is CommentStatus.PENDING
    page.keyboard.press("Escape")
    page.evaluate("document.activeElement.blur()")

    page.keyboard.press("?")
    assert page.locator("#shortcuts").is_visible()
    page.keyboard.press("Escape")

    # The current comment is the second now; select it and the two after it.
    page.keyboard.press("x")
    for _ in range(2):
        page.keyboard.press("j")
        page.keyboard.press("x")
    for _ in range(40):
        if page.evaluate("document.activeElement.textContent.trim()") == "Apply":
            break
        page.keyboard.press("Shift+Tab")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert "3 comments approved." in page.content()
    assert statuses(server, ids) == [CommentStatus.APPROVED] * 4
    context.close()


OVERFLOW = "document.documentElement.scrollWidth - window.innerWidth"


def failing_endpoint(server: LiveServer) -> str:
    """A site's webhook endpoint with a delivery log: a test event tried twice and failing."""
    with server.session() as session:
        endpoint = create_endpoint(
            session,
            url="https://hooks.example.org/a-rather-long-path/for-the-endpoint-that-keeps-failing",
            site_slug="luac",
            actor=Actor("test"),
            now=utcnow(),
        )
        delivery = send_test_event(session, endpoint, now=utcnow())
        session.flush()
        for code in (500, None):
            session.add(
                WebhookAttempt(
                    delivery_id=delivery.id,
                    webhook_timestamp=0,
                    status_code=code,
                    duration_ms=1234,
                    error=None if code else "connection refused by hooks.example.org:443",
                    response_excerpt='{"error": "internal server error, please try again later"}',
                )
            )
        delivery.attempts = 2
        session.commit()
        return endpoint.public_id


@pytest.mark.parametrize("width", [1024, 320])
def test_moderation_pages_have_no_axe_violations_and_fit_the_screen(
    server: LiveServer, browser: Any, width: int
) -> None:
    """Every moderation page passes axe at desktop width and at 320 px, and none is wider than
    its viewport (a page that scrolls sideways at 320 px fails WCAG 1.4.10, reflow)."""
    (comment_id,) = seed(server, 1)
    endpoint_id = failing_endpoint(server)
    context = browser.new_context(bypass_csp=True, viewport={"width": width, "height": 800})
    page = context.new_page()
    page.goto(f"{server.url}/moderate/login")
    assert axe_violations(page) == []
    assert page.evaluate(OVERFLOW) <= 0, "login"
    keyboard_login(page, server)
    for path in ("/moderate/", f"/moderate/comments/{comment_id}", "/moderate/audit",
                 "/moderate/admin/sites", "/moderate/admin/moderators",
                 "/moderate/admin/tokens", "/moderate/admin/sites/luac",
                 "/moderate/admin/personal-data", "/moderate/account",
                 "/moderate/webhooks/", f"/moderate/webhooks/{endpoint_id}",
                 "/moderate/report/"):  # fmt: skip
        page.goto(server.url + path)
        assert axe_violations(page) == [], path
        assert page.evaluate(OVERFLOW) <= 0, f"{path} scrolls sideways at {width}px"
    context.close()


def test_the_audit_log_reads_as_words_and_stacks_at_320_px(
    server: LiveServer, browser: Any
) -> None:
    (comment_id,) = seed(server, 1, post="/2024/audit/")
    with server.session() as session:
        session.scalars(select(Site)).one().reject_reasons = ["Off topic"]
        editor = session.scalars(select(Moderator).where(Moderator.login == "editor")).one()
        actor = Actor("editor", editor.id, "ui")
        edit_comment(session, editor, comment_id, "Keyboard comment 0, tidied", actor=actor,
                     now=utcnow())  # fmt: skip
        moderate_comment(session, editor, comment_id, "reject", actor=actor, now=utcnow(),
                         reason="Off topic")  # fmt: skip
        session.commit()
    for width in (1024, 320):
        context = browser.new_context(bypass_csp=True, viewport={"width": width, "height": 800})
        page = context.new_page()
        keyboard_login(page, server)
        page.goto(f"{server.url}/moderate/audit?site=luac")
        row = page.locator("tbody tr").first
        assert "pending → rejected, reason: Off topic" in row.inner_text()
        edited = page.locator("tbody tr").nth(1)
        edited.locator("summary").click()
        assert edited.locator("del").inner_text().strip() == "0"
        assert edited.locator("ins").inner_text() == "0, tidied"
        assert page.evaluate(OVERFLOW) <= 0, width
        # No word is broken across lines: each header and each action fits its cell.
        words_fit = page.evaluate(
            """[...document.querySelectorAll('.audit th, .audit td')].every(
                cell => cell.scrollWidth <= cell.clientWidth + 1)"""
        )
        assert words_fit, width
        stacked = page.evaluate("getComputedStyle(document.querySelector('.audit td')).display")
        assert stacked == ("block" if width == 320 else "table-cell")
        assert axe_violations(page) == []
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


def test_deciding_ten_comments_takes_ten_keystrokes_plus_one_per_reason(
    server: LiveServer, browser: Any
) -> None:
    """The place is kept after every decision: no page load, no `j` between decisions, and a
    rejection's reason is one number key."""
    post = "/2024/ten-keystrokes/"
    ids = seed(server, 10, post=post)
    with server.session() as session:
        session.scalars(select(Site)).one().reject_reasons = ["Off topic", "Abusive"]
        session.commit()
    context = browser.new_context(bypass_csp=True)
    page = context.new_page()
    keyboard_login(page, server)
    page.goto(f"{server.url}/moderate/?status=pending&post={post}")
    page.evaluate("window.sameDocument = true")
    keys = ["a", "a", "s", "r", "1", "a", "r", "2", "s", "a", "a", "a"]
    for key in keys:
        page.keyboard.press(key)
    page.wait_for_function(
        "document.querySelectorAll('.queue-item--done').length === 10", timeout=15000
    )
    assert len(keys) == 10 + 2
    assert statuses(server, ids) == [
        CommentStatus.APPROVED, CommentStatus.APPROVED, CommentStatus.SPAM,
        CommentStatus.REJECTED, CommentStatus.APPROVED, CommentStatus.REJECTED,
        CommentStatus.SPAM, CommentStatus.APPROVED, CommentStatus.APPROVED,
        CommentStatus.APPROVED,
    ]  # fmt: skip
    with server.session() as session:
        reasons = dict(session.execute(select(Comment.public_id, Comment.reject_reason)).all())
    assert [reasons[ids[3]], reasons[ids[5]]] == ["Off topic", "Abusive"]
    assert page.evaluate("window.sameDocument") is True  # never a page load
    assert page.locator('[data-count="pending"] .count').inner_text() == "(0)"
    assert page.locator("#queue-status").inner_text() == "Comment by Reader 9 marked approved."
    assert axe_violations(page) == []
    context.close()


def test_the_reasons_menu_and_the_next_comment_work_without_the_script(
    server: LiveServer, browser: Any
) -> None:
    post = "/2024/no-script/"
    ids = seed(server, 3, post=post)
    with server.session() as session:
        session.scalars(select(Site)).one().reject_reasons = ["Off topic", "Abusive"]
        session.commit()
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    keyboard_login(page, server)
    page.goto(f"{server.url}/moderate/?status=pending&post={post}")
    first = page.locator(f"#queue-{ids[0]}")
    first.locator("summary").click()
    with page.expect_navigation():
        first.get_by_role("button", name="Abusive").click()
    assert page.url.endswith(f"focus={ids[1]}#queue-{ids[1]}")
    assert "Comment by Reader 0 rejected (reason: Abusive)." in page.content()
    # Focus is on the next comment: one Tab reaches its own checkbox.
    page.keyboard.press("Tab")
    focused = page.locator(":focus")
    assert focused.get_attribute("id") == f"select-{ids[1]}"
    with page.expect_navigation():
        page.locator(f"#queue-{ids[2]}").get_by_role("button", name="Approve").click()
    assert statuses(server, ids) == [
        CommentStatus.REJECTED,
        CommentStatus.PENDING,
        CommentStatus.APPROVED,
    ]
    context.close()


def test_select_all_the_bar_below_edit_and_reply_links(server: LiveServer, browser: Any) -> None:
    post = "/2024/bulk-below/"
    ids = seed(server, 3, post=post)
    context = browser.new_context(bypass_csp=True)
    page = context.new_page()
    keyboard_login(page, server)
    page.goto(f"{server.url}/moderate/?status=pending&post={post}")
    page.check("#select-all")
    assert page.locator("[data-selected-count]").inner_text() == "3 comments selected"
    page.uncheck(f"#select-{ids[1]}")
    assert page.locator("[data-selected-count]").inner_text() == "2 comments selected"
    assert page.evaluate("document.getElementById('select-all').indeterminate") is True
    assert axe_violations(page) == []
    page.select_option("#bulk-action-below", "spam")
    with page.expect_navigation():
        page.locator(".bulk--below button").click()
    assert "2 comments marked as spam." in page.locator(".notice").first.inner_text()
    assert statuses(server, ids) == [
        CommentStatus.SPAM, CommentStatus.PENDING, CommentStatus.SPAM
    ]  # fmt: skip
    card = page.locator(f"#queue-{ids[1]}")
    with page.expect_navigation():
        card.get_by_role("link", name="Edit comment by Reader 1").click()
    assert page.url.endswith(f"/moderate/comments/{ids[1]}#body")
    page.go_back()
    with page.expect_navigation():
        page.locator(f"#queue-{ids[1]}").get_by_role("link", name="Reply to Reader 1").click()
    assert page.url.endswith(f"/moderate/comments/{ids[1]}#reply")
    assert page.is_visible("#reply")
    context.close()
