"""The moderation queue: which comments a moderator sees, in what order, with what context."""

from __future__ import annotations

import dataclasses
import typing
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, String, cast, exists, func, or_, select
from sqlalchemy.orm import Session, selectinload

from moderation.comments import Page, decode_cursor, encode_cursor
from moderation.errors import Malformed
from moderation.models import Comment, CommentStatus, Moderator, Post, Report, Site
from moderation.spam import CHECK_NAMES

COUNT_CAP = 1000


@dataclasses.dataclass(frozen=True)
class QueueFilter:
    """What the moderator asked to see; ``status`` None means every status."""

    status: CommentStatus | None = CommentStatus.PENDING
    site: str | None = None
    post: str | None = None
    search: str | None = None
    newest_first: bool = False
    # The name of a spam check (``links``, ``personal_data``...) that fired on the comment.
    signal: str | None = None
    # Only comments with live (not dismissed) readers' reports.
    reported: bool = False


def newest_first(order: str | None) -> bool:
    """Read the ``order`` parameter: oldest (the default) or newest first."""
    if order in (None, "oldest"):
        return False
    if order == "newest":
        return True
    raise Malformed("Unknown order.", fields={"order": "One of oldest, newest"})


def signal_filter(raw: str | None) -> str | None:
    """The ``signal`` filter: the name of a spam check, or None when absent."""
    if raw is None:
        return None
    if raw not in CHECK_NAMES:
        raise Malformed("Unknown signal.", fields={"signal": "One of " + ", ".join(CHECK_NAMES)})
    return raw


def reported_filter(raw: str | None) -> bool:
    """The ``reported`` filter: ``true`` (only reported comments) or ``false``/absent."""
    if raw in (None, "false"):
        return False
    if raw == "true":
        return True
    raise Malformed("Unknown reported value.", fields={"reported": "One of true, false"})


# Unconfirmed comments wait for their authors, not for moderators: never in the queue.
QUEUE_STATUSES = tuple(s for s in CommentStatus if s is not CommentStatus.UNCONFIRMED)


def _visible(query: Select[Any], moderator: Moderator) -> Select[Any]:
    query = query.where(Comment.status != CommentStatus.UNCONFIRMED)
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
    if wanted.reported:
        live = exists().where(Report.comment_id == Comment.id, Report.dismissed_at.is_(None))
        query = query.where(live)
    if wanted.signal:
        # Signals are a JSON list of {"check": name, ...}; the stored text is portable to match.
        pattern = f'%"check": "{wanted.signal}"%'
        query = query.where(cast(Comment.signals, String).like(pattern))
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
            selectinload(Comment.reports),
        )
    ).all()
    shown = rows[:limit]
    more = len(rows) > limit
    return Page(shown, encode_cursor(shown[-1].id) if more and shown else None)


def status_counts(
    session: Session, moderator: Moderator, wanted: QueueFilter, *, cap: int = COUNT_CAP
) -> dict[CommentStatus, int]:
    """How many comments of each status match the filter, counting at most ``cap + 1``.

    Counting stops past the cap (shown as "1,000+") so the navigation costs the same with a
    hundred comments or a hundred thousand: each count reads at most cap + 1 index entries.
    """
    counts: dict[CommentStatus, int] = {}
    for status in QUEUE_STATUSES:
        capped = (
            _filtered(_visible(select(Comment.id), moderator), wanted)
            .where(Comment.status == status)
            .limit(cap + 1)
            .subquery()
        )
        counts[status] = session.scalar(select(func.count()).select_from(capped)) or 0
    return counts


def reported_count(
    session: Session, moderator: Moderator, wanted: QueueFilter, *, cap: int = COUNT_CAP
) -> int:
    """How many comments (any status) with live reports match the filter, at most cap + 1."""
    every = dataclasses.replace(wanted, status=None, reported=True)
    capped = _filtered(_visible(select(Comment.id), moderator), every).limit(cap + 1).subquery()
    return session.scalar(select(func.count()).select_from(capped)) or 0


def author_history(
    session: Session, moderator: Moderator, comments: Sequence[Comment]
) -> dict[int, dict[CommentStatus, int]]:
    """For each comment, how many other comments its author's address has, by status, among
    those the moderator may see (their sites; never unconfirmed ones, which wait for their
    author). Addresses are matched by their casefolded key; erased ones match nothing.

    One grouped query for the whole page; the queue links to the full list (a search by address).
    """
    keys = {c.email_key for c in comments if c.email_key}
    if not keys:
        return {}
    totals: dict[str, dict[CommentStatus, int]] = defaultdict(dict)
    query = (
        select(Comment.email_key, Comment.status, func.count())
        .where(Comment.email_key.in_(keys))
        .group_by(Comment.email_key, Comment.status)
    )
    visible = _visible(typing.cast("Select[Any]", query), moderator)
    rows: Sequence[Any] = session.execute(visible).all()
    for key, status, count in rows:
        totals[key][CommentStatus(status)] = count
    history: dict[int, dict[CommentStatus, int]] = {}
    for comment in comments:
        if not comment.email_key:
            continue
        counts = dict(totals[comment.email_key])
        if comment.status in counts:
            counts[comment.status] -= 1  # not the comment itself
        history[comment.id] = {status: n for status, n in counts.items() if n}
    return history


def blog_replies(session: Session, comment: Comment) -> list[Comment]:
    """The blog's official replies to ``comment``, oldest first (shown on its page)."""
    return list(
        session.scalars(
            select(Comment)
            .where(Comment.parent_id == comment.id, Comment.official)
            .order_by(Comment.id)
        )
    )
