"""The moderators' web queue: login, the queue of comments, and the actions on them.

Every state-changing form carries a CSRF token bound to the browser's session. The session
cookie holds a login token whose record on the server is deleted at logout, an idle deadline
refreshed on each request, and the CSRF token.
"""

from __future__ import annotations

import datetime as dt
import hmac
import secrets

from flask import (
    Blueprint,
    abort,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.typing import ResponseReturnValue

from moderation import comments, moderators
from moderation.db import get_session
from moderation.errors import AlreadyModerated, InvalidCredentials, Malformed, NotFound
from moderation.events import Actor
from moderation.models import CommentStatus, Moderator
from moderation.web.context import hasher, now, settings

bp = Blueprint("moderate", __name__, url_prefix="/moderate")

PUBLIC_ENDPOINTS = frozenset({"moderate.login", "moderate.do_login"})


def csrf_token() -> str:
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(32)
    token: str = session["csrf"]
    return token


@bp.app_context_processor
def inject_csrf() -> dict[str, object]:
    return {"csrf_token": csrf_token}


def _current_moderator() -> Moderator | None:
    token = session.get("sid")
    seen = session.get("seen")
    if not isinstance(token, str) or not isinstance(seen, int | float):
        return None
    config = settings()
    moment = now()
    if moment.timestamp() - seen > config.session_idle_minutes * 60:
        return None
    moderator = moderators.resolve_login_session(
        get_session(), token, now=moment, max_age=dt.timedelta(hours=config.session_max_hours)
    )
    if moderator is not None:
        session["seen"] = int(moment.timestamp())
    return moderator


def _back_to(target: str | None) -> str:
    """Where to go after a form: a page of the queue, never another site."""
    if target and target.startswith("/moderate") and "//" not in target and "\\" not in target:
        return target
    return url_for("moderate.queue")


@bp.before_request
def guard() -> ResponseReturnValue | None:
    if request.method == "POST":
        sent = request.form.get("csrf_token", "")
        expected = session.get("csrf", "")
        if not (sent and expected and hmac.compare_digest(str(sent), str(expected))):
            abort(400, "The form has expired. Go back, reload the page and try again.")
    g.moderator = _current_moderator()
    if g.moderator is None and request.endpoint not in PUBLIC_ENDPOINTS:
        if request.method == "POST":
            abort(401)
        return redirect(url_for("moderate.login", next=request.full_path))
    return None


@bp.get("/login")
def login() -> str:
    return render_template("moderate/login.html", error=None, login_name="")


@bp.post("/login")
def do_login() -> ResponseReturnValue:
    login_name = request.form.get("login", "")
    db = get_session()
    try:
        moderator = moderators.authenticate(
            db, hasher(), login_name, request.form.get("password", "")
        )
    except InvalidCredentials as error:
        return render_template(
            "moderate/login.html", error=error.message, login_name=login_name
        ), 401
    token = moderators.start_login_session(db, moderator, now=now())
    db.commit()
    # A new session on login: nothing from before the login survives, not even the CSRF token.
    session.clear()
    session["sid"] = token
    session["seen"] = int(now().timestamp())
    csrf_token()
    return redirect(_back_to(request.args.get("next")), code=303)


@bp.post("/logout")
def logout() -> ResponseReturnValue:
    moderators.end_login_session(get_session(), session["sid"])
    get_session().commit()
    session.clear()
    flash("You have logged out.")
    return redirect(url_for("moderate.login"), code=303)


@bp.get("/")
def queue() -> str:
    raw_status = request.args.get("status", CommentStatus.PENDING.value)
    try:
        status = CommentStatus(raw_status)
    except ValueError:
        raise Malformed("Unknown status.") from None
    page = comments.queue(
        get_session(), g.moderator, status=status, cursor=request.args.get("cursor")
    )
    return render_template(
        "moderate/queue.html",
        page=page,
        status=status,
        statuses=list(CommentStatus),
        moderator=g.moderator,
        now=now(),
    )


@bp.post("/comments/<comment_id>/<action>")
def act(comment_id: str, action: str) -> ResponseReturnValue:
    if action not in comments.ACTIONS:
        raise NotFound("There is no such moderation action.")
    db = get_session()
    moderator: Moderator = g.moderator
    try:
        comment = comments.moderate_comment(
            db,
            moderator,
            comment_id,
            action,
            actor=Actor(moderator.login, moderator.id),
            now=now(),
        )
    except AlreadyModerated as error:
        db.rollback()
        flash(error.message, "error")
    else:
        db.commit()
        flash(f"Comment by {comment.author_name} marked {comment.status.value}.")
    return redirect(_back_to(request.form.get("next")), code=303)
