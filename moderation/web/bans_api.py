"""Bans in the moderation API (``/api/v1/moderation/bans``), for moderators' bearer tokens:
admins ban anywhere, moderators on their own sites (moderation/bans.py)."""

from __future__ import annotations

from flask import Blueprint, Response, g, jsonify, request

from moderation import bans
from moderation.comments import page_limit
from moderation.errors import Malformed
from moderation.events import Actor
from moderation.models import ApiToken
from moderation.web.context import json_object, now
from moderation.web.sessions import get_session

# Nested in the moderation API blueprint, whose guard authenticates the bearer token first.
bp = Blueprint("bans", __name__, url_prefix="/bans")
QUERY_PARAMETERS = {"moderation_api.bans.list_bans": {"site", "expired", "cursor", "limit"}}
FLAGS = {"true": True, "false": False}


def _actor() -> Actor:
    token: ApiToken = g.token
    return Actor(f"{token.moderator.login} (token {token.name})", token.moderator_id, "api")


@bp.post("")
def create_ban() -> tuple[Response, int]:
    moment = now()
    wanted = bans.BanRequest.parse(json_object(), now=moment)
    session = get_session()
    made = bans.create_ban(session, g.token.moderator, wanted, actor=_actor(), now=moment)
    body = {**bans.ban_json(made.ban, now=moment), "removed_comments": list(made.removed)}
    session.commit()
    return jsonify(body), 201


@bp.get("")
def list_bans() -> Response:
    expired = FLAGS.get(request.args.get("expired", "false"))
    if expired is None:
        raise Malformed("expired is true or false.", fields={"expired": "Send true or false"})
    moment = now()
    page = bans.list_bans(
        get_session(),
        g.token.moderator,
        now=moment,
        site=request.args.get("site") or None,
        include_expired=expired,
        cursor=request.args.get("cursor"),
        limit=page_limit(request.args.get("limit")),
    )
    body = {
        "bans": [bans.ban_json(b, now=moment) for b in page.bans],
        "next_cursor": page.next_cursor,
    }
    get_session().commit()
    return jsonify(body)


@bp.delete("/<int:ban_id>")
def lift_ban(ban_id: int) -> Response:
    session = get_session()
    bans.lift_ban(session, g.token.moderator, ban_id, actor=_actor(), now=now())
    session.commit()
    return Response(status=204)
