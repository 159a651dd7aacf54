"""A reader reports a comment in headless Chromium, on a blog page of another origin: without
JavaScript (the included thread and the report page), with embed.js (the form in place) and in
the iframe; in English and Welsh, checked with axe-core."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from moderation.actions import moderate_comment
from moderation.comments import submit_comment
from moderation.events import Actor
from moderation.models import Comment, CommentStatus, Moderator, Report, utcnow
from moderation.sites import create_site
from moderation.validation import CommentSubmission
from tests.browser import Blog, HostPage, LiveServer, axe_violations, live_server
from tests.helpers import make_moderator

pytestmark = pytest.mark.browser
_posts = itertools.count()


@pytest.fixture(scope="module")
def blog() -> Iterator[Blog]:
    yield from Blog.running()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, blog: Blog) -> Iterator[LiveServer]:
    for server in live_server(tmp_path_factory.mktemp("reports"), public_max_age=0):
        with server.session() as session:
            create_site(session, slug="blog", name="Test blog", origins=[blog.url])
            session.commit()
            make_moderator(session)
        blog.service = server.url
        yield server


def published_post(server: LiveServer, blog: Blog, mode: str, lang: str) -> tuple[str, str]:
    """A new post with one approved comment; its key and the comment's id."""
    key = f"/post-{next(_posts)}/"
    blog.pages[key] = HostPage(mode, lang)
    with server.session() as session:
        comment = submit_comment(
            session, "blog",
            CommentSubmission(post=key, post_url=f"{blog.url}{key}", author_name="Ada",
                              author_email="ada@example.com", body="A comment to report"),
            now=utcnow(),
        )  # fmt: skip
        session.commit()
        moderator = session.scalars(select(Moderator)).one()
        moderate_comment(
            session, moderator, comment.public_id, "approve",
            actor=Actor("editor", moderator.id), now=utcnow(),
        )  # fmt: skip
        session.commit()
        return key, comment.public_id


def reports_of(server: LiveServer, comment_id: str) -> list[Report]:
    with server.session() as session:
        comment = session.scalars(select(Comment).where(Comment.public_id == comment_id)).one()
        return list(session.scalars(select(Report).where(Report.comment_id == comment.id)))


def status_of(server: LiveServer, comment_id: str) -> CommentStatus:
    with server.session() as session:
        comment = session.scalars(select(Comment).where(Comment.public_id == comment_id)).one()
        return comment.status


WORDS = {
    "en": ("Report", "Why are you reporting this comment?", "Thank you for your report"),
    "cy": ("Rhoi gwybod", "Pam ydych chi'n rhoi gwybod am y sylw hwn?", "Diolch am roi gwybod"),
}


@pytest.mark.parametrize("lang", ["en", "cy"])
def test_without_javascript_a_reader_reports_on_the_report_page(
    server: LiveServer, browser: Any, blog: Blog, lang: str
) -> None:
    link_text, legend, thanks = WORDS[lang]
    key, comment_id = published_post(server, blog, "include", lang)
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    page.goto(f"{blog.url}{key}")
    assert page.text_content(".cm-report-link").startswith(link_text)
    page.click(".cm-report-link")
    page.wait_for_url(f"{server.url}/embed/blog/comments/{comment_id}/report**")
    assert legend in page.text_content("legend")
    assert "A comment to report" in page.text_content("blockquote")
    page.click(".cm-report-button")  # no reason chosen: the page again, with the problem
    page.wait_for_selector(".cm-error-summary")
    assert page.title().startswith("Error: " if lang == "en" else "Gwall: ")
    page.check(f"#cm-report-{comment_id}-abusive")
    page.fill(f"#cm-report-{comment_id}-detail", "Name-calling in the second line")
    page.click(".cm-report-button")
    page.wait_for_url(f"{blog.url}{key}#comment-reported")
    assert page.is_visible("#comment-reported")
    assert thanks in page.text_content("#comment-reported")
    (stored,) = reports_of(server, comment_id)
    assert (stored.reason, stored.detail) == ("abusive", "Name-calling in the second line")
    assert status_of(server, comment_id) is CommentStatus.APPROVED  # one network of three
    context.close()

    # The report page and its errors pass axe (axe needs script: embed.js is blocked instead).
    context = browser.new_context(bypass_csp=True)
    context.route("**/embed.js", lambda route: route.abort())
    page = context.new_page()
    page.goto(f"{server.url}/embed/blog/comments/{comment_id}/report?lang={lang}")
    assert axe_violations(page) == [], lang
    page.click(".cm-report-button")
    page.wait_for_selector(".cm-error-summary")
    assert axe_violations(page) == [], (lang, "errors")
    context.close()


