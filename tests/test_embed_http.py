"""The public read side over HTTP: ETags and 304s, CORS, frame-ancestors, closed threads,
counts, Atom feeds, threading, pagination and languages of the embed."""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import logging
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask, request
from flask.testing import FlaskClient
from sqlalchemy import Connection, Engine, event, select, update
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.test import TestResponse

from moderation import create_app, schema
from moderation.actions import moderate_comment, reply_as_blog
from moderation.db import make_engine
from moderation.events import Actor
from moderation.models import Comment, Moderator, Post, utcnow
from moderation.publishing import ThreadHeads
from moderation.spam import form_token_age, issue_form_token
from moderation.web import replay
from moderation.web.embed import FORM_TOKEN_SLOT
from tests.helpers import (
    ORIGIN,
    POST_KEY,
    TEST_SECRET,
    comment_json,
    json_of,
    make_app,
    make_moderator,
    make_site,
    settings_for_tests,
)

THREAD = f"/embed/luac/thread?post={POST_KEY}"
LISTING = f"/api/v1/sites/luac/comments?post={POST_KEY}"
ATOM = "{http://www.w3.org/2005/Atom}"
OTHER_KEY = "/2024/04/01/another-post/"


_numbers = itertools.count()


def submit(client: FlaskClient, **fields: str) -> str:
    # Each comment says something new: the same text twice is a duplicate, and spam.
    fields.setdefault("body", f"Comment number {next(_numbers)} on this post.")
    response = client.post("/api/v1/sites/luac/comments", json=comment_json(**fields))
    assert response.status_code == 202, response.get_data(as_text=True)
    comment_id: str = json_of(response)["id"]
    return comment_id


def approve(session: Session, moderator: Moderator, comment_id: str) -> None:
    moderate_comment(
        session, moderator, comment_id, "approve", actor=Actor("editor", moderator.id), now=utcnow()
    )
    session.commit()


def published(client: FlaskClient, session: Session, moderator: Moderator, **fields: str) -> str:
    comment_id = submit(client, **fields)
    approve(session, moderator, comment_id)
    return comment_id


def test_reads_carry_a_strong_etag_and_cache_control_and_revalidate_with_304(
    client: FlaskClient, session: Session
) -> None:
    make_site(session)
    published(client, session, make_moderator(session), body="Hello")
    for url in (
        THREAD,
        THREAD + "&page=1",
        LISTING,
        f"/api/v1/sites/luac/counts?post={POST_KEY}",
        "/api/v1/sites/luac/feed.atom",
        f"/api/v1/sites/luac/feed.atom?post={POST_KEY}",
    ):
        first = client.get(url)
        assert first.status_code == 200, url
        etag = first.headers["ETag"]
        assert etag.startswith('"') and not etag.startswith("W/"), url
        # The embedded thread: browsers revalidate on every load, so an approval shows on the
        # next reload; a CDN may keep it 10 s. Integrations' reads may be reused 10 s.
        expected = (
            "public, max-age=0, s-maxage=10"
            if url.startswith(THREAD)
            else "public, max-age=10, stale-while-revalidate=60"
        )
        assert first.headers["Cache-Control"] == expected, url
        assert "Set-Cookie" not in first.headers, url
        again = client.get(url, headers={"If-None-Match": etag})
        assert again.status_code == 304, url
        assert again.headers["Cache-Control"] == expected, url
        assert again.get_data() == b""
        assert again.headers["ETag"] == etag
        assert "Set-Cookie" not in again.headers
        assert client.get(url, headers={"If-None-Match": '"other"'}).status_code == 200


def test_variants_of_a_thread_have_different_etags(client: FlaskClient, session: Session) -> None:
    make_site(session)
    etags = {
        client.get(url).headers["ETag"]
        for url in (THREAD, THREAD + "&lang=cy", THREAD + "&page=1", LISTING, LISTING + "&limit=5")
    }
    assert len(etags) == 5


