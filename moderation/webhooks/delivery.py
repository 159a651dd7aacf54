"""The workers' side: fan events out into deliveries, claim due ones, send, record the outcome.

Fan-out happens in the worker, not in the request: a worker takes undispatched events (rows with
``dispatched_at`` NULL, so a transaction that commits late is never skipped, as a cursor over ids
could) and adds one delivery per subscribed endpoint. Claims are short transactions that set a
lease (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite); the HTTP call
happens with no transaction open, and the outcome is written in another short transaction. A
worker that dies leaves a lease that expires, and another worker takes the delivery over.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import os
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, sessionmaker

from moderation import metrics
from moderation.config import Settings
from moderation.db import begin_write
from moderation.mail import outbox
from moderation.models import (
    Comment,
    DeliveryStatus,
    Event,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from moderation.personal_data import purge_if_due
from moderation.webhooks import network, signing
from moderation.webhooks.endpoints import set_enabled

logger = logging.getLogger(__name__)

# Waits after the 1st, 2nd, ... failed attempt; after the last, the delivery has failed.
RETRY_SCHEDULE = (
    dt.timedelta(seconds=5),
    dt.timedelta(minutes=5),
    dt.timedelta(minutes=30),
    dt.timedelta(hours=2),
    dt.timedelta(hours=5),
    dt.timedelta(hours=10),
    dt.timedelta(hours=10),
)
MAX_ATTEMPTS = len(RETRY_SCHEDULE) + 1
JITTER = 0.2
MAX_RETRY_AFTER = dt.timedelta(hours=24)
# An attempt's outcome, as the deliveries metric labels it.
OUTCOMES = {
    DeliveryStatus.SUCCEEDED: "succeeded",
    DeliveryStatus.PENDING: "retrying",
    DeliveryStatus.FAILED: "failed",
}


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def policy_from(settings: Settings) -> network.Policy:
    return network.Policy(
        allow_http=settings.webhook_allow_http,
        allowed_networks=network.parse_networks(settings.webhook_allowed_networks),
        connect_timeout=settings.webhook_connect_timeout,
        timeout=settings.webhook_timeout,
        response_cap_bytes=settings.webhook_response_cap_bytes,
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
            or_(
                WebhookDelivery.lease_expires_at.is_(None),
                WebhookDelivery.lease_expires_at < now,
            ),
            WebhookEndpoint.enabled,
        )
        .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
        .limit(limit)
        .with_for_update(skip_locked=True, of=WebhookDelivery)
    ).all()
    for delivery in deliveries:
        delivery.lease_owner = owner
        delivery.lease_expires_at = now + lease
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


def prepare(session: Session, delivery_id: int, *, now: dt.datetime) -> Prepared | None:
    """What to send, or None when the endpoint was disabled since the claim."""
    delivery = session.get_one(WebhookDelivery, delivery_id)
    endpoint = delivery.endpoint
    if not endpoint.enabled:
        delivery.lease_owner = None
        delivery.lease_expires_at = None
        return None
    payload = json.loads(json.dumps(delivery.event.payload))
    data = payload.get("data")
    comment_id = delivery.event.comment_id
    if endpoint.include_personal_data and isinstance(data, dict) and comment_id is not None:
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
    set_enabled(session, endpoint, False, now=now, reason=reason)
    outbox.queue_endpoint_disabled(session, endpoint, now=now)
    logger.warning("webhook endpoint %s disabled: %s", endpoint.public_id, reason)


def backoff(attempts: int, rng: random.Random) -> dt.timedelta:
    delay = RETRY_SCHEDULE[min(attempts, len(RETRY_SCHEDULE)) - 1]
    return delay * (1 + rng.uniform(-JITTER, JITTER))


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
    if delivery.lease_owner != owner or delivery.status is not DeliveryStatus.PENDING:
        # Our lease ran out and another worker took the delivery over; it decides.
        return None
    delivery.attempts += 1
    delivery.lease_owner = None
    delivery.lease_expires_at = None
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
    wait = backoff(delivery.attempts, rng)
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
    with session_factory() as session:
        begin_write(session)
        dispatch_events(session, now=now)
        session.commit()
    with session_factory() as session:
        begin_write(session)
        claimed = claim_due(session, owner, now=now, lease=lease, limit=limit)
        session.commit()
    attempted = 0
    for delivery_id in claimed:
        with session_factory() as session:
            begin_write(session)
            prepared = prepare(session, delivery_id, now=now)
            session.commit()
        if prepared is None:
            continue
        attempted += 1
        timestamp, result = attempt(prepared, policy, resolver=resolver, wall_clock=wall_clock)
        with session_factory() as session:
            begin_write(session)
            status = record(
                session,
                prepared,
                timestamp,
                result,
                owner=owner,
                now=now,
                disable_after=dt.timedelta(hours=settings.webhook_disable_after_hours),
                rng=rng,
            )
            session.commit()
        if status is not None:
            metrics.DELIVERIES.labels(OUTCOMES[status]).inc()
    return attempted


def run_worker(
    session_factory: sessionmaker[Session],
    settings: Settings,
    stop: threading.Event,
    *,
    interval: float = 1.0,
    clock: Callable[[], dt.datetime] | None = None,
) -> None:
    """Deliver webhooks and send mail until ``stop`` is set; sleeps ``interval`` when idle.
    Applies the retention periods once a day (the first worker to claim the day does)."""
    from moderation.mail.sending import send_due_mail  # mail reuses this module's worker_name

    owner = worker_name()
    now = clock or (lambda: dt.datetime.now(dt.UTC))
    logger.info("webhook worker %s started", owner)
    while not stop.is_set():
        try:
            purge_if_due(session_factory, settings, now())
        except Exception:
            logger.exception("worker %s: the daily retention purge failed; retrying", owner)
        try:
            refresh_sso_if_due(session_factory, settings, now())
        except Exception:
            logger.exception("worker %s: asking the sign-in provider failed; retrying", owner)
        try:
            done = deliver_due(session_factory, settings, now=now(), owner=owner)
        except Exception:
            logger.exception("webhook worker %s: a round failed; retrying", owner)
            done = 0
        try:
            done += send_due_mail(
                session_factory, settings, secret=settings.effective_secret_key, now=now(),
                owner=owner,
            )  # fmt: skip
        except Exception:
            logger.exception("worker %s: a mail round failed; retrying", owner)
        if not done:
            stop.wait(interval)
    logger.info("webhook worker %s stopped", owner)


def refresh_sso_if_due(
    session_factory: sessionmaker[Session], settings: Settings, now: dt.datetime
) -> None:
    """Ask the OpenID provider about single sign-on logins: a refused refresh ends the login, so
    a person the organisation disabled loses access within half the session idle time."""
    if not settings.sso_enabled:
        return
    from moderation import sso

    for _ in sso.refresh_sessions(
        session_factory,
        sso.cached_refresher(settings),
        secret=settings.effective_secret_key,
        now=now,
        every=dt.timedelta(minutes=settings.session_idle_minutes) / 2,
    ):
        pass


def pending_count(session: Session) -> int:
    from sqlalchemy import func

    return (
        session.scalar(
            select(func.count())
            .select_from(WebhookDelivery)
            .where(WebhookDelivery.status == DeliveryStatus.PENDING)
        )
        or 0
    )
