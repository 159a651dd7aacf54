"""The moderation JSON API for integrations, authenticated by bearer API tokens."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, g, jsonify, request
from sqlalchemy import select

from moderation import (
    actions,
    comments,
    importing,
    moderators,
    posts,
    reports,
    second_factor,
    sites,
)
from moderation import queue as queues
from moderation.comments import client_network, page_limit
from moderation.db import begin_as_writer
from moderation.errors import (
    InvalidSecondFactor,
    Malformed,
    SecondFactorRequired,
    Unauthorized,
    UnsupportedMediaType,
    ValidationFailed,
)
from moderation.events import Actor, rfc3339
from moderation.models import ApiToken, Comment, CommentStatus, LoginSession, Moderator, Site
from moderation.outbox.events import comment_data
from moderation.web import bans_api, devices, webhooks_api
from moderation.web.context import (
    client_address,
    json_object,
    now,
    required_post_key,
    save_body,
    settings,
)
from moderation.web.sessions import get_session

bp = Blueprint("moderation_api", __name__, url_prefix="/api/v1/moderation")
bp.register_blueprint(webhooks_api.bp)
bp.register_blueprint(bans_api.bp)
QUERY_PARAMETERS = {
    "moderation_api.list_comments": {
        "status",
        "site",
        "post",
        "q",
        "order",
        "cursor",
        "limit",
        "signal",
        "reported",
    },
    "moderation_api.import_comments": {"source"},
    "moderation_api.get_post": {"post"},
    "moderation_api.update_post": {"post"},
    **bans_api.QUERY_PARAMETERS,
}
# An export is XML; WordPress serves its WXR download as RSS.
EXPORT_TYPES = ("application/xml", "text/xml", "application/rss+xml")


def moderation_comment(comment: Comment) -> dict[str, Any]:
    """A comment as its moderators see it: with the author's email address."""
    data = comment_data(comment)
    data["author_email"] = comment.author_email
    data["moderated_by"] = comment.moderated_by.login if comment.moderated_by else None
    data["original_text"] = comment.original_text
    data["reject_reason"] = comment.reject_reason
    # The learned spam check's score (0 legitimate to 1 spam), None when it did not run.
    data["spam_score"] = comment.spam_score
    data["pinned_at"] = rfc3339(comment.pinned_at) if comment.pinned_at else None
    # Readers' reports, live and dismissed, with their reasons and detail (never a network).
    data["reports"] = [reports.report_json(r) for r in comment.reports]
    return data


@bp.before_request
def authenticate() -> None:
    header = request.headers.get("Authorization", "")
    scheme, _, plain = header.partition(" ")
    if scheme.lower() != "bearer" or not plain.strip():
        raise Unauthorized("Send an API token as 'Authorization: Bearer TOKEN'.")
    # A read stays a read unless the token's last use is due to be recorded.
    token = moderators.authenticate_token(get_session(), plain.strip(), now=now())
    g.token = token
    unknown = set(request.args) - QUERY_PARAMETERS.get(request.endpoint or "", set())
    if unknown:
        # An integration's typo (?stauts=spam) must not silently mean something else.
        raise Malformed(
            "Unknown query parameters.",
            fields={name: "Not a parameter here" for name in sorted(unknown)},
        )


def _actor() -> Actor:
    token: ApiToken = g.token
    return Actor(f"{token.moderator.login} (token {token.name})", token.moderator_id, "api")


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
    reported = queues.reported_filter(request.args.get("reported"))
    # Reported comments are in any status unless one is asked for.
    raw = request.args.get("status", "all" if reported else CommentStatus.PENDING.value)
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
        order=queues.queue_order(request.args.get("order")),
        signal=queues.signal_filter(request.args.get("signal")),
        reported=reported,
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


@bp.post("/comments/<comment_id>/pin")
def pin(comment_id: str) -> Response:
    return _respond(
        actions.pin_comment(get_session(), g.token.moderator, comment_id, actor=_actor(), now=now())
    )


@bp.post("/comments/<comment_id>/unpin")
def unpin(comment_id: str) -> Response:
    return _respond(
        actions.unpin_comment(
            get_session(), g.token.moderator, comment_id, actor=_actor(), now=now()
        )
    )


@bp.post("/comments/<comment_id>/dismiss-reports")
def dismiss_reports(comment_id: str) -> Response:
    """Readers' reports found unfounded: republished if they took it down; never count again."""
    return _respond(
        reports.dismiss_reports(
            get_session(), g.token.moderator, comment_id, actor=_actor(), now=now()
        )
    )


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


@bp.post("/bulk")
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


# Posts: closing and reopening (moderators of the post's site) -----------------------------------


