"""Recording what happened: audit events for people, outbox events for machines.

Both are written in the caller's transaction, together with the change they describe, so an
event exists exactly when its change was committed (the transactional outbox). Workers deliver
outbox events later; nothing here reaches the network.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
from typing import Any, cast

from sqlalchemy import Insert, Table, insert
from sqlalchemy.orm import Session

from moderation import metrics
from moderation.models import AuditEvent, Comment, Event


@dataclasses.dataclass(frozen=True)
class Actor:
    """Who acts: a moderator (through the web queue or a token), or the operator's CLI.

    ``source`` says through which door: ``ui``, ``api`` or ``cli`` (a metrics label).
    """

    label: str
    moderator_id: int | None = None
    source: str = "cli"


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


def rfc3339(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


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


def record_audit(
    session: Session,
    actor: Actor,
    action: str,
    comment: Comment,
    *,
    before: dict[str, Any],
    after: dict[str, Any],
    now: dt.datetime,
) -> AuditEvent:
    """Add an audit event for an action on ``comment`` to the session's transaction."""
    metrics.count_action(session, action, actor.source)
    return _audit(session, actor, action, comment.post.site_id, comment.id, before, after, now)


def record_admin_audit(
    session: Session,
    actor: Actor,
    action: str,
    *,
    site_id: int | None,
    before: dict[str, Any],
    after: dict[str, Any],
    now: dt.datetime,
) -> AuditEvent:
    """Add an audit event for an administrative change (a site, a moderator, a token)."""
    return _audit(session, actor, action, site_id, None, before, after, now)


def _audit(
    session: Session,
    actor: Actor,
    action: str,
    site_id: int | None,
    comment_id: int | None,
    before: dict[str, Any],
    after: dict[str, Any],
    now: dt.datetime,
) -> AuditEvent:
    audit = AuditEvent(
        at=now,
        moderator_id=actor.moderator_id,
        actor=actor.label,
        action=action,
        site_id=site_id,
        comment_id=comment_id,
        before=before,
        after=after,
    )
    session.add(audit)
    return audit
