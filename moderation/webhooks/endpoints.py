"""Managing webhook endpoints: admins add, change, disable, rotate, test and redeliver.

Every change of an endpoint (add, change, enable, disable, secret rotation; a failing endpoint
disabled by the worker too) is audited, with what changed: never a secret, and the URL only as
its origin and a fingerprint (a chat webhook's path is its credential).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import urllib.parse
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from moderation.errors import NotFound, ValidationFailed
from moderation.events import Actor, AuditAction, record_admin_audit, rfc3339
from moderation.models import (
    DeliveryStatus,
    Event,
    Site,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookFormat,
)
from moderation.outbox.events import SUBSCRIBABLE, EventType
from moderation.validation import split_url
from moderation.webhooks.signing import generate_secret

EVENT_TYPES = tuple(t.value for t in SUBSCRIBABLE)
TEST_EVENT_TYPE = EventType.WEBHOOK_TEST.value


ADMINS_ONLY = "Only administrators manage webhooks."
# After a rotation the old secret keeps signing this long, so a consumer can switch without
# losing deliveries; a day is the contract docs/webhooks.md gives integrators, not a tunable.
ROTATION_OVERLAP = dt.timedelta(hours=24)


def audited_url(url: str) -> str:
    """An endpoint's URL as the audit keeps it: its origin and a fingerprint of the whole, so a
    change shows without keeping a credential that a chat webhook carries in its path."""
    parts = urllib.parse.urlsplit(url)
    digest = hashlib.sha256(url.encode()).hexdigest()[:12]
    return f"{parts.scheme}://{parts.netloc}/… (sha256 {digest})"


def audited(session: Session, endpoint: WebhookEndpoint) -> dict[str, Any]:
    """What the audit keeps of an endpoint's settings."""
    site = session.get(Site, endpoint.site_id) if endpoint.site_id is not None else None
    return {
        "endpoint": endpoint.public_id,
        "url": audited_url(endpoint.url),
        "event_types": list(endpoint.event_types) or ["all"],
        "site": site.slug if site is not None else "all",
        "include_personal_data": endpoint.include_personal_data,
        "format": endpoint.format.value,
        "description": endpoint.description,
        "enabled": endpoint.enabled,
    }


def _audit(
    session: Session,
    actor: Actor,
    action: AuditAction,
    endpoint: WebhookEndpoint,
    before: dict[str, Any],
    after: dict[str, Any],
    now: dt.datetime,
) -> None:
    """One audit row for a change of ``endpoint``: only what changed, and which endpoint."""
    changed = {k for k in set(before) | set(after) if before.get(k) != after.get(k)}
    record_admin_audit(
        session,
        actor,
        action,
        site_id=endpoint.site_id,
        before={"endpoint": endpoint.public_id} | {k: before[k] for k in changed if k in before},
        after={"endpoint": endpoint.public_id} | {k: after[k] for k in changed if k in after},
        now=now,
    )


def check_endpoint_url(url: str, *, allow_http: bool) -> str:
    url = url.strip()
    if len(url) > 2000:
        raise ValidationFailed(fields={"url": "The URL is too long."})
    parts = split_url(url)
    allowed = ("https", "http") if allow_http else ("https",)
    if parts is None or parts.scheme not in allowed or not parts.hostname:
        wanted = "an http or https" if allow_http else "an https"
        raise ValidationFailed(fields={"url": f"Enter {wanted} URL."})
    if parts.username is not None or parts.password is not None:
        raise ValidationFailed(fields={"url": "Leave credentials out of the URL."})
    return url


def check_event_types(event_types: Sequence[str]) -> list[str]:
    unknown = sorted(set(event_types) - set(EVENT_TYPES))
    if unknown:
        raise ValidationFailed(fields={"event_types": "Unknown event types: " + ", ".join(unknown)})
    return sorted(set(event_types))


def check_format(value: str, *, public_url: str, include_personal_data: bool) -> WebhookFormat:
    """A chat format (Slack, Teams) links to the queue, so the service must know its own public
    address; and a chat channel never gets personal data."""
    try:
        fmt = WebhookFormat(value)
    except ValueError:
        raise ValidationFailed(fields={"format": "Choose standard, slack or teams."}) from None
    if fmt is not WebhookFormat.STANDARD:
        if include_personal_data:
            raise ValidationFailed(
                fields={
                    "include_personal_data": "Slack and Teams messages never carry personal data."
                }
            )
        if not public_url:
            raise ValidationFailed(
                fields={
                    "format": "Slack and Teams messages link to the queue, and this server's public"
                    " address is not set up yet (see the webhooks documentation)."
                }
            )
    return fmt


