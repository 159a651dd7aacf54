"""The WordPress plugin (integrations/wordpress/) in a real WordPress, beside the service, driven
in Chromium: settings and the connection test, a reader with and without JavaScript, the queue,
counts, feeds, the service down, closing, and the move of existing comments.

Needs Debian's wordpress, php-cli, php-mysql and mariadb-server (.ci/run installs them); skipped
with a message where they are missing.
"""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from moderation.actions import moderate_comment
from moderation.comments import submit_comment
from moderation.events import Actor
from moderation.models import Comment, CommentStatus, Moderator, Post, Report, Site, utcnow
from moderation.sites import create_site
from moderation.validation import CommentSubmission
from tests.browser import LiveServer, live_server, require_browser
from tests.helpers import PASSWORD, make_moderator, make_token
from tests.wordpress import (
    ADMIN,
    ADMIN_PASSWORD,
    PLUGIN,
    PLUGIN_FILE,
    WordPress,
    require_wordpress,
    wordpress,
)

pytestmark = [pytest.mark.wordpress, pytest.mark.browser]


@pytest.fixture(scope="module")
def wp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WordPress]:
    require_browser()
    with wordpress(tmp_path_factory.mktemp("wp")) as site:
        activated = site.php(
            f"$r = activate_plugin( '{PLUGIN_FILE}' );"
            " echo is_wp_error( $r ) ? $r->get_error_message() : 'active';"
        )
        assert activated == "active"
        yield site
        # The plugin itself raised no PHP warning or notice (WordPress 6.1's own deprecation
        # notices on PHP 8.2 are not the plugin's).
        assert "comments-service" not in site.log()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, wp: WordPress) -> Iterator[LiveServer]:
    # Every read revalidates (max-age 0), so a moderation shows on the next page view.
    for server in live_server(
        tmp_path_factory.mktemp("service"), public_max_age=0, stale_while_revalidate=0
    ):
        with server.session() as session:
            create_site(session, slug="blog", name="A test blog", origins=[wp.url])
            session.commit()
            token = make_token(session, make_moderator(session))
        set_options(wp, server.url, "blog", "include", token)
        yield server


def set_options(wp: WordPress, url: str, site: str, mode: str, token: str | None = None) -> None:
    settings = json.dumps({"url": url, "site": site, "mode": mode})
    code = (
        "update_option( 'comments_service', array_merge("
        " (array) get_option( 'comments_service', array() ),"
        f" json_decode( {php_string(settings)}, true ) ) );"
    )
    if token is not None:
        code += f"update_option( 'comments_service_token', '{token}', false );"
    wp.php(code + "echo 'ok';")


def publish(wp: WordPress, title: str, **fields: str) -> dict[str, Any]:
    post = json.dumps({"post_title": title, "post_content": "The text of the post.", **fields})
    found: dict[str, Any] = wp.php(
        "$id = wp_insert_post( array_merge( array( 'post_status' => 'publish' ),"
        f" json_decode( {php_string(post)}, true ) ) );"
        "echo wp_json_encode( array( 'id' => $id, 'url' => get_permalink( $id ),"
        " 'key' => wp_parse_url( get_permalink( $id ), PHP_URL_PATH ) ) );"
    )
    return found


