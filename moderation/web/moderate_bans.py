"""Bans in the moderators' pages: the list under /moderate/bans (add, lift) and "Ban this
address" on a comment's page. Nested in the moderate blueprint: its guard checks the login and
every form's CSRF token. Moderators ban on their own sites; admins anywhere."""

from __future__ import annotations

import dataclasses

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy import select

from moderation import bans
from moderation.errors import ServiceError
from moderation.events import Actor
from moderation.models import Moderator, Site
from moderation.web.context import now
from moderation.web.sessions import get_session

bp = Blueprint("bans", __name__)
# What the forms offer for removing a banned author's recent comments, in days.
REMOVE_CHOICES = (
    (0, "No"),
    (1, "From the last day"),
    (7, "From the last week"),
    (30, "From the last 30 days"),
)


def _actor() -> Actor:
    return Actor(g.moderator.login, g.moderator.id, "ui")


def _sites(moderator: Moderator) -> list[Site]:
    if moderator.is_admin:
        return list(get_session().scalars(select(Site).order_by(Site.name)))
    return sorted(moderator.sites, key=lambda site: site.name)


def _days(raw: str) -> int | str | None:
    """The form's number of days; anything else goes on as text, for the parser to refuse
    (ASCII digits only: str.isdigit() takes "\u00b2", which int() does not)."""
    plain = raw.isascii() and raw.isdigit() and len(raw) < 4
    return (int(raw) or None) if plain else (raw or None)


def _list_page(errors: dict[str, str] | None = None, status: int = 200) -> ResponseReturnValue:
    moment = now()
    expired = request.args.get("expired") == "1"
    page = bans.list_bans(
        get_session(),
        g.moderator,
        now=moment,
        include_expired=expired,
        cursor=request.args.get("cursor"),
    )
    return render_template(
        "moderate/bans.html",
        page=page,
        expired=expired,
        sites=_sites(g.moderator),
        errors=errors or {},
        form=request.form,
        durations=bans.DURATIONS,
        remove_choices=REMOVE_CHOICES,
        now=moment,
    ), status


@bp.get("/bans")
def ban_list() -> ResponseReturnValue:
    return _list_page()


@bp.post("/bans")
def ban_add() -> ResponseReturnValue:
    form, session, moment = request.form, get_session(), now()
    kind = form.get("kind", "")
    data: dict[str, object] = {
        "reason": form.get("reason", ""),
        "site": form.get("site") or None,
        "remove_recent_days": _days(form.get("remove_recent_days", "")),
    }
    if kind in bans.KINDS:
        data[kind] = form.get("value", "")
    try:
        wanted = bans.BanRequest.parse(data, now=moment)
        expires_at = bans.expiry_after(form.get("duration", ""), moment)
        wanted = dataclasses.replace(wanted, expires_at=expires_at)
        made = bans.create_ban(session, g.moderator, wanted, actor=_actor(), now=moment)
    except ServiceError as error:
        session.rollback()
        fields = {("value" if k in bans.KINDS else k): v for k, v in error.fields.items()}
        return _list_page(fields or {"value": error.message}, 422)
    session.commit()
    flash(_done(made))
    return redirect(url_for("moderate.bans.ban_list"), code=303)


def _done(made: bans.Created) -> str:
    removed = len(made.removed)
    also = f" and rejected {removed} of their comments" if removed else ""
    return f"Banned {'everywhere' if made.ban.site_id is None else 'on this site'}{also}."


@bp.post("/bans/<int:ban_id>/lift")
def ban_lift(ban_id: int) -> ResponseReturnValue:
    session = get_session()
    bans.lift_ban(session, g.moderator, ban_id, actor=_actor(), now=now())
    session.commit()
    flash("Lifted the ban.")
    return redirect(url_for("moderate.bans.ban_list"), code=303)


@bp.post("/comments/<comment_id>/ban")
def ban_author(comment_id: str) -> ResponseReturnValue:
    form, session = request.form, get_session()
    back = url_for("moderate.comment", comment_id=comment_id)
    try:
        made = bans.ban_comment_author(
            session,
            g.moderator,
            comment_id[:64],
            target=form.get("target", ""),
            duration=form.get("duration", ""),
            reason=form.get("reason", ""),
            every_site=form.get("every_site") == "1",
            remove_recent_days=_days(form.get("remove_recent_days", "")),
            actor=_actor(),
            now=now(),
        )
    except ServiceError as error:
        session.rollback()
        flash("Not banned: " + "; ".join(list(error.fields.values()) or [error.message]), "error")
        return redirect(f"{back}#ban", code=303)
    session.commit()
    flash(_done(made))
    return redirect(back, code=303)
