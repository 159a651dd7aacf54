"""A commenter in headless Chromium, on a blog page of another origin (a second loopback server
on its own ephemeral port) that embeds the thread: with embed.js, with JavaScript disabled (a
server-side include), and in an iframe; errors, replies, moderation, Welsh, axe-core and 320 px."""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from sqlalchemy import select

from moderation.actions import moderate_comment
from moderation.events import Actor
from moderation.models import Comment, CommentStatus, Moderator, Post, Site, utcnow
from moderation.sites import create_site
from tests.browser import (
    LiveServer,
    axe_violations,
    live_server,
    require_browser,
    serving,
)
from tests.helpers import make_moderator

pytestmark = pytest.mark.browser


class Blog:
    """The blog's own server: each post page embeds the thread the way the test asked."""

    def __init__(self) -> None:
        self.pages: dict[str, tuple[str, str]] = {}
        self.server: LiveServer | None = None
        self.url = ""  # set once it is served

    def wsgi(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        mode, lang = self.pages.get(environ["PATH_INFO"], ("include", "en"))
        assert self.server is not None
        body = host_page(self.server, environ["PATH_INFO"], mode, lang).encode()
        start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
        return [body]


@pytest.fixture(scope="module")
def blog() -> Iterator[Blog]:
    require_browser()
    blog = Blog()
    with serving(blog.wsgi) as blog.url:
        yield blog


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, blog: Blog) -> Iterator[LiveServer]:
    # max-age 0 and no stale-while-revalidate: each read revalidates, so a moderation shows on
    # the very next load (the test's subject); the ETag still saves the body.
    # Mail on (nothing sends it here), so the form shows its email opt-ins to every check.
    mail = {
        "smtp_host": "127.0.0.1",
        "smtp_security": "none",
        "mail_from": "comments@example.org",
        "public_url": "http://127.0.0.1",
    }
    for server in live_server(
        tmp_path_factory.mktemp("live"), public_max_age=0, stale_while_revalidate=0, **mail
    ):
        with server.session() as session:
            create_site(session, slug="blog", name="Test blog", origins=[blog.url])
            session.commit()
            make_moderator(session)
        blog.server = server
        yield server


def host_page(server: LiveServer, key: str, mode: str, lang: str = "en") -> str:
    """The blog's post page, embedding the thread in one of the three ways."""
    if mode == "script":
        embed = (
            f'<div id="comments" data-site="blog" data-post="{key}" data-title="Post {key}">'
            f'<p><a href="{server.url}/embed/blog/thread?post={quote(key)}&amp;page=1">'
            "Read and leave comments</a></p></div>"
            f'<script src="{server.url}/embed.js" async></script>'
        )
    elif mode == "include":
        url = f"{server.url}/embed/blog/thread?post={quote(key)}&lang={lang}"
        with urllib.request.urlopen(url) as response:  # the blog's server fetches the fragment
            embed = f'<div id="comments">{response.read().decode()}</div>'
    else:
        embed = (
            f'<iframe src="{server.url}/embed/blog/thread?post={quote(key)}'
            f'&amp;page=1&amp;lang={lang}" '
            'title="Comments" style="width:100%;border:0"></iframe>'
            f'<script src="{server.url}/embed.js" async></script>'
        )
    return (
        f'<!doctype html><html lang="{lang}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Post {key}</title></head><body><main><h1>Post {key}</h1>"
        f"<p>The post's text.</p>{embed}</main></body></html>"
    )


def open_post(
    browser: Any, blog: Blog, key: str, mode: str, *, lang: str = "en", **options: Any
) -> tuple[Any, Any]:
    blog.pages[key] = (mode, lang)
    context = browser.new_context(**options)
    page = context.new_page()
    page.goto(f"{blog.url}{key}")
    return context, page


def comments_of(server: LiveServer, key: str) -> list[Comment]:
    with server.session() as session:
        return list(
            session.scalars(
                select(Comment).join(Comment.post).where(Post.key == key).order_by(Comment.id)
            )
        )


