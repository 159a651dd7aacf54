"""Admins' pages under /moderate/admin: sites, moderators, API tokens and personal data.

Registered inside the moderate blueprint, so its login and CSRF checks guard every route here.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping

from flask import (
    Blueprint,
    Response,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue
from sqlalchemy import select
from werkzeug.datastructures import MultiDict

from moderation import learning, mail, moderators, second_factor, sites, sso
from moderation.comments import get_site
from moderation.errors import ServiceError, ValidationFailed
from moderation.events import Actor
from moderation.models import ModerationPolicy, Moderator, Role, Site
from moderation.personal_data import erase_personal_data, export_personal_data
from moderation.web import devices, mfa
from moderation.web.context import hasher, now, settings
from moderation.web.sessions import get_session

bp = Blueprint("admin", __name__, url_prefix="/admin")


@dataclasses.dataclass(frozen=True)
class SiteForm:
    """The site form's text fields turned into settings (lists are one item a line)."""

    fields: Mapping[str, str]

    def changes(self) -> dict[str, object]:
        changes: dict[str, object] = {}
        for name, raw in self.fields.items():
            value = raw.strip()
            if name in ("origins", "reject_reasons", "hold_terms", "spam_terms", "notify_emails"):
                changes[name] = [line.strip() for line in raw.splitlines() if line.strip()]
            elif name in ("link_limit", "close_after_days", "report_threshold"):
                changes[name] = int(value) if value.isdigit() else (value or None)
            elif name == "spam_threshold":
                try:
                    changes[name] = float(value)
                except ValueError:
                    changes[name] = value
            elif name in ("erasure_keeps_text", "verify_email"):
                changes[name] = {"true": True, "false": False}.get(value, value)
            elif name in sites.EDITABLE:
                changes[name] = value
        return changes


@bp.before_request
def admins_only() -> None:
    moderators.require_admin(g.moderator)


def _actor() -> Actor:
    return Actor(g.moderator.login, g.moderator.id, "ui")


@bp.get("/sites")
def site_list() -> str:
    return render_template(
        "moderate/admin/sites.html",
        sites=get_session().scalars(select(Site).order_by(Site.name)).all(),
        errors={},
        values={},
    )


@bp.post("/sites")
def site_add() -> ResponseReturnValue:
    db = get_session()
    values = {k: request.form.get(k, "") for k in ("slug", "name", "origins")}
    try:
        site = sites.create_site(
            db,
            slug=values["slug"].strip(),
            name=values["name"],
            origins=values["origins"].split(),
            actor=_actor(),
            now=now(),
        )
    except ServiceError as error:
        db.rollback()
        page = render_template(
            "moderate/admin/sites.html",
            sites=db.scalars(select(Site).order_by(Site.name)).all(),
            errors=error.fields,
            values=values,
        )
        return page, 422
    db.commit()
    flash(f"Added the site {site.name}.")
    return redirect(url_for("moderate.admin.site_edit", slug=site.slug), code=303)


@bp.get("/sites/<slug>")
def site_edit(slug: str) -> str:
    return render_template(
        "moderate/admin/site.html",
        site=(site := get_site(get_session(), slug)),
        errors={},
        policies=list(ModerationPolicy),
        mail_on=mail.enabled(get_session()),
        spam_filter=learning.filter_report(get_session(), site.id),
        learning_enough=learning.MIN_SITE_DECISIONS,
    )


@bp.post("/sites/<slug>")
def site_save(slug: str) -> ResponseReturnValue:
    db = get_session()
    site = get_site(get_session(), slug)
    try:
        sites.update_site(db, site, SiteForm(request.form).changes(), actor=_actor(), now=now())
    except ServiceError as error:
        db.rollback()
        page = render_template(
            "moderate/admin/site.html",
            site=(site := get_site(get_session(), slug)),
            errors=error.fields,
            policies=list(ModerationPolicy),
            mail_on=mail.enabled(db),
            spam_filter=learning.filter_report(db, site.id),
            learning_enough=learning.MIN_SITE_DECISIONS,
        )
        return page, 422
    db.commit()
    flash(f"Saved the settings of {site.name}.")
    return redirect(url_for("moderate.admin.site_edit", slug=slug), code=303)


