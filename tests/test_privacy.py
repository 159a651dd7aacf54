"""No public response ever carries an author email, a client address or an unapproved comment,
and hostile input never reaches a public response unescaped."""

from __future__ import annotations

import re

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from moderation.models import Comment, CommentStatus
from tests.helpers import ORIGIN, POST_KEY, comment_json, json_of, make_site

HOSTILE = [
    "<script>alert(1)</script>",
    '<img src=x onerror="alert(1)">',
    '<a href="javascript:alert(1)">click</a>',
    '"><svg onload=alert(1)>',
    "<iframe src=//evil.example></iframe>",
    '<a href="https://ok.example" onclick="alert(1)" style="x">ok</a>',
    "javascript:alert(1)",
]
SECRET_EMAIL = "private.person@example.com"
CLIENT_IP = "203.0.113.77"


def public_urls(app: Flask, comment_ids: tuple[str, ...] = ("no-such-comment",)) -> list[str]:
    """Every GET route that needs no login, filled in for the luac site and its post (and each
    of ``comment_ids`` where a route names a comment)."""
    urls = []
    for rule in app.url_map.iter_rules():
        if "GET" not in (rule.methods or set()) or rule.endpoint.startswith(
            ("moderate.", "moderation_api.", "static")
        ):
            continue
        path = rule.rule.replace("<site>", "luac").replace("<path:filename>", "embed.css")
        # The pages behind links in mail: without a genuine token they show nothing.
        path = path.replace("<token>", "forged.token")
        for comment_id in comment_ids if "<comment_id>" in path else ("",):
            filled = path.replace("<comment_id>", comment_id)
            assert "<" not in filled, f"fill in the parameters of {rule.rule}"
            urls += [f"{filled}?post={POST_KEY}", f"{filled}?post={POST_KEY}&page=1", filled]
    return urls


def submit_everywhere(client: FlaskClient, session: Session, payload: str, status: str) -> None:
    response = client.post(
        "/api/v1/sites/luac/comments",
        json=comment_json(author_name=payload[:100], body=payload, post_title=payload),
        environ_base={"REMOTE_ADDR": CLIENT_IP},
    )
    assert response.status_code == 202, response.get_data(as_text=True)
    comment = session.scalars(select(Comment).order_by(Comment.id.desc()).limit(1)).one()
    comment.status = CommentStatus(status)
    comment.author_email = SECRET_EMAIL
    session.commit()


def test_no_public_response_contains_email_ip_or_unapproved_text(
    app: Flask, client: FlaskClient, session: Session
) -> None:
    make_site(session)
    submit_everywhere(client, session, "Approved words", "approved")
    for status in ("unconfirmed", "pending", "rejected", "spam", "deleted"):
        submit_everywhere(client, session, f"Hidden {status} words", status)

    # Every comment's own pages too (a reader's report form): only the approved one shows.
    ids = tuple(session.scalars(select(Comment.public_id)))
    urls = public_urls(app, ids)
    assert len(urls) >= 9
    seen_approved = False
    for url in urls:
        response = client.get(url, headers={"Origin": ORIGIN})
        text = response.get_data(as_text=True)
        assert SECRET_EMAIL not in text, url
        assert "203.0.113" not in text, url
        assert not re.search(r"Hidden \w+ words", text), url
        seen_approved |= "Approved words" in text
        assert "Set-Cookie" not in response.headers, url
    assert seen_approved, "the scan must see the approved comment somewhere"


@pytest.mark.parametrize("payload", HOSTILE)
def test_hostile_input_is_escaped_in_every_public_view(
    client: FlaskClient, session: Session, payload: str
) -> None:
    make_site(session)
    submit_everywhere(client, session, payload, "approved")
    fragment = client.get(f"/embed/luac/thread?post={POST_KEY}").get_data(as_text=True)
    page = client.get(f"/embed/luac/thread?post={POST_KEY}&page=1").get_data(as_text=True)
    for html in (fragment, page):
        assert "<script>alert" not in html
        assert "<img" not in html and "<svg" not in html and "<iframe" not in html
        assert 'href="javascript:' not in html
        assert not re.search(r"<[^>]+\son\w+=", html), "an event handler attribute survived"
        thread = html.split('class="cm-thread"', 1)[1]
        assert not re.search(r"<[^>]+\sstyle=", thread), "a style attribute survived"
    # JSON carries the name as text (consumers insert it as text) and the body as safe HTML.
    for comment in json_of(client.get(f"/api/v1/sites/luac/comments?post={POST_KEY}"))["comments"]:
        assert comment["author_name"] == payload[:100]
        body = comment["body_html"]
        assert not re.search(r"<(script|img|svg|iframe)", body)
        assert not re.search(r"<[^>]+\s(on\w+|style)=", body)
        assert 'href="javascript:' not in body


def test_the_report_form_post_reveals_no_unpublished_comment(
    client: FlaskClient, session: Session
) -> None:
    """The no-script report form answers a comment that is not published (held, taken down,
    rejected) as it answers an id the site never had: its GET does, and its POST must too, or
    it tells whether a hidden comment exists and where (the Location of its post)."""
    make_site(session)
    sent = client.post("/api/v1/sites/luac/comments", json=comment_json())
    assert sent.status_code == 202
    held = json_of(sent)["id"]
    answers = {
        name: client.post(f"/embed/luac/comments/{comment_id}/report", data={"reason": "spam"})
        for name, comment_id in (("held", held), ("unknown", "AAAAAAAAAAAAAAAA"))
    }
    assert {name: a.status_code for name, a in answers.items()} == {"held": 404, "unknown": 404}
    assert answers["held"].get_data() == answers["unknown"].get_data()
    assert "Location" not in answers["held"].headers
