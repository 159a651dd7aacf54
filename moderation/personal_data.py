"""Commenters' personal data: export everything held about an address, erase it, and purge what
is kept past its retention period (including comments whose address was never confirmed);
the workers apply it daily (the first worker to claim the day does).

What counts as personal data here: a comment's author email and name, its client network and
user agent, and (where the site says so on erasure) its text. Outbox payloads never hold the
address; on erasure their copies of the name (and text) are scrubbed as well.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from typing import Any

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import String, cast, delete, func, literal, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from moderation import bans, duplicates, learning, verification
from moderation.config import Settings
from moderation.db import write_transaction
from moderation.errors import ValidationFailed
from moderation.events import Actor, AuditAction, record_admin_audit, record_audit, rfc3339
from moderation.models import (
    AuditEvent,
    Ban,
    Comment,
    CommentStatus,
    DeliveryStatus,
    Event,
    MailStatus,
    MaintenanceRun,
    Moderator,
    OutgoingMail,
    Post,
    Report,
    UsedLink,
    WebhookAttempt,
    WebhookDelivery,
    address_key,
)
from moderation.outbox.events import EventType, comment_data, record_event
from moderation.sanitising import render_comment

ERASED_NAME = "Name removed"
ERASED_TEXT = "This comment was removed at its author's request."
PURGE_TASK = "retention"
# What a report's network becomes past the client-data retention period (then its id).
PURGED_NETWORK = "purged:"

logger = logging.getLogger(__name__)


def normalise_address(email: str) -> str:
    try:
        return validate_email(email.strip(), check_deliverability=False).normalized
    except EmailNotValidError:
        raise ValidationFailed(
            fields={"email": "Enter an email address in the correct format, like name@example.com"}
        ) from None


def _comments_of(session: Session, address: str) -> list[Comment]:
    return list(
        session.scalars(
            select(Comment).where(Comment.email_key == address_key(address)).order_by(Comment.id)
        )
    )


def export_personal_data(session: Session, email: str, *, now: dt.datetime) -> dict[str, Any]:
    """Everything held about an address, as one JSON-ready document."""
    address = normalise_address(email)
    comments = []
    for comment in _comments_of(session, address):
        data = comment_data(comment)
        data.update(
            author_email=comment.author_email,
            original_text=comment.original_text,
            client_network=comment.client_network,
            user_agent=comment.user_agent,
        )
        comments.append(data)
    # Moderators are few: compared in Python, casefolded, as the database cannot on SQLite.
    accounts = [
        m
        for m in session.scalars(select(Moderator).order_by(Moderator.id))
        if address_key(m.email) == address_key(address)
    ]
    return {
        "email": address,
        "exported_at": rfc3339(now),
        "comments": comments,
        # Bans of the address (in force or expired, until erased or lifted), without the login
        # of the moderator who made each: that is the moderator's data, not the person's.
        "bans": [
            {**bans.ban_json(ban, now=now), "created_by": None}
            for ban in bans.bans_of_address(session, address)
        ],
        "moderator_accounts": [
            {
                "login": m.login,
                "email": m.email,
                "role": m.role.value,
                "created_at": rfc3339(m.created_at),
            }
            for m in accounts
        ],
    }


@dataclasses.dataclass(frozen=True)
class Erasure:
    comments: int
    texts_removed: int
    bans_lifted: int = 0


def erase_personal_data(
    session: Session, email: str, *, actor: Actor, now: dt.datetime, secret: str | None = None
) -> Erasure:
    """Remove an address, its name and client data from every comment it wrote; remove the text
    too where the site says so. Each comment records a ``comment.erased`` event and an audit
    event that holds no personal data. With the app's ``secret``, the address's verification
    (a keyed hash) is forgotten too."""
    address = normalise_address(email)
    if secret is not None:
        verification.forget(session, secret, address)
    lifted = bans.erase_bans_of(session, address, actor=actor, now=now)
    comments = _comments_of(session, address)
    # What their moderators' decisions taught the spam model goes first, while the text is known.
    learning.forget_comments(session, comments)
    removed = 0
    for comment in comments:
        keep_text = comment.post.site.erasure_keeps_text
        comment.author_email = comment.email_key = ""
        comment.author_name = ERASED_NAME
        comment.client_network = None
        comment.user_agent = None
        if not keep_text:
            comment.body_text = ERASED_TEXT
            comment.body_html = render_comment(ERASED_TEXT)
            comment.original_text = None
            duplicates.forget(session, comment)
            removed += 1
        session.flush()
        _scrub_copies(session, comment, keep_text)
        session.execute(
            update(Post).where(Post.id == comment.post_id).values(version=Post.version + 1)
        )
        record_audit(
            session,
            actor,
            AuditAction.ERASE,
            comment,
            before={"personal_data": "held"},
            after={"personal_data": "erased", "text": "kept" if keep_text else "removed"},
            now=now,
        )
        if comment.status is not CommentStatus.UNCONFIRMED:  # never announced, so no event
            record_event(session, EventType.ERASED, comment, now=now)
    return Erasure(comments=len(comments), texts_removed=removed, bans_lifted=lifted)


def _scrub_copies(session: Session, comment: Comment, keep_text: bool) -> None:
    """Rewrite the comment's copies in earlier outbox payloads (and, with its text removed, in
    the before/after of its edit audits: the one change ever made to the audit log, by law).

    Consumers' answers to its deliveries are dropped from the delivery log too: a consumer that
    echoes what it received would have sent back the address (to an endpoint that opted in).
    """
    fresh = comment_data(comment)
    deliveries = (
        select(WebhookDelivery.id)
        .join(Event, WebhookDelivery.event_id == Event.id)
        .where(Event.comment_id == comment.id)
    )
    session.execute(
        update(WebhookAttempt)
        .where(WebhookAttempt.delivery_id.in_(deliveries))
        .values(response_excerpt="")
        .execution_options(synchronize_session=False)
    )
    for event in session.scalars(select(Event).where(Event.comment_id == comment.id)):
        data = dict(event.payload.get("data", {}))
        data["author_name"] = fresh["author_name"]
        if not keep_text:
            data["body_text"], data["body_html"] = fresh["body_text"], fresh["body_html"]
        event.payload = {**event.payload, "data": data}
    if not keep_text:
        edits = select(AuditEvent).where(
            AuditEvent.comment_id == comment.id, AuditEvent.action == AuditAction.EDIT
        )
        for audit in session.scalars(edits):
            audit.before = {"body_text": "(removed on erasure)"}
            audit.after = {"body_text": "(removed on erasure)"}


@dataclasses.dataclass(frozen=True)
class Retention:
    """How long things are kept, in days."""

    client_data_days: int = 30
    rejected_days: int = 90
    unconfirmed_days: int = 7

    @classmethod
    def from_settings(cls, settings: Settings) -> Retention:
        return cls(
            settings.retention_client_days,
            settings.retention_rejected_days,
            settings.retention_unconfirmed_days,
        )


@dataclasses.dataclass(frozen=True)
class PurgeReport:
    client_data_cleared: int
    comments_deleted: int
    dry_run: bool
    unconfirmed_deleted: int = 0
    originals_cleared: int = 0
    bans_deleted: int = 0
    events_deleted: int = 0


# Who the audit names for the workers' daily purge.
RETENTION_ACTOR = Actor("automatic (retention)", None, "worker")


def purge_expired(
    session: Session,
    retention: Retention,
    *,
    now: dt.datetime,
    dry_run: bool = False,
    actor: Actor = RETENTION_ACTOR,
) -> PurgeReport:
    """Drop client data older than its retention period and delete old rejected and spam
    comments; with ``dry_run`` only count what would go. A purge that changes anything is
    audited as one row with its counts (the audit rows of the comments it deletes keep their
    public ids and post keys)."""
    client_cutoff = now - dt.timedelta(days=retention.client_data_days)
    has_client_data = (Comment.submitted_at < client_cutoff) & (
        Comment.client_network.is_not(None) | Comment.user_agent.is_not(None)
    )
    rejected_cutoff = now - dt.timedelta(days=retention.rejected_days)
    expired = Comment.status.in_([CommentStatus.REJECTED, CommentStatus.SPAM]) & (
        func.coalesce(Comment.moderated_at, Comment.submitted_at) < rejected_cutoff
    )
    unconfirmed = (Comment.status == CommentStatus.UNCONFIRMED) & (
        Comment.submitted_at < now - dt.timedelta(days=retention.unconfirmed_days)
    )
    # A moderator's edit keeps the text as typed (for accountability), for as long as client
    # data: it may hold what the edit took out.
    has_original = Comment.original_text.is_not(None) & (
        func.coalesce(Comment.moderated_at, Comment.submitted_at) < client_cutoff
    )
    count = select(func.count()).select_from(Comment)
    cleared = session.scalar(count.where(has_client_data)) or 0
    originals = session.scalar(count.where(has_original)) or 0
    deleted = session.scalar(count.where(expired)) or 0
    never_confirmed = session.scalar(count.where(unconfirmed)) or 0
    # A ban that ended longer ago than client data is kept has no more use for what it names.
    ended = Ban.expires_at < client_cutoff
    ended_bans = session.scalar(select(func.count()).select_from(Ban).where(ended)) or 0
    # The outbox keeps an event (and its endpoints' delivery log, which cascades) as long as a
    # decided comment: then, once it has gone out to every endpoint, it goes. An event some
    # delivery still retries stays.
    retrying = select(WebhookDelivery.id).where(
        WebhookDelivery.event_id == Event.id, WebhookDelivery.status == DeliveryStatus.PENDING
    )
    old_events = (
        (Event.created_at < rejected_cutoff) & Event.dispatched_at.is_not(None) & ~retrying.exists()
    )
    events = session.scalar(select(func.count()).select_from(Event).where(old_events)) or 0
    if not dry_run:
        # Their queued confirmation mail goes with them (the outbox row cascades).
        session.execute(
            delete(Comment).where(unconfirmed).execution_options(synchronize_session=False)
        )
        # Mail that was sent, dropped or given up, and the nonces of links long expired.
        session.execute(
            delete(OutgoingMail).where(
                OutgoingMail.status != MailStatus.PENDING, OutgoingMail.created_at < client_cutoff
            )
        )
        session.execute(delete(UsedLink).where(UsedLink.used_at < client_cutoff))
        session.execute(
            update(Comment)
            .where(has_client_data)
            .values(client_network=None, user_agent=None)
            .execution_options(synchronize_session=False)
        )
        session.execute(
            update(Comment)
            .where(has_original)
            .values(original_text=None)
            .execution_options(synchronize_session=False)
        )
        session.execute(delete(Comment).where(expired).execution_options(synchronize_session=False))
        session.execute(delete(Ban).where(ended).execution_options(synchronize_session=False))
        session.execute(
            delete(Event).where(old_events).execution_options(synchronize_session=False)
        )
        # Readers' networks in their reports go as comments' client data does; each report
        # keeps a placeholder of its own, so the one-report-per-network rule stays a constraint.
        session.execute(
            update(Report)
            .where(Report.created_at < client_cutoff, ~Report.network.startswith(PURGED_NETWORK))
            .values(network=literal(PURGED_NETWORK) + cast(Report.id, String))
            .execution_options(synchronize_session=False)
        )
    report = PurgeReport(cleared, deleted, dry_run, never_confirmed, originals, ended_bans, events)
    counts = {
        "client_data_cleared": cleared,
        "originals_cleared": originals,
        "comments_deleted": deleted,
        "unconfirmed_deleted": never_confirmed,
        "bans_deleted": ended_bans,
        "events_deleted": events,
    }
    if not dry_run and any(counts.values()):
        record_admin_audit(
            session,
            actor,
            AuditAction.RETENTION_PURGE,
            site_id=None,
            before={},
            after={**counts, "retention_days": dataclasses.asdict(retention)},
            now=now,
        )
    return report


def purge_if_due(
    session_factory: sessionmaker[Session], settings: Settings, now: dt.datetime
) -> PurgeReport | None:
    """The workers' daily retention run: purge once per UTC day, whichever worker comes first.

    The run claims its day by inserting a ``maintenance_runs`` row in the purge's transaction, so
    a second worker (or a restart) the same day finds the row, or fails to insert it, and does
    nothing; a failed purge leaves no row and is tried again. None when the day was done.
    """
    day = now.astimezone(dt.UTC).date()
    with session_factory() as session:
        if session.get(MaintenanceRun, (PURGE_TASK, day)) is not None:
            return None
    with write_transaction(session_factory) as session:
        session.add(MaintenanceRun(task=PURGE_TASK, day=day, ran_at=now))
        try:
            session.flush()
        except IntegrityError:  # another worker claimed the day a moment ago
            session.rollback()
            return None
        report = purge_expired(session, Retention.from_settings(settings), now=now)
    logger.info(
        "retention: cleared client data from %d comments, deleted %d rejected or spam comments"
        " and %d never confirmed",
        report.client_data_cleared,
        report.comments_deleted,
        report.unconfirmed_deleted,
    )
    return report