def php_string(value: str) -> str:
    """A PHP single-quoted string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def wp_admin(browser: Any, wp: WordPress) -> tuple[Any, Any]:
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{wp.url}/wp-login.php")
    page.fill("#user_login", ADMIN)
    page.fill("#user_pass", ADMIN_PASSWORD)
    page.click("#wp-submit")
    page.wait_for_url("**/wp-admin/**")
    return context, page


def service_comments(server: LiveServer, key: str) -> list[Comment]:
    with server.session() as session:
        return list(
            session.scalars(
                select(Comment).join(Comment.post).where(Post.key == key).order_by(Comment.id)
            )
        )


def service_post(server: LiveServer, key: str) -> Post | None:
    with server.session() as session:
        return session.scalars(select(Post).where(Post.key == key)).one_or_none()


def fetch(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def editor(session: Session) -> Moderator:
    return session.scalars(select(Moderator).where(Moderator.login == "editor")).one()


def test_the_plugin_files_pass_php_lint() -> None:
    require_wordpress()
    files = sorted(PLUGIN.rglob("*.php"))
    assert len(files) >= 7, files
    for path in files:
        done = subprocess.run(["php", "-l", str(path)], capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr


def test_settings_keep_the_token_unseen_and_the_test_button_reports(
    browser: Any, wp: WordPress, server: LiveServer
) -> None:
    with server.session() as session:
        second = make_token(session, editor(session))
    context, page = wp_admin(browser, wp)
    page.goto(f"{wp.url}/wp-admin/options-general.php?page=comments-service")
    assert page.input_value("#cmsvc-token") == ""
    assert "A token is stored; it is never shown." in page.text_content(".wrap")
    page.check("input[name='comments_service[mode]'][value='script']")
    page.fill("#cmsvc-token", second)
    page.click("#submit")
    page.wait_for_selector("#setting-error-settings_updated")
    assert second not in page.content()
    assert page.input_value("#cmsvc-token") == ""
    stored = wp.php(
        "echo wp_json_encode( array( get_option( 'comments_service' ),"
        " get_option( 'comments_service_token' ) ) );"
    )
    assert stored == [
        {"url": server.url, "site": "blog", "mode": "script", "native_off": False},
        second,
    ]

    page.click("#cmsvc-test")
    notice = page.text_content(".cmsvc-notice")
    assert "The service answers and the site exists." in notice
    assert f"This blog's origin ({wp.url}) is allowed." in notice
    assert "The API token works (an administrator, editor)." in notice

    page.fill("#cmsvc-site", "nope")
    page.click("#submit")
    page.click("#cmsvc-test")
    assert "has no site with this slug" in page.text_content(".cmsvc-notice")

    # A blog whose origin the site does not list is told so.
    with server.session() as session:
        site = session.scalars(select(Site).where(Site.slug == "blog")).one()
        site.origins = ["https://elsewhere.example"]
        session.commit()
    set_options(wp, server.url, "blog", "include")
    try:
        found = wp.php("echo wp_json_encode( cmsvc_check_connection() );")
    finally:
        with server.session() as session:
            site = session.scalars(select(Site).where(Site.slug == "blog")).one()
            site.origins = [wp.url]
            session.commit()
    assert found["ok"] is False
    assert f"This blog's origin ({wp.url}) is not one of the site's origins" in found["lines"][1]

    # The actions check their nonce: a forged form gets WordPress's 403.
    forged = page.request.post(f"{wp.url}/wp-admin/admin-post.php", form={"action": "cmsvc_move"})
    assert forged.status == 403
    context.close()
    set_options(wp, server.url, "blog", "include")


def test_readers_with_and_without_javascript_comment_and_see_approved_comments(
    browser: Any, wp: WordPress, server: LiveServer
) -> None:
    title = 'Levelling up: "what next" & why'
    post = publish(wp, title)

    reader = browser.new_context(java_script_enabled=False)
    page = reader.new_page()
    page.goto(post["url"])
    assert "what next" in page.text_content("h1")  # WordPress curls the quotes
    assert page.is_visible("#cm-thread #cm-form")  # the include: no script needed
    assert page.get_attribute("#comments", "data-published")
    assert page.input_value("input[name=post_title]") == title
    page.fill("#cm-author_name", "Siân Jones")
    page.fill("#cm-author_email", "sian@example.cymru")
    page.fill("#cm-body", "Diolch! Without JavaScript, through <b>WordPress</b>.")
    time.sleep(3.2)  # the form's time trap: a person takes longer than 3 s
    page.click("button.cm-button")
    page.wait_for_url(f"{post['url']}#comment-submitted")
    assert page.is_visible("#comment-submitted")

    (comment,) = service_comments(server, post["key"])
    assert comment.status is CommentStatus.PENDING and not comment.signals
    found = service_post(server, post["key"])
    assert found is not None and found.title == title and found.url == post["url"]
    # The post's publication date went with the form (the automatic close counts from it).
    assert found.published_at is not None

    moderator = browser.new_context()
    queue = moderator.new_page()
    queue.goto(f"{server.url}/moderate/login")
    queue.fill("#login", "editor")
    queue.fill("#password", PASSWORD)
    queue.click("button[type=submit]")
    queue.wait_for_url(f"{server.url}/moderate/")
    queue.click(f"#queue-{comment.public_id} button[data-action=approve]")
    # The queue's script decides in place: the card is marked done when the answer is in.
    queue.locator(f"#queue-{comment.public_id}.queue-item--done").wait_for()
    assert service_comments(server, post["key"])[0].status is CommentStatus.APPROVED
    moderator.close()

    page.goto(post["url"])
    # The comment's markup, as the service sanitised it, passes the plugin's wp_kses.
    assert "Without JavaScript, through <b>WordPress</b>." in page.inner_html(
        ".cm-comment .cm-body"
    )
    reader.close()

    dialogs: list[str] = []
    scripted = browser.new_context()
    page = scripted.new_page()

    def refuse(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", refuse)
    page.goto(post["url"])
    assert "Siân Jones" in page.text_content(".cm-comment")
    page.fill("#cm-author_name", "Ada Lovelace")
    page.fill("#cm-author_email", "ada@example.com")
    page.fill("#cm-body", "With JavaScript, the enhanced form.")
    # embed.js enhanced the included form: it counts characters as they are typed.
    page.wait_for_function(
        "document.querySelector('#cm-body-count').textContent.includes('remaining')"
    )
    time.sleep(3.2)
    page.click("button.cm-button")
    page.wait_for_function("document.querySelector('#cm-status').textContent.includes('Thank you')")
    # Their own comment shows to them, awaiting moderation: the include (through wp_kses) kept
    # the service's empty copy that embed.js fills in as text.
    own = page.locator(".cm-own:not([hidden])")
    assert own.locator(".cm-body").text_content() == "With JavaScript, the enhanced form."
    assert own.locator(".cm-badge").text_content() == "Your comment, awaiting moderation"
    assert [c.status for c in service_comments(server, post["key"])] == [
        CommentStatus.APPROVED,
        CommentStatus.PENDING,
    ]
    assert dialogs == []
    scripted.close()

    # The count in the post list comes from the service (approved comments only; WordPress
    # itself has none for this post).
    context, admin = wp_admin(browser, wp)
    admin.goto(f"{wp.url}/wp-admin/edit.php")
    assert "1 comment" in admin.text_content(f"#post-{post['id']} .column-comments")
    context.close()
    assert wp.php(f"echo get_comments_number( {post['id']} );") == 1

    # The comment feeds are the service's Atom feeds.
    _, page_html = fetch(post["url"])
    feed = f"{server.url}/api/v1/sites/blog/feed.atom?post={quote(post['key'], safe='')}"
    assert feed.replace("&", "&amp;") in page_html or feed in page_html
    with urllib.request.urlopen(f"{post['url']}feed/", timeout=30) as response:
        assert response.url == feed
        assert "Without JavaScript" in response.read().decode()


def test_the_include_is_revalidated_with_its_etag_and_pages_embed_too(
    wp: WordPress, server: LiveServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="moderation.requests")
    # WordPress opens comments on pages only when asked.
    page = publish(wp, "About this blog", post_type="page", comment_status="open")
    first = fetch(page["url"])
    second = fetch(page["url"])
    assert first[0] == second[0] == 200 and 'id="cm-form"' in second[1]
    reads = [
        r.getMessage().split()[2] for r in caplog.records if "/embed/blog/thread" in r.getMessage()
    ]
    assert reads == ["200", "304"]  # the second view sent If-None-Match with the kept ETag
    kept = wp.php(
        "echo wp_json_encode( get_transient( 'cmsvc_f_' . md5( cmsvc_thread_url("
        f" cmsvc_post_facts( get_post( {page['id']} ) ) ) ) ) );"
    )
    assert kept["etag"].startswith('"') and 'id="cm-thread"' in kept["body"]


def test_hostile_markup_never_passes_the_fragment_filter(wp: WordPress) -> None:
    """Were the service's fragment ever hostile, wp_kses lets only its own tags through."""
    hostile = (
        '<script>alert(1)</script><a href="javascript:alert(2)" onclick="x()">a</a>'
        '<img src=x onerror=alert(3)><form action="https://evil.example/" onsubmit="y()">'
        '<input name="a" value="b" onfocus="z()" style="position:fixed"></form>'
        '<iframe src="https://evil.example/"></iframe><p class="cm-x" data-cm-id="1">kept</p>'
    )
    cleaned = wp.php(f"echo wp_kses( {php_string(hostile)}, cmsvc_fragment_tags() );")
    for bad in ("<script", "javascript:", "onclick", "<img", "onerror", "onsubmit", "onfocus",
                "style=", "<iframe"):  # fmt: skip
        assert bad not in cleaned, (bad, cleaned)
    assert '<p class="cm-x" data-cm-id="1">kept</p>' in cleaned
    assert '<form action="https://evil.example/">' in cleaned  # the form itself is the service's