@bp.get("/sites/<slug>/posts")
def get_post(slug: str) -> Response:
    """A post's state: closed by hand, its window, its publication date, and whether it takes
    comments now."""
    found = posts.find_post_for(get_session(), g.token.moderator, slug, required_post_key())
    data = posts.post_data(found, now())
    get_session().commit()
    return jsonify(data)


@bp.patch("/sites/<slug>/posts")
def update_post(slug: str) -> Response:
    """Close or open a post (``{"closed": bool}``), or set its window (``opens_at``,
    ``closes_at``: RFC 3339, or null to clear)."""
    key = required_post_key()
    changes = posts.PostChanges.parse(json_object())
    found = posts.update_post(
        get_session(), g.token.moderator, slug, key, changes, actor=_actor(), now=now()
    )
    data = posts.post_data(found, now())
    get_session().commit()
    return jsonify(data)


# Administration: admins only -------------------------------------------------------------------


def _admin() -> Moderator:
    moderator: Moderator = g.token.moderator
    moderators.require_admin(moderator)
    return moderator


def site_json(site: Site) -> dict[str, Any]:
    return {"slug": site.slug, **sites.site_settings(site)}


@bp.get("/sites")
def list_sites() -> Response:
    _admin()
    found = get_session().scalars(select(Site).order_by(Site.slug)).all()
    body = {"sites": [site_json(s) for s in found]}
    get_session().commit()
    return jsonify(body)


@bp.post("/sites")
def create_site() -> tuple[Response, int]:
    _admin()
    body = json_object()
    origins = body.get("origins")
    if not isinstance(origins, list) or not all(isinstance(o, str) for o in origins):
        raise ValidationFailed(fields={"origins": "Give a list of origins"})
    site = sites.create_site(
        get_session(),
        slug=_text(body, "slug"),
        name=_text(body, "name"),
        origins=origins,
        actor=_actor(),
        now=now(),
    )
    settings = {k: v for k, v in body.items() if k not in ("slug", "name", "origins")}
    if settings:
        sites.update_site(get_session(), site, settings, actor=_actor(), now=now())
    data = site_json(site)
    get_session().commit()
    return jsonify(data), 201


@bp.get("/sites/<slug>")
def get_site(slug: str) -> Response:
    _admin()
    data = site_json(comments.get_site(get_session(), slug))
    get_session().commit()
    return jsonify(data)


@bp.patch("/sites/<slug>")
def update_site(slug: str) -> Response:
    _admin()
    site = sites.update_site(
        get_session(),
        comments.get_site(get_session(), slug),
        json_object(),
        actor=_actor(),
        now=now(),
    )
    data = site_json(site)
    get_session().commit()
    return jsonify(data)


@bp.post("/sites/<slug>/imports")
def import_comments(slug: str) -> Response:
    """Import a WordPress (WXR) or Disqus export into the site, as ``moderation import`` does:
    the whole file checked first, then one transaction; a second run adds nothing."""
    _admin()
    source = request.args.get("source", "wordpress")
    if source not in importing.SOURCES:
        raise Malformed(
            "Unknown source.", fields={"source": "One of " + ", ".join(importing.SOURCES)}
        )
    if request.mimetype not in EXPORT_TYPES:
        raise UnsupportedMediaType("Send the export as application/xml.")
    comments.get_site(get_session(), slug)  # an unknown site is a 404 before the upload
    actor = _actor()
    # The upload and the check run outside any transaction (on SQLite, without the write lock).
    get_session().commit()
    with tempfile.TemporaryDirectory(prefix="moderation-import-") as folder:
        path = Path(folder) / "export.xml"
        save_body(path, settings().max_import_bytes)
        plan = importing.read_export(path, source, name="(uploaded)")
        session = get_session()
        begin_as_writer(session)
        site = comments.get_site(session, slug)
        report = importing.import_export(session, site, plan, now=now(), actor=actor)
        session.commit()
    return jsonify({"site": slug, "source": source, **report.as_dict()})


def moderator_json(moderator: Moderator) -> dict[str, Any]:
    return {
        "login": moderator.login,
        "email": moderator.email,
        **moderators.moderator_settings(moderator),
        "disabled": moderator.disabled,
    }


@bp.get("/moderators")
def list_moderators() -> Response:
    _admin()
    found = get_session().scalars(select(Moderator).order_by(Moderator.login)).all()
    body = {"moderators": [moderator_json(m) for m in found]}
    get_session().commit()
    return jsonify(body)


