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

from moderation import learning, mail, moderators, sites
from moderation.comments import get_site
from moderation.errors import ServiceError, ValidationFailed
from moderation.events import Actor
from moderation.models import ModerationPolicy, Moderator, Role, Site
from moderation.personal_data import erase_personal_data, export_personal_data
from moderation.web.context import hasher, now
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
            elif name in ("link_limit", "close_after_days"):
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
    db = get_session()
    page = render_template(
        "moderate/admin/moderators.html",
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
