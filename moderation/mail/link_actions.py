"""What the links in mail do, once their page's button is pressed: moderate, unsubscribe.

A moderation link is bound to one moderator, comment and action; it acts through the same
:func:`moderation.actions.moderate_comment` as the queue (a conditional update, audited with the
moderator as actor and a note that it came from mail), once, and only while the moderator may
still moderate the site.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from moderation import actions
from moderation.errors import AlreadyModerated
from moderation.events import Actor
from moderation.mail import links, outbox
from moderation.mail.links import BadLink
from moderation.models import (
    Comment,
    CommentStatus,
    MailStatus,
    Moderator,
    OutgoingMail,
    Post,
    address_key,
)


@dataclasses.dataclass(frozen=True)
class MailAction:
    moderator: Moderator
    comment: Comment
    action: str


def check_action(session: Session, token: str, *, secret: str, now: dt.datetime) -> MailAction:
    """What a moderation link would do, checked but not done (the page a GET shows)."""
    return _checked(session, token, secret=secret, now=now)[1]


def _checked(
    session: Session, token: str, *, secret: str, now: dt.datetime
) -> tuple[dict[str, object], MailAction]:
    payload = links.verify(secret, links.ACT, token, now=now)
    if payload.get("a") not in ("approve", "reject", "spam"):
        raise BadLink("link_forged", 400)
    moderator = session.get(Moderator, int(payload.get("m", 0)))
    comment = session.scalar(select(Comment).where(Comment.public_id == str(payload.get("c"))))
    if moderator is None or comment is None or not moderator.may_moderate(comment.post.site_id):
        raise BadLink("link_not_yours", 403)
    if links.was_used(session, payload):
        raise BadLink("link_used", 410)
    if comment.status is not CommentStatus.PENDING:
        raise AlreadyModerated(
            f"This comment has already been moderated (it is {comment.status.value})."
        )
    return payload, MailAction(moderator, comment, str(payload["a"]))


def act(
    session: Session, token: str, *, secret: str, now: dt.datetime, reason: str | None = None
) -> Comment:
    """Do what the link says, once; :class:`BadLink` or ``AlreadyModerated`` change nothing."""
    payload, checked = _checked(session, token, secret=secret, now=now)
    links.use_once(session, payload, now=now)
    actor = Actor(f"{checked.moderator.login} (from mail)", checked.moderator.id)
    return actions.moderate_comment(
        session,
        checked.moderator,
        checked.comment.public_id,
        checked.action,
        actor=actor,
        now=now,
        reason=reason if checked.action == "reject" else None,
    )


def check_unsubscribe(token: str, *, secret: str, now: dt.datetime) -> None:
    links.verify(secret, links.UNSUBSCRIBE, token, now=now)


def unsubscribe(session: Session, token: str, *, secret: str, now: dt.datetime) -> Comment:
    """Stop every mail to this comment's author about their comments on the site: the opt-ins
    are cleared and mail already queued for them is dropped. Safe to repeat."""
    payload = links.verify(secret, links.UNSUBSCRIBE, token, now=now)
    comment = session.scalar(select(Comment).where(Comment.public_id == str(payload.get("c"))))
    if comment is None:
        raise BadLink("link_unsubscribe_gone", 410)
    if not comment.author_email:
        return comment  # erased: no mail goes to it anyway
    theirs = (
        select(Comment.id)
        .join(Post, Comment.post_id == Post.id)
        .where(
            Post.site_id == comment.post.site_id,
            Comment.email_key == address_key(comment.author_email),
        )
    )
    session.execute(
        update(Comment)
        .where(Comment.id.in_(theirs))
        .values(notify_decision=False, notify_replies=False)
        .execution_options(synchronize_session=False)
    )
    session.execute(
        update(OutgoingMail)
        .where(
            OutgoingMail.comment_id.in_(theirs),
            OutgoingMail.kind.in_([outbox.APPROVED, outbox.REJECTED, outbox.REPLY]),
            OutgoingMail.status == MailStatus.PENDING,
        )
        .values(status=MailStatus.DROPPED, last_error="unsubscribed")
        .execution_options(synchronize_session=False)
    )
    session.refresh(comment)
    return comment
