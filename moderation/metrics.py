"""Prometheus metrics: what the service counts, and what a scrape reads from the database.

Counters and histograms are module-level, as prometheus_client expects. With
``PROMETHEUS_MULTIPROC_DIR`` set before a process starts, their values go to files in that folder,
which every gunicorn worker and ``moderation worker`` process shares, and a scrape sums them.
Gauges that are facts of the database (queue depth per site, the age of the oldest undelivered
event) are read at scrape time by :class:`DatabaseCollector`, so they are right however many
processes run. Labels are bounded and never personal: a verdict, an action, a source, an outcome,
an endpoint name, a site slug.

Changes made in a transaction are counted when it commits (:func:`on_commit`), so a rolled-back
request counts nothing.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy import event, func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, SessionTransaction

from moderation.models import (
    Comment,
    CommentStatus,
    DeliveryStatus,
    Event,
    Post,
    Site,
    WebhookDelivery,
    WebhookEndpoint,
)

logger = logging.getLogger(__name__)

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"

SUBMISSIONS = Counter(
    "moderation_submissions",
    "Comment submissions by the spam checks' verdict (rate_limited: refused with 429).",
    ["verdict"],
    registry=None,
)
ACTIONS = Counter(
    "moderation_actions",
    "Moderation actions on comments, by action and where they came from (ui, api, cli).",
    ["action", "source"],
    registry=None,
)
DECISION_SECONDS = Histogram(
    "moderation_decision_seconds",
    "Time from a comment's submission to its approval, rejection or filing as spam.",
    ["action"],
    buckets=(60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 2 * 86400, 7 * 86400),
    registry=None,
)
DELIVERIES = Counter(
    "moderation_webhook_deliveries",
    "Webhook delivery attempts by outcome: succeeded, retrying (will try again) or failed.",
    ["outcome"],
    registry=None,
)
REQUEST_SECONDS = Histogram(
    "moderation_request_duration_seconds",
    "Time to answer a request, by Flask endpoint name (unmatched: no route).",
    ["endpoint"],
    registry=None,
)
SPAM_VERDICTS = Counter(
    "moderation_spam_verdicts",
    "Verdicts of the spam checks on submissions, by site, check and verdict (hold, spam, reject).",
    ["site", "check", "verdict"],
    registry=None,
)
SPAM_OVERTURNS = Counter(
    "moderation_spam_overturns",
    "Moderators overturning the spam filter, by site and kind: rescued (filed as spam without a "
    "moderator, then approved or restored) or missed (accepted by every check, then marked spam).",
    ["site", "kind"],
    registry=None,
)
RESOLVER_DOWN = Counter(
    "moderation_deliverability_resolver_down",
    "Email deliverability checks answered unknown because the DNS resolver itself does not work "
    "(it resolves none of the names that must exist); no address is refused for its domain then.",
    registry=None,
)
REPORTS = Counter(
    "moderation_reports",
    "Readers' reports of published comments, by reason and outcome: counted, taken_down (it "
    "took the comment down), ignored (a network's second report, or a comment not published).",
    ["reason", "outcome"],
    registry=None,
)
OWN_METRICS = (
    SUBMISSIONS,
    ACTIONS,
    DECISION_SECONDS,
    DELIVERIES,
    REQUEST_SECONDS,
    SPAM_VERDICTS,
    SPAM_OVERTURNS,
    RESOLVER_DOWN,
    REPORTS,
)
# Each endpoint's timer, looked up once: labels() costs as much again as observe().
_REQUEST_TIMERS: dict[str, Histogram] = {}


def observe_request(endpoint: str, seconds: float) -> None:
    """Time one request (called for every request: keep it this cheap)."""
    timer = _REQUEST_TIMERS.get(endpoint)
    if timer is None:
        timer = _REQUEST_TIMERS[endpoint] = REQUEST_SECONDS.labels(endpoint)
    timer.observe(seconds)


# Counting at commit ---------------------------------------------------------------------------

_PENDING = "moderation.metrics.pending"
_COMMITTED = "moderation.metrics.committed"


def on_commit(session: Session, observe: Callable[[], None]) -> None:
    """Run ``observe`` when the session's transaction commits; drop it if it rolls back.

    A savepoint that rolls back does not drop what was recorded inside it: services record
    only after their change has succeeded. The hooks go on this session only, so sessions that
    count nothing (public reads) pay nothing.
    """
    pending = session.info.get(_PENDING)
    if pending is None:
        pending = session.info[_PENDING] = []
        if not event.contains(session, "after_transaction_end", _ended):
            event.listen(session, "after_commit", _committed)
            event.listen(session, "after_transaction_end", _ended)
    pending.append(observe)


def _committed(session: Session) -> None:
    session.info[_COMMITTED] = True


def _ended(session: Session, transaction: SessionTransaction) -> None:
    committed = session.info.pop(_COMMITTED, False)
    if transaction.parent is not None:
        return  # a savepoint: the outer transaction decides
    pending: list[Callable[[], None]] = session.info.pop(_PENDING, [])
    if committed:
        for observe in pending:
            observe()


def count_submission(session: Session, verdict: str) -> None:
    on_commit(session, SUBMISSIONS.labels(verdict).inc)


def count_verdicts(session: Session, site: str, signals: list[dict[str, Any]]) -> None:
    for signal in signals:
        counter = SPAM_VERDICTS.labels(site, signal["check"], signal["verdict"])
        on_commit(session, counter.inc)


def count_overturn(session: Session, site: str, kind: str) -> None:
    on_commit(session, SPAM_OVERTURNS.labels(site, kind).inc)


def count_action(session: Session, action: str, source: str) -> None:
    on_commit(session, ACTIONS.labels(action, source).inc)


def count_report(session: Session, reason: str, outcome: str) -> None:
    on_commit(session, REPORTS.labels(reason, outcome).inc)


def count_decision(session: Session, comment: Comment, action: str) -> None:
    if comment.moderated_at is None:
        return
    waited = (comment.moderated_at - comment.submitted_at).total_seconds()
    on_commit(session, lambda: DECISION_SECONDS.labels(action).observe(max(0.0, waited)))


# Scraping -------------------------------------------------------------------------------------


class DatabaseCollector(Collector):
    """Gauges read from the database at scrape time, with a few small indexed queries."""

    def __init__(self, session: Session, now: dt.datetime):
        self.session = session
        self.now = now

    def collect(self) -> Iterator[Metric]:
        try:
            depth = self._queue_depth()
            oldest = self._oldest_undelivered()
        except SQLAlchemyError as error:
            # The counters are still worth a scrape; the missing gauges show the outage.
            logger.warning("metrics: the database did not answer (%s)", type(error).__name__)
            return
        queue = GaugeMetricFamily(
            "moderation_queue_depth", "Comments waiting for a decision, per site.", labels=["site"]
        )
        for slug, count in depth:
            queue.add_metric([slug], count)
        yield queue
        yield GaugeMetricFamily(
            "moderation_oldest_undelivered_event_age_seconds",
            "Age of the oldest event not yet delivered to an enabled webhook endpoint "
            "(0 when nothing waits).",
            value=(self.now - oldest).total_seconds() if oldest else 0.0,
        )

    def _queue_depth(self) -> list[tuple[str, int]]:
        pending = dict(
            self.session.execute(
                select(Post.site_id, func.count(Comment.id))
                .join(Post, Comment.post_id == Post.id)
                .where(Comment.status == CommentStatus.PENDING)
                .group_by(Post.site_id)
            ).all()
        )
        sites = self.session.execute(select(Site.id, Site.slug).order_by(Site.slug)).all()
        return [(slug, pending.get(site_id, 0)) for site_id, slug in sites]

    def _oldest_undelivered(self) -> dt.datetime | None:
        # Two queries, not one with OR, so each can use its index (events grow without bound).
        undispatched = select(func.min(Event.created_at)).where(Event.dispatched_at.is_(None))
        waiting = (
            select(func.min(Event.created_at))
            .select_from(WebhookDelivery)
            .join(Event, WebhookDelivery.event_id == Event.id)
            .join(WebhookEndpoint, WebhookDelivery.endpoint_id == WebhookEndpoint.id)
            .where(WebhookDelivery.status == DeliveryStatus.PENDING, WebhookEndpoint.enabled)
        )
        found = [self.session.scalar(undispatched), self.session.scalar(waiting)]
        return min((moment for moment in found if moment is not None), default=None)


def multiprocess() -> bool:
    return bool(os.environ.get(MULTIPROCESS_ENV))


def render(session: Session, now: dt.datetime) -> bytes:
    """The text exposition of every metric: this process's, or all processes' in multiprocess
    mode, and the database gauges."""
    registry = CollectorRegistry(auto_describe=False)
    if multiprocess():
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        for metric in OWN_METRICS:
            registry.register(metric)
    registry.register(DatabaseCollector(session, now))
    return generate_latest(registry)
