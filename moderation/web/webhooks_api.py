"""Webhook endpoints in the moderation API, for administrators' bearer tokens."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import Blueprint, Response, g, jsonify

from moderation import moderators
from moderation.errors import ValidationFailed
from moderation.events import Actor, rfc3339
from moderation.models import ApiToken, WebhookDelivery, WebhookEndpoint
from moderation.web.context import json_object, now, settings
from moderation.web.sessions import get_session
from moderation.webhooks import endpoints

# Nested in the moderation API blueprint, whose guard authenticates the bearer token first.
bp = Blueprint("webhooks", __name__, url_prefix="/webhooks")


def _actor() -> Actor:
    token: ApiToken = g.token
    return Actor(f"{token.moderator.login} (token {token.name})", token.moderator_id, "api")


def _time(moment: dt.datetime | None) -> str | None:
    return rfc3339(moment) if moment else None


def endpoint_json(endpoint: WebhookEndpoint) -> dict[str, Any]:
    """An endpoint as the API shows it: never its secret (shown once, on create and rotate)."""
    return {
        "id": endpoint.public_id,
        "url": endpoint.url,
        "description": endpoint.description,
        "event_types": list(endpoint.event_types),
        "site": endpoint.site.slug if endpoint.site else None,
        "include_personal_data": endpoint.include_personal_data,
        "format": endpoint.format.value,
        "enabled": endpoint.enabled,
        "disabled_reason": endpoint.disabled_reason,
        "disabled_at": _time(endpoint.disabled_at),
        "failing_since": _time(endpoint.failing_since),
        "previous_secret_expires_at": _time(endpoint.previous_secret_expires_at),
        "created_at": _time(endpoint.created_at),
    }


def delivery_json(delivery: WebhookDelivery, attempts: list[Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": delivery.id,
        "webhook_id": delivery.event.public_id,
        "event_type": delivery.event.type,
        "status": delivery.status.value,
        "attempts": delivery.attempts,
        "next_attempt_at": _time(delivery.next_attempt_at),
        "last_status_code": delivery.last_status_code,
        "last_error": delivery.last_error,
        "created_at": _time(delivery.created_at),
        "completed_at": _time(delivery.completed_at),
    }
    if attempts is not None:
        body["attempt_log"] = [
            {
                "at": _time(a.attempted_at),
                "webhook_timestamp": a.webhook_timestamp,
                "status_code": a.status_code,
                "duration_ms": a.duration_ms,
                "error": a.error,
                "response_excerpt": a.response_excerpt,
            }
            for a in attempts
        ]
    return body


def _bool(data: dict[str, Any], name: str) -> bool | None:
    value = data.get(name)
    if value is not None and not isinstance(value, bool):
        raise ValidationFailed(fields={name: "Send true or false."})
    return value


def _str(data: dict[str, Any], name: str) -> str | None:
    value = data.get(name)
    if value is not None and not isinstance(value, str):
        raise ValidationFailed(fields={name: "Send a string."})
    return value


def _types(data: dict[str, Any]) -> list[str] | None:
    value = data.get("event_types")
    if value is not None and not (
        isinstance(value, list) and all(isinstance(v, str) for v in value)
    ):
        raise ValidationFailed(fields={"event_types": "Send a list of event types."})
    return value


@bp.before_request
def admins_only() -> None:
    moderators.require_admin(g.token.moderator, endpoints.ADMINS_ONLY)


@bp.get("")
def list_endpoints() -> Response:
    session = get_session()
    body = {"endpoints": [endpoint_json(e) for e in endpoints.list_endpoints(session)]}
    session.commit()
    return jsonify(body)


@bp.post("")
def create_endpoint() -> Response:
    data = json_object()
    session = get_session()
    endpoint = endpoints.create_endpoint(
        session,
        url=_str(data, "url") or "",
        event_types=_types(data) or [],
        site_slug=_str(data, "site"),
        include_personal_data=bool(_bool(data, "include_personal_data")),
        description=_str(data, "description") or "",
        allow_http=settings().webhook_allow_http,
        fmt=_str(data, "format") or "standard",
        public_url=settings().public_url,
        actor=_actor(),
        now=now(),
    )
    body = {**endpoint_json(endpoint), "secret": endpoint.secret}
    session.commit()
    return Response(jsonify(body).get_data(), status=201, mimetype="application/json")


@bp.get("/<endpoint_id>")
def get_endpoint(endpoint_id: str) -> Response:
    session = get_session()
    body = endpoint_json(endpoints.get_endpoint(session, endpoint_id))
    session.commit()
    return jsonify(body)


@bp.patch("/<endpoint_id>")
def update_endpoint(endpoint_id: str) -> Response:
    data = json_object()
    session = get_session()
    endpoint = endpoints.get_endpoint(session, endpoint_id)
    changes = endpoints.EndpointChanges(
        url=_str(data, "url"),
        event_types=_types(data),
        description=_str(data, "description"),
        include_personal_data=_bool(data, "include_personal_data"),
        enabled=_bool(data, "enabled"),
        format=_str(data, "format"),
    )
    allow_http = settings().webhook_allow_http
    endpoints.update_endpoint(
        session,
        endpoint,
        changes,
        allow_http=allow_http,
        actor=_actor(),
        now=now(),
        public_url=settings().public_url,
    )
    body = endpoint_json(endpoint)
    session.commit()
    return jsonify(body)


# Only these names, so /<endpoint_id>/deliveries is never mistaken for an action.
@bp.post("/<endpoint_id>/<any(enable, disable, 'rotate-secret', test):action>")
def switch(endpoint_id: str, action: str) -> Response:
    session = get_session()
    endpoint = endpoints.get_endpoint(session, endpoint_id)
    if action == "rotate-secret":
        secret = endpoints.rotate_secret(session, endpoint, actor=_actor(), now=now())
        body = {**endpoint_json(endpoint), "secret": secret}
    elif action in ("enable", "disable"):
        endpoints.set_enabled(session, endpoint, action == "enable", actor=_actor(), now=now())
        body = endpoint_json(endpoint)
    else:
        delivery = endpoints.send_test_event(session, endpoint, now=now())
        body = delivery_json(delivery)
    session.commit()
    return jsonify(body)


@bp.get("/<endpoint_id>/deliveries")
def deliveries(endpoint_id: str) -> Response:
    session = get_session()
    endpoint = endpoints.get_endpoint(session, endpoint_id)
    found = endpoints.recent_deliveries(session, endpoint)
    attempts = endpoints.attempts_of(session, [d.id for d in found])
    body = {"deliveries": [delivery_json(d, attempts[d.id]) for d in found]}
    session.commit()
    return jsonify(body)


@bp.post("/<endpoint_id>/deliveries/<int:delivery_id>/redeliver")
def redeliver(endpoint_id: str, delivery_id: int) -> Response:
    session = get_session()
    endpoint = endpoints.get_endpoint(session, endpoint_id)
    delivery = endpoints.get_delivery(session, endpoint, delivery_id)
    endpoints.redeliver(session, delivery, now=now())
    body = delivery_json(delivery)
    session.commit()
    return jsonify(body)