def _moderators_page(errors: dict[str, str], status: int = 200) -> ResponseReturnValue:
    """The moderators; after a refused "add", the form keeps what was typed (not the password)."""
    db = get_session()
    page = render_template(
        "moderate/admin/moderators.html",
        typed=request.form if request.endpoint == "moderate.admin.moderator_add" else MultiDict(),
        moderators=db.scalars(select(Moderator).order_by(Moderator.login)).all(),
        sites=db.scalars(select(Site).order_by(Site.name)).all(),
        roles=list(Role),
        errors=errors,
    )
    return page, status


@bp.get("/moderators")
def moderator_list() -> ResponseReturnValue:
    return _moderators_page({})


@bp.post("/moderators")
def moderator_add() -> ResponseReturnValue:
    db = get_session()
    try:
        created = moderators.create_moderator(
            db,
            hasher(),
            login=request.form.get("login", "").strip(),
            email=request.form.get("email", ""),
            password=request.form.get("password", ""),
            role=Role(request.form.get("role", Role.MODERATOR.value)),
            site_slugs=tuple(request.form.getlist("sites")),
            actor=_actor(),
            now=now(),
        )
    except (ServiceError, ValueError) as error:
        db.rollback()
        fields = error.fields if isinstance(error, ServiceError) else {"role": "Choose a role"}
        return _moderators_page(fields, 422)
    db.commit()
    flash(f"Added {created.login}. Give them their password by a safe route.")
    return redirect(url_for("moderate.admin.moderator_list"), code=303)


@bp.post("/moderators/<login>")
def moderator_save(login: str) -> ResponseReturnValue:
    db = get_session()
    try:
        moderators.update_moderator(
            db,
            moderators.get_moderator(db, login),
            role=request.form.get("role", ""),
            site_slugs=tuple(request.form.getlist("sites")),
            actor=_actor(),
            now=now(),
        )
    except ServiceError as error:
        db.rollback()
        return _moderators_page(error.fields, 422)
    db.commit()
    flash(f"Saved {login}.")
    return redirect(url_for("moderate.admin.moderator_list"), code=303)


@bp.post("/moderators/<login>/disabled")
def moderator_disable(login: str) -> ResponseReturnValue:
    """Offboarding: disable a moderator (or enable them again)."""
    db = get_session()
    disabled = request.form.get("disabled") == "1"
    try:
        moderators.set_disabled(
            db, moderators.get_moderator(db, login), disabled, actor=_actor(), now=now()
        )
    except ServiceError as error:
        db.rollback()
        return _moderators_page(error.fields, 422)
    db.commit()
    if disabled:
        flash(f"Disabled {login}: their logins ended and their API tokens were revoked.")
    else:
        flash(f"Enabled {login}. Give them new API tokens if they need any.")
    return redirect(url_for("moderate.admin.moderator_list"), code=303)


@bp.get("/moderators/<login>/sessions")
def moderator_sessions(login: str) -> str:
    db = get_session()
    owner = moderators.get_moderator(db, login)
    return render_template(
        "moderate/admin/moderator_sessions.html",
        owner=owner,
        logins=moderators.list_login_sessions(db, owner),
        current=g.login.id,
        describe=devices.describe,
        end_url=lambda login_id: url_for(
            "moderate.admin.moderator_end_session", login=login, login_id=login_id
        ),
        end_all_url=url_for("moderate.admin.moderator_end_sessions", login=login),
        identities=sso.identities_of(db, owner),
        sso_on=settings().sso_enabled,
        has_second_factor=second_factor.has_second_factor(db, owner),
    )


@bp.post("/moderators/<login>/sessions/<int:login_id>/end")
def moderator_end_session(login: str, login_id: int) -> ResponseReturnValue:
    db = get_session()
    owner = moderators.get_moderator(db, login)
    moderators.end_login_sessions(db, owner, actor=_actor(), now=now(), only=login_id)
    db.commit()
    flash(f"Signed out one session of {login}.")
    return redirect(url_for("moderate.admin.moderator_sessions", login=login), code=303)


@bp.post("/moderators/<login>/sessions/end")
def moderator_end_sessions(login: str) -> ResponseReturnValue:
    db = get_session()
    owner = moderators.get_moderator(db, login)
    ended = moderators.end_login_sessions(db, owner, actor=_actor(), now=now())
    db.commit()
    flash(f"Signed {login} out everywhere ({ended} session{'s' if ended != 1 else ''}).")
    return redirect(url_for("moderate.admin.moderator_sessions", login=login), code=303)


