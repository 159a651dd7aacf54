"""The moderators' web queue: login, the queue of comments, and the actions on them.

Every state-changing form carries a CSRF token bound to the browser's session. The session
cookie holds a login token whose record on the server is deleted at logout, an idle deadline
refreshed on each request, and the CSRF token.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hmac
import re
from collections.abc import Callable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from flask import (
    Blueprint,
    Flask,
    Request,
    Response,
    abort,
    current_app,
    flash,
    g,
    jsonify,
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
from werkzeug.datastructures import MultiDict

from moderation import actions, audit, moderators, posts, reports, second_factor
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
from moderation.models import (
    Comment,
    CommentStatus,
    LoginMethod,
    LoginSession,
    MailPreference,
    Moderator,
    Site,
)
from moderation.outbox.mail import DIGEST_INTERVAL
from moderation.spam import check_labels
from moderation.web import admin, devices, mfa, moderate_bans, moderate_webhooks, monthly, sso
from moderation.web.context import client_address, hasher, now, settings
from moderation.web.logins import back_to, begin_login, csrf_token
from moderation.web.sessions import close_session, get_session, reads_first

bp = Blueprint("moderate", __name__, url_prefix="/moderate")
bp.register_blueprint(admin.bp)
bp.register_blueprint(moderate_webhooks.bp)
bp.register_blueprint(sso.bp)
bp.register_blueprint(mfa.bp)
bp.register_blueprint(monthly.bp)
bp.register_blueprint(moderate_bans.bp)

PUBLIC_ENDPOINTS = frozenset(
    {"moderate.login", "moderate.do_login", *sso.PUBLIC_ENDPOINTS, *mfa.PUBLIC_ENDPOINTS}
)
# What a moderator who must enrol a second factor may reach before they have.
ENROLMENT_ENDPOINTS = frozenset({"moderate.logout", *mfa.ENROLMENT_ENDPOINTS})
COMMENT_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


class ModeratorSessions(SecureCookieSessionInterface):
    """The signed cookie session, opened only under /moderate (the cookie's path).

    Public reads never carry the cookie, so they skip building a signer for it on every request.
    """

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if not request.path.startswith(bp.url_prefix or "/moderate"):
            return None  # Flask then uses its read-only null session
        return super().open_session(app, request)


@bp.app_context_processor
def inject_csrf() -> dict[str, object]:
    return {"csrf_token": csrf_token}


def _current_login() -> LoginSession | None:
    token = session.get("sid")
    seen = session.get("seen")
    if not isinstance(token, str) or not isinstance(seen, int | float):
        return None
    config = settings()
    moment = now()
    if moment.timestamp() - seen > config.session_idle_minutes * 60:
        return None
    login = moderators.resolve_login_session(
        get_session(), token, now=moment, max_age=dt.timedelta(hours=config.session_max_hours)
    )
    if login is not None:
        session["seen"] = int(moment.timestamp())
    return login


def must_enrol(login: LoginSession) -> bool:
    """A password login of a moderator who must have a second factor and has proved none."""
    return (
        login.method is LoginMethod.PASSWORD
        and login.second_factor_at is None
        and second_factor.required_for(login.moderator, settings().effective_mfa_required)
    )


@bp.before_request
def guard() -> ResponseReturnValue | None:
    if request.method == "POST":
        sent = request.form.get("csrf_token", "")
        expected = session.get("csrf", "")
        if not (sent and expected and hmac.compare_digest(str(sent), str(expected))):
            abort(400, "The form has expired. Go back, reload the page and try again.")
    g.login = _current_login()
    g.moderator = g.login.moderator if g.login is not None else None
    if g.moderator is None and request.endpoint not in PUBLIC_ENDPOINTS:
        if request.method == "POST":
            abort(401)
        return redirect(url_for("moderate.login", next=request.full_path))
    free = ENROLMENT_ENDPOINTS | PUBLIC_ENDPOINTS
    if g.login is not None and request.endpoint not in free and must_enrol(g.login):
        return redirect(url_for("moderate.mfa.overview"))
    return None


def login_page(error: str | None, login_name: str) -> str:
    return render_template(
        "moderate/login.html",
        error=error,
        login_name=login_name,
        sso_name=settings().oidc_provider_name if settings().sso_enabled else None,
        passwords=not settings().oidc_only,
    )


@bp.get("/login")
def login() -> str:
    return login_page(None, "")


@bp.post("/login")
@reads_first
def do_login() -> ResponseReturnValue:
    if settings().oidc_only:
        raise NotFound("Password logins are off: sign in with your organisation's account.")
    login_name = request.form.get("login", "").strip()
    network = client_network(client_address())
    factory = current_app.extensions["moderation.sessionmaker"]
    close_session()  # the guard may have read (an old login): nothing may be held while hashing
    password = request.form.get("password", "")
    try:
        # Its own short transactions: none is open while the password is hashed.
        moderator_id = moderators.log_in(
            factory, hasher(), login_name, password, network, now=now()
        )
    except (InvalidCredentials, RateLimited) as error:
        page = login_page(error.message, login_name)
        headers = {"Retry-After": str(error.retry_after)} if isinstance(error, RateLimited) else {}
        return page, error.status, headers
    db = get_session()
    become_writer(db)
    moderator = db.get_one(Moderator, moderator_id)
    if second_factor.has_second_factor(db, moderator):
        db.commit()
        return mfa.ask_second_step(moderator, request.args.get("next"))
    return begin_login(moderator)


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
        digest_minutes=int(DIGEST_INTERVAL.total_seconds() // 60),
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


@bp.get("/account/sessions")
def sessions() -> str:
    logins = moderators.list_login_sessions(get_session(), g.moderator)
    return render_template(
        "moderate/sessions.html",
        owner=g.moderator,
        logins=logins,
        current=g.login.id,
        describe=devices.describe,
        end_url=lambda login_id: url_for("moderate.end_session", login_id=login_id),
        end_all_url=url_for("moderate.end_sessions"),
    )


@bp.post("/account/sessions/<int:login_id>/end")
def end_session(login_id: int) -> ResponseReturnValue:
    db = get_session()
    moderators.end_login_sessions(db, g.moderator, actor=_actor(), now=now(), only=login_id)
    db.commit()
    flash("Signed that session out.")
    return redirect(url_for("moderate.sessions"), code=303)


@bp.post("/account/sessions/end")
def end_sessions() -> ResponseReturnValue:
    """Sign out everywhere, this browser included."""
    db = get_session()
    moderators.end_login_sessions(db, g.moderator, actor=_actor(), now=now())
    db.commit()
    session.clear()
    flash("You have signed out everywhere.")
    return redirect(url_for("moderate.login"), code=303)


ORDER_CHOICES = (
    (queues.QueueOrder.OLDEST, "Oldest first"),
    (queues.QueueOrder.NEWEST, "Newest first"),
    (queues.QueueOrder.HIGHEST_SCORE, "Most likely spam first"),
    (queues.QueueOrder.LOWEST_SCORE, "Least likely spam first"),
)


def _queue_filter(args: MultiDict[str, str] | None = None) -> queues.QueueFilter:
    """The queue's filters from a query string (the request's own by default)."""
    if args is None:
        args = request.args
    reported = queues.reported_filter(args.get("reported") or None)
    raw = args.get("status", "all" if reported else CommentStatus.PENDING.value)
    try:
        status = None if raw == "all" else CommentStatus(raw)
    except ValueError:
        raise Malformed("Unknown status.") from None
    return queues.QueueFilter(
        status=status,
        site=args.get("site") or None,
        post=args.get("post") or None,
        search=(args.get("q") or "").strip() or None,
        order=queues.queue_order(args.get("order")),
        signal=queues.signal_filter(args.get("signal") or None),
        reported=reported,
    )


def _sites_for(moderator: Moderator) -> list[Site]:
    if moderator.is_admin:
        return list(get_session().scalars(select(Site).order_by(Site.name)))
    return sorted(moderator.sites, key=lambda site: site.name)


def _count_labels(counts: dict[CommentStatus, int], reported: int = 0) -> dict[str, str]:
    """Counts for the navigation; past the cap they read "1,000+"."""
    cap = queues.COUNT_CAP

    def label(count: int, capped: bool) -> str:
        return f"{count:,}+" if capped else f"{count:,}"

    labels = {status.value: label(min(n, cap), n > cap) for status, n in counts.items()}
    total = sum(min(n, cap) for n in counts.values())
    labels["all"] = label(total, any(n > cap for n in counts.values()))
    labels["reported"] = label(min(reported, cap), reported > cap)
    return labels


def _queue_counts(wanted: queues.QueueFilter) -> dict[str, str]:
    """The tabs' counts: each status (whether or not the Reported tab is open) and Reported."""
    db = get_session()
    by_status = dataclasses.replace(wanted, reported=False)
    return _count_labels(
        queues.status_counts(db, g.moderator, by_status),
        queues.reported_count(db, g.moderator, wanted),
    )


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
        counts=_queue_counts(wanted),
        history=queues.author_history(db, g.moderator, page.comments),
        sites=_sites_for(g.moderator),
        statuses=list(queues.QUEUE_STATUSES),
        bulk_actions=actions.BULK_ACTIONS,
        signal_choices=check_labels().items(),
        order_choices=ORDER_CHOICES,
        now=now(),
        back=request.full_path,
        focus=request.args.get("focus"),
        posts=posts.posts_with_key(db, g.moderator, wanted.post, wanted.site)
        if wanted.post
        else [],
        post_state=posts.post_state,
    )


