"""Outbox events: what integrations hear of, written in the caller's transaction together with
the change they describe, so an event exists exactly when its change was committed (the
transactional outbox). Workers fan them out to webhook endpoints later (``outbox.webhooks``);
nothing here reaches the network.
"""

from __future__ import annotations

import datetime as dt
import enum
import functools
from typing import Any, cast

from sqlalchemy import Insert, Table, insert
from sqlalchemy.orm import Session

from moderation.events import rfc3339
from moderation.models import Comment, CommentStatus, Event, Site
from moderation.spam import held_for_personal_data


class EventType(enum.StrEnum):
    """What an outbox event says happened (the ``type`` of a webhook payload, docs/webhooks.md)."""

    SUBMITTED = "comment.submitted"
    APPROVED = "comment.approved"
    REJECTED = "comment.rejected"
    SPAM = "comment.spam"
    EDITED = "comment.edited"
    DELETED = "comment.deleted"
    RESTORED = "comment.restored"
    ERASED = "comment.erased"
    # A post closed or opened again (data: the post and its site, no comment).
    POST_CLOSED = "post.closed"
    POST_OPENED = "post.opened"
    # Reversible decisions and pins (docs/after-publication.md).
    UNAPPROVED = "comment.unapproved"
    PINNED = "comment.pinned"
    UNPINNED = "comment.unpinned"
    # A reader's report counted (data.report says why, and whether it took the comment down).
    REPORTED = "comment.reported"
    # Sent to one endpoint on request, never fanned out.
    WEBHOOK_TEST = "webhook.test"


# What an endpoint may subscribe to.
SUBSCRIBABLE = tuple(t for t in EventType if t is not EventType.WEBHOOK_TEST)


def comment_data(comment: Comment) -> dict[str, Any]:
    """The comment as integrations see it: no email, no client data, no capability. The text of
    a comment held for personal data is withheld (null, ``text_withheld``) until it is approved:
    every endpoint gets the payload, whatever it opted into."""
    post = comment.post
    site = post.site
    withheld = comment.status is not CommentStatus.APPROVED and held_for_personal_data(
        comment.signals or []
    )
    return {
        "id": comment.public_id,
        "status": comment.status.value,
        "parent_id": comment.parent.public_id if comment.parent else None,
        "author_name": comment.author_name,
        "body_text": None if withheld else comment.body_text,
        "body_html": None if withheld else comment.body_html,
        "text_withheld": withheld,
        "official": comment.official,
        "lang": comment.lang,
        "signals": list(comment.signals),
        "submitted_at": rfc3339(comment.submitted_at),
        "moderated_at": rfc3339(comment.moderated_at) if comment.moderated_at else None,
        "pinned": comment.pinned_at is not None,
        "post": {"key": post.key, "title": post.title, "url": post.url},
        "site": {"slug": site.slug, "name": site.name},
    }


@functools.cache
def _insert_event() -> Insert:
    return insert(cast(Table, Event.__table__))


def record_event(
    session: Session,
    type_: EventType,
    comment: Comment,
    *,
    now: dt.datetime,
    extra: dict[str, Any] | None = None,
) -> None:
    """Insert an outbox event for ``comment`` in the session's transaction (a Core statement:
    nothing reads the event back, and every submission writes one). ``extra`` joins ``data``."""
    session.execute(
        _insert_event(),
        {
            "type": type_.value,
            "site_id": comment.post.site_id,
            "comment_id": comment.id,
            "payload": {
                "type": type_.value,
                "timestamp": rfc3339(now),
                "data": {**comment_data(comment), **(extra or {})},
            },
            "created_at": now,
            "dispatched_at": None,
        },
    )


def record_site_event(
    session: Session, type_: EventType, site: Site, data: dict[str, Any], *, now: dt.datetime
) -> None:
    """Insert an outbox event about a site's post (no comment): ``data`` is the post, and the
    site is added to it."""
    session.execute(
        _insert_event(),
        {
            "type": type_.value,
            "site_id": site.id,
            "comment_id": None,
            "payload": {
                "type": type_.value,
                "timestamp": rfc3339(now),
                "data": {"post": data, "site": {"slug": site.slug, "name": site.name}},
            },
            "created_at": now,
            "dispatched_at": None,
        },
    )