def approve_all(server: LiveServer, key: str) -> None:
    with server.session() as session:
        moderator = session.scalars(select(Moderator)).one()
        for comment in comments_of(server, key):
            if comment.status is CommentStatus.PENDING:
                moderate_comment(
                    session, moderator, comment.public_id, "approve",
                    actor=Actor("editor", moderator.id), now=utcnow(),
                )  # fmt: skip
        session.commit()


def fill_form(page: Any, name: str, email: str, body: str) -> None:
    """Type a comment into the embed's form, field by field, as a person would."""
    page.fill("#cm-author_name", name)
    page.fill("#cm-author_email", email)
    page.fill("#cm-body", body)


def announced(page: Any, text: str) -> None:
    """Wait until the form's live region says ``text``."""
    page.wait_for_function(
        "text => document.querySelector('#cm-status').textContent.includes(text)", arg=text
    )


def test_with_the_script_errors_are_shown_announced_and_typing_is_kept(
    server: LiveServer, browser: Any, blog: Blog
) -> None:
    key = "/script-errors/"
    context, page = open_post(browser, blog, key, "script")
    page.wait_for_selector("#cm-form")
    page.click("button[type=submit]")
    page.wait_for_selector("#cm-error-summary:not([hidden])")
    assert page.evaluate("document.activeElement.id") == "cm-error-summary"
    announced(page, "There is a problem")
    links = page.eval_on_selector_all("#cm-error-summary a", "els => els.map(a => a.hash)")
    assert links == ["#cm-author_name", "#cm-author_email", "#cm-body"]
    assert page.get_attribute("#cm-author_name", "aria-invalid") == "true"
    assert "cm-author_name-error" in (
        page.get_attribute("#cm-author_name", "aria-describedby") or ""
    )
    page.click("#cm-error-summary a[href='#cm-author_email']")
    assert page.evaluate("document.activeElement.id") == "cm-author_email"

    fill_form(page, "Ada", "not an address", "Typed with care")
    assert "9,985" in page.text_content("#cm-body-count")  # live character count
    page.click("button[type=submit]")
    page.wait_for_function("document.querySelectorAll('#cm-error-summary li').length === 1")
    assert page.is_visible("#cm-author_email-error") and not page.is_visible(
        "#cm-author_name-error"
    )
    assert page.input_value("#cm-body") == "Typed with care"
    assert page.input_value("#cm-author_name") == "Ada"

    page.fill("#cm-author_email", "ada@example.com")
    page.click("button[type=submit]")
    page.wait_for_selector("#comment-submitted.cm-notice--shown")
    assert page.evaluate("document.activeElement.id") == "comment-submitted"
    announced(page, "Thank you")
    assert page.is_hidden("#cm-error-summary")
    (stored,) = comments_of(server, key)
    assert stored.body_text == "Typed with care" and stored.status is CommentStatus.PENDING
    with server.session() as session:
        post = session.scalars(select(Post).where(Post.key == key)).one()
        assert (post.url, post.title) == (f"{blog.url}{key}", f"Post {key}")
    context.close()


def test_with_the_script_a_reply_moves_the_form_and_an_approval_appears(
    server: LiveServer, browser: Any, blog: Blog
) -> None:
    key = "/script-reply/"
    context, page = open_post(browser, blog, key, "script")
    page.wait_for_selector("#cm-form")
    fill_form(page, "Ada", "ada@example.com", "The first comment")
    page.click("button[type=submit]")
    page.wait_for_selector("#comment-submitted.cm-notice--shown")
    approve_all(server, key)

    page.reload()
    page.wait_for_selector(".cm-comment")
    assert "The first comment" in page.text_content(".cm-comments")
    page.click(".cm-reply-link")
    assert page.evaluate("document.querySelector('.cm-comment #cm-form') !== null")
    assert page.evaluate("document.activeElement.id") == "cm-body"
    assert "Replying to Ada" in page.text_content("#cm-replying")
    fill_form(page, "Grace", "grace@example.com", "A reply")
    page.click("button[type=submit]")
    page.wait_for_selector("#comment-submitted.cm-notice--shown")
    first, reply = comments_of(server, key)
    assert reply.parent_id == first.id
    assert page.evaluate("document.querySelector('.cm-comment #cm-form') === null")
    context.close()


