"""Second factors under /moderate/security: enrolment, the second step of a login, re-checks.

Registered inside the moderate blueprint (its CSRF check covers every POST). The second step
serves both a password login waiting for it (``session["pending"]``, no login yet) and a
logged-in moderator proving a factor again before a sensitive change (creating an API token,
changing their factors).
"""

from __future__ import annotations

import base64
from collections.abc import Callable

from flask import (
    Blueprint,
    Response,
    abort,
    flash,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.typing import ResponseReturnValue
from sqlalchemy.orm import Session

from moderation import moderators, second_factor
from moderation.comments import client_network
from moderation.db import begin_as_writer
from moderation.errors import InvalidSecondFactor, RateLimited, ServiceError, ValidationFailed
from moderation.events import Actor
from moderation.models import Moderator
from moderation.web.context import client_address, now, settings
from moderation.web.logins import back_to, begin_login, csrf_token
from moderation.web.sessions import get_session

bp = Blueprint("mfa", __name__, url_prefix="/security")

PUBLIC_ENDPOINTS = frozenset(
    {"moderate.mfa.verify", "moderate.mfa.verify_code", "moderate.mfa.verify_passkey_options",
     "moderate.mfa.verify_passkey"}
)  # fmt: skip
ENROLMENT_ENDPOINTS = frozenset(
    {"moderate.mfa.overview", "moderate.mfa.totp_start", "moderate.mfa.totp_enrol",
     "moderate.mfa.passkey_options", "moderate.mfa.passkey_add"}
)  # fmt: skip


def _actor(moderator: Moderator) -> Actor:
    return Actor(moderator.login, moderator.id, "ui")


def _relying_party() -> tuple[str, str]:
    """The WebAuthn relying party id (this host's name) and the origin browsers will report."""
    return request.host.rpartition(":")[0] or request.host, request.host_url.rstrip("/")


def ask_second_step(moderator: Moderator, target: str | None) -> ResponseReturnValue:
    """After a right password: remember who is half-way in, and ask for the second factor."""
    session.clear()
    until = (now() + second_factor.PENDING_FOR).timestamp()
    session["pending"] = {"id": moderator.id, "until": until, "next": target or ""}
    csrf_token()
    return redirect(url_for("moderate.mfa.verify"), code=303)


def _who() -> tuple[Moderator | None, bool]:
    """(the moderator proving a factor, whether it completes a login)."""
    if g.moderator is not None:
        return g.moderator, False
    pending = session.get("pending")
    if not isinstance(pending, dict) or pending.get("until", 0) < now().timestamp():
        return None, True
    moderator = get_session().get(Moderator, pending.get("id"))
    if moderator is None or moderators.is_disabled(moderator):
        return None, True
    return moderator, True


def is_fresh() -> bool:
    proved = g.login.second_factor_at if g.login is not None else None
    return proved is not None and now() - proved < second_factor.FRESH_FOR


def needs_fresh_factor(moderator: Moderator) -> bool:
    """Whether a sensitive change must first wait for the second factor to be proved again."""
    if is_fresh():
        return False
    return second_factor.has_second_factor(get_session(), moderator) or (
        second_factor.required_for(moderator, settings().effective_mfa_required)
    )


def confirm_first(target: str) -> ResponseReturnValue:
    flash("Confirm it is you with your second factor first.")
    return redirect(url_for("moderate.mfa.verify", next=target), code=303)


def _verify_page(error: str | None, status: int = 200) -> ResponseReturnValue:
    moderator, logging_in = _who()
    if moderator is None:
        flash("Your login has expired. Log in again.", "error")
        return redirect(url_for("moderate.login"), code=303)
    has_passkeys = bool(second_factor.passkeys_of(get_session(), moderator))
    page = render_template(
        "moderate/verify.html",
        error=error,
        logging_in=logging_in,
        has_totp=bool(moderator.totp_secret),
        has_passkeys=has_passkeys,
        target=request.args.get("next") or "",
    )
    return page, status


@bp.get("/verify")
def verify() -> ResponseReturnValue:
    return _verify_page(None)


def _proved(moderator: Moderator, logging_in: bool) -> ResponseReturnValue:
    if logging_in:
        return begin_login(moderator, second=True)
    g.login.second_factor_at = now()
    get_session().commit()
    return redirect(back_to(request.args.get("next")), code=303)


def _count(moderator: Moderator) -> None:
    """Count this attempt (committed) before the factor is checked."""
    db = get_session()
    try:
        second_factor.count_attempt(db, moderator, client_network(client_address()), now=now())
    except RateLimited:
        db.rollback()
        raise
    db.commit()


@bp.post("/verify")
def verify_code() -> ResponseReturnValue:
    moderator, logging_in = _who()
    if moderator is None:
        abort(401)
    db = get_session()
    try:
        _count(moderator)
        begin_as_writer(db)
        kind = second_factor.verify_code(db, moderator, request.form.get("code", ""), now=now())
    except (InvalidSecondFactor, RateLimited) as error:
        db.rollback()
        response = _verify_page(error.message, error.status)
        if isinstance(error, RateLimited):
            return _with_retry_after(response, error)
        return response
    second_factor.clear_attempts(db, moderator)
    response = _proved(moderator, logging_in)
    if kind == "recovery":  # after _proved: a login starts a new session
        left = second_factor.recovery_codes_left(db, moderator)
        flash(f"You used a recovery code: {left} left. Make new ones under Security if few are.")
    return response


def _with_retry_after(response: ResponseReturnValue, error: RateLimited) -> ResponseReturnValue:
    if isinstance(response, tuple):
        return (*response, {"Retry-After": str(error.retry_after)})
    return response


def _store_challenge(challenge: bytes) -> None:
    session["webauthn"] = base64.b64encode(challenge).decode()


def _take_challenge() -> bytes:
    stored = session.pop("webauthn", "")
    return base64.b64decode(stored) if isinstance(stored, str) else b""


@bp.post("/verify/passkey-options")
def verify_passkey_options() -> ResponseReturnValue:
    moderator, _ = _who()
    if moderator is None:
        abort(401)
    rp_id, _origin = _relying_party()
    options, challenge = second_factor.passkey_authentication_options(
        get_session(), moderator, rp_id=rp_id
    )
    _store_challenge(challenge)
    return Response(options, mimetype="application/json")


@bp.post("/verify/passkey")
def verify_passkey() -> ResponseReturnValue:
    moderator, logging_in = _who()
    if moderator is None:
        abort(401)
    rp_id, origin = _relying_party()
    db = get_session()
    try:
        _count(moderator)
        begin_as_writer(db)
        second_factor.verify_passkey(
            db,
            moderator,
            request.form.get("credential", ""),
            challenge=_take_challenge(),
            rp_id=rp_id,
            origin=origin,
            now=now(),
        )
    except (ServiceError, RateLimited) as error:
        db.rollback()
        message = " ".join([error.message, *error.fields.values()])
        return _verify_page(message, error.status)
    second_factor.clear_attempts(db, moderator)
    return _proved(moderator, logging_in)


# Enrolment and changes ------------------------------------------------------------------------


@bp.get("/")
def overview() -> str:
    db = get_session()
    moderator: Moderator = g.moderator
    return render_template(
        "moderate/security.html",
        has_totp=bool(moderator.totp_secret),
        passkeys=second_factor.passkeys_of(db, moderator),
        codes_left=second_factor.recovery_codes_left(db, moderator),
        required=second_factor.required_for(moderator, settings().effective_mfa_required),
        enrolled=second_factor.has_second_factor(db, moderator),
    )


def _guard_change() -> ResponseReturnValue | None:
    """Changing second factors that exist needs one proved recently."""
    if second_factor.has_second_factor(get_session(), g.moderator) and not is_fresh():
        return confirm_first(url_for("moderate.mfa.overview"))
    return None


def _totp_page(error: str | None, status: int = 200) -> ResponseReturnValue:
    secret = session.get("totp_secret")
    if not isinstance(secret, str):
        secret = second_factor.new_totp_secret()
        session["totp_secret"] = secret
    uri = second_factor.provisioning_uri(secret, g.moderator)
    page = render_template(
        "moderate/totp.html",
        qr=second_factor.qr_code_svg(uri),
        secret=second_factor.grouped(secret),
        error=error,
    )
    return page, status


@bp.get("/totp")
def totp_start() -> ResponseReturnValue:
    return _guard_change() or _totp_page(None)


@bp.post("/totp")
def totp_enrol() -> ResponseReturnValue:
    refused = _guard_change()
    if refused is not None:
        return refused
    secret = session.get("totp_secret")
    if not isinstance(secret, str):
        return redirect(url_for("moderate.mfa.totp_start"), code=303)
    db = get_session()
    try:
        codes = second_factor.enrol_totp(
            db,
            g.moderator,
            secret,
            request.form.get("code", ""),
            actor=_actor(g.moderator),
            now=now(),
        )
    except ServiceError as error:
        db.rollback()
        return _totp_page(" ".join(error.fields.values()) or error.message, error.status)
    g.login.second_factor_at = now()
    db.commit()
    session.pop("totp_secret", None)
    flash("Your authenticator app is set up.")
    return _codes_or_overview(codes)


def _codes_or_overview(codes: list[str]) -> ResponseReturnValue:
    if codes:
        # Shown once, on this response only: they are stored hashed.
        return render_template("moderate/recovery_codes.html", codes=codes)
    return redirect(url_for("moderate.mfa.overview"), code=303)


@bp.post("/totp/remove")
def totp_remove() -> ResponseReturnValue:
    refused = _guard_change()
    if refused is not None:
        return refused
    return _remove(
        lambda db, required: second_factor.remove_totp(
            db, g.moderator, actor=_actor(g.moderator), now=now(), required=required
        ),
        "Your authenticator app is removed.",
    )


def _remove(do: Callable[[Session, bool], None], done: str) -> ResponseReturnValue:
    db = get_session()
    required = second_factor.required_for(g.moderator, settings().effective_mfa_required)
    try:
        do(db, required)
    except ValidationFailed as error:
        db.rollback()
        flash(" ".join(error.fields.values()), "error")
    else:
        db.commit()
        flash(done)
    return redirect(url_for("moderate.mfa.overview"), code=303)


@bp.post("/passkeys/options")
def passkey_options() -> ResponseReturnValue:
    if second_factor.has_second_factor(get_session(), g.moderator) and not is_fresh():
        return jsonify(
            {"error": {"code": "second_factor_required", "message": "Confirm first."}}
        ), 403
    rp_id, _origin = _relying_party()
    options, challenge = second_factor.passkey_registration_options(
        get_session(), g.moderator, rp_id=rp_id
    )
    _store_challenge(challenge)
    return Response(options, mimetype="application/json")


@bp.post("/passkeys")
def passkey_add() -> ResponseReturnValue:
    refused = _guard_change()
    if refused is not None:
        return refused
    rp_id, origin = _relying_party()
    db = get_session()
    try:
        codes = second_factor.register_passkey(
            db,
            g.moderator,
            request.form.get("credential", ""),
            name=request.form.get("name", ""),
            challenge=_take_challenge(),
            rp_id=rp_id,
            origin=origin,
            actor=_actor(g.moderator),
            now=now(),
        )
    except ServiceError as error:
        db.rollback()
        flash(" ".join(error.fields.values()) or error.message, "error")
        return redirect(url_for("moderate.mfa.overview"), code=303)
    g.login.second_factor_at = now()
    db.commit()
    flash("Your passkey is added.")
    return _codes_or_overview(codes)


@bp.post("/passkeys/<int:passkey_id>/remove")
def passkey_remove(passkey_id: int) -> ResponseReturnValue:
    refused = _guard_change()
    if refused is not None:
        return refused
    return _remove(
        lambda db, required: second_factor.remove_passkey(
            db, g.moderator, passkey_id, actor=_actor(g.moderator), now=now(), required=required
        ),
        "The passkey is removed.",
    )


@bp.post("/recovery-codes")
def recovery_codes() -> ResponseReturnValue:
    refused = _guard_change()
    if refused is not None:
        return refused
    db = get_session()
    codes = second_factor.new_recovery_codes(db, g.moderator, actor=_actor(g.moderator), now=now())
    db.commit()
    return _codes_or_overview(codes)
