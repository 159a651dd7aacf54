"""Queueing mail: one outbox row per message and recipient, in the caller's transaction.

Rows name what the message is about (``kind``, the comment, the moderator); the worker renders
and sends them (moderation.outbox.mail.py). Nothing is queued while mail is off.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from moderation.mail import enabled
from moderation.models import (
    Comment,
    CommentStatus,
    MailPreference,
    Moderator,
    OutgoingMail,
    Role,
    WebhookEndpoint,
    moderator_sites,
)

# To moderators (and the site's notification addresses).
HELD = "held"
HELD_DIGEST = "held_digest"
# To commenters, each with a one-click unsubscribe (except the confirmation they asked for).
CONFIRM = "confirm"
APPROVED = "approved"
REJECTED = "rejected"
REPLY = "reply"
# To administrators.
WEBHOOK_DISABLED = "webhook_disabled"


def site_moderators(session: Session, site_id: int) -> list[Moderator]:
    """Who hears of the site's held comments: its moderators, and the administrators assigned to
    no site (they oversee every site; one assigned to some hears of those only)."""
    assigned = select(moderator_sites.c.moderator_id)
    return list(
        session.scalars(
            select(Moderator)
            .where(
                or_(
                    Moderator.id.in_(assigned.where(moderator_sites.c.site_id == site_id)),
                    and_(Moderator.role == Role.ADMIN, Moderator.id.not_in(assigned)),
                )
            )
            .order_by(Moderator.id)
        )
    )


def queue_held(session: Session, comment: Comment, *, now: dt.datetime) -> None:
    """Tell the site's moderators (each by their preference) and notification addresses that
    ``comment`` waits in the queue. The worker holds digest rows back and sends them together."""
    if not enabled(session):
        return
    site = comment.post.site
    told: set[str] = set()
    for moderator in site_moderators(session, site.id):
        if moderator.mail_preference is MailPreference.OFF:
            continue
        digest = moderator.mail_preference is MailPreference.DIGEST
        session.add(
            OutgoingMail(
                kind=HELD_DIGEST if digest else HELD,
                to_address=moderator.email,
                moderator_id=moderator.id,
                comment_id=comment.id,
                next_attempt_at=now,
                created_at=now,
            )
        )
        told.add(moderator.email.casefold())
    for address in site.notify_emails:
        if str(address).casefold() not in told:
            told.add(str(address).casefold())
            session.add(
                OutgoingMail(
                    kind=HELD,
                    to_address=str(address),
                    comment_id=comment.id,
                    next_attempt_at=now,
                    created_at=now,
                )
            )


def queue_confirmation(session: Session, comment: Comment, *, now: dt.datetime) -> None:
    """Ask the commenter to confirm their address (the caller checked that mail is on)."""
    session.add(
        OutgoingMail(kind=CONFIRM, comment_id=comment.id, next_attempt_at=now, created_at=now)
    )


def queue_decision(session: Session, comment: Comment, *, now: dt.datetime) -> None:
    """Tell a commenter who asked to be told that their comment was approved or rejected."""
    if not (enabled(session) and comment.notify_decision and comment.author_email):
        return
    kinds = {CommentStatus.APPROVED: APPROVED, CommentStatus.REJECTED: REJECTED}
    kind = kinds.get(comment.status)
    if kind is not None:
        session.add(
            OutgoingMail(kind=kind, comment_id=comment.id, next_attempt_at=now, created_at=now)
        )


def queue_reply(session: Session, reply: Comment, *, now: dt.datetime) -> None:
    """Tell the author of the comment replied to, if they opted in, of a newly public reply."""
    parent = reply.parent
    if not (enabled(session) and parent is not None and parent.notify_replies):
        return
    if parent.status is not CommentStatus.APPROVED or not parent.author_email:
        return
    if parent.author_email.casefold() == reply.author_email.casefold():
        return  # nobody needs a mail about their own reply
    session.add(
        OutgoingMail(
            kind=REPLY,
            comment_id=parent.id,
            data={"reply_id": reply.id},
            next_attempt_at=now,
            created_at=now,
        )
    )


def queue_endpoint_disabled(
    session: Session, endpoint: WebhookEndpoint, *, now: dt.datetime
) -> None:
    """Tell the administrators that the service stopped delivering to ``endpoint``."""
    if not enabled(session):
        return
    admins = session.scalars(
        select(Moderator).where(Moderator.role == Role.ADMIN).order_by(Moderator.id)
    )
    for admin in admins:
        session.add(
            OutgoingMail(
                kind=WEBHOOK_DISABLED,
                to_address=admin.email,
                moderator_id=admin.id,
                data={"endpoint": endpoint.public_id},
                next_attempt_at=now,
                created_at=now,
            )
        )