def test_an_approval_changes_every_etag_at_once_and_the_comment_appears(
    client: FlaskClient, session: Session
) -> None:
    make_site(session)
    moderator = make_moderator(session)
    comment_id = submit(client, body="Waiting for a moderator")
    urls = (
        THREAD,
        LISTING,
        f"/api/v1/sites/luac/counts?post={POST_KEY}",
        "/api/v1/sites/luac/feed.atom",
        f"/api/v1/sites/luac/feed.atom?post={POST_KEY}",
    )
    before = {url: client.get(url).headers["ETag"] for url in urls}
    assert "Waiting for a moderator" not in client.get(THREAD).get_data(as_text=True)

    approve(session, moderator, comment_id)

    for url in urls:
        response = client.get(url, headers={"If-None-Match": before[url]})
        assert response.status_code == 200, url
        assert response.headers["ETag"] != before[url]
        assert "Waiting for a moderator" in response.get_data(as_text=True) or "counts" in url
    assert json_of(client.get(f"/api/v1/sites/luac/counts?post={POST_KEY}"))["counts"] == {
        POST_KEY: 1
    }


def test_a_closed_post_changes_the_etag(client: FlaskClient, session: Session) -> None:
    make_site(session)
    published(client, session, make_moderator(session))
    etag = client.get(THREAD).headers["ETag"]
    post = session.scalars(select(Post)).one()
    post.closed = True
    session.commit()
    response = client.get(THREAD, headers={"If-None-Match": etag})
    assert response.status_code == 200
    assert "Comments are closed on this post." in response.get_data(as_text=True)


