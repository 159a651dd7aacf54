"""What a reader sees of a closed post and of a consultation window, in headless Chromium: with
embed.js, as a server-side include and in an iframe, in English and Welsh, checked with axe; and
the post's data-published reaching the service from the host page."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from sqlalchemy import select

from moderation.models import Post, Site, utcnow
from moderation.sites import create_site
from tests.browser import Blog, HostPage, LiveServer, axe_violations, live_server
from tests.helpers import PASSWORD, make_moderator

pytestmark = pytest.mark.browser

MODES = ("script", "include", "iframe")
CLOSED = {
    "en": "Comments are closed on this post.",
    "cy": "Mae'r sylwadau ar gau ar y blogbost hwn.",
}
CLOSES = {
    "en": "Comments close on 12 March 2099 at 23:59.",
    "cy": "Bydd y sylwadau'n cau ar 12 Mawrth 2099 am 23:59.",
}


@pytest.fixture(scope="module")
def blog() -> Iterator[Blog]:
    yield from Blog.running()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, blog: Blog) -> Iterator[LiveServer]:
    for server in live_server(
        tmp_path_factory.mktemp("live"), public_max_age=0, stale_while_revalidate=0
    ):
        with server.session() as session:
            site = create_site(session, slug="blog", name="Test blog", origins=[blog.url])
            site.close_after_days = 30
            session.commit()
            make_moderator(session)
        blog.service = server.url
        yield server


def add_post(server: LiveServer, blog: Blog, key: str, **state: Any) -> None:
    with server.session() as session:
        site = session.scalars(select(Site)).one()
        session.add(
            Post(site=site, key=key, title=f"Post {key}", url=f"{blog.url}{key}",
                 created_at=utcnow(), **state)
        )  # fmt: skip
        session.commit()


def thread_of(page: Any, mode: str) -> Any:
    """Where the thread is: the host page, or the iframe's document."""
    if mode == "iframe":
        return page.frame_locator("#comments iframe, iframe").locator("#cm-thread")
    return page.locator("#comments #cm-thread")


def open_post(
    browser: Any, blog: Blog, key: str, mode: str, lang: str, published: str = ""
) -> tuple[Any, Any]:
    blog.pages[key] = HostPage(mode, lang, published)
    context = browser.new_context(bypass_csp=True)
    page = context.new_page()
    page.goto(f"{blog.url}{key}")
    thread_of(page, mode).wait_for()
    return context, page


def standalone_violations(browser: Any, server: LiveServer, key: str, lang: str) -> list[Any]:
    """axe on the iframe's document, opened as the page it is."""
    context = browser.new_context(bypass_csp=True)
    page = context.new_page()
    page.goto(f"{server.url}/embed/blog/thread?post={quote(key)}&page=1&lang={lang}")
    violations = axe_violations(page)
    context.close()
    return violations


@pytest.mark.parametrize("lang", ["en", "cy"])
def test_a_closed_post_shows_the_closed_text_instead_of_the_form(
    server: LiveServer, browser: Any, blog: Blog, lang: str
) -> None:
    key = f"/closed-{lang}/"
    add_post(server, blog, key, closed=True)
    for mode in MODES:
        context, page = open_post(browser, blog, key, mode, lang)
        thread = thread_of(page, mode)
        assert thread.locator("#cm-closed").inner_text() == CLOSED[lang], mode
        assert thread.locator("#cm-form").count() == 0, mode
        assert thread.locator(".cm-reply-link").count() == 0, mode
        if mode != "iframe":
            assert axe_violations(page) == [], mode
        context.close()
    assert standalone_violations(browser, server, key, lang) == []


@pytest.mark.parametrize("lang", ["en", "cy"])
def test_an_open_window_says_when_comments_close(
    server: LiveServer, browser: Any, blog: Blog, lang: str
) -> None:
    key = f"/window-{lang}/"
    closes = dt.datetime(2099, 3, 12, 23, 59, tzinfo=dt.UTC)
    add_post(server, blog, key, opens_at=utcnow() - dt.timedelta(days=1), closes_at=closes)
    for mode in MODES:
        context, page = open_post(browser, blog, key, mode, lang)
        thread = thread_of(page, mode)
        window = thread.locator("#cm-form #cm-window")
        assert window.inner_text() == CLOSES[lang], mode
        assert thread.locator("#cm-form #cm-body").is_visible(), mode
        if mode != "iframe":
            assert axe_violations(page) == [], mode
        context.close()
    assert standalone_violations(browser, server, key, lang) == []


