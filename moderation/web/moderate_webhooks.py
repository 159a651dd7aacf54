"""The administrators' webhook pages under /moderate/webhooks.

Nested in the moderate blueprint: its guard checks the login and every form's CSRF token.
"""

from __future__ import annotations

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from moderation import moderators
from moderation.errors import NotFound, ValidationFailed
from moderation.events import Actor
from moderation.models import Site
from moderation.web.context import now, settings
from moderation.web.sessions import get_session
from moderation.webhooks import endpoints

bp = Blueprint("webhooks", __name__, url_prefix="/webhooks")


@bp.before_request
def admins_only() -> None:
    if g.get("moderator") is not None:
        moderators.require_admin(g.moderator, endpoints.ADMINS_ONLY)


def _actor() -> Actor:
    return Actor(g.moderator.login, g.moderator.id, "ui")


def _list_page(errors: dict[str, str] | None = None, status: int = 200) -> ResponseReturnValue:
    from sqlalchemy import select

    session = get_session()
    return render_template(
        "moderate/webhooks.html",
        endpoints=endpoints.list_endpoints(session),
        sites=session.scalars(select(Site).order_by(Site.slug)).all(),
        event_types=endpoints.EVENT_TYPES,
        moderator=g.moderator,
        errors=errors or {},
        form=request.form,
    ), status


@bp.get("/")
def index() -> ResponseReturnValue:
    return _list_page()


@bp.post("/")
def add() -> ResponseReturnValue:
    session = get_session()
    try:
        endpoint = endpoints.create_endpoint(
            session,
            url=request.form.get("url", ""),
            event_types=request.form.getlist("event_types"),
            site_slug=request.form.get("site") or None,
            include_personal_data=request.form.get("include_personal_data") == "on",
            description=request.form.get("description", ""),
            allow_http=settings().webhook_allow_http,
            fmt=request.form.get("format", "standard"),
            public_url=settings().public_url,
            actor=_actor(),
            now=now(),
        )
    except ValidationFailed as error:
        session.rollback()
        return _list_page(error.fields, 422)
    session.commit()
    return render_template(
        "moderate/webhook_secret.html",
        endpoint=endpoint,
        secret=endpoint.secret,
        moderator=g.moderator,
    )


@bp.get("/<endpoint_id>")
def show(endpoint_id: str) -> ResponseReturnValue:
    session = get_session()
    endpoint = endpoints.get_endpoint(session, endpoint_id)
    deliveries = endpoints.recent_deliveries(session, endpoint)
    return render_template(
        "moderate/webhook.html",
        endpoint=endpoint,
        deliveries=deliveries,
        attempts=endpoints.attempts_of(session, [d.id for d in deliveries]),
        moderator=g.moderator,
    )


@bp.post("/<endpoint_id>/<action>")
def act(endpoint_id: str, action: str) -> ResponseReturnValue:
    session = get_session()
    endpoint = endpoints.get_endpoint(session, endpoint_id)
    if action in ("enable", "disable"):
        endpoints.set_enabled(session, endpoint, action == "enable", actor=_actor(), now=now())
        flash(f"Endpoint {action}d.")
    elif action == "test":
        endpoints.send_test_event(session, endpoint, now=now())
        flash("A test event is queued; it appears in the delivery log once sent.")
    elif action == "rotate-secret":
        secret = endpoints.rotate_secret(session, endpoint, actor=_actor(), now=now())
        session.commit()
        return render_template(
            "moderate/webhook_secret.html",
            endpoint=endpoint,
            secret=secret,
            overlap_hours=int(endpoints.ROTATION_OVERLAP.total_seconds() // 3600),
            moderator=g.moderator,
        )
    else:
        raise NotFound("There is no such webhook action.")
    session.commit()
    return redirect(url_for("moderate.webhooks.show", endpoint_id=endpoint.public_id), code=303)


@bp.post("/<endpoint_id>/deliveries/<int:delivery_id>/redeliver")
def redeliver(endpoint_id: str, delivery_id: int) -> ResponseReturnValue:
    session = get_session()
    endpoint = endpoints.get_endpoint(session, endpoint_id)
    endpoints.redeliver(session, endpoints.get_delivery(session, endpoint, delivery_id), now=now())
    session.commit()
    flash("The delivery is queued again with the same webhook-id.")
    return redirect(url_for("moderate.webhooks.show", endpoint_id=endpoint.public_id), code=303)