def test_the_script_and_iframe_modes_embed_the_thread(
    browser: Any, wp: WordPress, server: LiveServer
) -> None:
    post = publish(wp, "Other modes")
    context = browser.new_context()
    page = context.new_page()
    try:
        set_options(wp, server.url, "blog", "script")
        _, html = fetch(post["url"])
        assert "Read and leave comments" in html and "page=1" in html  # without JavaScript
        page.goto(post["url"])
        page.wait_for_selector("#comments #cm-thread #cm-form")
        assert page.get_attribute("#comments", "data-title") == "Other modes"

        set_options(wp, server.url, "blog", "iframe")
        page.goto(post["url"])
        frame = page.frame_locator("#comments iframe")
        frame.locator("#cm-form").wait_for()
    finally:
        context.close()
        set_options(wp, server.url, "blog", "include")


def test_a_post_renders_with_a_note_when_the_service_is_down(
    wp: WordPress, server: LiveServer
) -> None:
    post = publish(wp, "The service is away")
    with socket.socket() as silent:
        # Accepts connections (the kernel's backlog) and never answers.
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        for url in (f"http://127.0.0.1:{silent.getsockname()[1]}", "http://127.0.0.1:9"):
            set_options(wp, url, "blog", "include")
            started = time.monotonic()
            status, html = fetch(post["url"])
            took = time.monotonic() - started
            assert status == 200 and "The text of the post." in html
            assert "Comments are unavailable at the moment." in html
            assert took < 20, took  # the plugin's 3 s timeout, with a wide margin
    set_options(wp, server.url, "blog", "include")


