"""Managing webhook endpoints: admins add, change, disable, rotate, test and redeliver."""

from __future__ import annotations

import dataclasses
import datetime as dt
import urllib.parse
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from moderation.errors import NotFound, ValidationFailed
from moderation.events import rfc3339
from moderation.models import (
    DeliveryStatus,
    Event,
    Site,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from moderation.outbox.events import SUBSCRIBABLE, EventType
from moderation.webhooks.signing import generate_secret

EVENT_TYPES = tuple(t.value for t in SUBSCRIBABLE)
TEST_EVENT_TYPE = EventType.WEBHOOK_TEST.value


ADMINS_ONLY = "Only administrators manage webhooks."


def check_endpoint_url(url: str, *, allow_http: bool) -> str:
    url = url.strip()
    parts = urllib.parse.urlsplit(url)
    allowed = ("https", "http") if allow_http else ("https",)
    if parts.scheme not in allowed or not parts.hostname:
        wanted = "an http or https" if allow_http else "an https"
        raise ValidationFailed(fields={"url": f"Enter {wanted} URL."})
    if parts.username is not None or parts.password is not None:
        raise ValidationFailed(fields={"url": "Leave credentials out of the URL."})
    if len(url) > 2000:
        raise ValidationFailed(fields={"url": "The URL is too long."})
    return url


def check_event_types(event_types: Sequence[str]) -> list[str]:
    unknown = sorted(set(event_types) - set(EVENT_TYPES))
    if unknown:
        raise ValidationFailed(fields={"event_types": "Unknown event types: " + ", ".join(unknown)})
    return sorted(set(event_types))


@dataclasses.dataclass(frozen=True)
class EndpointChanges:
    """What an administrator changes of an endpoint; None leaves a field as it is."""

    url: str | None = None
    event_types: Sequence[str] | None = None
    description: str | None = None
    include_personal_data: bool | None = None
    enabled: bool | None = None


def update_endpoint(
    session: Session,
    endpoint: WebhookEndpoint,
    changes: EndpointChanges,
    *,
    allow_http: bool,
    now: dt.datetime,
) -> WebhookEndpoint:
    """Apply ``changes``, each checked as on creation; enabling or disabling goes through
    :func:`set_enabled`."""
    if changes.url is not None:
        endpoint.url = check_endpoint_url(changes.url, allow_http=allow_http)
    if changes.event_types is not None:
        endpoint.event_types = check_event_types(changes.event_types)
    if changes.description is not None:
        endpoint.description = changes.description.strip()[:200]
    if changes.include_personal_data is not None:
        endpoint.include_personal_data = changes.include_personal_data
    if changes.enabled is not None and changes.enabled != endpoint.enabled:
        set_enabled(session, endpoint, changes.enabled, now=now)
    return endpoint


def create_endpoint(
    session: Session,
    *,
    url: str,
    event_types: Sequence[str] = (),
    site_slug: str | None = None,
    include_personal_data: bool = False,
    description: str = "",
    allow_http: bool = False,
    now: dt.datetime,
) -> WebhookEndpoint:
    """Add an enabled endpoint with a new secret; an empty ``event_types`` means every type."""
    site_id = None
    if site_slug:
        site = session.scalar(select(Site).where(Site.slug == site_slug))
        if site is None:
            raise ValidationFailed(fields={"site": "There is no such site."})
        site_id = site.id
    endpoint = WebhookEndpoint(
        url=check_endpoint_url(url, allow_http=allow_http),
        event_types=check_event_types(event_types),
        site_id=site_id,
        include_personal_data=include_personal_data,
        description=description.strip()[:200],
        secret=generate_secret(),
        created_at=now,
    )
    session.add(endpoint)
    session.flush()
    return endpoint


def list_endpoints(session: Session) -> Sequence[WebhookEndpoint]:
    return session.scalars(select(WebhookEndpoint).order_by(WebhookEndpoint.id)).all()


def get_endpoint(session: Session, public_id: str) -> WebhookEndpoint:
    endpoint = session.scalar(select(WebhookEndpoint).where(WebhookEndpoint.public_id == public_id))
    if endpoint is None:
        raise NotFound("There is no such webhook endpoint.")
    return endpoint


def set_enabled(
    session: Session,
    endpoint: WebhookEndpoint,
    enabled: bool,
    *,
    now: dt.datetime,
    reason: str = "disabled by an administrator",
) -> None:
    endpoint.enabled = enabled
    if enabled:
        endpoint.disabled_reason = None
        endpoint.disabled_at = None
        endpoint.failing_since = None
    else:
        endpoint.disabled_reason = reason[:300]
        endpoint.disabled_at = now


def rotate_secret(
    session: Session, endpoint: WebhookEndpoint, *, overlap: dt.timedelta, now: dt.datetime
) -> str:
    """A new secret; the old one keeps signing too until ``now + overlap``."""
    endpoint.previous_secret = endpoint.secret
    endpoint.previous_secret_expires_at = now + overlap
    endpoint.secret = generate_secret()
    return endpoint.secret


def send_test_event(
    session: Session, endpoint: WebhookEndpoint, *, now: dt.datetime
) -> WebhookDelivery:
    """Queue a ``webhook.test`` event for this endpoint alone."""
    event = Event(
        type=TEST_EVENT_TYPE,
        site_id=endpoint.site_id,
        payload={
            "type": TEST_EVENT_TYPE,
            "timestamp": rfc3339(now),
            "data": {"endpoint_id": endpoint.public_id, "message": "A test event."},
        },
        created_at=now,
        dispatched_at=now,
    )
    session.add(event)
    session.flush()
    delivery = WebhookDelivery(endpoint=endpoint, event=event, next_attempt_at=now, created_at=now)
    session.add(delivery)
    session.flush()
    return delivery


def get_delivery(session: Session, endpoint: WebhookEndpoint, delivery_id: int) -> WebhookDelivery:
    delivery = session.get(WebhookDelivery, delivery_id)
    if delivery is None or delivery.endpoint_id != endpoint.id:
        raise NotFound("There is no such delivery.")
    return delivery


def redeliver(session: Session, delivery: WebhookDelivery, *, now: dt.datetime) -> None:
    """Send again with the same ``webhook-id`` (a new timestamp and signature), schedule anew."""
    delivery.status = DeliveryStatus.PENDING
    delivery.attempts = 0
    delivery.next_attempt_at = now
    delivery.lease_owner = None
    delivery.lease_expires_at = None
    delivery.completed_at = None


def recent_deliveries(
    session: Session, endpoint: WebhookEndpoint, *, limit: int = 50
) -> Sequence[WebhookDelivery]:
    return session.scalars(
        select(WebhookDelivery)
        .where(WebhookDelivery.endpoint_id == endpoint.id)
        .order_by(WebhookDelivery.id.desc())
        .limit(limit)
    ).all()


def attempts_of(session: Session, delivery_ids: Sequence[int]) -> dict[int, list[WebhookAttempt]]:
    found: dict[int, list[WebhookAttempt]] = {i: [] for i in delivery_ids}
    if not delivery_ids:
        return found
    for attempt in session.scalars(
        select(WebhookAttempt)
        .where(WebhookAttempt.delivery_id.in_(delivery_ids))
        .order_by(WebhookAttempt.id)
    ):
        found[attempt.delivery_id].append(attempt)
    return found