def test_without_javascript_the_included_form_posts_and_redirects_back(
    server: LiveServer, browser: Any, blog: Blog
) -> None:
    key = "/no-js/"
    context, page = open_post(browser, blog, key, "include", java_script_enabled=False)
    page.click("button[type=submit]")  # empty: the service's page with the errors
    page.wait_for_selector("#cm-error-summary")
    assert page.url.startswith(f"{server.url}/embed/blog/thread")
    assert page.is_visible("#cm-error-summary")
    assert page.title().startswith("Error: ")
    assert page.get_attribute("#cm-error-summary", "role") == "alert"
    fill_form(page, "Tim", "tim@example.com", "No script needed")
    page.click("button[type=submit]")
    page.wait_for_url(f"{blog.url}{key}#comment-submitted")
    assert page.url == f"{blog.url}{key}#comment-submitted"
    assert page.is_visible("#comment-submitted")
    assert [c.body_text for c in comments_of(server, key)] == ["No script needed"]

    approve_all(server, key)
    page.goto(f"{blog.url}{key}")
    assert "No script needed" in page.text_content(".cm-comments")
    page.click(".cm-reply-link")  # without script: the thread page with the reply set
    page.wait_for_selector("#cm-replying:not([hidden])")
    assert page.url.startswith(f"{server.url}/embed/blog/thread")
    assert "Replying to Tim" in page.text_content("#cm-replying")
    # A full page styled like the embed, with its way back to the post.
    assert page.is_visible("h1.cm-page-title")
    assert page.get_attribute(".cm-back a", "href") == f"{blog.url}{key}"
    fill_form(page, "Ann", "ann@example.com", "Reply without script")
    page.click("button[type=submit]")
    # Back on the blog, at the comment replied to, whose notice shows there.
    first, reply = comments_of(server, key)
    page.wait_for_url(f"{blog.url}{key}#comment-{first.public_id}-submitted")
    assert reply.parent_id == first.id
    assert page.is_visible(f"#comment-{first.public_id}-submitted")
    assert not page.is_visible("#comment-submitted")
    context.close()


def test_the_iframe_is_resized_to_its_content(server: LiveServer, browser: Any, blog: Blog) -> None:
    context, page = open_post(browser, blog, "/framed/", "iframe")
    page.wait_for_function("parseInt(document.querySelector('iframe').style.height) > 400")
    frame = page.frame_locator("iframe")
    assert frame.locator("#cm-form").is_visible()
    context.close()


def test_in_the_iframe_the_page_is_only_the_thread_and_an_empty_one_says_so_once(
    server: LiveServer, browser: Any, blog: Blog
) -> None:
    """Issue 19 item 12: framed, the page drops its own title, its "Back to..." link and the
    page's padding (the blog has its own); an empty thread shows one line, not a heading and a
    sentence saying the same."""
    key = "/framed-empty/"
    with server.session() as session:  # a post the service knows (so a way back to it), empty
        site = session.scalars(select(Site).where(Site.slug == "blog")).one()
        session.add(Post(site=site, key=key, title="An empty thread", url=f"{blog.url}{key}"))
        session.commit()
    context, page = open_post(browser, blog, key, "iframe")
    page.wait_for_function("parseInt(document.querySelector('iframe').style.height) > 400")
    frame = page.frame_locator("iframe")
    assert frame.locator("#cm-form").is_visible()
    assert frame.locator(".cm-back").count() == 1 and not frame.locator(".cm-back").is_visible()
    assert not frame.locator("h1.cm-page-title").is_visible()
    padding = frame.locator("body").evaluate(
        "b => ['Top', 'Bottom'].map(side => getComputedStyle(b)['padding' + side])"
    )
    assert padding == ["0px", "0px"], padding
    thread = frame.locator("#cm-thread, .cm-thread, main").first.inner_text()
    assert thread.count("No comments yet") == 1, thread
    assert "There are no comments yet" not in thread
    context.close()