def test_closing_comments_in_wordpress_closes_the_post_in_the_service(
    wp: WordPress, server: LiveServer
) -> None:
    rules = {rule.rule for rule in server.app.url_map.iter_rules()}
    if not any(r.startswith("/api/v1/moderation/sites/<") and r.endswith("/posts") for r in rules):
        pytest.skip("the service has no PATCH /api/v1/moderation/sites/<site>/posts yet (issue 18)")
    post = publish(wp, "Closing soon")
    submit = {
        "post": post["key"],
        "post_url": post["url"],
        "author_name": "Ada",
        "author_email": "ada@example.com",
        "body": "Before closing.",
    }
    assert api_submit(server, submit) == 202
    # Approved: a theme shows a closed post's comments (and so the service's closed text) only
    # when it has some (twentytwentyone: comments_open() || get_comments_number()).
    with server.session() as session:
        (comment,) = service_comments(server, post["key"])
        moderate_comment(
            session, editor(session), comment.public_id, "approve",
            actor=Actor("editor", None), now=utcnow(),
        )  # fmt: skip
        session.commit()
    wp.php(
        f"wp_update_post( array( 'ID' => {post['id']}, 'comment_status' => 'closed' ) ); echo 'ok';"
    )
    found = service_post(server, post["key"])
    assert found is not None and found.closed
    assert api_submit(server, {**submit, "body": "After closing."}) == 403
    _, html = fetch(post["url"])
    assert "Comments are closed on this post." in html

    wp.php(
        f"wp_update_post( array( 'ID' => {post['id']}, 'comment_status' => 'open' ) ); echo 'ok';"
    )
    reopened = service_post(server, post["key"])
    assert reopened is not None and not reopened.closed


