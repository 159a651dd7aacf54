"""Outbox events: what integrations hear of, written in the caller's transaction together with
the change they describe, so an event exists exactly when its change was committed (the
transactional outbox). Workers fan them out to webhook endpoints later (``outbox.webhooks``);
nothing here reaches the network.
"""

from __future__ import annotations

import datetime as dt
import functools
from typing import Any, cast

from sqlalchemy import Insert, Table, insert
from sqlalchemy.orm import Session

from moderation.events import rfc3339
from moderation.models import Comment, Event


def comment_data(comment: Comment) -> dict[str, Any]:
    """The comment as integrations see it: no email, no client data, no capability."""
    post = comment.post
    site = post.site
    return {
        "id": comment.public_id,
        "status": comment.status.value,
        "parent_id": comment.parent.public_id if comment.parent else None,
        "author_name": comment.author_name,
        "body_text": comment.body_text,
        "body_html": comment.body_html,
        "official": comment.official,
        "lang": comment.lang,
        "signals": list(comment.signals),
        "submitted_at": rfc3339(comment.submitted_at),
        "moderated_at": rfc3339(comment.moderated_at) if comment.moderated_at else None,
        "post": {"key": post.key, "title": post.title, "url": post.url},
        "site": {"slug": site.slug, "name": site.name},
    }


@functools.cache
def _insert_event() -> Insert:
    return insert(cast(Table, Event.__table__))


def record_event(session: Session, type_: str, comment: Comment, *, now: dt.datetime) -> None:
    """Insert an outbox event for ``comment`` in the session's transaction (a Core statement:
    nothing reads the event back, and every submission writes one)."""
    session.execute(
        _insert_event(),
        {
            "type": type_,
            "site_id": comment.post.site_id,
            "comment_id": comment.id,
            "payload": {"type": type_, "timestamp": rfc3339(now), "data": comment_data(comment)},
            "created_at": now,
            "dispatched_at": None,
        },
    )