@pytest.mark.parametrize("lang", ["en", "cy"])
@pytest.mark.parametrize("mode", ["script", "include", "iframe"])
def test_the_thread_and_form_have_no_axe_violations(
    server: LiveServer, browser: Any, blog: Blog, mode: str, lang: str
) -> None:
    key = "/axe/"
    if not comments_of(server, key):
        with server.session() as session:
            from moderation.comments import submit_comment
            from moderation.validation import CommentSubmission

            parent = submit_comment(
                session, "blog",
                CommentSubmission(post=key, post_url=f"{blog.url}{key}", author_name="Ada",
                                  author_email="ada@example.com", body="A *first* comment"),
                now=utcnow(),
            )  # fmt: skip
            session.commit()
        approve_all(server, key)
        with server.session() as session:
            submit_comment(
                session, "blog",
                CommentSubmission(post=key, author_name="Bo", author_email="bo@example.com",
                                  body="A reply", parent_id=parent.public_id),
                now=utcnow(),
            )  # fmt: skip
            session.commit()
        approve_all(server, key)
    # Without the script: the server-side include with embed.js blocked (axe itself needs
    # JavaScript in the page, so the script is blocked rather than JavaScript disabled).
    blog.pages[key] = (mode, lang)
    context = browser.new_context(bypass_csp=True)
    if mode == "include":
        context.route("**/embed.js", lambda route: route.abort())
    page = context.new_page()
    page.goto(f"{blog.url}{key}")
    if mode == "iframe":
        page.wait_for_function("parseInt(document.querySelector('iframe').style.height) > 400")
        page.goto(page.frames[1].url)  # axe checks the frame's own page
    elif mode == "script":
        page.wait_for_selector("#cm-form")
    expected = "Gadael sylw" if lang == "cy" else "Leave a comment"
    assert expected in page.text_content("#cm-form")
    assert page.locator(".cm-comment").count() == 2
    assert (
        page.locator("#cm-notify").count() == 1 and page.locator("#cm-notify_replies").count() == 1
    )
    assert axe_violations(page) == [], (mode, lang)
    page.click("button[type=submit]")  # and with the errors shown
    page.wait_for_selector("#cm-error-summary:not([hidden])")
    assert axe_violations(page) == [], (mode, lang, "errors")
    context.close()


def test_the_embed_is_usable_at_320_px_and_200_percent_zoom(
    server: LiveServer, browser: Any, blog: Blog
) -> None:
    for options in (
        {"viewport": {"width": 320, "height": 800}},
        {"viewport": {"width": 640, "height": 800}, "device_scale_factor": 2},
    ):
        context, page = open_post(browser, blog, "/narrow/", "script", **options)
        page.wait_for_selector("#cm-form")
        if "device_scale_factor" in options:
            page.evaluate("document.documentElement.style.zoom = '2'")
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"the embed scrolls sideways by {overflow}px"
        context.close()


def test_counts_are_readable_from_the_blog_origin(
    server: LiveServer, browser: Any, blog: Blog
) -> None:
    context, page = open_post(browser, blog, "/counts/", "script")
    result = page.evaluate(
        f"""fetch('{server.url}/api/v1/sites/blog/counts?post=/axe/&post=/none/')
             .then(r => r.json())"""
    )
    assert json.loads(json.dumps(result))["counts"]["/none/"] == 0
    context.close()