def test_a_post_closed_before_its_first_comment_is_closed_in_the_service(
    wp: WordPress, server: LiveServer
) -> None:
    """The service has not seen a post nobody commented on: the plugin's PATCH names it (its
    permalink and title), so it is created closed instead of answering 404 at every retry."""
    post = publish(wp, "Closed from the start")
    assert service_post(server, post["key"]) is None
    wp.php(
        f"wp_update_post( array( 'ID' => {post['id']}, 'comment_status' => 'closed' ) ); echo 'ok';"
    )
    found = service_post(server, post["key"])
    assert found is not None and found.closed
    assert (found.url, found.title) == (post["url"], "Closed from the start")
    submit = {
        "post": post["key"],
        "post_url": post["url"],
        "author_name": "Ada",
        "author_email": "ada@example.com",
        "body": "Through the API, on a post closed in WordPress.",
    }
    assert api_submit(server, submit) == 403
    confirmed = wp.php(f"echo get_post_meta( {post['id']}, '_comments_service_closed', true );")
    assert str(confirmed) == "1"  # confirmed: no retry

    # Published with comments closed from the start: no change of the setting to hook, and a
    # theme shows nothing of such a post, so the plugin tells the service when it is saved.
    born_closed = publish(wp, "Never open", comment_status="closed")
    found = service_post(server, born_closed["key"])
    assert found is not None and found.closed and found.title == "Never open"


def test_a_refusal_for_good_is_asked_again_only_when_the_settings_change(
    wp: WordPress, server: LiveServer
) -> None:
    """A service that refuses for good (here an unknown site: 404) is not asked again at every
    page view for five minutes, forever: the plugin waits a day, unless its settings change."""
    post = publish(wp, "Refused")
    sync = f"echo wp_json_encode( cmsvc_sync_closed( get_post( {post['id']} ) ) );"
    wait = f"echo (int) get_option( '_transient_timeout_cmsvc_r_{post['id']}' ) - time();"
    set_options(wp, server.url, "no-such-site", "include")
    try:
        wp.php(
            f"wp_update_post( array( 'ID' => {post['id']}, 'comment_status' => 'closed' ) );"
            " echo 'ok';"
        )
        assert int(wp.php(wait)) > 12 * 3600  # a day, not five minutes
        assert wp.php(sync) is None  # not asked again at the next page view
    finally:
        set_options(wp, server.url, "blog", "include")
    # Put right, the settings are another fingerprint: the next page view tells the service.
    assert wp.php(sync) is True
    found = service_post(server, post["key"])
    assert found is not None and found.closed


