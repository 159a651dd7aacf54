"""The moderators' web queue: login, the queue of comments, and the actions on them.

Every state-changing form carries a CSRF token bound to the browser's session. The session
cookie holds a login token whose record on the server is deleted at logout, an idle deadline
refreshed on each request, and the CSRF token.
"""

from __future__ import annotations

import datetime as dt
import hmac
import secrets
from collections.abc import Callable

from flask import (
    Blueprint,
    Flask,
    Request,
    Response,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    stream_with_context,
    url_for,
)
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from flask.typing import ResponseReturnValue
from sqlalchemy import select

from moderation import actions, audit, moderators
from moderation import queue as queues
from moderation.comments import client_network, page_limit
from moderation.db import become_writer, begin_as_writer
from moderation.errors import (
    AlreadyModerated,
    InvalidCredentials,
    Malformed,
    NotFound,
    RateLimited,
    ServiceError,
)
from moderation.events import COMMENT_ACTIONS, Actor
from moderation.models import Comment, CommentStatus, MailPreference, Moderator, Site
from moderation.web import admin, moderate_webhooks
from moderation.web.context import client_address, hasher, now, settings
from moderation.web.sessions import close_session, get_session, reads_first

bp = Blueprint("moderate", __name__, url_prefix="/moderate")
bp.register_blueprint(admin.bp)
bp.register_blueprint(moderate_webhooks.bp)

PUBLIC_ENDPOINTS = frozenset({"moderate.login", "moderate.do_login"})


class ModeratorSessions(SecureCookieSessionInterface):
    """The signed cookie session, opened only under /moderate (the cookie's path).

    Public reads never carry the cookie, so they skip building a signer for it on every request.
    """

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if not request.path.startswith(bp.url_prefix or "/moderate"):
            return None  # Flask then uses its read-only null session
        return super().open_session(app, request)


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
@reads_first
def do_login() -> ResponseReturnValue:
    login_name = request.form.get("login", "").strip()
    network = client_network(client_address())
    factory = current_app.extensions["moderation.sessionmaker"]
    close_session()  # the guard may have read (an old login): nothing may be held while hashing
    try:
        # Its own short transactions: none is open while the password is hashed.
        moderator_id = moderators.log_in(
            factory, hasher(), login_name, request.form.get("password", ""), network, now=now()
        )
    except (InvalidCredentials, RateLimited) as error:
        page = render_template("moderate/login.html", error=error.message, login_name=login_name)
        headers = {"Retry-After": str(error.retry_after)} if isinstance(error, RateLimited) else {}
        return page, error.status, headers
    db = get_session()
    become_writer(db)
    moderator = db.get_one(Moderator, moderator_id)
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


def _actor() -> Actor:
    moderator: Moderator = g.moderator
    return Actor(moderator.login, moderator.id, "ui")


@bp.get("/account")
def account() -> str:
    return render_template(
        "moderate/account.html",
        preferences=list(MailPreference),
        mail_on=settings().mail_enabled,
        digest_minutes=settings().mail_digest_minutes,
    )


@bp.post("/account")
def account_save() -> ResponseReturnValue:
    """A moderator's own settings: how they hear of held comments."""
    db = get_session()
    value = request.form.get("mail_preference", "")
    moderators.set_mail_preference(db, g.moderator, value, actor=_actor(), now=now())
    db.commit()
    flash("Saved your email settings.")
    return redirect(url_for("moderate.account"), code=303)


SIGNAL_CHOICES = (
    ("honeypot", "Hidden field filled in"),
    ("time_trap", "Sent too fast or without a valid form token"),
    ("links", "Too many links"),
    ("blocklist", "Blocklisted term"),
    ("duplicate", "Duplicate comment"),
    ("personal_data", "Contains personal data"),
    ("disposable_email", "Disposable email address"),
)


def _queue_filter() -> queues.QueueFilter:
    raw = request.args.get("status", CommentStatus.PENDING.value)
    try:
        status = None if raw == "all" else CommentStatus(raw)
    except ValueError:
        raise Malformed("Unknown status.") from None
    return queues.QueueFilter(
        status=status,
        site=request.args.get("site") or None,
        post=request.args.get("post") or None,
        search=(request.args.get("q") or "").strip() or None,
        newest_first=queues.newest_first(request.args.get("order")),
        signal=queues.signal_filter(request.args.get("signal") or None),
    )


def _sites_for(moderator: Moderator) -> list[Site]:
    if moderator.is_admin:
        return list(get_session().scalars(select(Site).order_by(Site.name)))
    return sorted(moderator.sites, key=lambda site: site.name)


def _count_labels(counts: dict[CommentStatus, int]) -> dict[str, str]:
    """Counts for the navigation; past the cap they read "1,000+"."""
    cap = queues.COUNT_CAP

    def label(count: int, capped: bool) -> str:
        return f"{count:,}+" if capped else f"{count:,}"

    labels = {status.value: label(min(n, cap), n > cap) for status, n in counts.items()}
    total = sum(min(n, cap) for n in counts.values())
    labels["all"] = label(total, any(n > cap for n in counts.values()))
    return labels


