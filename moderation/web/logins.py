"""Entering a moderator's browser session: the CSRF token, where to go next, and the new
session a login starts (password, second step or single sign-on alike)."""

from __future__ import annotations

import secrets

from flask import redirect, request, session, url_for
from flask.typing import ResponseReturnValue

from moderation import moderators
from moderation.comments import client_network
from moderation.models import LoginMethod, Moderator
from moderation.web.context import client_address, now
from moderation.web.sessions import get_session


def csrf_token() -> str:
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(32)
    token: str = session["csrf"]
    return token


def back_to(target: str | None) -> str:
    """Where to go after a form: a page of the queue, never another site."""
    if target and target.startswith("/moderate") and "//" not in target and "\\" not in target:
        return target
    return url_for("moderate.queue")


def enter(login_token: str, target: str | None) -> ResponseReturnValue:
    """Put a new login in the browser's cookie and go on to ``target`` (a queue page)."""
    # A new session on login: nothing from before the login survives, not even the CSRF token.
    session.clear()
    session["sid"] = login_token
    session["seen"] = int(now().timestamp())
    csrf_token()
    return redirect(back_to(target), code=303)


def begin_login(
    moderator: Moderator, *, method: LoginMethod = LoginMethod.PASSWORD, second: bool = False
) -> ResponseReturnValue:
    """Start a login session for ``moderator`` (committing the caller's transaction), enter it."""
    db = get_session()
    token = moderators.start_login_session(
        db,
        moderator,
        now=now(),
        method=method,
        user_agent=request.user_agent.string,
        network=client_network(client_address()),
        second_factor=second,
    )
    db.commit()
    pending = session.get("pending")
    target = request.args.get("next") or (
        pending.get("next") if isinstance(pending, dict) else None
    )
    return enter(token, target)
