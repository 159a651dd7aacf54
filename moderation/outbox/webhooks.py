"""Webhook delivery, the workers' side: fan events out into deliveries, claim due ones, send,
record the outcome.

Fan-out happens in the worker, not in the request: a worker takes undispatched events (rows with
``dispatched_at`` NULL, so a transaction that commits late is never skipped, as a cursor over ids
could) and adds one delivery per subscribed endpoint. Deliveries are leased and retried as
``outbox.leasing`` says; the HTTP call happens with no transaction open.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import random
import time
from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from moderation import metrics
from moderation.config import Settings
from moderation.db import write_transaction
from moderation.events import Actor
from moderation.mail import outbox
from moderation.models import (
    Comment,
    DeliveryStatus,
    Event,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookFormat,
)
from moderation.outbox.leasing import (
    RetrySchedule,
    holds_lease,
    lease_free,
    release,
    take_leases,
    worker_name,
)
from moderation.webhooks import chat, network, signing
from moderation.webhooks.endpoints import set_enabled

logger = logging.getLogger(__name__)
# Who the audit names when the worker disables an endpoint that keeps failing.
FAILING = Actor("automatic (the endpoint kept failing)", None, "worker")

# About a day of retries (docs/webhooks.md).
RETRY_SCHEDULE = RetrySchedule(
    (
        dt.timedelta(seconds=5),
        dt.timedelta(minutes=5),
        dt.timedelta(minutes=30),
        dt.timedelta(hours=2),
        dt.timedelta(hours=5),
        dt.timedelta(hours=10),
        dt.timedelta(hours=10),
    )
)
MAX_ATTEMPTS = RETRY_SCHEDULE.max_attempts
MAX_RETRY_AFTER = dt.timedelta(hours=24)
# An endpoint with no successful delivery for this long is disabled: a consumer down over a long
# weekend survives, a dead one is shown to the administrators within a working week.
DISABLE_AFTER = dt.timedelta(hours=120)
# An attempt's outcome, as the deliveries metric labels it.
OUTCOMES = {
    DeliveryStatus.SUCCEEDED: "succeeded",
    DeliveryStatus.PENDING: "retrying",
    DeliveryStatus.FAILED: "failed",
}


def policy_from(settings: Settings) -> network.Policy:
    return network.Policy(
        allow_http=settings.webhook_allow_http,
        allowed_networks=network.parse_networks(settings.webhook_allowed_networks),
        connect_timeout=settings.webhook_connect_timeout,
        timeout=settings.webhook_timeout,
    )


def dispatch_events(session: Session, *, now: dt.datetime, limit: int = 200) -> int:
    """Turn undispatched events into deliveries for the endpoints subscribed to them."""
    events = session.scalars(
        select(Event)
        .where(Event.dispatched_at.is_(None))
        .order_by(Event.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    if not events:
        return 0
    endpoints = session.scalars(select(WebhookEndpoint).where(WebhookEndpoint.enabled)).all()
    for event in events:
        for endpoint in endpoints:
            if endpoint.site_id is not None and endpoint.site_id != event.site_id:
                continue
            if endpoint.event_types and event.type not in endpoint.event_types:
                continue
            session.add(
                WebhookDelivery(
                    endpoint_id=endpoint.id,
                    event_id=event.id,
                    next_attempt_at=now,
                    created_at=now,
                )
            )
        event.dispatched_at = now
    session.flush()
    return len(events)


def claim_due(
    session: Session, owner: str, *, now: dt.datetime, lease: dt.timedelta, limit: int = 10
) -> list[int]:
    """Lease up to ``limit`` due deliveries to ``owner``; expired leases are taken over."""
    deliveries = session.scalars(
        select(WebhookDelivery)
        .join(WebhookEndpoint, WebhookDelivery.endpoint_id == WebhookEndpoint.id)
        .where(
            WebhookDelivery.status == DeliveryStatus.PENDING,
            WebhookDelivery.next_attempt_at <= now,
            lease_free(WebhookDelivery.lease_expires_at, now),
            WebhookEndpoint.enabled,
        )
        .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
        .limit(limit)
        .with_for_update(skip_locked=True, of=WebhookDelivery)
    ).all()
    take_leases(deliveries, owner, until=now + lease)
    session.flush()
    return [d.id for d in deliveries]


@dataclasses.dataclass(frozen=True)
class Prepared:
    """Everything one HTTP attempt needs, read before the call so no transaction stays open."""

    delivery_id: int
    url: str
    msg_id: str
    body: bytes
    secrets: tuple[str, ...]


def prepare(
    session: Session, delivery_id: int, *, now: dt.datetime, public_url: str = ""
) -> Prepared | None:
    """What to send, or None when the endpoint was disabled since the claim. A chat endpoint
    (Slack, Teams) gets the event as one line with a link to the queue (``public_url``)."""
    delivery = session.get_one(WebhookDelivery, delivery_id)
    endpoint = delivery.endpoint
    if not endpoint.enabled:
        release(delivery)
        return None
    payload = json.loads(json.dumps(delivery.event.payload))
    data = payload.get("data")
    comment_id = delivery.event.comment_id
    if endpoint.format is not WebhookFormat.STANDARD:
        payload = chat.message(endpoint.format, payload, public_url)
    elif endpoint.include_personal_data and isinstance(data, dict) and comment_id is not None:
        # The outbox holds no email; an opted-in endpoint gets it joined in at delivery time,
        # so an address erased since the event is not sent.
        email = session.scalar(select(Comment.author_email).where(Comment.id == comment_id))
        data["author_email"] = email or None
    keys = [endpoint.secret]
    if (
        endpoint.previous_secret
        and endpoint.previous_secret_expires_at
        and endpoint.previous_secret_expires_at > now
    ):
        keys.append(endpoint.previous_secret)
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    return Prepared(delivery.id, endpoint.url, delivery.event.public_id, body, tuple(keys))


def attempt(
    prepared: Prepared,
    policy: network.Policy,
    *,
    resolver: network.Resolver = network.system_resolver,
    wall_clock: Callable[[], float] = time.time,
) -> tuple[int, network.Result]:
    """Sign and POST once. ``webhook-timestamp`` is the moment of sending, from the wall clock."""
    timestamp = int(wall_clock())
    headers = signing.headers(list(prepared.secrets), prepared.msg_id, timestamp, prepared.body)
    try:
        result = network.post(prepared.url, prepared.body, headers, policy, resolver=resolver)
    except network.Refused as refusal:
        host = prepared.url.split("://", 1)[-1].split("/", 1)[0]
        logger.warning(
            "webhook delivery %s to %s refused: %s", prepared.delivery_id, host, refusal.reason
        )
        result = network.Result(None, f"refused: {refusal.reason}"[:500], b"", 0)
    return timestamp, result


def disable(session: Session, endpoint: WebhookEndpoint, reason: str, *, now: dt.datetime) -> None:
    """Stop delivering to a failing endpoint, and tell the administrators (by mail, if on)."""
    set_enabled(session, endpoint, False, actor=FAILING, now=now, reason=reason)
    outbox.queue_endpoint_disabled(session, endpoint, now=now)
    logger.warning("webhook endpoint %s disabled: %s", endpoint.public_id, reason)


def record(
    session: Session,
    prepared: Prepared,
    timestamp: int,
    result: network.Result,
    *,
    owner: str,
    now: dt.datetime,
    disable_after: dt.timedelta,
    rng: random.Random,
) -> DeliveryStatus | None:
    """Log the attempt and move the delivery on: done, retried later, or failed.

    None when our lease had run out and another worker took the delivery over.
    """
    delivery = session.get_one(WebhookDelivery, prepared.delivery_id)
    endpoint = delivery.endpoint
    session.add(
        WebhookAttempt(
            delivery_id=delivery.id,
            attempted_at=now,
            webhook_timestamp=timestamp,
            status_code=result.status_code,
            duration_ms=result.duration_ms,
            error=result.error,
            response_excerpt=result.excerpt.decode("utf-8", "replace"),
            worker=owner[:100],
        )
    )
    if not holds_lease(delivery, owner) or delivery.status is not DeliveryStatus.PENDING:
        # Our lease ran out and another worker took the delivery over; it decides.
        return None
    delivery.attempts += 1
    release(delivery)
    delivery.last_status_code = result.status_code
    code = result.status_code
    if code is not None and 200 <= code < 300:
        delivery.status = DeliveryStatus.SUCCEEDED
        delivery.completed_at = now
        delivery.last_error = None
        endpoint.failing_since = None
        return delivery.status
    error = result.error
    if code is not None and 300 <= code < 400:
        error = f"redirect ({code}) not followed"
    elif code is not None:
        error = f"HTTP {code}"
    delivery.last_error = (error or "failed")[:500]
    if code == 410:
        delivery.status = DeliveryStatus.FAILED
        delivery.completed_at = now
        disable(session, endpoint, "the consumer answered 410 Gone", now=now)
        return delivery.status
    if endpoint.failing_since is None:
        endpoint.failing_since = now
    elif now - endpoint.failing_since >= disable_after:
        since = f"{endpoint.failing_since:%Y-%m-%d %H:%M} UTC"
        disable(session, endpoint, f"no successful delivery since {since}", now=now)
    if delivery.attempts >= MAX_ATTEMPTS:
        delivery.status = DeliveryStatus.FAILED
        delivery.completed_at = now
        return delivery.status
    wait = RETRY_SCHEDULE.backoff(delivery.attempts, rng)
    if code in (429, 503) and result.retry_after is not None:
        wait = min(dt.timedelta(seconds=max(1.0, result.retry_after)), MAX_RETRY_AFTER)
    delivery.next_attempt_at = now + wait
    return delivery.status


def deliver_due(
    session_factory: sessionmaker[Session],
    settings: Settings,
    *,
    now: dt.datetime,
    owner: str | None = None,
    limit: int = 10,
    resolver: network.Resolver = network.system_resolver,
    wall_clock: Callable[[], float] = time.time,
    rng: random.Random | None = None,
) -> int:
    """Dispatch new events, then attempt up to ``limit`` due deliveries; returns attempts made."""
    owner = owner or worker_name()
    rng = rng or random.Random()  # noqa: S311 (jitter, not a secret)
    policy = policy_from(settings)
    lease = dt.timedelta(seconds=settings.webhook_lease_seconds)
    with write_transaction(session_factory) as session:
        dispatch_events(session, now=now)
    with write_transaction(session_factory) as session:
        claimed = claim_due(session, owner, now=now, lease=lease, limit=limit)
    attempted = 0
    for delivery_id in claimed:
        with write_transaction(session_factory) as session:
            prepared = prepare(session, delivery_id, now=now, public_url=settings.public_url)
        if prepared is None:
            continue
        attempted += 1
        timestamp, result = attempt(prepared, policy, resolver=resolver, wall_clock=wall_clock)
        with write_transaction(session_factory) as session:
            status = record(
                session,
                prepared,
                timestamp,
                result,
                owner=owner,
                now=now,
                disable_after=DISABLE_AFTER,
                rng=rng,
            )
        if status is not None:
            metrics.DELIVERIES.labels(OUTCOMES[status]).inc()
    return attempted
