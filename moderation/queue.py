"""The moderation queue: which comments a moderator sees, in what order, with what context."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import enum
import re
import typing
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, String, and_, cast, exists, func, or_, select
from sqlalchemy.orm import Session, selectinload

from moderation.comments import Page, decode_cursor, encode_cursor
from moderation.errors import Malformed
from moderation.models import Comment, CommentStatus, Moderator, Post, Report, Site
from moderation.spam import check_labels

COUNT_CAP = 1000


class QueueOrder(enum.StrEnum):
    """The queue's ``order``: by arrival, or by the learned check's spam score (highest or lowest
    first; comments without a score, such as imports and the blog's replies, come last)."""

    OLDEST = "oldest"
    NEWEST = "newest"
    HIGHEST_SCORE = "highest_score"
    LOWEST_SCORE = "lowest_score"


@dataclasses.dataclass(frozen=True)
class QueueFilter:
    """What the moderator asked to see; ``status`` None means every status."""

    status: CommentStatus | None = CommentStatus.PENDING
    site: str | None = None
    post: str | None = None
    search: str | None = None
    order: QueueOrder = QueueOrder.OLDEST
    # The name of a spam check (``links``, ``personal_data``...) that fired on the comment.
    signal: str | None = None
    # Only comments with live (not dismissed) readers' reports.
    reported: bool = False

    @property
    def newest_first(self) -> bool:
        return self.order is QueueOrder.NEWEST

    @property
    def by_score(self) -> bool:
        return self.order in (QueueOrder.HIGHEST_SCORE, QueueOrder.LOWEST_SCORE)

    @property
    def order_param(self) -> str | None:
        """The ``order`` to carry in the queue's links (None for the default)."""
        return None if self.order is QueueOrder.OLDEST else self.order.value


def queue_order(raw: str | None) -> QueueOrder:
    """Read the ``order`` parameter (oldest first when absent)."""
    if raw is None:
        return QueueOrder.OLDEST
    try:
        return QueueOrder(raw)
    except ValueError:
        raise Malformed(
            "Unknown order.", fields={"order": "One of " + ", ".join(QueueOrder)}
        ) from None


def signal_filter(raw: str | None) -> str | None:
    """The ``signal`` filter: the name of a spam check, or None when absent."""
    if raw is None:
        return None
    if raw not in check_labels():
        names = ", ".join(check_labels())
        raise Malformed("Unknown signal.", fields={"signal": "One of " + names})
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


def _loads() -> tuple[Any, ...]:
    return (
        selectinload(Comment.parent),
        selectinload(Comment.moderated_by),
        selectinload(Comment.claimed_by),
        selectinload(Comment.reports),
    )


def list_queue(
    session: Session,
    moderator: Moderator,
    wanted: QueueFilter,
    *,
    cursor: str | None = None,
    limit: int = 50,
) -> Page:
    """One page of the queue, by id (oldest or newest first) or by spam score, keyset-paginated."""
    query = _filtered(_visible(select(Comment), moderator), wanted)
    if wanted.status is not None:
        query = query.where(Comment.status == wanted.status)
    if wanted.by_score:
        after_score = decode_score_cursor(cursor)
        rows = _by_score(session, query, wanted.order, after_score, limit + 1)
    else:
        after = decode_cursor(cursor)
        if after is not None:
            query = query.where(Comment.id < after if wanted.newest_first else Comment.id > after)
        order = Comment.id.desc() if wanted.newest_first else Comment.id
        rows = list(session.scalars(query.order_by(order).limit(limit + 1).options(*_loads())))
    shown = rows[:limit]
    if len(rows) <= limit or not shown:
        return Page(shown, None)
    last = shown[-1]
    if wanted.by_score:
        return Page(shown, encode_score_cursor(last.spam_score, last.id))
    return Page(shown, encode_cursor(last.id))


def _by_score(
    session: Session,
    query: Select[Any],
    order: QueueOrder,
    after: tuple[float | None, int] | None,
    count: int,
) -> list[Comment]:
    """Up to ``count`` comments by spam score after ``after`` (equal scores: the newest first
    when highest first, else the oldest first); comments without a score come last, oldest
    first. Two plain queries rather than one with NULLS LAST, so that each reads the
    (status, spam_score) index in order on SQLite and PostgreSQL alike."""
    highest = order is QueueOrder.HIGHEST_SCORE
    score = Comment.spam_score
    rows: list[Comment] = []
    if after is None or after[0] is not None:
        scored = query.where(score.is_not(None))
        if after is not None:
            last_score, last_id = after
            # The bound on the score alone lets the index seek to the page's start.
            if highest:
                later = and_(score <= last_score, or_(score < last_score, Comment.id < last_id))
            else:
                later = and_(score >= last_score, or_(score > last_score, Comment.id > last_id))
            scored = scored.where(later)
        # Ties by id in the score's direction: the index's own order (it ends with the row id).
        scored = scored.order_by(
            *((score.desc(), Comment.id.desc()) if highest else (score, Comment.id))
        )
        rows.extend(session.scalars(scored.limit(count).options(*_loads())))
    if len(rows) < count:
        unscored = query.where(score.is_(None))
        if after is not None and after[0] is None:
            unscored = unscored.where(Comment.id > after[1])
        unscored = unscored.order_by(Comment.id).limit(count - len(rows))
        rows.extend(session.scalars(unscored.options(*_loads())))
    return rows


# A score cursor: "s" and the score's repr (exact for a float), or "n" (no score), then the id.
_SCORE_CURSOR = re.compile(r"(?:s(\d(?:\.\d{1,20})?(?:e-\d{1,3})?)|n):(\d{1,18})")


def encode_score_cursor(score: float | None, comment_id: int) -> str:
    raw = f"{'n' if score is None else 's' + repr(score)}:{comment_id}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_score_cursor(cursor: str | None) -> tuple[float | None, int] | None:
    if not cursor:
        return None
    match = None
    if len(cursor) <= 100:
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
            match = _SCORE_CURSOR.fullmatch(raw)
        except (binascii.Error, UnicodeDecodeError, ValueError):
            pass
    if match is None:
        raise Malformed("The cursor is not valid.", fields={"cursor": "Not a cursor from this API"})
    return (float(match[1]) if match[1] is not None else None), int(match[2])


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