@bp.post("/posts/<action>")
def post_action(action: str) -> ResponseReturnValue:
    """Close a post to comments, or open it again (the queue's post filter view)."""
    if action not in ("close", "open"):
        raise NotFound("There is no such action on posts.")
    db = get_session()
    try:
        found = posts.update_post(
            db,
            g.moderator,
            request.form.get("site", ""),
            request.form.get("post", ""),
            posts.PostChanges(closed=action == "close"),
            actor=_actor(),
            now=now(),
        )
    except ServiceError as error:
        db.rollback()
        flash(" ".join([error.message, *error.fields.values()]), "error")
    else:
        db.commit()
        state = "closed" if action == "close" else "open"
        flash(f"Comments on {found.title or found.key} are {state}.", "message")
    return redirect(back_to(request.form.get("next")), code=303)


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
        blog_replies=queues.blog_replies(db, found),
        holds_claim=holds,
        history=queues.author_history(db, g.moderator, [found]),
        now=now(),
    )


def _wants_json() -> bool:
    """The queue's script acts in place and asks for JSON; a plain form post gets a redirect."""
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json"


def _then() -> str | None:
    """The comment to go to after this one (the form names it), if it looks like an id."""
    then = request.form.get("then") or ""
    return then if COMMENT_ID.fullmatch(then) else None


