"""What the public reads, and the cheap version stamps its HTTP caching is keyed on.

A thread's stamp is its post's ``version`` (bumped by every moderation action) and whether it is
closed; a site's stamp covers all its posts. Reading a stamp is one small query (none, for a thread
whose head is in memory and the database unchanged), so a revalidation (``If-None-Match``) is
answered without loading or rendering any comment.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Connection, Select, bindparam, func, select
from sqlalchemy.orm import Session

from moderation.db import CommitCounter
from moderation.models import Comment, CommentStatus, Post, Site
from moderation.posts import PostState, state_at

MAX_COUNT_POSTS = 100

# Reads again what a public answer was made of, on a connection at a time (web.replay uses it).
Probe = Callable[[Connection, dt.datetime], object]
FEED_SIZE = 50


@dataclasses.dataclass(frozen=True)
class ThreadStamp:
    version: int
    # Whether the thread takes comments now (moderation.posts.state_at).
    state: PostState = PostState.OPEN

    @property
    def closed(self) -> bool:
        return self.state is not PostState.OPEN


def _stamp(
    post: tuple[Any, ...],
    close_after_days: int | None,
    now: dt.datetime,
    published: dt.datetime | None,
) -> ThreadStamp:
    """A thread's stamp from its post's row (version, closed, opens_at, closes_at, published_at,
    created_at; all None before its first comment) and the site's automatic close."""
    version, closed, opens_at, closes_at, published_at, created_at = post
    state = state_at(
        closed=bool(closed),
        opens_at=opens_at,
        closes_at=closes_at,
        published_at=published_at or published,
        first_comment_at=created_at,
        close_after_days=close_after_days,
        now=now,
    )
    return ThreadStamp(version or 0, state)


POST_STATE_COLUMNS = (
    Post.version,
    Post.closed,
    Post.opens_at,
    Post.closes_at,
    Post.published_at,
    Post.created_at,
)


def thread_stamp(
    session: Session,
    site: Site,
    key: str,
    *,
    now: dt.datetime,
    published: dt.datetime | None = None,
) -> ThreadStamp:
    """The version of one post's public thread (0 before its first comment) and its state."""
    row = session.execute(
        select(*POST_STATE_COLUMNS).where(Post.site_id == site.id, Post.key == key)
    ).first()
    return _stamp(tuple(row) if row else (None,) * 6, site.close_after_days, now, published)


@dataclasses.dataclass(frozen=True)
class ThreadHead:
    """What a thread's ETag needs, read in one Core query (no ORM objects)."""

    site_id: int
    site_state: tuple[object, ...]
    stamp: ThreadStamp


def _thread_head_query() -> Select[tuple[Any, ...]]:
    return (
        select(
            Site.id,
            Site.name,
            Site.privacy_notice_url,
            Site.origins,
            Site.close_after_days,
            Site.privacy_text,
            Site.verify_email,
            Site.closed_text,
            Site.time_zone,
            *POST_STATE_COLUMNS,
        )
        .outerjoin(Post, (Post.site_id == Site.id) & (Post.key == bindparam("key")))
        .where(Site.slug == bindparam("slug"))
    )


# Built once: a thread head is read by this one query, so its construction is not repeated.
THREAD_HEAD = _thread_head_query()


def _read_head(connection: Connection, slug: str, key: str) -> tuple[Any, ...] | None:
    row = connection.execute(THREAD_HEAD, {"slug": slug, "key": key}).first()
    return None if row is None else tuple(row)


def _head_of(
    row: tuple[Any, ...] | None, now: dt.datetime, published: dt.datetime | None = None
) -> ThreadHead | None:
    """The site's settings that show in the thread, and the thread's stamp; None: no such site.
    ``published``: the post's publication date as the embed sent it (used while none is stored)."""
    if row is None:
        return None
    site_id, name, privacy, origins, days, privacy_text, verify, closed_text, zone = row[:9]
    stamp = _stamp(row[9:], days, now, published)
    # Everything of the site that the fragment shows is in its state, so the ETag follows it.
    state = (name, privacy, tuple(origins or ()), privacy_text, verify, closed_text, zone)
    return ThreadHead(site_id, state, stamp)


def read_thread_head(
    connection: Connection,
    slug: str,
    key: str,
    *,
    now: dt.datetime,
    published: dt.datetime | None = None,
) -> ThreadHead | None:
    """A thread's head read from the database in one indexed query; None: no such site."""
    return _head_of(_read_head(connection, slug, key), now, published)