@bp.get("/")
def queue() -> str:
    wanted = _queue_filter()
    db = get_session()
    page = queues.list_queue(
        db,
        g.moderator,
        wanted,
        cursor=request.args.get("cursor"),
        limit=page_limit(request.args.get("limit")),
    )
    return render_template(
        "moderate/queue.html",
        page=page,
        wanted=wanted,
        counts=_count_labels(queues.status_counts(db, g.moderator, wanted)),
        history=queues.author_history(db, g.moderator, page.comments),
        sites=_sites_for(g.moderator),
        statuses=list(queues.QUEUE_STATUSES),
        bulk_actions=actions.BULK_ACTIONS,
        signal_choices=SIGNAL_CHOICES,
        now=now(),
    )


@bp.get("/comments/<comment_id>")
def comment(comment_id: str) -> str:
    db = get_session()
    begin_as_writer(db)
    found = actions.get_comment_for(db, g.moderator, comment_id)
    holds = actions.claim(db, g.moderator, found, now=now())
    db.commit()
    return render_template(
        "moderate/comment.html",
        c=found,
        holds_claim=holds,
        history=queues.author_history(db, g.moderator, [found]),
        now=now(),
    )


def _act(comment_id: str, do: Callable[[], Comment], done: str) -> ResponseReturnValue:
    db = get_session()
    try:
        changed = do()
    except AlreadyModerated as error:
        db.rollback()
        flash(error.message, "error")
    except ServiceError as error:
        db.rollback()
        flash(" ".join([error.message, *error.fields.values()]), "error")
    else:
        db.commit()
        flash(done.format(name=changed.author_name, status=changed.status.value))
        if changed.status is not CommentStatus.PENDING and changed.public_id == comment_id:
            session["undo"] = {"id": comment_id, "until": (now() + actions.UNDO_WINDOW).timestamp()}
    return redirect(_back_to(request.form.get("next")), code=303)


@bp.post("/comments/<comment_id>/<action>")
def act(comment_id: str, action: str) -> ResponseReturnValue:
    if action not in actions.ACTIONS:
        raise NotFound("There is no such moderation action.")
    return _act(
        comment_id,
        lambda: actions.moderate_comment(
            get_session(),
            g.moderator,
            comment_id,
            action,
            actor=_actor(),
            now=now(),
            reason=request.form.get("reason") or None,
        ),
        "Comment by {name} marked {status}.",
    )


@bp.post("/comments/<comment_id>/undo")
def undo(comment_id: str) -> ResponseReturnValue:
    session.pop("undo", None)
    return _act(
        "",
        lambda: actions.undo(get_session(), g.moderator, comment_id, actor=_actor(), now=now()),
        "Undone: the comment by {name} is {status} again.",
    )


@bp.post("/comments/<comment_id>/edit")
def edit(comment_id: str) -> ResponseReturnValue:
    def do() -> Comment:
        db = get_session()
        edited = actions.edit_comment(
            db, g.moderator, comment_id, request.form.get("body", ""), actor=_actor(), now=now()
        )
        if request.form.get("approve") and edited.status is CommentStatus.PENDING:
            return actions.moderate_comment(
                db, g.moderator, comment_id, "approve", actor=_actor(), now=now()
            )
        return edited

    return _act(comment_id, do, "Comment by {name} saved ({status}).")


@bp.post("/comments/<comment_id>/reply")
def reply(comment_id: str) -> ResponseReturnValue:
    return _act(
        "",
        lambda: actions.reply_as_blog(
            get_session(),
            g.moderator,
            comment_id,
            request.form.get("reply", ""),
            actor=_actor(),
            now=now(),
            approve_first=bool(request.form.get("approve")),
        ),
        "Your reply as {name} is published.",
    )


@bp.post("/bulk")
def bulk() -> ResponseReturnValue:
    db = get_session()
    ids = request.form.getlist("ids")
    if not ids:
        flash("Select at least one comment.", "error")
        return redirect(_back_to(request.form.get("next")), code=303)
    try:
        result = actions.bulk(
            db, g.moderator, ids, request.form.get("action", ""), actor=_actor(), now=now()
        )
    except ServiceError as error:
        db.rollback()
        flash(" ".join(error.fields.values()) or error.message, "error")
    else:
        db.commit()
        flash(f"{len(result.done)} comment{'s' if len(result.done) != 1 else ''} updated.")
        if result.refused:
            flash(f"{len(result.refused)} had already been moderated and were left alone.", "error")
    return redirect(_back_to(request.form.get("next")), code=303)


def _audit_filter() -> audit.AuditFilter:
    def day(name: str) -> dt.date | None:
        raw = request.args.get(name) or ""
        try:
            return dt.date.fromisoformat(raw) if raw else None
        except ValueError:
            raise Malformed(f"{name} must be a date like 2026-11-29.") from None

    return audit.AuditFilter(
        moderator=request.args.get("moderator") or None,
        action=request.args.get("action") or None,
        site=request.args.get("site") or None,
        since=day("since"),
        until=day("until"),
    )


@bp.get("/audit")
def audit_log() -> ResponseReturnValue:
    wanted = _audit_filter()
    db = get_session()
    if request.args.get("format") == "csv":
        rows = stream_with_context(audit.export_csv(db, g.moderator, wanted))
        return Response(
            rows,
            mimetype="text/csv",
            headers={"Content-Disposition": 'attachment; filename="audit-log.csv"'},
        )
    page = audit.list_audit(db, g.moderator, wanted, cursor=request.args.get("cursor"))
    return render_template(
        "moderate/audit.html",
        page=page,
        wanted=wanted,
        sites=_sites_for(g.moderator),
        actions=COMMENT_ACTIONS,
        now=now(),
    )