def _landing(target: str | None, focus: str | None) -> str:
    """The queue page to return to, on the comment to work on next (focused there)."""
    url = back_to(target)
    parts = urlsplit(url)
    if focus is None or parts.path != url_for("moderate.queue"):
        return url
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "focus"]
    query.append(("focus", focus))
    return urlunsplit(("", "", parts.path, urlencode(query), f"queue-{focus}"))


def _in_place(changed: Comment | None, message: str, error: ServiceError | None) -> Response:
    """What the queue's script needs after an action: the message to announce, the comment's
    card as it is now, the tab counts, and the undo form's target."""
    db = get_session()
    back = back_to(request.form.get("next"))
    wanted = _queue_filter(MultiDict(parse_qsl(urlsplit(back).query)))
    body: dict[str, object] = {
        "message": message,
        "counts": _queue_counts(wanted),
    }
    if changed is not None:
        body["id"] = changed.public_id
        body["status"] = changed.status.value
        body["card"] = render_template(
            "moderate/_queue_item.html",
            c=changed,
            history=queues.author_history(db, g.moderator, [changed]),
            now=now(),
            back=back,
            then=_then(),
            focus=None,
            decided=(wanted.status is not None and changed.status is not wanted.status)
            or (wanted.reported and all(r.dismissed_at for r in changed.reports)),
        )
    undo_offer = session.get("undo")
    if error is None and undo_offer and undo_offer.get("id") == body.get("id"):
        body["undo"] = {
            "action": url_for("moderate.undo", comment_id=undo_offer["id"]),
            "until": int(undo_offer["until"]),
        }
    if error is not None:
        body["error"] = {"code": error.code, "message": message, "fields": error.fields}
    response = jsonify(body)
    response.status_code = error.status if error is not None else 200
    response.headers["Cache-Control"] = "no-store"
    return response