def test_a_window_not_yet_open_says_when_it_opens(
    server: LiveServer, browser: Any, blog: Blog
) -> None:
    key = "/window-later/"
    opens = dt.datetime(2099, 7, 1, 8, 0, tzinfo=dt.UTC)  # 09:00 in British Summer Time
    add_post(server, blog, key, opens_at=opens)
    for mode, lang, text in (
        ("script", "en", "Comments open on 1 July 2099 at 09:00."),
        ("iframe", "cy", "Bydd y sylwadau'n agor ar 1 Gorffennaf 2099 am 09:00."),
    ):
        context, page = open_post(browser, blog, key, mode, lang)
        thread = thread_of(page, mode)
        assert thread.locator("#cm-closed").inner_text() == text
        assert thread.locator("#cm-form").count() == 0
        context.close()


@pytest.mark.parametrize("mode", ["script", "iframe"])
def test_the_host_pages_publication_date_closes_an_old_post(
    server: LiveServer, browser: Any, blog: Blog, mode: str
) -> None:
    """data-published (embed.js) or ?published= (iframe) reaches the service: a post published
    long ago is closed before its first comment; a recent one is open and the date is stored
    with its first comment."""
    old = f"/published-long-ago-{mode}/"
    context, page = open_post(browser, blog, old, mode, "en", published="2020-01-02")
    assert thread_of(page, mode).locator("#cm-closed").inner_text() == CLOSED["en"]
    context.close()

    key = f"/published-recently-{mode}/"
    today = utcnow().date().isoformat()
    context, page = open_post(browser, blog, key, mode, "en", published=today)
    thread = thread_of(page, mode)
    thread.locator("#cm-author_name").fill("Ada")
    thread.locator("#cm-author_email").fill("ada@example.com")
    thread.locator("#cm-body").fill("Published today, so open.")
    thread.locator("button.cm-button").click()
    thread.locator("#comment-submitted").wait_for(state="visible")
    context.close()
    with server.session() as session:
        post = session.scalars(select(Post).where(Post.key == key)).one()
        assert post.published_at is not None
        assert post.published_at.date().isoformat() == today


@pytest.mark.parametrize("width", [1024, 320])
def test_the_queue_filtered_by_a_post_closes_and_reopens_it(
    server: LiveServer, browser: Any, blog: Blog, width: int
) -> None:
    key = f"/queue-closes-{width}/"
    closes = dt.datetime(2099, 3, 12, 23, 59, tzinfo=dt.UTC)
    add_post(server, blog, key, opens_at=utcnow() - dt.timedelta(days=1), closes_at=closes)
    context = browser.new_context(bypass_csp=True, viewport={"width": width, "height": 800})
    page = context.new_page()
    page.goto(f"{server.url}/moderate/login")
    page.fill("#login", "editor")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{server.url}/moderate/")
    page.goto(f"{server.url}/moderate/?status=all&post={quote(key)}")
    state = page.locator(".post-state-text")
    assert state.get_attribute("data-post-state") == "open"
    assert "until 12 March 2099 at 11:59pm GMT" in state.inner_text()
    assert axe_violations(page) == []
    assert page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0

    page.get_by_role("button", name=f"Close comments on Post {key}").click()
    page.wait_for_selector('.post-state-text[data-post-state="closed"]')
    page.wait_for_load_state("load")  # styled: an unstyled page's links are too small for axe
    assert f"Comments on Post {key} are closed." in page.inner_text("body")
    assert axe_violations(page) == []
    with server.session() as session:
        assert session.scalars(select(Post).where(Post.key == key)).one().closed

    page.get_by_role("button", name=f"Reopen comments on Post {key}").click()
    page.wait_for_selector('.post-state-text[data-post-state="open"]')
    with server.session() as session:
        assert not session.scalars(select(Post).where(Post.key == key)).one().closed
    context.close()