@dataclasses.dataclass(frozen=True)
class EndpointChanges:
    """What an administrator changes of an endpoint; None leaves a field as it is."""

    url: str | None = None
    event_types: Sequence[str] | None = None
    description: str | None = None
    include_personal_data: bool | None = None
    enabled: bool | None = None
    # standard, slack or teams (checked by check_format)
    format: str | None = None


def update_endpoint(
    session: Session,
    endpoint: WebhookEndpoint,
    changes: EndpointChanges,
    *,
    allow_http: bool,
    actor: Actor,
    now: dt.datetime,
    public_url: str = "",
) -> WebhookEndpoint:
    """Apply ``changes``, each checked as on creation, and audit what changed; enabling or
    disabling goes through :func:`set_enabled` (audited on its own)."""
    before = audited(session, endpoint)
    if changes.format is not None or changes.include_personal_data:
        endpoint.format = check_format(
            changes.format or endpoint.format.value,
            public_url=public_url,
            include_personal_data=bool(
                changes.include_personal_data or endpoint.include_personal_data
            ),
        )
    if changes.url is not None:
        endpoint.url = check_endpoint_url(changes.url, allow_http=allow_http)
    if changes.event_types is not None:
        endpoint.event_types = check_event_types(changes.event_types)
    if changes.description is not None:
        endpoint.description = changes.description.strip()[:200]
    if changes.include_personal_data is not None:
        endpoint.include_personal_data = changes.include_personal_data
    after = audited(session, endpoint)
    if after != before:
        _audit(session, actor, AuditAction.WEBHOOK_UPDATE, endpoint, before, after, now)
    if changes.enabled is not None and changes.enabled != endpoint.enabled:
        set_enabled(session, endpoint, changes.enabled, actor=actor, now=now)
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
    fmt: str = WebhookFormat.STANDARD.value,
    public_url: str = "",
    actor: Actor,
    now: dt.datetime,
) -> WebhookEndpoint:
    """Add an enabled endpoint with a new secret; an empty ``event_types`` means every type.
    ``fmt`` is its format (standard, slack, teams); ``public_url`` the service's own address,
    which chat formats need for their link to the queue."""
    site_id = None
    if site_slug:
        site = session.scalar(select(Site).where(Site.slug == site_slug))
        if site is None:
            raise ValidationFailed(fields={"site": "There is no such site."})
        site_id = site.id
    endpoint = WebhookEndpoint(
        url=check_endpoint_url(url, allow_http=allow_http),
        format=check_format(
            fmt, public_url=public_url, include_personal_data=include_personal_data
        ),
        event_types=check_event_types(event_types),
        site_id=site_id,
        include_personal_data=include_personal_data,
        description=description.strip()[:200],
        secret=generate_secret(),
        created_at=now,
    )
    session.add(endpoint)
    session.flush()
    _audit(session, actor, AuditAction.WEBHOOK_ADD, endpoint, {}, audited(session, endpoint), now)
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
    actor: Actor,
    now: dt.datetime,
    reason: str = "disabled by an administrator",
) -> None:
    """Enable or disable ``endpoint``, audited (a change to the same state records nothing)."""
    was = endpoint.enabled
    endpoint.enabled = enabled
    if enabled:
        endpoint.disabled_reason = None
        endpoint.disabled_at = None
        endpoint.failing_since = None
    else:
        endpoint.disabled_reason = reason[:300]
        endpoint.disabled_at = now
    if was != enabled:
        action = AuditAction.WEBHOOK_ENABLE if enabled else AuditAction.WEBHOOK_DISABLE
        after: dict[str, Any] = {"enabled": enabled}
        if not enabled:
            after["reason"] = endpoint.disabled_reason
        _audit(session, actor, action, endpoint, {"enabled": was}, after, now)


def rotate_secret(
    session: Session,
    endpoint: WebhookEndpoint,
    *,
    actor: Actor,
    now: dt.datetime,
    overlap: dt.timedelta = ROTATION_OVERLAP,
) -> str:
    """A new secret; the old one keeps signing too until ``now + overlap``. Audited, without
    either secret."""
    endpoint.previous_secret = endpoint.secret
    endpoint.previous_secret_expires_at = now + overlap
    endpoint.secret = generate_secret()
    _audit(
        session,
        actor,
        AuditAction.WEBHOOK_ROTATE_SECRET,
        endpoint,
        {"secret": "previous"},
        {"secret": "new", "previous_secret_until": rfc3339(now + overlap)},
        now,
    )
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