@bp.post("/moderators/<login>/mfa-reset")
def moderator_mfa_reset(login: str) -> ResponseReturnValue:
    """Remove a moderator's second factors (they lost them); they enrol again at next login."""
    db = get_session()
    owner = moderators.get_moderator(db, login)
    second_factor.reset(db, owner, actor=_actor(), now=now())
    db.commit()
    flash(f"Reset the second factors of {login} and signed them out.")
    return redirect(url_for("moderate.admin.moderator_sessions", login=login), code=303)


@bp.post("/moderators/<login>/identities")
def moderator_link_identity(login: str) -> ResponseReturnValue:
    """Let the provider's identity with this e-mail sign in as ``login`` (its first login)."""
    db = get_session()
    owner = moderators.get_moderator(db, login)
    try:
        sso.link_identity(
            db,
            owner,
            issuer=settings().oidc_issuer,
            email=request.form.get("email", ""),
            actor=_actor(),
            now=now(),
        )
    except ServiceError as error:
        db.rollback()
        flash(" ".join(error.fields.values()) or error.message, "error")
    else:
        db.commit()
        flash(f"Linked the identity to {login}.")
    return redirect(url_for("moderate.admin.moderator_sessions", login=login), code=303)


@bp.post("/moderators/<login>/identities/<int:identity_id>/remove")
def moderator_unlink_identity(login: str, identity_id: int) -> ResponseReturnValue:
    db = get_session()
    owner = moderators.get_moderator(db, login)
    sso.unlink_identity(db, owner, identity_id, actor=_actor(), now=now())
    db.commit()
    flash(f"Removed the identity from {login}.")
    return redirect(url_for("moderate.admin.moderator_sessions", login=login), code=303)


def _tokens_page(created: str | None) -> str:
    db = get_session()
    return render_template(
        "moderate/admin/tokens.html",
        tokens=moderators.list_tokens(db),
        moderators=db.scalars(select(Moderator).order_by(Moderator.login)).all(),
        created=created,
    )


@bp.get("/tokens")
def token_list() -> str:
    return _tokens_page(None)


@bp.post("/tokens")
def token_add() -> ResponseReturnValue:
    if mfa.needs_fresh_factor(g.moderator):
        return mfa.confirm_first(url_for("moderate.admin.token_list"))
    db = get_session()
    try:
        owner = moderators.get_moderator(db, request.form.get("moderator", ""))
        _, plain = moderators.create_api_token(
            db, owner, request.form.get("name", ""), now=now(), actor=_actor()
        )
    except ServiceError as error:
        db.rollback()
        flash(" ".join([error.message, *error.fields.values()]), "error")
        return redirect(url_for("moderate.admin.token_list"), code=303)
    db.commit()
    # Shown once, on this response only: it is stored hashed.
    return _tokens_page(plain)


@bp.post("/tokens/<int:token_id>/revoke")
def token_revoke(token_id: int) -> ResponseReturnValue:
    db = get_session()
    token = moderators.revoke_token(db, token_id, actor=_actor(), now=now())
    db.commit()
    flash(f"Revoked the token {token.name}.")
    return redirect(url_for("moderate.admin.token_list"), code=303)


@bp.get("/personal-data")
def personal_data() -> str:
    return render_template("moderate/admin/personal_data.html", errors={}, email="")


@bp.post("/personal-data")
def personal_data_act() -> ResponseReturnValue:
    db = get_session()
    email = request.form.get("email", "")
    try:
        if request.form.get("action") == "export":
            document = export_personal_data(db, email, now=now())
            response = Response(
                json.dumps(document, indent=2, ensure_ascii=False), mimetype="application/json"
            )
            response.headers["Content-Disposition"] = 'attachment; filename="personal-data.json"'
            return response
        if not request.form.get("confirm"):
            raise ValidationFailed(fields={"confirm": "Confirm that you want to erase this data"})
        erased = erase_personal_data(
            db, email, actor=_actor(), now=now(), secret=current_app.config["SECRET_KEY"]
        )
    except ServiceError as error:
        db.rollback()
        page = render_template(
            "moderate/admin/personal_data.html", errors=error.fields, email=email
        )
        return page, 422
    db.commit()
    flash(
        f"Erased personal data from {erased.comments} comments "
        f"({erased.texts_removed} texts removed)."
    )
    return redirect(url_for("moderate.admin.personal_data"), code=303)