@pytest.mark.parametrize("lang", ["en", "cy"])
def test_with_the_script_the_form_opens_under_the_comment_and_a_takedown_shows(
    server: LiveServer, browser: Any, blog: Blog, lang: str
) -> None:
    _, legend, thanks = WORDS[lang]
    key, comment_id = published_post(server, blog, "script", lang)
    context = browser.new_context(bypass_csp=True)
    page = context.new_page()
    page.goto(f"{blog.url}{key}")
    page.wait_for_selector(".cm-report-link")
    page.click(".cm-report-link")
    form = f"#comment-{comment_id} > .cm-report-form"
    page.wait_for_selector(form)
    assert page.url == f"{blog.url}{key}"  # in place: the reader stayed on the post
    assert page.evaluate("document.activeElement.name") == "reason"
    assert legend in page.text_content(f"{form} legend")
    page.click(".cm-report-link")  # a second click opens no second form
    assert page.locator(".cm-report-form").count() == 1
    assert axe_violations(page) == [], lang
    # The comment form still works beside it.
    assert page.locator("#cm-form").count() == 1
    page.check(f"#cm-report-{comment_id}-personal_data")
    page.click(f"{form} .cm-report-button")
    page.wait_for_url(f"{blog.url}{key}#comment-reported")
    page.wait_for_selector("#comment-reported.cm-notice--shown")
    assert page.evaluate("document.activeElement.id") == "comment-reported"
    assert thanks in page.text_content("#comment-reported")
    # One report of personal data took it down: gone from the thread at once.
    assert status_of(server, comment_id) is CommentStatus.PENDING
    assert page.locator(f"#comment-{comment_id}").count() == 0
    assert page.locator(".cm-report-link").count() == 0
    context.close()


def test_with_the_script_a_comment_taken_down_since_the_page_loaded_goes_to_its_page(
    server: LiveServer, browser: Any, blog: Blog
) -> None:
    """The report page answers 404 once a comment is no longer published: the script went on
    to insert nothing ("null") and threw; it now opens that page, which says why."""
    key, comment_id = published_post(server, blog, "script", "en")
    context = browser.new_context(bypass_csp=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{blog.url}{key}")
    page.wait_for_selector(".cm-report-link")
    with server.session() as session:
        moderator = session.scalars(select(Moderator)).one()
        moderate_comment(
            session, moderator, comment_id, "unapprove",
            actor=Actor("editor", moderator.id), now=utcnow(),
        )  # fmt: skip
        session.commit()
    page.click(".cm-report-link")
    page.wait_for_url(f"{server.url}/embed/blog/comments/{comment_id}/report**")
    assert "null" not in page.text_content("body")
    assert errors == []
    context.close()


def test_in_the_iframe_the_report_returns_to_the_frame(
    server: LiveServer, browser: Any, blog: Blog
) -> None:
    key, comment_id = published_post(server, blog, "iframe", "en")
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{blog.url}{key}")
    page.wait_for_function("parseInt(document.querySelector('iframe').style.height) > 200")
    frame = page.frame_locator("iframe")
    frame.locator(".cm-report-link").click()
    frame.locator(".cm-report-form").wait_for()
    frame.locator(f"#cm-report-{comment_id}-off_topic").check()
    frame.locator(".cm-report-button").click()
    frame.locator("#comment-reported").wait_for(state="visible")
    assert page.url == f"{blog.url}{key}"  # the blog's page stayed; the frame came back
    assert page.frames[1].url.endswith("#comment-reported") and "page=1" in page.frames[1].url
    assert [r.reason for r in reports_of(server, comment_id)] == ["off_topic"]
    context.close()


def test_moderators_dismiss_reports_in_place_in_the_reported_tab(
    server: LiveServer, browser: Any, blog: Blog
) -> None:
    from tests.helpers import PASSWORD

    key, comment_id = published_post(server, blog, "include", "en")
    context = browser.new_context(bypass_csp=True)  # axe is injected
    reader = context.new_page()
    reader.goto(f"{server.url}/embed/blog/comments/{comment_id}/report")
    reader.check(f"#cm-report-{comment_id}-personal_data")
    reader.fill(f"#cm-report-{comment_id}-detail", "Her phone number is in it")
    reader.click(".cm-report-button")
    reader.wait_for_url(f"{blog.url}{key}#comment-reported")
    assert status_of(server, comment_id) is CommentStatus.PENDING

    queue = context.new_page()
    queue.goto(f"{server.url}/moderate/login")
    queue.fill("#login", "editor")
    queue.fill("#password", PASSWORD)
    queue.click("button[type=submit]")
    queue.wait_for_url(f"{server.url}/moderate/")
    queue.click("a[data-count=reported]")
    queue.wait_for_selector(f"#queue-{comment_id}")
    card = queue.text_content(f"#queue-{comment_id}") or ""
    assert "Personal data" in card and "Her phone number is in it" in card
    assert queue.get_attribute("a[data-count=reported]", "aria-current") == "page"
    reported = int((queue.text_content("a[data-count=reported] .count") or "").strip("()"))
    assert axe_violations(queue) == []
    queue.click(f"#queue-{comment_id} button[data-action=dismiss-reports]")
    # The queue's script acts in place: the card is marked done, the tab's count falls.
    queue.locator(f"#queue-{comment_id}.queue-item--done").wait_for()
    queue.wait_for_function(
        "n => document.querySelector('a[data-count=reported] .count').textContent === `(${n})`",
        arg=reported - 1,
    )
    assert status_of(server, comment_id) is CommentStatus.APPROVED
    context.close()
