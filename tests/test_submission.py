"""Submitting comments: validation, the error shape, limits, origins and hostile input."""

from __future__ import annotations

import json

import lxml.html
import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from moderation import create_app
from moderation.models import Comment, CommentStatus, Post
from tests.helpers import ORIGIN, POST_KEY, comment_json, json_of, make_site, settings_for_tests

SUBMIT = "/api/v1/sites/luac/comments"


def comment_count(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(Comment)) or 0


@pytest.mark.parametrize(
    "email",
    ["not-an-address", "ada@", "@example.net", "ada@example..net", "ada example@example.net"],
)
def test_an_invalid_email_gets_422_naming_author_email(
    client: FlaskClient, session: Session, email: str
) -> None:
    make_site(session)
    response = client.post(SUBMIT, json=comment_json(author_email=email))
    assert response.status_code == 422
    error = json_of(response)["error"]
    assert error["code"] == "validation_failed"
    assert list(error["fields"]) == ["author_email"]
    assert email not in response.get_data(as_text=True)
    assert comment_count(session) == 0


def test_every_missing_field_is_named_at_once(client: FlaskClient, session: Session) -> None:
    make_site(session)
    response = client.post(SUBMIT, json={"post": POST_KEY, "body": "   "})
    assert response.status_code == 422
    assert json_of(response)["error"]["fields"] == {
        "author_name": "Enter your name",
        "author_email": "Enter your email address",
        "body": "Enter your comment",
    }


@pytest.mark.parametrize(
    ("field", "limit"), [("author_name", 100), ("body", 10_000), ("author_email", 254)]
)
def test_length_limits(client: FlaskClient, session: Session, field: str, limit: int) -> None:
    make_site(session)
    too_long = "a" * (limit - 12) + "@example.com" if field == "author_email" else "a" * limit
    assert client.post(SUBMIT, json=comment_json(**{field: too_long})).status_code == 202
    over = "a" * (limit - 11) + "@example.com" if field == "author_email" else "a" * (limit + 1)
    response = client.post(SUBMIT, json=comment_json(**{field: over}))
    assert response.status_code == 422
    assert field in json_of(response)["error"]["fields"]


def test_the_email_is_normalised_and_every_new_comment_is_pending(
    client: FlaskClient, session: Session
) -> None:
    make_site(session)
    response = client.post(SUBMIT, json=comment_json(author_email="Ada@EXAMPLE.com"))
    assert response.status_code == 202
    comment = session.scalars(select(Comment)).one()
    assert comment.author_email == "Ada@example.com"
    assert comment.status is CommentStatus.PENDING
    assert comment.body_text == "Thank you for this post.\n\nIt was useful."
    assert comment.body_html == "<p>Thank you for this post.</p>\n<p>It was useful.</p>"


def test_wrong_types_are_field_errors_not_crashes(client: FlaskClient, session: Session) -> None:
    make_site(session)
    response = client.post(
        SUBMIT, json={"post": POST_KEY, "author_name": 7, "author_email": ["x"], "body": None}
    )
    assert response.status_code == 422
    assert set(json_of(response)["error"]["fields"]) == {"author_name", "author_email", "body"}


