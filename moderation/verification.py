"""Verified email: a commenter proves they own the address they gave by opening a link we mail.

A site with ``verify_email`` keeps a new comment ``unconfirmed`` (out of the queue, never public)
until its author confirms; the address is then remembered as a keyed hash, and later comments
from it go straight to the queue. Under the ``trusted`` policy a confirmed comment from an
address with an earlier approved comment on the site is published at once; the confirmation is
asked for every time then, since typing an address proves nothing (unverified claims never earn
trust).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from moderation import actions, mail
from moderation.mail import links
from moderation.mail.links import BadLink
from moderation.models import (
    Comment,
    CommentStatus,
    ModerationPolicy,
    Post,
    Site,
    VerifiedAddress,
    address_key,
)


def is_verified(session: Session, secret: str, address: str) -> bool:
    digest = links.address_hash(secret, address)
    return (
        session.scalar(select(VerifiedAddress.id).where(VerifiedAddress.address_hash == digest))
        is not None
    )


def remember(session: Session, secret: str, address: str, *, now: dt.datetime) -> None:
    if is_verified(session, secret, address):
        return
    try:
        with session.begin_nested():
            session.add(
                VerifiedAddress(address_hash=links.address_hash(secret, address), verified_at=now)
            )
            session.flush()
    except IntegrityError:
        pass  # confirmed at the same moment by another link: remembered either way


def forget(session: Session, secret: str, address: str) -> int:
    """Drop an address's verification (on erasure of its personal data)."""
    digest = links.address_hash(secret, address)
    result = session.execute(delete(VerifiedAddress).where(VerifiedAddress.address_hash == digest))
    return int(result.rowcount)  # type: ignore[attr-defined]


def has_approved(session: Session, site: Site, address: str, *, besides: int | None = None) -> bool:
    """Whether ``address`` has an approved comment on ``site`` (other than ``besides``)."""
    query = (
        select(Comment.id)
        .join(Post, Comment.post_id == Post.id)
        .where(
            Post.site_id == site.id,
            Comment.status == CommentStatus.APPROVED,
            Comment.email_key == address_key(address),
        )
        .limit(1)
    )
    if besides is not None:
        query = query.where(Comment.id != besides)
    return session.scalar(query) is not None


def site_verifies(session: Session, site: Site) -> bool:
    """Whether the site asks commenters to confirm their address (only while mail is on: with
    mail off, comments go to the queue rather than wait for a mail that never comes)."""
    return site.verify_email and mail.enabled(session)


def needs_confirmation(session: Session, site: Site, address: str, *, secret: str) -> bool:
    """Whether a new comment from ``address`` waits for its author to confirm the address."""
    if not site_verifies(session, site):
        return False
    if not is_verified(session, secret, address):
        return True
    # A verified address goes to the queue without asking, unless confirming would publish it.
    return site.policy is ModerationPolicy.TRUSTED and has_approved(session, site, address)


def _unheld(comment: Comment) -> bool:
    return all(signal.get("verdict") == "accept" for signal in comment.signals)


def _waiting(
    session: Session, token: str, *, secret: str, now: dt.datetime
) -> tuple[dict[str, object], Comment]:
    payload = links.verify(secret, links.CONFIRM, token, now=now)
    comment = session.scalar(select(Comment).where(Comment.public_id == str(payload.get("c"))))
    if comment is None:
        raise BadLink("link_confirm_gone", 410)
    if comment.status is not CommentStatus.UNCONFIRMED:
        raise BadLink("link_confirm_used", 410)
    return payload, comment


def peek_confirmation(session: Session, token: str, *, secret: str, now: dt.datetime) -> Comment:
    """The comment a confirmation link is for, checked as :func:`confirm_comment` would, without
    acting (the page a GET shows: mail scanners open links, people press the button)."""
    return _waiting(session, token, secret=secret, now=now)[1]


def confirm_comment(session: Session, token: str, *, secret: str, now: dt.datetime) -> Comment:
    """Act on a confirmation link: remember the address, then queue or (trusted) publish.

    A forged, expired or used link raises :class:`BadLink` and changes nothing.
    """
    payload, comment = _waiting(session, token, secret=secret, now=now)
    links.use_once(session, payload, now=now)
    remember(session, secret, comment.author_email, now=now)
    site = comment.post.site
    trusted = (
        site.policy is ModerationPolicy.TRUSTED
        and _unheld(comment)
        and has_approved(session, site, comment.author_email, besides=comment.id)
    )
    return actions.confirm_address(session, comment, trusted=trusted, now=now)