class ThreadHeads:
    """Thread heads kept in memory for as long as nobody has committed to the database since they
    were read (checked with the commit counter on every use), so a revalidation of an unchanged
    thread costs no query; any commit (a moderation action in any process) empties it at once.
    Without a counter (PostgreSQL) every head is read from the database.
    """

    SIZE = 4096

    def __init__(self, commits: CommitCounter | None) -> None:
        self.commits = commits
        self._rows: dict[tuple[str, str], tuple[Any, ...] | None] = {}
        self._seen: int | None = None
        self._lock = threading.Lock()

    def get(
        self,
        connect: Callable[[], Connection],
        slug: str,
        key: str,
        *,
        now: dt.datetime,
        published: dt.datetime | None = None,
    ) -> ThreadHead | None:
        seen = self.commits.value() if self.commits else None
        if seen is None:
            return read_thread_head(connect(), slug, key, now=now, published=published)
        with self._lock:
            if seen != self._seen:
                self._rows.clear()
                self._seen = seen
            found = (slug, key) in self._rows
            row = self._rows.get((slug, key))
        if not found:
            # Read after the counter: a commit between the two leaves the counter changed, so
            # this row (at least as new as ``seen``) is dropped at the next use.
            row = _read_head(connect(), slug, key)
            with self._lock:
                if seen == self._seen and len(self._rows) < self.SIZE:
                    self._rows[(slug, key)] = row
        return _head_of(row, now, published)


def site_stamp(session: Session, site: Site) -> str:
    """A stamp that changes whenever any thread of the site changes or a post is added."""
    posts, versions = session.execute(
        select(func.count(Post.id), func.coalesce(func.sum(Post.version), 0)).where(
            Post.site_id == site.id
        )
    ).one()
    return f"{posts}.{versions}"


@dataclasses.dataclass(frozen=True)
class CountsStamp:
    """What a counts answer is made of: the site (and its origins, for CORS) and the version of
    each named post that exists. Every change to a post's approved comments bumps its version."""

    site_id: int
    origins: tuple[str, ...]
    versions: tuple[tuple[str, int], ...]


def _counts_stamp_query() -> Select[tuple[Any, ...]]:
    return (
        select(Site.id, Site.origins, Post.key, Post.version)
        .outerjoin(
            Post,
            (Post.site_id == Site.id) & Post.key.in_(bindparam("keys", expanding=True)),
        )
        .where(Site.slug == bindparam("slug"))
    )


COUNTS_STAMP = _counts_stamp_query()


def counts_stamp(connection: Connection, slug: str, keys: Sequence[str]) -> CountsStamp | None:
    """The stamp of the counts of ``keys``, in one indexed query; None: no such site."""
    rows = connection.execute(COUNTS_STAMP, {"slug": slug, "keys": list(keys)}).all()
    if not rows:
        return None
    versions = sorted((key, version) for _, _, key, version in rows if key is not None)
    return CountsStamp(rows[0][0], tuple(rows[0][1] or ()), tuple(versions))


def _approved_counts_query() -> Select[str, int]:
    return (
        select(Post.key, func.count(Comment.id))
        .join(Comment, (Comment.post_id == Post.id) & (Comment.status == CommentStatus.APPROVED))
        .where(
            Post.site_id == bindparam("site_id"), Post.key.in_(bindparam("keys", expanding=True))
        )
        .group_by(Post.key)
    )


APPROVED_COUNTS = _approved_counts_query()


def approved_counts(session: Session, site: Site | int, keys: Sequence[str]) -> dict[str, int]:
    """Approved comments per post key, for listing pages; unknown posts count 0. One query,
    through the comments' (post, status) index."""
    wanted = list(dict.fromkeys(keys))
    site_id = site if isinstance(site, int) else site.id
    rows = session.execute(APPROVED_COUNTS, {"site_id": site_id, "keys": wanted})
    found: dict[str, int] = {key: count for key, count in rows}
    return {key: found.get(key, 0) for key in wanted}


def feed_comments(
    session: Session, site: Site, post: Post | None, *, limit: int = FEED_SIZE
) -> Sequence[Comment]:
    """The newest approved comments of a post, or of the whole site, newest first."""
    query = select(Comment).join(Comment.post).where(Comment.status == CommentStatus.APPROVED)
    query = (
        query.where(Comment.post_id == post.id) if post else query.where(Post.site_id == site.id)
    )
    return session.scalars(query.order_by(Comment.id.desc()).limit(limit)).all()