def test_cors_admits_the_site_origins_only(client: FlaskClient, session: Session) -> None:
    make_site(session)
    for url in (THREAD, LISTING, f"/api/v1/sites/luac/counts?post={POST_KEY}"):
        allowed = client.get(url, headers={"Origin": ORIGIN})
        assert allowed.headers["Access-Control-Allow-Origin"] == ORIGIN
        assert "Origin" in allowed.headers["Vary"]
        refused = client.get(url, headers={"Origin": "https://evil.example"})
        assert "Access-Control-Allow-Origin" not in refused.headers
        assert "Origin" in refused.headers["Vary"]
    preflight = client.options(
        "/api/v1/sites/luac/comments",
        headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST"},
    )
    assert preflight.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    refused_preflight = client.options(
        "/api/v1/sites/luac/comments",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert "Access-Control-Allow-Origin" not in refused_preflight.headers
    posted = client.post(
        "/api/v1/sites/luac/comments",
        json=comment_json(),
        headers={"Origin": "https://evil.example"},
    )
    assert posted.status_code == 403
    assert json_of(posted)["error"]["code"] == "origin_not_allowed"


def test_the_iframe_page_may_be_framed_by_the_site_origins_only(
    client: FlaskClient, session: Session
) -> None:
    make_site(session)
    page = client.get(THREAD + "&page=1")
    csp = page.headers["Content-Security-Policy"]
    assert f"frame-ancestors {ORIGIN};" in csp
    assert "*" not in csp
    assert f'data-cm-origins="{ORIGIN}"' in page.get_data(as_text=True)


def policy(response: TestResponse) -> dict[str, str]:
    """The response's Content-Security-Policy, by directive; it must be one that lets nothing
    run or load from elsewhere."""
    directives: dict[str, str] = {}
    for part in response.headers["Content-Security-Policy"].split(";"):
        name, _, value = part.strip().partition(" ")
        directives[name] = value
    assert directives["default-src"] == "'self'" and directives["script-src"] == "'self'"
    assert directives["object-src"] == "'none'" and directives["base-uri"] == "'none'"
    assert "unsafe" not in response.headers["Content-Security-Policy"]
    assert "*" not in response.headers["Content-Security-Policy"]
    return directives


FORM = {"author_name": "Ada", "author_email": "ada@example.com", "body": "Hello there."}


@pytest.mark.parametrize(
    ("kind", "method", "path", "data", "status"),
    [
        ("fragment", "GET", THREAD, None, 200),
        ("standalone page", "GET", THREAD + "&page=1", None, 200),
        ("form post", "POST", THREAD, FORM, 303),
        ("form with errors", "POST", THREAD, {**FORM, "author_email": "nope"}, 422),
        ("no post key", "GET", "/embed/luac/thread", None, 400),
        ("wrong content type", "POST", THREAD, "plain text", 415),
        ("too large", "POST", THREAD, {**FORM, "body": "x" * 70_000}, 413),
    ],
)
def test_every_embed_response_of_a_known_site_is_framed_by_its_origins_only(
    client: FlaskClient,
    session: Session,
    kind: str,
    method: str,
    path: str,
    data: object,
    status: int,
) -> None:
    """Error pages under /embed and the fragment carried no CSP: any page could frame them."""
    make_site(session)
    response = client.open(path, method=method, data=data)
    assert response.status_code == status, kind
    directives = policy(response)
    assert directives["frame-ancestors"] == ORIGIN, kind
    assert directives["form-action"] == f"'self' {ORIGIN}", kind


def test_a_revalidated_thread_keeps_its_policy(client: FlaskClient, session: Session) -> None:
    make_site(session)
    first = client.get(THREAD)
    again = client.get(THREAD, headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304
    assert policy(again)["frame-ancestors"] == ORIGIN


@pytest.mark.parametrize(
    ("kind", "method", "path", "status"),
    [
        ("unknown site", "GET", f"/embed/nosuch/thread?post={POST_KEY}", 404),
        ("unknown site, form post", "POST", f"/embed/nosuch/thread?post={POST_KEY}", 404),
        ("no such page", "GET", "/embed/luac/elsewhere", 404),
        ("the prefix alone", "GET", "/embed", 404),
        ("method not allowed", "DELETE", THREAD, 405),
    ],
)
def test_an_embed_response_whose_site_is_not_known_is_framed_by_nobody(
    client: FlaskClient, session: Session, kind: str, method: str, path: str, status: int
) -> None:
    make_site(session)
    response = client.open(path, method=method, data=FORM if method == "POST" else None)
    assert response.status_code == status, kind
    assert policy(response)["frame-ancestors"] == "'none'", kind
    assert policy(response)["form-action"] == "'self'", kind


def test_a_rate_limited_form_post_is_framed_by_its_site(
    session: Session, engine: Engine, connection: Connection
) -> None:
    make_site(session)
    client = make_app(
        engine, connection, ratelimit_enabled=True, ratelimit_email="1/minute"
    ).test_client()
    assert client.post(THREAD, data=FORM).status_code == 303
    limited = client.post(THREAD, data={**FORM, "body": "Hello again."})
    assert limited.status_code == 429
    assert policy(limited)["frame-ancestors"] == ORIGIN


def test_an_unexpected_error_page_is_framed_by_its_site(
    client: FlaskClient, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_site(session)

    def broken(*args: object, **kwargs: object) -> str:
        raise RuntimeError("a fault injected into rendering")

    monkeypatch.setattr("moderation.web.embed.render_thread", broken)
    response = client.get(THREAD)
    assert response.status_code == 500
    assert policy(response)["frame-ancestors"] == ORIGIN


def test_a_database_outage_page_is_framed_by_the_site_this_process_last_saw(
    client: FlaskClient, session: Session
) -> None:
    """The page that gives a commenter's text back must still show in the site's iframe; a
    process that never saw the site frames it for nobody."""
    make_site(session)
    assert policy(client.get(THREAD + "&page=1"))["frame-ancestors"] == ORIGIN
    dead = make_engine("postgresql://nobody@127.0.0.1:1/none")
    client.application.extensions["moderation.sessionmaker"] = sessionmaker(dead)
    client.application.extensions["moderation.heads"] = ThreadHeads(None)
    down = client.post(THREAD + "&page=1", data=FORM)
    assert down.status_code == 503
    assert policy(down)["frame-ancestors"] == ORIGIN
    never = create_app(settings_for_tests(database_url="postgresql://nobody@127.0.0.1:1/none"))
    unknown = never.test_client().post(THREAD + "&page=1", data=FORM)
    assert unknown.status_code == 503
    assert policy(unknown)["frame-ancestors"] == "'none'"


def test_a_closed_thread_refuses_submissions_with_403_and_says_so(
    client: FlaskClient, session: Session
) -> None:
    site = make_site(session)
    published(client, session, make_moderator(session))
    post = session.scalars(select(Post)).one()
    post.closed = True
    session.commit()

    refused = client.post("/api/v1/sites/luac/comments", json=comment_json(body="Too late"))
    assert refused.status_code == 403
    assert json_of(refused)["error"] == {
        "code": "thread_closed",
        "message": "Comments are closed on this post.",
        "fields": {},
    }
    form = client.post(
        THREAD, data={"author_name": "A", "author_email": "a@example.com", "body": "x"}
    )
    assert form.status_code == 403
    assert "Comments are closed on this post." in form.get_data(as_text=True)
    fragment = client.get(THREAD).get_data(as_text=True)
    assert 'id="cm-closed"' in fragment and "<form" not in fragment
    assert "data-cm-reply" not in fragment
    welsh = client.get(THREAD + "&lang=cy").get_data(as_text=True)
    assert "Mae&#39;r sylwadau ar gau ar y blogbost hwn." in welsh

    # Closing N days after the first comment needs no hand on the post.
    post.closed = False
    site.close_after_days = 30
    post.created_at = utcnow() - dt.timedelta(days=31)
    session.commit()
    assert client.post("/api/v1/sites/luac/comments", json=comment_json()).status_code == 403
    post.created_at = utcnow() - dt.timedelta(days=29)
    session.commit()
    assert client.post("/api/v1/sites/luac/comments", json=comment_json()).status_code == 202


def test_counts_cover_many_posts_and_only_approved_comments(
    client: FlaskClient, session: Session
) -> None:
    make_site(session)
    moderator = make_moderator(session)
    published(client, session, moderator)
    published(client, session, moderator)
    submit(client)  # pending: not counted
    published(client, session, moderator, post=OTHER_KEY)
    response = client.get(
        f"/api/v1/sites/luac/counts?post={POST_KEY}&post={OTHER_KEY}&post=/never-commented/"
    )
    assert json_of(response) == {"counts": {POST_KEY: 2, OTHER_KEY: 1, "/never-commented/": 0}}
    assert client.get("/api/v1/sites/luac/counts").status_code == 400
    too_many = "&".join(f"post=/p{n}/" for n in range(101))
    assert client.get(f"/api/v1/sites/luac/counts?{too_many}").status_code == 400
    assert client.get(f"/api/v1/sites/nope/counts?post={POST_KEY}").status_code == 404


def test_feeds_are_valid_atom_with_approved_comments_only(
    client: FlaskClient, session: Session
) -> None:
    make_site(session)
    moderator = make_moderator(session)
    first = published(client, session, moderator, body="Approved <b>one</b> & more")
    submit(client, body="Still pending")
    rejected = submit(client, body="Rejected one")
    moderate_comment(
        session, moderator, rejected, "reject", actor=Actor("e", moderator.id), now=utcnow()
    )
    session.commit()
    other = published(client, session, moderator, post=OTHER_KEY, body="On another post")

    response = client.get(f"/api/v1/sites/luac/feed.atom?post={POST_KEY}")
    assert response.mimetype == "application/atom+xml"
    feed = ET.fromstring(response.get_data())
    assert feed.tag == f"{ATOM}feed"
    for required in ("title", "id", "updated"):
        assert feed.find(f"{ATOM}{required}") is not None
    entries = feed.findall(f"{ATOM}entry")
    assert [e.findtext(f"{ATOM}id") for e in entries] == [f"{ORIGIN}{POST_KEY}#comment-{first}"]
    entry = entries[0]
    for required in ("title", "updated", "published", "author/" + ATOM + "name", "content"):
        assert entry.find(f"{ATOM}{required}") is not None, required
    assert entry.find(f"{ATOM}content").get("type") == "html"  # type: ignore[union-attr]
    assert entry.findtext(f"{ATOM}content") == "<p>Approved <b>one</b> &amp; more</p>"
    text = response.get_data(as_text=True)
    assert "&lt;b&gt;one&lt;/b&gt;" in text  # HTML content is escaped inside the XML
    assert "Still pending" not in text and "Rejected one" not in text
    assert "ada@example.com" not in text

    site_feed = ET.fromstring(client.get("/api/v1/sites/luac/feed.atom").get_data())
    ids = [
        e.findtext(f"{ATOM}id", "").split("#comment-", 1)[1]
        for e in site_feed.findall(f"{ATOM}entry")
    ]
    assert sorted(ids) == sorted([first, other])
    assert client.get("/api/v1/sites/luac/feed.atom?post=/unknown/").status_code == 404


def test_replies_nest_three_deep_and_official_replies_are_marked(
    client: FlaskClient, session: Session
) -> None:
    make_site(session)
    moderator = make_moderator(session)
    top = published(client, session, moderator, body="Level one")
    second = published(client, session, moderator, body="Level two", parent_id=top)
    third = published(client, session, moderator, body="Level three", parent_id=second)
    fourth = published(client, session, moderator, body="Level four", parent_id=third)
    reply_as_blog(
        session, moderator, top, "From the team", actor=Actor("e", moderator.id), now=utcnow()
    )
    session.commit()

    parents = {
        p: parent for p, parent in session.execute(select(Comment.public_id, Comment.parent_id))
    }
    ids = {c.id: c.public_id for c in session.scalars(select(Comment))}
    fourth_parent = parents[fourth]
    assert (
        fourth_parent is not None and ids[fourth_parent] == second
    )  # a reply to the third level joins the third level

    html = client.get(THREAD).get_data(as_text=True)
    # Levels two and three are nested lists; the official reply sits in level two.
    assert html.count('class="cm-replies"') == 2
    level_three = html.split('class="cm-replies"')[2]
    assert "Level three" in level_three and "Level four" in level_three
    assert "cm-comment--official" in html and "Blog team" in html
    assert html.index("Level one") < html.index("Level two") < html.index("Level three")
    listing = json_of(client.get(LISTING))["comments"]
    assert [c["official"] for c in listing] == [False, False, False, False, True]


def test_long_threads_page_with_show_more_and_the_json_cursor(
    app: Flask, client: FlaskClient, session: Session
) -> None:
    app.extensions["moderation.settings"] = dataclasses.replace(
        app.extensions["moderation.settings"], embed_page_size=2
    )
    make_site(session)
    moderator = make_moderator(session)
    for n in range(5):
        published(client, session, moderator, body=f"Comment number {n}")
    html = client.get(THREAD).get_data(as_text=True)
    assert "Comment number 1" in html and "Comment number 2" not in html
    assert '<h2 class="cm-heading" id="cm-heading">5 comments</h2>' in html
    more = html.split('data-cm-more="', 1)[1].split('"', 1)[0].replace("&amp;", "&")
    no_js = html.split('class="cm-more-link" href="', 1)[1].split('"', 1)[0].replace("&amp;", "&")
    assert "page=1" in no_js and "cursor=" in no_js
    second = client.get(more).get_data(as_text=True)
    assert "Comment number 2" in second and "Comment number 0" not in second

    page = json_of(client.get(LISTING + "&limit=3"))
    assert len(page["comments"]) == 3 and page["next_cursor"]
    rest = json_of(client.get(LISTING + f"&limit=3&cursor={page['next_cursor']}"))
    assert len(rest["comments"]) == 2 and rest["next_cursor"] is None


def test_the_embed_speaks_english_or_welsh(client: FlaskClient, session: Session) -> None:
    make_site(session)
    english = client.get(THREAD).get_data(as_text=True)
    assert 'lang="en"' in english and "Leave a comment" in english
    assert "We only ask for your email address so we know you" in english
    welsh = client.get(THREAD + "&lang=cy-GB").get_data(as_text=True)
    assert 'lang="cy"' in welsh and "Gadael sylw" in welsh and "Leave a comment" not in welsh
    unknown = client.get(THREAD + "&lang=xx").get_data(as_text=True)
    assert "Leave a comment" in unknown
    errors = client.post(THREAD + "&lang=cy", data={"author_name": ""}).get_data(as_text=True)
    assert "Rhowch eich enw" in errors and "Enter your name" not in errors


def test_every_catalogue_language_has_every_string() -> None:
    from moderation.i18n import CATALOGUE

    keys = set(CATALOGUE["en"])
    assert all(set(messages) == keys for messages in CATALOGUE.values())


def test_the_privacy_notice_is_linked_from_the_email_hint(
    client: FlaskClient, session: Session
) -> None:
    site = make_site(session)
    site.privacy_notice_url = "https://example.gov.uk/privacy"
    session.commit()
    html = client.get(THREAD).get_data(as_text=True)
    hint = html.split('id="cm-author_email-hint">', 1)[1].split("</p>", 1)[0]
    assert '<a href="https://example.gov.uk/privacy">Read our privacy notice</a>' in hint
    assert 'aria-describedby="cm-author_email-hint"' in html


def test_the_no_js_form_from_the_iframe_page_returns_to_the_page(
    client: FlaskClient, session: Session
) -> None:
    make_site(session)
    response = client.post(
        THREAD + "&page=1",
        data={
            "author_name": "Grace",
            "author_email": "grace@example.com",
            "body": "From the frame",
            "post_url": ORIGIN + POST_KEY,
        },
        headers={"Origin": "https://comments.example.org"},
    )
    assert response.status_code == 303
    location = response.headers["Location"]
    assert "/embed/luac/thread?" in location and "page=1" in location
    assert location.endswith("#comment-submitted")


def test_embed_js_is_served_small_and_cacheable(client: FlaskClient) -> None:
    response = client.get("/embed.js")
    assert response.status_code == 200
    assert response.mimetype in ("text/javascript", "application/javascript")
    assert len(response.get_data()) < 16_000
    assert "max-age" in response.headers["Cache-Control"]
    etag = response.headers["ETag"]
    assert client.get("/embed.js", headers={"If-None-Match": etag}).status_code == 304


def test_every_rendered_form_carries_a_valid_fresh_time_trap_token(
    app: Flask, client: FlaskClient, session: Session
) -> None:
    make_site(session)
    tokens = []
    for _ in range(2):  # the second response comes from the rendered-body cache
        html = client.get(f"/embed/luac/thread?post={POST_KEY}").get_data(as_text=True)
        assert FORM_TOKEN_SLOT not in html
        match = re.search(r'name="form_token" value="([^"]+)"', html)
        assert match
        tokens.append(match.group(1))
    for token in tokens:
        age = form_token_age(app.config["SECRET_KEY"], "luac", token, now=utcnow())
        assert age is not None and 0 <= age < 60


def committed_app(database: Path) -> tuple[Flask, Engine, int]:
    """The app on its own SQLite file, whose commits are real (unlike the ``app`` fixture's)."""
    app = create_app(settings_for_tests(database_url=f"sqlite:///{database}"))
    engine = app.extensions["moderation.engine"]
    schema.upgrade(engine)
    with Session(engine) as session:
        make_site(session)
        moderator_id = make_moderator(session).id
        session.commit()
    return app, engine, moderator_id


@pytest.mark.subprocess
def test_revalidations_skip_the_database_until_anyone_commits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a SQLite file, a thread's head stays in memory while nobody commits: a revalidation
    runs no query. A commit from another connection, or another process, is seen at once."""
    monkeypatch.setattr(replay, "TTL_SECONDS", 0.0)  # every request reaches the app
    database = tmp_path / "committed.db"
    app, engine, moderator_id = committed_app(database)
    client = app.test_client()
    comment_id = submit(client, body="Held until a moderator approves it")
    queries: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *args: queries.append(args[2]))

    etags = {url: client.get(url).headers["ETag"] for url in (THREAD, LISTING)}
    for url, etag in etags.items():
        queries.clear()
        assert client.get(url, headers={"If-None-Match": etag}).status_code == 304
        assert queries == [], url

    with Session(engine) as session:  # another connection commits: the next read sees it
        approve(session, session.get_one(Moderator, moderator_id), comment_id)
    assert client.get(LISTING, headers={"If-None-Match": etags[LISTING]}).status_code == 200
    response = client.get(THREAD, headers={"If-None-Match": etags[THREAD]})
    assert response.status_code == 200
    assert "Held until a moderator approves it" in response.get_data(as_text=True)

    etag = response.headers["ETag"]
    assert client.get(THREAD, headers={"If-None-Match": etag}).status_code == 304
    subprocess.run(  # another process commits
        [sys.executable, "-c", "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
         "c.execute('UPDATE posts SET closed = 1'); c.commit()", str(database)],
        check=True,
    )  # fmt: skip
    response = client.get(THREAD, headers={"If-None-Match": etag})
    assert response.status_code == 200
    assert response.headers["ETag"] != etag
    engine.dispose()


TOKEN = re.compile(r'name="form_token" value="([^"]+)"')


def test_replayed_reads_are_the_apps_own_answers_until_anyone_commits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    app, engine, moderator_id = committed_app(tmp_path / "replay.db")
    reached: list[str] = []

    @app.before_request
    def note_arrival() -> None:
        reached.append(request.path)

    client = app.test_client()
    first_id = submit(client, body="First!")
    with Session(engine) as session:
        approve(session, session.get_one(Moderator, moderator_id), first_id)

    for url in (THREAD, THREAD + "&page=1", LISTING):
        monkeypatch.setattr(replay, "TTL_SECONDS", 0.0)
        flask_304 = client.get(url, headers={"If-None-Match": client.get(url).headers["ETag"]})
        monkeypatch.setattr(replay, "TTL_SECONDS", 60.0)
        first = client.get(url)
        count = len(reached)
        second = client.get(url)
        with caplog.at_level(logging.INFO, logger="moderation.requests"):
            replayed_304 = client.get(url, headers={"If-None-Match": first.headers["ETag"]})
        assert len(reached) == count, url  # neither reached the app
        assert second.status_code == 200 and replayed_304.status_code == 304
        assert headers_of(second) == headers_of(first), url
        assert second.headers["X-Request-ID"] != first.headers["X-Request-ID"]
        assert headers_of(replayed_304) == headers_of(flask_304), url
        assert f"GET {url.split('?')[0]} 304" in caplog.text
        body, again = first.get_data(as_text=True), second.get_data(as_text=True)
        if url == LISTING:
            assert again == body
        else:  # the same page with a fresh, valid time-trap token
            token = TOKEN.findall(again)
            assert token and form_token_age(TEST_SECRET, "luac", token[0], now=utcnow()) is not None
            assert TOKEN.sub("", again) == TOKEN.sub("", body)
            assert int(second.headers["Content-Length"]) == len(second.get_data())

    second_id = submit(client, body="Second!")
    with Session(engine) as session:  # any commit: the next read reaches the app
        approve(session, session.get_one(Moderator, moderator_id), second_id)
    count = len(reached)
    assert "Second!" in client.get(THREAD).get_data(as_text=True)
    assert len(reached) == count + 1

    for _ in range(2):  # requests from another origin are answered (and replayed) apart
        assert (
            client.get(LISTING, headers={"Origin": ORIGIN}).headers["Access-Control-Allow-Origin"]
            == ORIGIN
        )
        assert "Access-Control-Allow-Origin" not in client.get(LISTING).headers
        refused = client.get(LISTING, headers={"Origin": "https://evil.example"})
        assert "Access-Control-Allow-Origin" not in refused.headers
    engine.dispose()


@pytest.fixture
def pg_schema_url(engine: Engine) -> Iterator[str]:
    """A database URL on a schema of its own in the test database, whose commits are real (the
    ``app`` fixture's never are) and leave no trace in the other tests' schema."""
    if engine.dialect.name != "postgresql":
        pytest.skip("replays on PostgreSQL: needs MODERATION_TEST_DATABASE_URL")
    name = f"replay_{os.getpid()}"
    with engine.begin() as connection:
        connection.exec_driver_sql(f"DROP SCHEMA IF EXISTS {name} CASCADE; CREATE SCHEMA {name}")
    url = engine.url.update_query_dict({"options": f"-csearch_path={name}"})
    yield url.render_as_string(hide_password=False)
    with engine.begin() as connection:
        connection.exec_driver_sql(f"DROP SCHEMA {name} CASCADE")


@pytest.mark.postgres_only
def test_postgresql_replays_reads_until_a_moderation_action_in_any_worker(
    pg_schema_url: str,
) -> None:
    """Two apps (two workers) on one PostgreSQL database: an unchanged thread or count is replayed
    after one small query, and never once a moderation action committed anywhere has changed it."""
    workers = [create_app(settings_for_tests(database_url=pg_schema_url)) for _ in range(2)]
    engine = workers[0].extensions["moderation.engine"]
    schema.upgrade(engine)
    with Session(engine) as session:
        make_site(session)
        moderator_id = make_moderator(session).id
        session.commit()
    reached: list[str] = []
    for app in workers:
        app.before_request(lambda: reached.append(request.path))
    reader, writer = (app.test_client() for app in workers)
    counts = f"/api/v1/sites/luac/counts?post={POST_KEY}&post={OTHER_KEY}"

    def moderate(body: str) -> None:  # in the other worker, committed
        comment_id = submit(writer, body=body)
        with Session(workers[1].extensions["moderation.engine"]) as session:
            approve(session, session.get_one(Moderator, moderator_id), comment_id)

    moderate("The first published comment")
    for url in (THREAD, LISTING, counts):
        first = reader.get(url)
        count = len(reached)
        again = reader.get(url)
        revalidated = reader.get(url, headers={"If-None-Match": first.headers["ETag"]})
        assert len(reached) == count, url  # both replayed, after their probe
        assert again.status_code == 200 and revalidated.status_code == 304
        assert headers_of(again) == headers_of(first), url
        if url != THREAD:  # the fragment carries a fresh form token each time
            assert again.get_data() == first.get_data()

    etags = {url: reader.get(url).headers["ETag"] for url in (THREAD, LISTING, counts)}
    moderate("A second published comment")
    for url in (THREAD, LISTING, counts):
        count = len(reached)
        response = reader.get(url, headers={"If-None-Match": etags[url]})
        assert response.status_code == 200, url  # never the stale 304
        assert len(reached) == count + 1, url
        if url == counts:
            assert json_of(response)["counts"] == {POST_KEY: 2, OTHER_KEY: 0}
        else:
            assert "A second published comment" in response.get_data(as_text=True)
    thread_etag = reader.get(THREAD).headers["ETag"]
    with Session(engine) as session:  # closing the thread by hand changes its head too
        session.execute(update(Post).values(closed=True))
        session.commit()
    response = reader.get(THREAD)
    assert response.headers["ETag"] != thread_etag
    for app in workers:
        app.extensions["moderation.probes"].dispose()
        app.extensions["moderation.engine"].dispose()


def headers_of(response: TestResponse) -> dict[str, str]:
    return {
        k: v for k, v in response.headers.items() if k not in ("X-Request-ID", "Content-Length")
    }


def test_the_no_js_error_page_never_echoes_markup_or_a_forged_token(
    client: FlaskClient, session: Session
) -> None:
    """Any site can post the form: what comes back must not carry its markup (a meta refresh to
    a phishing page needs no script), in the token or in any echoed field."""
    make_site(session)
    forged = '"><meta http-equiv="refresh" content="0;url=https://evil.example/">'
    page = client.post(
        THREAD,
        data={
            "author_name": forged,
            "author_email": "not an address",
            "body": forged,
            "parent_id": forged,
            "notify": forged,
            "form_token": forged,
        },
    )
    assert page.status_code == 422
    html = page.get_data(as_text=True)
    assert "<meta http-equiv" not in html and 'content="0;url=' not in html
    token = TOKEN.findall(html)
    assert len(token) == 1
    assert (form_token_age(TEST_SECRET, "luac", token[0], now=utcnow()) or 99) < 5  # fresh
    shaped = issue_form_token(TEST_SECRET, "luac", now=utcnow() - dt.timedelta(seconds=40))
    again = client.post(THREAD, data={"author_email": "x", "form_token": shaped})
    assert TOKEN.findall(again.get_data(as_text=True)) == [shaped]  # the commenter's own time
    other_site = shaped.replace("luac.", "other.", 1)
    third = client.post(THREAD, data={"author_email": "x", "form_token": other_site})
    assert TOKEN.findall(third.get_data(as_text=True)) != [other_site]


def test_a_query_value_cannot_pose_as_other_parameters_in_the_cache(
    client: FlaskClient, session: Session
) -> None:
    """``?lang=cy%26page%3D1&post=X`` primed an English fragment that the Welsh standalone page
    ``?post=X&page=1&lang=cy`` was then served from the cache; the scheme is part of the key."""
    make_site(session)
    client.get(f"/embed/luac/thread?lang=cy%26page%3D1&post={POST_KEY}")
    welsh = client.get(f"/embed/luac/thread?post={POST_KEY}&page=1&lang=cy")
    html = welsh.get_data(as_text=True)
    assert '<html lang="cy"' in html and "Content-Security-Policy" in welsh.headers
    plain = client.get(THREAD, base_url="http://comments.example.org")
    secure = client.get(THREAD, base_url="https://comments.example.org")
    assert plain.headers["ETag"] != secure.headers["ETag"]