def api_submit(server: LiveServer, body: dict[str, str]) -> int:
    request = urllib.request.Request(
        f"{server.url}/api/v1/sites/blog/comments",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


NATIVE_COMMENTS = """
$post = {post};
$add = function ( $parent, $approved, $name, $text ) use ( $post ) {{
	return wp_insert_comment( array(
		'comment_post_ID' => $post, 'comment_parent' => $parent, 'comment_approved' => $approved,
		'comment_author' => $name, 'comment_author_email' => strtolower( $name ) . '@example.org',
		'comment_author_IP' => '203.0.113.7', 'comment_content' => $text,
		'comment_date_gmt' => '2025-01-02 10:00:00', 'comment_date' => '2025-01-02 10:00:00',
	) );
}};
$a = $add( 0, 1, 'Alys', 'The first comment, approved.' );
$b = $add( $a, 1, 'Bryn', 'A reply to Alys.' );
$c = $add( $b, 1, 'Cerys', 'A reply to Bryn: the chain goes three deep.' );
$d = $add( 0, 0, 'Dafydd', 'Still waiting for a moderator.' );
$s = $add( 0, 'spam', 'Spammer', 'Cheap pills.' );
echo wp_json_encode( array( 'a' => $a, 'b' => $b, 'c' => $c, 'd' => $d, 's' => $s ) );
"""


def test_move_existing_comments_imports_history_once_and_turns_native_comments_off(
    browser: Any, wp: WordPress, server: LiveServer
) -> None:
    post = publish(wp, "A post with history")
    ids = wp.php(NATIVE_COMMENTS.format(post=post["id"]))

    context, page = wp_admin(browser, wp)
    page.goto(f"{wp.url}/wp-admin/options-general.php?page=comments-service")
    page.click("#cmsvc-move")
    first = page.text_content(".cmsvc-notice")
    assert "Moved 5 comments" in first, first  # ours, and WordPress's sample comment

    moved = {c.import_ref: c for c in service_comments(server, post["key"])}
    ref = {name: f"wordpress:{number}" for name, number in ids.items()}
    assert set(moved) == {ref["a"], ref["b"], ref["c"], ref["d"]}  # spam is not exported
    assert moved[ref["d"]].status is CommentStatus.PENDING
    assert all(moved[ref[n]].status is CommentStatus.APPROVED for n in "abc")
    assert moved[ref["b"]].parent_id == moved[ref["a"]].id
    assert moved[ref["c"]].parent_id == moved[ref["b"]].id

    page.click("#cmsvc-move")
    second = page.text_content(".cmsvc-notice")
    assert "Moved 0 comments and 0 posts" in second and "comment already imported" in second
    assert len(service_comments(server, post["key"])) == 4
    context.close()

    _, html = fetch(post["url"])
    assert "A reply to Bryn: the chain goes three deep." in html
    assert "Still waiting for a moderator." not in html

    # WordPress takes no comment itself any more.
    native = urllib.request.Request(
        f"{wp.url}/wp-comments-post.php",
        data=f"comment_post_ID={post['id']}&author=Eve&email=eve%40example.org&comment=Native".encode(),
    )
    try:
        urllib.request.urlopen(native, timeout=30)
        status = 200
    except urllib.error.HTTPError as error:
        status = error.code
    assert status == 403
    assert wp.php(f"echo get_comments_number( {post['id']} );") == 3


def test_wordpress_keeps_no_reader_data(wp: WordPress, server: LiveServer) -> None:
    """What readers typed went to the service: none of their addresses is anywhere in
    WordPress's database (comments, options and transients, meta)."""
    with server.session() as session:
        addresses = session.scalars(
            select(Comment.author_email).where(Comment.import_ref.is_(None))
        ).all()
    assert "sian@example.cymru" in addresses  # the readers of the tests above
    dump = wp.dump()
    assert "Alys" in dump  # the dump holds the blog's own comments
    assert not [a for a in addresses if a in dump]


def test_readers_report_a_comment_in_the_included_thread(
    browser: Any, wp: WordPress, server: LiveServer
) -> None:
    """The Report link passes the plugin's wp_kses; without script the report page, with it the
    form in place, and both return to the WordPress post with the notice."""
    post = publish(wp, "Reported in WordPress")
    with server.session() as session:
        submission = CommentSubmission(
            post=post["key"], post_url=post["url"], author_name="Ada",
            author_email="ada@example.com", body="A comment to report",
        )  # fmt: skip
        comment_id = submit_comment(session, "blog", submission, now=utcnow()).public_id
        session.commit()
        moderate_comment(
            session, editor(session), comment_id, "approve", actor=Actor("editor"), now=utcnow()
        )
        session.commit()
    form = f"#comment-{comment_id} > .cm-report-form"
    for script in (False, True):
        context = browser.new_context(java_script_enabled=script)
        page = context.new_page()
        page.goto(post["url"])
        page.click(f"#comment-{comment_id} .cm-report-link")
        if script:
            page.wait_for_selector(form)  # in place, on the WordPress page
            assert page.url == post["url"]
            assert page.locator("#cm-form").count() == 1
        else:
            page.wait_for_url(f"{server.url}/embed/blog/comments/{comment_id}/report**")
        page.check(f"#cm-report-{comment_id}-{'abusive' if script else 'spam'}")
        page.click(".cm-report-button")
        page.wait_for_url(f"{post['url']}#comment-reported")
        assert page.is_visible("#comment-reported")
        context.close()
    with server.session() as session:
        reports = session.scalars(select(Report)).all()
        assert [r.reason for r in reports] == ["spam"]  # one network: the second is not counted