def test_with_the_script_a_commenter_who_must_confirm_is_told_to_check_their_email(
    server: LiveServer, browser: Any, blog: Blog
) -> None:
    from moderation.comments import get_site
    from moderation.events import Actor
    from moderation.sites import update_site

    def verify(on: bool) -> None:
        with server.session() as session:
            site = get_site(session, "blog")
            update_site(session, site, {"verify_email": on}, actor=Actor("test"), now=utcnow())
            session.commit()

    verify(True)
    try:
        key = "/script-verify/"
        context, page = open_post(browser, blog, key, "script")
        page.wait_for_selector("#cm-form")
        fill_form(page, "Ada", "ada@example.com", "Please confirm me")
        page.check("#cm-notify")
        page.click("button[type=submit]")
        page.wait_for_selector("#comment-submitted.cm-notice--shown")
        announced(page, "check your email and open its link")
        assert "check your email and open its link" in page.text_content("#comment-submitted")
        (stored,) = comments_of(server, key)
        assert stored.status is CommentStatus.UNCONFIRMED and stored.notify_decision is True
        context.close()
    finally:
        verify(False)


def test_a_comment_from_a_welsh_page_keeps_its_language_for_its_mail(
    server: LiveServer, browser: Any, blog: Blog
) -> None:
    key = "/script-welsh/"
    context, page = open_post(browser, blog, key, "script", lang="cy")
    page.wait_for_selector("#cm-form")
    fill_form(page, "Bryn", "bryn@example.com", "Diolch am y blogbost hwn.")
    page.click("button[type=submit]")
    page.wait_for_selector("#comment-submitted.cm-notice--shown")
    [stored] = comments_of(server, key)
    assert stored.lang == "cy"
    context.close()


