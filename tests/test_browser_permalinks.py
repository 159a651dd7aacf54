"""Permalinks, pinned comments and a commenter's own comment, in headless Chromium: a link to
comment 350 of 400 opens the page of the thread that holds it with embed.js and in the iframe,
in English and Welsh; the pinned label; the comment a commenter just sent, shown to them alone
as they typed it; the queue's Not spam, Unpublish and Pin; axe-core on each."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from moderation.models import Comment, CommentStatus, Post, Site
from moderation.sites import create_site
from tests.browser import Blog, HostPage, LiveServer, axe_violations, live_server
from tests.helpers import PASSWORD, make_moderator

pytestmark = pytest.mark.browser

LONG = "/long-thread/"
OVERFLOW = "document.documentElement.scrollWidth - window.innerWidth"
LABELS = {
    "en": ("Pinned by the blog team", "Your comment, awaiting moderation"),
    "cy": ("Wedi'i binio gan dîm y blog", "Eich sylw, yn aros i gael ei gymedroli"),
}


@pytest.fixture(scope="module")
def blog() -> Iterator[Blog]:
    yield from Blog.running()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, blog: Blog) -> Iterator[LiveServer]:
    for server in live_server(
        tmp_path_factory.mktemp("permalinks"), public_max_age=0, stale_while_revalidate=0
    ):
        with server.session() as session:
            site = create_site(session, slug="blog", name="Test blog", origins=[blog.url])
            post = Post(site=site, key=LONG, title="A long thread", url=f"{blog.url}{LONG}")
            start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
            session.add_all(
                Comment(
                    post=post,
                    author_name=f"Reader {n}",
                    author_email=f"reader{n}@example.com",
                    body_text=f"Comment number {n}",
                    body_html=f"<p>Comment number {n}</p>",
                    status=CommentStatus.APPROVED,
                    submitted_at=start + dt.timedelta(minutes=n),
                    # The 7th is pinned by the blog team: it comes first on the first page.
                    pinned_at=start + dt.timedelta(days=60) if n == 7 else None,
                )
                for n in range(1, 401)
            )
            session.commit()
        blog.service = server.url
        yield server


def public_id(server: LiveServer, n: int) -> str:
    with server.session() as session:
        found: str = session.scalars(
            select(Comment.public_id).where(Comment.body_text == f"Comment number {n}")
        ).one()
        return found


def in_view(page: Any, element_id: str) -> bool:
    visible: bool = page.evaluate(
        """id => { const box = document.getElementById(id).getBoundingClientRect();
                   return box.top > -1 && box.top < window.innerHeight; }""",
        element_id,
    )
    return visible


@pytest.mark.parametrize("lang", ["en", "cy"])
def test_a_permalink_to_comment_350_of_400_opens_its_page_with_the_script(
    server: LiveServer, browser: Any, blog: Blog, lang: str
) -> None:
    target = public_id(server, 350)
    blog.pages[LONG] = HostPage("script", lang)
    context = browser.new_context(bypass_csp=True)
    page = context.new_page()
    page.goto(f"{blog.url}{LONG}#comment-{target}")
    page.wait_for_selector(f"#comment-{target}")
    # Pages of 100 count the unpinned comments: without the 7th, the fourth is 302 to 400.
    assert page.locator(".cm-comments > .cm-comment").count() == 99
    assert "Comment number 302" in page.text_content(".cm-comments > .cm-comment")
    page.wait_for_function(
        """id => { const box = document.getElementById(id).getBoundingClientRect();
                   return box.top > -1 && box.top < window.innerHeight; }""",
        arg=f"comment-{target}",
    )
    # Its time is the link to share; the page's first comments are a link away.
    link = page.locator(f"#comment-{target} .cm-permalink")
    assert link.get_attribute("href") == f"#comment-{target}"
    first = "Dangos y sylwadau cyntaf" if lang == "cy" else "Show the first comments"
    assert page.text_content(".cm-first-link") == first
    assert axe_violations(page) == [], lang

    # Without the hash: the first page, the pinned comment first and marked.
    page.goto(f"{blog.url}{LONG}")
    page.wait_for_selector(".cm-comments")
    pinned, _ = LABELS[lang]
    head = page.locator(".cm-comments > .cm-comment").first
    assert "Comment number 7" in head.text_content()
    assert head.locator(".cm-badge").text_content() == pinned
    assert page.locator(".cm-badge", has_text=pinned).count() == 1
    assert page.locator(".cm-comments > .cm-comment").count() == 101  # the pin besides 100
    link = page.locator(".cm-comments > .cm-comment").nth(3).locator(".cm-permalink")
    link.click()
    assert page.evaluate("location.hash") == link.get_attribute("href")
    assert axe_violations(page) == [], lang
    context.close()


@pytest.mark.parametrize("lang", ["en", "cy"])
def test_a_permalink_to_comment_350_of_400_opens_its_page_in_the_iframe(
    server: LiveServer, browser: Any, blog: Blog, lang: str
) -> None:
    target = public_id(server, 350)
    blog.pages[LONG] = HostPage("iframe", lang, query=f"&comment={target}#comment-{target}")
    context = browser.new_context(bypass_csp=True)
    page = context.new_page()
    page.goto(f"{blog.url}{LONG}")
    frame = page.frame_locator("iframe")
    frame.locator(f"#comment-{target}").wait_for()
    assert "Comment number 302" in frame.locator(".cm-comments > .cm-comment").first.text_content()
    assert frame.locator(".cm-comments > .cm-comment").count() == 99
    # The frame's own page, as axe checks it: the comment in view at its hash.
    page.goto(page.frames[1].url)
    page.wait_for_selector(f"#comment-{target}")
    assert in_view(page, f"comment-{target}")
    assert page.evaluate("document.documentElement.lang") == lang
    assert axe_violations(page) == [], lang
    context.close()


@pytest.mark.parametrize("lang", ["en", "cy"])
def test_a_commenter_sees_their_own_comment_awaiting_moderation_and_no_one_else_does(
    server: LiveServer, browser: Any, blog: Blog, lang: str
) -> None:
    key = f"/own-{lang}/"
    blog.pages[key] = HostPage("script", lang)
    with server.session() as session:
        site = session.scalars(select(Site)).one()
        session.add(
            Comment(
                post=Post(site=site, key=key, title="Own", url=f"{blog.url}{key}"),
                author_name="Earlier reader",
                author_email="earlier@example.com",
                body_text="An earlier comment",
                body_html="<p>An earlier comment</p>",
                status=CommentStatus.APPROVED,
            )
        )
        session.commit()
    context = browser.new_context(bypass_csp=True)
    page = context.new_page()
    page.goto(f"{blog.url}{key}")
    page.wait_for_selector("#cm-form")
    typed = "My <b>first</b> line\n<img src=x onerror=alert(1)> second line"
    page.fill("#cm-author_name", "Ada <i>Lovelace</i>")
    page.fill("#cm-author_email", "ada@example.com")
    page.fill("#cm-body", typed)
    page.click("button[type=submit]")
    own = page.locator(".cm-own:not([hidden])")
    own.wait_for()
    _, awaiting = LABELS[lang]
    assert own.locator(".cm-badge").text_content() == awaiting
    assert own.locator(".cm-author").text_content() == "Ada <i>Lovelace</i>"
    assert own.locator(".cm-body").text_content() == typed  # as typed, as text
    assert own.locator("b, i, img").count() == 0
    assert own.locator(".cm-body").inner_text().splitlines()[0] == "My <b>first</b> line"
    assert axe_violations(page) == [], lang

    # A reply shows under the comment replied to.
    page.click(".cm-reply-link")
    page.fill("#cm-author_name", "Ada")
    page.fill("#cm-author_email", "ada@example.com")
    page.fill("#cm-body", "My reply")
    page.click("button[type=submit]")
    page.wait_for_selector(".cm-comment .cm-own:not([hidden])")
    assert "My reply" in page.text_content(".cm-comments > .cm-comment .cm-own")

    # Nothing public changed: another reader, and this one after a reload, see no trace.
    page.reload()
    page.wait_for_selector("#cm-form")
    assert page.locator(".cm-own:not([hidden])").count() == 0
    assert "first" not in page.text_content("#cm-thread")
    with server.session() as session:
        held = session.scalars(
            select(Comment.status)
            .join(Comment.post)
            .where(Post.key == key, Comment.author_name != "Earlier reader")
        ).all()
        assert held == [CommentStatus.PENDING, CommentStatus.PENDING]
    context.close()


def test_the_queue_reverses_unpublishes_and_pins_in_place(server: LiveServer, browser: Any) -> None:
    """Issue 19's "not spam" and "unapprove" in the queue: in place, by key, axe-clean at 320 px."""
    with server.session() as session:
        make_moderator(session)
        site = session.scalars(select(Site)).one()
        post = Post(site=site, key="/queue/", title="Queue", url="https://q.example/queue/")
        comments = {
            status: Comment(
                post=post,
                author_name=f"Reader {status.value}",
                author_email="reader@example.com",
                body_text=f"A {status.value} comment",
                body_html=f"<p>A {status.value} comment</p>",
                status=status,
            )
            for status in (CommentStatus.SPAM, CommentStatus.REJECTED, CommentStatus.APPROVED)
        }
        session.add_all(comments.values())
        session.commit()
        ids = {status: comment.public_id for status, comment in comments.items()}

    def status_of(public_id: str) -> tuple[CommentStatus, bool]:
        with server.session() as session:
            found = session.scalars(select(Comment).where(Comment.public_id == public_id)).one()
            return found.status, found.pinned_at is not None

    context = browser.new_context(bypass_csp=True, viewport={"width": 320, "height": 800})
    page = context.new_page()
    page.goto(f"{server.url}/moderate/login")
    page.fill("#login", "editor")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{server.url}/moderate/")

    page.goto(f"{server.url}/moderate/?status=spam&post=/queue/")
    spam = ids[CommentStatus.SPAM]
    assert page.text_content(f"#queue-{spam} button[data-action=approve]").startswith("Not spam")
    assert axe_violations(page) == []
    assert page.evaluate(OVERFLOW) <= 0
    page.keyboard.press("j")
    page.keyboard.press("a")  # "a" is Not spam here
    page.locator(f"#queue-{spam}.queue-item--done").wait_for()
    assert status_of(spam) == (CommentStatus.APPROVED, False)

    page.goto(f"{server.url}/moderate/?status=rejected&post=/queue/")
    rejected = ids[CommentStatus.REJECTED]
    page.click(f"#queue-{rejected} button[data-action=approve]")
    page.locator(f"#queue-{rejected}.queue-item--done").wait_for()
    assert status_of(rejected) == (CommentStatus.APPROVED, False)

    page.goto(f"{server.url}/moderate/?status=approved&post=/queue/")
    approved = ids[CommentStatus.APPROVED]
    assert axe_violations(page) == []
    assert page.evaluate(OVERFLOW) <= 0, "the approved tab scrolls sideways at 320 px"
    page.click(f"#queue-{approved} button[data-action=pin]")
    page.locator(f"#queue-{approved} button[data-action=unpin]").wait_for()
    assert "pinned to the top of its thread" in page.text_content("#queue-status")
    assert status_of(approved) == (CommentStatus.APPROVED, True)
    page.click(f"#queue-{approved} button[data-action=unapprove]")
    page.locator(f"#queue-{approved}.queue-item--done").wait_for()
    assert "unpublished: it is back in the queue" in page.text_content("#queue-status")
    assert status_of(approved) == (CommentStatus.PENDING, False)
    context.close()