@pytest.mark.parametrize(
    ("data", "content_type", "status", "code"),
    [
        (b"{not json", "application/json", 400, "malformed"),
        (b'["a list"]', "application/json", 400, "malformed"),
        (b'{"post": "\xff\xfe"}', "application/json", 400, "malformed"),
        (b"[" * 100_000 + b"]" * 100_000, "application/json", 413, "too_large"),
        (b"[" * 20_000 + b"]" * 20_000, "application/json", 400, "malformed"),
        (b"author_name=x", "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
        (b"{}", "text/plain", 415, "unsupported_media_type"),
    ],
)
def test_malformed_bodies_get_the_documented_error(
    client: FlaskClient, session: Session, data: bytes, content_type: str, status: int, code: str
) -> None:
    make_site(session)
    response = client.post(SUBMIT, data=data, content_type=content_type)
    assert response.status_code == status
    assert json_of(response)["error"]["code"] == code
    assert comment_count(session) == 0


def test_a_body_over_the_request_cap_gets_413(client: FlaskClient, session: Session) -> None:
    make_site(session)
    response = client.post(SUBMIT, json=comment_json(body="x" * 70_000))
    assert response.status_code == 413
    assert json_of(response)["error"]["code"] == "too_large"


def test_an_unknown_site_gets_404(client: FlaskClient) -> None:
    response = client.post("/api/v1/sites/nope/comments", json=comment_json())
    assert response.status_code == 404
    assert json_of(response)["error"]["code"] == "not_found"


def test_a_post_url_outside_the_sites_origins_is_refused(
    client: FlaskClient, session: Session
) -> None:
    make_site(session)
    response = client.post(SUBMIT, json=comment_json(post_url="https://evil.example/x"))
    assert response.status_code == 422
    assert "post_url" in json_of(response)["error"]["fields"]
    response = client.post(SUBMIT, json=comment_json(post_url="javascript:alert(1)"))
    assert response.status_code == 422
    assert session.scalar(select(func.count()).select_from(Post)) == 0


def test_a_foreign_origin_header_is_refused_with_403(client: FlaskClient, session: Session) -> None:
    make_site(session)
    response = client.post(SUBMIT, json=comment_json(), headers={"Origin": "https://evil.example"})
    assert response.status_code == 403
    assert json_of(response)["error"]["code"] == "origin_not_allowed"
    ok = client.post(SUBMIT, json=comment_json(), headers={"Origin": ORIGIN})
    assert ok.status_code == 202


def test_the_post_is_created_under_the_first_origin(client: FlaskClient, session: Session) -> None:
    make_site(session)
    client.post(SUBMIT, json=comment_json())
    post = session.scalars(select(Post)).one()
    assert post.url == ORIGIN + POST_KEY
    assert post.title == "From industrial decline to growth"


def test_a_closed_thread_refuses_with_403(client: FlaskClient, session: Session) -> None:
    make_site(session)
    client.post(SUBMIT, json=comment_json())
    session.scalars(select(Post)).one().closed = True
    session.commit()
    response = client.post(SUBMIT, json=comment_json())
    assert response.status_code == 403
    assert json_of(response)["error"] == {
        "code": "thread_closed",
        "message": "Comments are closed on this post.",
        "fields": {},
    }


def test_a_reply_needs_an_approved_parent_on_the_same_post(
    client: FlaskClient, session: Session
) -> None:
    make_site(session)
    parent_id = json_of(client.post(SUBMIT, json=comment_json()))["id"]
    response = client.post(SUBMIT, json=comment_json(parent_id=parent_id))
    assert response.status_code == 422
    assert "parent_id" in json_of(response)["error"]["fields"]

    session.scalars(select(Comment)).one().status = CommentStatus.APPROVED
    session.commit()
    assert client.post(SUBMIT, json=comment_json(parent_id=parent_id)).status_code == 202
    other_post = comment_json(parent_id=parent_id, post="/another/")
    assert client.post(SUBMIT, json=other_post).status_code == 422


def test_replies_nest_three_deep_and_deeper_ones_join_the_third_level(
    client: FlaskClient, session: Session
) -> None:
    make_site(session)
    ids: list[str] = []
    for _ in range(4):
        parent = {"parent_id": ids[-1]} if ids else {}
        ids.append(json_of(client.post(SUBMIT, json=comment_json(**parent)))["id"])
        session.scalars(
            select(Comment).where(Comment.public_id == ids[-1])
        ).one().status = CommentStatus.APPROVED
        session.commit()
    by_id = {c.public_id: c for c in session.scalars(select(Comment))}
    assert by_id[ids[1]].parent is by_id[ids[0]]
    assert by_id[ids[2]].parent is by_id[ids[1]]
    assert by_id[ids[3]].parent is by_id[ids[1]], "a fourth level joins the third"


def test_a_form_post_the_service_cannot_take_is_given_back_to_send_again(
    client: FlaskClient, session: Session
) -> None:
    """The database is unreachable: the 503 page holds what was typed, ready to send again, and
    sending it again once the service is back stores the comment."""
    typed = {
        "author_name": "Ada",
        "author_email": "ada@example.com",
        "body": "Line one\n</textarea><script>alert(1)</script>",
        "notify": "on",
        "post_title": "",
    }
    down = create_app(settings_for_tests(database_url="postgresql://nobody@127.0.0.1:1/none"))
    path = f"/embed/luac/thread?post={POST_KEY}"
    response = down.test_client().post(path, data=typed)
    assert response.status_code == 503
    assert int(response.headers["Retry-After"]) > 0
    page = lxml.html.fromstring(response.get_data(as_text=True))
    (form,) = page.xpath("//form[@method='post']")
    assert form.get("action").endswith(path)
    assert not page.xpath("//script")
    resent = {field.get("name"): field.get("value") for field in form.xpath(".//input")}
    (textarea,) = form.xpath(".//textarea[@name='body']")
    resent["body"] = textarea.text_content()
    assert resent == {"author_name": "Ada", "author_email": "ada@example.com",
                      "notify": "on", "body": typed["body"]}  # fmt: skip
    make_site(session)
    assert client.post(path, data=resent).status_code == 303
    stored = session.scalars(select(Comment)).one()
    assert stored.body_text == typed["body"] and stored.notify_decision


@pytest.mark.parametrize(
    ("lang", "page_lang", "heading", "button"),
    [
        (None, "en", "The service is unavailable for a moment.", "Send your comment again"),
        ("cy", "cy", "Nid yw'r gwasanaeth ar gael am eiliad.", "Anfon eich sylw eto"),
    ],
)
def test_the_page_that_gives_a_comment_back_is_in_the_embed_language(
    lang: str | None, page_lang: str, heading: str, button: str
) -> None:
    down = create_app(settings_for_tests(database_url="postgresql://nobody@127.0.0.1:1/none"))
    query = f"post={POST_KEY}" + (f"&lang={lang}" if lang else "")
    typed = {"author_name": "Ada", "author_email": "ada@example.com", "body": "Helo"}
    response = down.test_client().post(f"/embed/luac/thread?{query}", data=typed)
    assert response.status_code == 503
    page = lxml.html.fromstring(response.get_data(as_text=True))
    assert page.get("lang") == page_lang
    assert page.xpath("string(//h1)").startswith(heading)
    assert page.xpath("string(//form//button)") == button
    assert page.xpath("string(//textarea)") == "Helo"


def test_the_form_post_shows_errors_and_keeps_what_was_typed(
    client: FlaskClient, session: Session
) -> None:
    make_site(session)
    response = client.post(
        f"/embed/luac/thread?post={POST_KEY}",
        data={"author_name": "Ada", "author_email": "nope", "body": "Kept <b>text</b>"},
    )
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "There is a problem" in page
    assert 'href="#cm-author_email"' in page
    assert 'aria-invalid="true"' in page
    assert 'value="Ada"' in page
    assert "Kept &lt;b&gt;text&lt;/b&gt;</textarea>" in page
    assert comment_count(session) == 0


@pytest.mark.parametrize("field", ["post_url", "author_name", "post_title"])
@pytest.mark.parametrize("character", ["\r", "\t", "\x0b", "\u2028", "\x85"])
def test_control_characters_are_refused_in_single_line_fields(
    client: FlaskClient, session: Session, field: str, character: str
) -> None:
    """A CR in a first commenter's post_url would poison the post: every later no-JS comment
    on it got 500 on the redirect."""
    make_site(session)
    value = {
        "post_url": f"{ORIGIN}{POST_KEY}",
        "author_name": "Ada Lovelace",
        "post_title": "A title of a post",
    }[field]
    response = client.post(
        "/api/v1/sites/luac/comments",
        json=comment_json(**{field: value[:6] + character + value[6:]}),
    )
    assert response.status_code == 422
    assert field in json_of(response)["error"]["fields"]


def test_a_lone_surrogate_in_json_is_a_client_error(client: FlaskClient, session: Session) -> None:
    make_site(session)
    for field in ("body", "author_name", "post_title"):
        raw = json.dumps(comment_json(**{field: "x\ud800y"}))  # an escape, as JSON allows
        assert "\\ud800" in raw
        response = client.post(
            "/api/v1/sites/luac/comments", data=raw, content_type="application/json"
        )
        assert response.status_code == 400, field
        assert json_of(response)["error"]["code"] == "malformed"