def test_an_approval_shows_on_the_next_reload_with_the_default_cache_settings(
    browser: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The README's promise ("approve it, reload the post: it is there") with the shipped
    Cache-Control (max-age 10 and stale-while-revalidate 60 once showed the old thread for up to
    ten seconds): the embed revalidates on every load, in script and iframe modes."""
    require_browser()
    fresh = Blog()
    with serving(fresh.wsgi) as fresh.url:
        for server in live_server(tmp_path_factory.mktemp("fresh")):
            with server.session() as session:
                create_site(session, slug="blog", name="Test blog", origins=[fresh.url])
                session.commit()
                make_moderator(session)
            fresh.server = server
            for mode in ("script", "iframe"):
                key = f"/fresh-{mode}/"
                context, page = open_post(browser, fresh, key, mode)

                def thread(page: Any = page, mode: str = mode) -> Any:
                    """Where the thread is: the page, or the iframe's document."""
                    if mode == "script":
                        return page
                    page.wait_for_selector("iframe")
                    return (
                        page.frame_locator("iframe").locator("body").element_handle().owner_frame()
                    )

                thread().wait_for_selector("#cm-form")
                fill_form(thread(), "Ada", "ada@example.com", f"Fresh in {mode} mode")
                thread().click("button[type=submit]")
                thread().wait_for_selector("#comment-submitted")
                # Read once more while it waits: the browser now holds a copy without it.
                page.reload()
                thread().wait_for_selector("#cm-form")
                assert thread().locator(".cm-comment").count() == 0
                approve_all(server, key)
                page.reload()
                thread().wait_for_selector(".cm-comment", timeout=5000)
                assert f"Fresh in {mode} mode" in thread().text_content(".cm-comments")
                context.close()


def test_without_javascript_errors_come_in_the_forms_order_on_a_full_page(
    server: LiveServer, browser: Any, blog: Blog
) -> None:
    key = "/no-js-order/"
    context, page = open_post(browser, blog, key, "include", java_script_enabled=False)
    page.fill("#cm-author_email", "not an address")
    page.click("button[type=submit]")
    page.wait_for_selector("#cm-error-summary")
    links = page.locator("#cm-error-summary a")
    assert [links.nth(i).get_attribute("href") for i in range(links.count())] == [
        "#cm-author_name",
        "#cm-author_email",
        "#cm-body",
    ]  # Name, Email, Comment: as the form asks
    assert page.is_visible("h1.cm-page-title")
    assert page.evaluate("getComputedStyle(document.querySelector('.cm-button')).backgroundColor")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    context.close()


def test_with_the_script_a_reply_keeps_the_place_and_errors_are_counted_in_words(
    server: LiveServer, browser: Any, blog: Blog
) -> None:
    key = "/script-place/"
    context, page = open_post(browser, blog, key, "script", viewport={"width": 800, "height": 500})
    page.wait_for_selector("#cm-form")
    for n in range(6):  # a long thread: the skip link appears
        fill_form(page, f"Reader {n}", f"reader{n}@example.com", f"Comment number {n}")
        page.click("button[type=submit]")
        page.wait_for_selector("#comment-submitted.cm-notice--shown")
        page.evaluate(
            "document.querySelector('#comment-submitted').classList.remove('cm-notice--shown')"
        )
    approve_all(server, key)
    page.reload()
    page.wait_for_selector(".cm-comment")
    assert page.get_attribute(".cm-skip-link", "href") == "#cm-form"

    # Two errors: the live region says how many in words; the summary is wholly in view.
    page.fill("#cm-author_name", "")
    page.fill("#cm-body", "")
    page.fill("#cm-author_email", "ada@example.com")
    page.click("button[type=submit]")
    page.wait_for_function(
        "document.querySelector('#cm-status').textContent === 'There is a problem: 2 errors'"
    )
    box = page.evaluate(
        "(() => { const r = document.querySelector('#cm-error-summary').getBoundingClientRect();"
        " return [r.top, r.bottom, window.innerHeight]; })()"
    )
    assert box[0] >= -1 and box[1] <= box[2] + 1, box  # (sub-pixel rounding)
    assert page.evaluate("document.activeElement.id") == "cm-error-summary"

    # A reply: the notice appears under the comment replied to, and focus goes there.
    third = comments_of(server, key)[2].public_id
    page.click(f"#comment-{third} .cm-reply-link")
    fill_form(page, "Grace", "grace@example.com", "A reply in place")
    page.click("button[type=submit]")
    page.wait_for_selector("#comment-submitted.cm-notice--shown")
    assert page.evaluate("document.activeElement.id") == "comment-submitted"
    assert page.evaluate("document.activeElement.closest('.cm-comment').id") == f"comment-{third}"
    assert "Your reply will be published" in page.text_content("#comment-submitted")
    context.close()


def test_with_the_script_a_rate_limited_commenter_is_told_how_long_to_wait(
    browser: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    require_browser()
    limited = Blog()
    with serving(limited.wsgi) as limited.url:
        for server in live_server(
            tmp_path_factory.mktemp("limited"), ratelimit_enabled=True, ratelimit_email="1/minute"
        ):
            with server.session() as session:
                create_site(session, slug="blog", name="Test blog", origins=[limited.url])
                session.commit()
            limited.server = server
            context, page = open_post(browser, limited, "/limited/", "script")
            page.wait_for_selector("#cm-form")
            fill_form(page, "Ada", "ada@example.com", "Comment 0")
            page.click("button[type=submit]")
            # The first is accepted (and the form emptied) before the second is typed.
            page.wait_for_selector("#comment-submitted.cm-notice--shown")
            fill_form(page, "Ada", "ada@example.com", "Comment 1")
            page.click("button[type=submit]")
            page.wait_for_selector("#cm-error-summary:not([hidden])")
            summary = page.text_content("#cm-error-summary")
            assert "You can send another comment in" in summary
            assert re.search(r"in \d+ seconds\.", summary)
            # Said at form level: no field is marked wrong, the text is kept.
            assert page.locator("[aria-invalid]").count() == 0
            assert page.locator(".cm-error-summary a").count() == 0
            assert page.input_value("#cm-body") == "Comment 1"
            context.close()
