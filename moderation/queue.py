"""The moderation queue: which comments a moderator sees, in what order, with what context."""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session, selectinload

from moderation.comments import Page, decode_cursor, encode_cursor
from moderation.models import Comment, CommentStatus, Moderator, Post, Site

HISTORY = 5


@dataclasses.dataclass(frozen=True)
class QueueFilter:
    """What the moderator asked to see; ``status`` None means every status."""

    status: CommentStatus | None = CommentStatus.PENDING
    site: str | None = None
    post: str | None = None
    search: str | None = None
    newest_first: bool = False


def _visible(query: Select[Any], moderator: Moderator) -> Select[Any]:
    if moderator.is_admin:
        return query
    site_ids = [site.id for site in moderator.sites]
    return query.where(Comment.post_id.in_(select(Post.id).where(Post.site_id.in_(site_ids))))


def _filtered(query: Select[Any], wanted: QueueFilter) -> Select[Any]:
    if wanted.site or wanted.post:
        posts = select(Post.id)
        if wanted.site:
            posts = posts.join(Site).where(Site.slug == wanted.site)
        if wanted.post:
            posts = posts.where(Post.key == wanted.post)
        query = query.where(Comment.post_id.in_(posts))
    if wanted.search:
        escaped = wanted.search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        pattern = f"%{escaped}%"
        query = query.where(
            or_(
                Comment.body_text.ilike(pattern, escape="\\"),
                Comment.author_name.ilike(pattern, escape="\\"),
                Comment.author_email.ilike(pattern, escape="\\"),
            )
        )
    return query


def list_queue(
    session: Session,
    moderator: Moderator,
    wanted: QueueFilter,
    *,
    cursor: str | None = None,
    limit: int = 50,
) -> Page:
    """One page of the queue, by id (oldest or newest first), keyset-paginated."""
    query = _filtered(_visible(select(Comment), moderator), wanted)
    if wanted.status is not None:
        query = query.where(Comment.status == wanted.status)
    after = decode_cursor(cursor)
    if after is not None:
        query = query.where(Comment.id < after if wanted.newest_first else Comment.id > after)
    order = Comment.id.desc() if wanted.newest_first else Comment.id
    rows = session.scalars(
        query.order_by(order)
        .limit(limit + 1)
        .options(
            selectinload(Comment.parent),
            selectinload(Comment.moderated_by),
            selectinload(Comment.claimed_by),
        )
    ).all()
    shown = rows[:limit]
    more = len(rows) > limit
    return Page(shown, encode_cursor(shown[-1].id) if more and shown else None)


def status_counts(
    session: Session, moderator: Moderator, wanted: QueueFilter
) -> dict[CommentStatus, int]:
    """How many comments of each status match the filter, for the queue's navigation."""
    query = _filtered(
        _visible(select(Comment.status, func.count()).group_by(Comment.status), moderator),  # type: ignore[arg-type]
        wanted,
    )
    counts = {status: 0 for status in CommentStatus}
    for status, count in session.execute(query).all():
        counts[CommentStatus(status)] = count
    return counts


def author_history(
    session: Session, comments: Sequence[Comment], *, per_author: int = HISTORY
) -> dict[str, list[Comment]]:
    """Each author's latest other comments, for every author on the page, in one query."""
    emails = {c.author_email for c in comments}
    if not emails:
        return {}
    ranked = (
        select(
            Comment.id,
            func.row_number()
            .over(partition_by=Comment.author_email, order_by=Comment.id.desc())
            .label("rank"),
        )
        .where(Comment.author_email.in_(emails))
        .subquery()
    )
    rows = session.scalars(
        select(Comment)
        .join(ranked, ranked.c.id == Comment.id)
        .where(ranked.c.rank <= per_author + 1)
        .order_by(Comment.id.desc())
    ).all()
    page_ids = {c.id for c in comments}
    history: dict[str, list[Comment]] = defaultdict(list)
    for row in rows:
        history[row.author_email].append(row)
    return {
        email: [c for c in found if c.id not in page_ids][:per_author]
        for email, found in history.items()
    }
