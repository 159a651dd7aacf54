"""The moderation JSON API for integrations, authenticated by bearer API tokens."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, g, jsonify, request

from moderation import comments, moderators
from moderation.db import begin_write, get_session
from moderation.errors import Malformed, Unauthorized
from moderation.events import Actor, comment_data
from moderation.models import ApiToken, Comment, CommentStatus
from moderation.web.context import now

bp = Blueprint("moderation_api", __name__, url_prefix="/api/v1/moderation")


def moderation_comment(comment: Comment) -> dict[str, Any]:
    """A comment as its moderators see it: with the author's email address."""
    data = comment_data(comment)
    data["author_email"] = comment.author_email
    data["moderated_by"] = comment.moderated_by.login if comment.moderated_by else None
    return data


@bp.before_request
def authenticate() -> None:
    header = request.headers.get("Authorization", "")
    scheme, _, plain = header.partition(" ")
    if scheme.lower() != "bearer" or not plain.strip():
        raise Unauthorized("Send an API token as 'Authorization: Bearer TOKEN'.")
    session = get_session()
    # Every request records the token's last use, so it is a write transaction.
    begin_write(session)
    token = moderators.authenticate_token(session, plain.strip(), now=now())
    g.token = token


def _actor() -> Actor:
    token: ApiToken = g.token
    return Actor(f"{token.moderator.login} (token {token.name})", token.moderator_id)


@bp.get("/comments")
def list_comments() -> Response:
    raw_status = request.args.get("status", CommentStatus.PENDING.value)
    try:
        status = CommentStatus(raw_status)
    except ValueError:
        raise Malformed(
            "Unknown status.", fields={"status": "One of " + ", ".join(CommentStatus)}
        ) from None
    session = get_session()
    page = comments.queue(
        session,
        g.token.moderator,
        status=status,
        cursor=request.args.get("cursor"),
        limit=comments.page_limit(request.args.get("limit")),
    )
    body = {
        "comments": [moderation_comment(c) for c in page.comments],
        "next_cursor": page.next_cursor,
    }
    session.commit()
    return jsonify(body)


@bp.get("/comments/<comment_id>")
def get_comment(comment_id: str) -> Response:
    session = get_session()
    comment = comments.get_comment_for(session, g.token.moderator, comment_id)
    body = moderation_comment(comment)
    session.commit()
    return jsonify(body)


@bp.post("/comments/<comment_id>/<action>")
def act(comment_id: str, action: str) -> Response:
    session = get_session()
    comment = comments.moderate_comment(
        session, g.token.moderator, comment_id, action, actor=_actor(), now=now()
    )
    body = moderation_comment(comment)
    session.commit()
    return jsonify(body)
