"""The moderation JSON API for integrations, authenticated by bearer API tokens."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, g, jsonify, request

from moderation import actions, moderators
from moderation import queue as queues
from moderation.comments import page_limit
from moderation.db import begin_write, get_session
from moderation.errors import Malformed, Unauthorized, ValidationFailed
from moderation.events import Actor, comment_data
from moderation.models import ApiToken, Comment, CommentStatus
from moderation.web.context import json_object, now

bp = Blueprint("moderation_api", __name__, url_prefix="/api/v1/moderation")


def moderation_comment(comment: Comment) -> dict[str, Any]:
    """A comment as its moderators see it: with the author's email address."""
    data = comment_data(comment)
    data["author_email"] = comment.author_email
    data["moderated_by"] = comment.moderated_by.login if comment.moderated_by else None
    data["original_text"] = comment.original_text
    data["reject_reason"] = comment.reject_reason
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


def _optional_body() -> dict[str, Any]:
    return json_object() if request.content_length or request.mimetype else {}


def _text(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str):
        raise ValidationFailed(fields={name: "Must be text"})
    return value


def _respond(comment: Comment) -> Response:
    data = moderation_comment(comment)
    get_session().commit()
    return jsonify(data)


@bp.get("/comments")
def list_comments() -> Response:
    raw = request.args.get("status", CommentStatus.PENDING.value)
    try:
        status = None if raw == "all" else CommentStatus(raw)
    except ValueError:
        raise Malformed(
            "Unknown status.", fields={"status": "One of all, " + ", ".join(CommentStatus)}
        ) from None
    wanted = queues.QueueFilter(
        status=status,
        site=request.args.get("site") or None,
        post=request.args.get("post") or None,
        search=request.args.get("q") or None,
        newest_first=request.args.get("order") == "newest",
    )
    page = queues.list_queue(
        get_session(),
        g.token.moderator,
        wanted,
        cursor=request.args.get("cursor"),
        limit=page_limit(request.args.get("limit")),
    )
    body = {
        "comments": [moderation_comment(c) for c in page.comments],
        "next_cursor": page.next_cursor,
    }
    get_session().commit()
    return jsonify(body)


@bp.get("/comments/<comment_id>")
def get_comment(comment_id: str) -> Response:
    return _respond(actions.get_comment_for(get_session(), g.token.moderator, comment_id))


@bp.post("/comments/<comment_id>/edit")
def edit(comment_id: str) -> Response:
    body = json_object()
    return _respond(
        actions.edit_comment(
            get_session(),
            g.token.moderator,
            comment_id,
            _text(body, "body"),
            actor=_actor(),
            now=now(),
        )
    )


@bp.post("/comments/<comment_id>/reply")
def reply(comment_id: str) -> tuple[Response, int]:
    body = json_object()
    created = actions.reply_as_blog(
        get_session(),
        g.token.moderator,
        comment_id,
        _text(body, "body"),
        actor=_actor(),
        now=now(),
        approve_first=body.get("approve") is True,
    )
    return _respond(created), 201


@bp.post("/comments/<comment_id>/<action>")
def act(comment_id: str, action: str) -> Response:
    reason = _optional_body().get("reason")
    if reason is not None and not isinstance(reason, str):
        raise ValidationFailed(fields={"reason": "Must be text"})
    return _respond(
        actions.moderate_comment(
            get_session(),
            g.token.moderator,
            comment_id,
            action,
            actor=_actor(),
            now=now(),
            reason=reason,
        )
    )


@bp.post("/comments/bulk")
def bulk() -> Response:
    body = json_object()
    ids = body.get("ids")
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
        raise ValidationFailed(fields={"ids": "Give a list of comment ids"})
    if len(ids) > 200:
        raise ValidationFailed(fields={"ids": "Give at most 200 ids at once"})
    result = actions.bulk(
        get_session(), g.token.moderator, ids, _text(body, "action"), actor=_actor(), now=now()
    )
    get_session().commit()
    return jsonify({"done": result.done, "refused": result.refused})