def _comment_or_none(public_id: str) -> Comment | None:
    try:
        return actions.get_comment_for(get_session(), g.moderator, public_id)
    except NotFound:
        return None


def _act(comment_id: str, do: Callable[[], Comment], done: str) -> ResponseReturnValue:
    db = get_session()
    changed: Comment | None = None
    failure: ServiceError | None = None
    try:
        changed = do()
    except ServiceError as error:
        db.rollback()
        failure = error
        message = error.message
        if not isinstance(error, AlreadyModerated):
            message = " ".join([error.message, *error.fields.values()])
    else:
        db.commit()
        message = done.format(
            name=changed.author_name, status=changed.status.value, reason=changed.reject_reason
        )
        if changed.status is not CommentStatus.PENDING and changed.public_id == comment_id:
            session["undo"] = {"id": comment_id, "until": (now() + actions.UNDO_WINDOW).timestamp()}
    if _wants_json():
        if changed is None:
            changed = _comment_or_none(str((request.view_args or {}).get("comment_id", "")))
        return _in_place(changed, message, failure)
    flash(message, "error" if failure else "message")
    focus = _then() if failure is None else None
    if focus is None and changed is not None:
        focus = changed.public_id
    return redirect(_landing(request.form.get("next"), focus), code=303)


# What the live region and the flash say after an action, by action (else "marked STATUS").
ACT_DONE = {
    "unapprove": "Comment by {name} unpublished: it is back in the queue.",
}


@bp.post("/comments/<comment_id>/pin")
def pin(comment_id: str) -> ResponseReturnValue:
    return _act(
        "",  # nothing to undo: Unpin is the way back
        lambda: actions.pin_comment(
            get_session(), g.moderator, comment_id, actor=_actor(), now=now()
        ),
        "Comment by {name} pinned to the top of its thread.",
    )


@bp.post("/comments/<comment_id>/unpin")
def unpin(comment_id: str) -> ResponseReturnValue:
    return _act(
        "",
        lambda: actions.unpin_comment(
            get_session(), g.moderator, comment_id, actor=_actor(), now=now()
        ),
        "Comment by {name} unpinned.",
    )


@bp.post("/comments/<comment_id>/dismiss-reports")
def dismiss_reports(comment_id: str) -> ResponseReturnValue:
    # Not an undoable decision (no id for the undo offer): the reports stay dismissed.
    return _act(
        "",
        lambda: reports.dismiss_reports(
            get_session(), g.moderator, comment_id, actor=_actor(), now=now()
        ),
        "Reports on the comment by {name} dismissed (it is {status}).",
    )


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
        "Comment by {name} rejected (reason: {reason})."
        if action == "reject" and request.form.get("reason")
        else ACT_DONE.get(action, "Comment by {name} marked {status}."),
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


# What a bulk action did, for its confirmation ("2 comments approved").
BULK_DONE = {
    "approve": "approved",
    "reject": "rejected",
    "spam": "marked as spam",
    "delete": "deleted",
}


@bp.post("/bulk")
def bulk() -> ResponseReturnValue:
    db = get_session()
    ids = request.form.getlist("ids")
    # The bar below the list sends its own choice of action.
    below = request.form.get("bar") == "below"
    action = request.form.get("action_below" if below else "action", "")
    if not ids:
        flash("Select at least one comment.", "error")
        return redirect(back_to(request.form.get("next")), code=303)
    try:
        result = actions.bulk(db, g.moderator, ids, action, actor=_actor(), now=now())
    except ServiceError as error:
        db.rollback()
        flash(" ".join(error.fields.values()) or error.message, "error")
    else:
        db.commit()
        done = len(result.done)
        flash(f"{done} comment{'s' if done != 1 else ''} {BULK_DONE[action]}.")
        if result.refused:
            flash(f"{len(result.refused)} had already been moderated and were left alone.", "error")
    return redirect(back_to(request.form.get("next")), code=303)


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
    sites = _sites_for(g.moderator)
    return render_template(
        "moderate/audit.html",
        page=page,
        wanted=wanted,
        sites=sites,
        # A row of a site is dated in the site's time zone; others in the default one.
        zones={site.id: site.time_zone for site in sites},
        actions=COMMENT_ACTIONS,
        describe=audit.describe_change,
        action_label=audit.action_label,
        now=now(),
    )