@bp.patch("/moderators/<login>")
def update_moderator(login: str) -> Response:
    _admin()
    body = json_object()
    target = moderators.get_moderator(get_session(), login)
    site_slugs = body.get("sites", [s.slug for s in target.sites])
    if not isinstance(site_slugs, list) or not all(isinstance(s, str) for s in site_slugs):
        raise ValidationFailed(fields={"sites": "Give a list of site slugs"})
    disabled = body.get("disabled", target.disabled)
    if not isinstance(disabled, bool):
        raise ValidationFailed(fields={"disabled": "Give true or false"})
    moderators.update_moderator(
        get_session(),
        target,
        role=str(body.get("role", target.role.value)),
        site_slugs=tuple(site_slugs),
        actor=_actor(),
        now=now(),
    )
    moderators.set_disabled(get_session(), target, disabled, actor=_actor(), now=now())
    data = moderator_json(target)
    get_session().commit()
    return jsonify(data)


def session_json(login: LoginSession) -> dict[str, Any]:
    return {
        "id": login.id,
        "device": devices.describe(login.user_agent),
        "network": login.network,
        "method": login.method.value,
        "second_factor": login.second_factor_at is not None,
        "created_at": rfc3339(login.created_at),
        "last_seen_at": rfc3339(login.last_seen_at or login.created_at),
    }


@bp.get("/moderators/<login>/sessions")
def list_moderator_sessions(login: str) -> Response:
    """A moderator's web logins, the most recently seen first (admins only)."""
    _admin()
    target = moderators.get_moderator(get_session(), login)
    logins = moderators.list_login_sessions(get_session(), target)
    body = {"sessions": [session_json(s) for s in logins]}
    get_session().commit()
    return jsonify(body)


@bp.post("/moderators/<login>/sessions/end")
def end_moderator_sessions(login: str) -> Response:
    """Sign a moderator out everywhere (admins only); audited. API tokens are not touched."""
    _admin()
    target = moderators.get_moderator(get_session(), login)
    ended = moderators.end_login_sessions(get_session(), target, actor=_actor(), now=now())
    get_session().commit()
    return jsonify({"ended": ended})


@bp.get("/me")
def get_me() -> Response:
    """The moderator the token acts as, with their own settings."""
    return jsonify(moderator_json(g.token.moderator))


@bp.patch("/me")
def update_me() -> Response:
    """Change one's own settings: ``{"mail_preference": "each" | "digest" | "off"}``."""
    body = json_object()
    unknown = set(body) - {"mail_preference"}
    if unknown:
        raise ValidationFailed(fields={name: "Not a setting you can change" for name in unknown})
    if "mail_preference" in body:
        moderators.set_mail_preference(
            get_session(), g.token.moderator, body["mail_preference"], actor=_actor(), now=now()
        )
    data = moderator_json(g.token.moderator)
    get_session().commit()
    return jsonify(data)


def token_json(token: ApiToken) -> dict[str, Any]:
    return {
        "id": token.id,
        "name": token.name,
        "moderator": token.moderator.login,
        "prefix": token.prefix,
        "created_at": rfc3339(token.created_at),
        "last_used_at": rfc3339(token.last_used_at) if token.last_used_at else None,
        "revoked_at": rfc3339(token.revoked_at) if token.revoked_at else None,
    }


@bp.get("/tokens")
def list_tokens() -> Response:
    _admin()
    body = {"tokens": [token_json(t) for t in moderators.list_tokens(get_session())]}
    get_session().commit()
    return jsonify(body)


def _check_fresh_factor(code: object) -> None:
    """Creating a token needs the creator's second factor, here a TOTP or recovery code in
    ``second_factor`` (passkeys cannot answer through the API: use the web pages)."""
    creator: Moderator = g.token.moderator
    db = get_session()
    if not second_factor.has_second_factor(db, creator):
        if second_factor.required_for(creator, settings().effective_mfa_required):
            raise SecondFactorRequired(
                "Set up a second factor in the web pages before creating tokens."
            )
        return
    if not isinstance(code, str) or not code:
        raise SecondFactorRequired(
            "Send a current code of your authenticator app (or a recovery code) as "
            "second_factor, or create the token in the web pages."
        )
    second_factor.count_attempt(db, creator, client_network(client_address()), now=now())
    db.commit()
    begin_as_writer(db)
    try:
        second_factor.verify_code(db, creator, code, now=now())
    except InvalidSecondFactor:
        db.commit()
        raise
    second_factor.clear_attempts(db, creator)


@bp.post("/tokens")
def create_token() -> tuple[Response, int]:
    _admin()
    body = json_object()
    _check_fresh_factor(body.get("second_factor"))
    owner = moderators.get_moderator(get_session(), _text(body, "moderator"))
    token, plain = moderators.create_api_token(
        get_session(), owner, _text(body, "name"), now=now(), actor=_actor()
    )
    data = {**token_json(token), "token": plain}
    get_session().commit()
    return jsonify(data), 201


@bp.post("/tokens/<int:token_id>/revoke")
def revoke_token(token_id: int) -> Response:
    _admin()
    token = moderators.revoke_token(get_session(), token_id, actor=_actor(), now=now())
    data = token_json(token)
    get_session().commit()
    return jsonify(data)
