"""Posts close and reopen: by hand, in a consultation window, or N days after publication.

Whether a post takes comments is decided in one place, :func:`state_at`, which the submission
check, the embed and the thread's ETag all use. The rules, in order:

1. closed by a moderator: closed;
2. before the window's ``opens_at``: not yet open;
3. from the window's ``closes_at``: closed;
4. a window set (either end): open (it replaces the automatic close);
5. the site's ``close_after_days`` after the post's publication (``published_at``, from the
   embed's ``data-published``), or after its first comment when that is unknown: closed;
6. otherwise open.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from moderation.errors import NotFound, ValidationFailed
from moderation.events import Actor, AuditAction, record_admin_audit, rfc3339
from moderation.models import Moderator, Post, Site
from moderation.outbox.events import EventType, record_site_event

# Anything longer is no time at all: refused before any parsing.
MAX_TIME_LENGTH = 40
# RFC 3339's date-time: a full date, a time to the second (fractions allowed) and an offset.
RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:[Zz]|[+-]\d{2}:\d{2})", re.ASCII
)
# What a post's ``data-published`` may be: an ISO 8601 date, or a date-time with an offset
# (WordPress writes 2026-03-12T09:30:00+00:00).
PUBLISHED = re.compile(
    r"\d{4}-\d{2}-\d{2}(?:[Tt ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:[Zz]|[+-]\d{2}:?\d{2}))?",
    re.ASCII,
)
EARLIEST = dt.datetime(1990, 1, 1, tzinfo=dt.UTC)
LATEST = dt.datetime(9000, 1, 1, tzinfo=dt.UTC)
WINDOW_FIELDS = ("opens_at", "closes_at")
# What names a post the service has not seen yet (see PostChanges), as a first comment would.
NAMING_FIELDS = {"url": 2000, "title": 300}
MAX_KEY = 500
# No control character or line separator in a one-line field (validation's rule; validation
# imports this module, so the expression is written here too).
ONE_LINE_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
MAX_QUEUE_POSTS = 5


class PostState(enum.StrEnum):
    OPEN = "open"
    NOT_YET_OPEN = "not_yet_open"
    CLOSED = "closed"


def state_at(
    *,
    closed: bool,
    opens_at: dt.datetime | None,
    closes_at: dt.datetime | None,
    published_at: dt.datetime | None,
    first_comment_at: dt.datetime | None,
    close_after_days: int | None,
    now: dt.datetime,
) -> PostState:
    """Whether a post takes comments at ``now`` (the rules are in the module's docstring)."""
    if closed:
        return PostState.CLOSED
    if opens_at is not None and now < opens_at:
        return PostState.NOT_YET_OPEN
    if closes_at is not None and now >= closes_at:
        return PostState.CLOSED
    if opens_at is not None or closes_at is not None:
        return PostState.OPEN
    since = published_at or first_comment_at
    if close_after_days is None or since is None:
        return PostState.OPEN
    by_age = now >= since + dt.timedelta(days=close_after_days)
    return PostState.CLOSED if by_age else PostState.OPEN


def post_state(post: Post, now: dt.datetime, *, published: dt.datetime | None = None) -> PostState:
    """A post's state; ``published`` (sent by the embed) counts while the post has none stored."""
    return state_at(
        closed=post.closed,
        opens_at=post.opens_at,
        closes_at=post.closes_at,
        published_at=post.published_at or published,
        first_comment_at=post.created_at,
        close_after_days=post.site.close_after_days,
        now=now,
    )


def thread_state(
    site: Site, post: Post | None, now: dt.datetime, *, published: dt.datetime | None = None
) -> PostState:
    """A thread's state, before its first comment too (then only a publication date can have
    closed it)."""
    if post is not None:
        return post_state(post, now, published=published)
    return state_at(
        closed=False,
        opens_at=None,
        closes_at=None,
        published_at=published,
        first_comment_at=None,
        close_after_days=site.close_after_days,
        now=now,
    )


def parse_time(raw: object) -> dt.datetime:
    """An RFC 3339 date-time as aware UTC; ValueError otherwise (checked in linear time: the
    length first, then one anchored expression without nested repetition)."""
    if not isinstance(raw, str) or len(raw) > MAX_TIME_LENGTH or not RFC3339.fullmatch(raw):
        raise ValueError("not an RFC 3339 date-time")
    moment = dt.datetime.fromisoformat(raw.upper().replace(" ", "T"))
    if not EARLIEST <= moment < LATEST:
        raise ValueError("out of range")
    return moment.astimezone(dt.UTC)


def parse_published(raw: object) -> dt.datetime | None:
    """A post's publication date from the embed: None for nothing; ValueError for what is not
    an ISO 8601 date or date-time. A date alone is its midnight UTC. (A date in the future is
    stored as the time it arrived: see :func:`published_for`.)"""
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str) or len(raw) > MAX_TIME_LENGTH or not PUBLISHED.fullmatch(raw):
        raise ValueError("not an ISO 8601 date")
    moment = dt.datetime.fromisoformat(raw.upper().replace(" ", "T"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    if not EARLIEST <= moment < LATEST:
        raise ValueError("out of range")
    return moment.astimezone(dt.UTC)


def published_for(post: Post, published: dt.datetime | None, now: dt.datetime) -> None:
    """Store a new post's publication date as the embed sent it (its first comment's caller
    decides when); never later than now, so that nobody can keep a post from ever closing."""
    if published is not None and post.published_at is None:
        post.published_at = min(published, now)


_UNCHANGED: Any = object()


@dataclasses.dataclass(frozen=True)
class PostChanges:
    """A moderator's change to a post: closed or open, and the window's ends (None clears one;
    an end not given is left as it is). ``url`` and ``title`` name a post the service has not
    seen yet (a blog closes a post before its first comment), which the change then creates; a
    known post keeps its own. Built at the boundary by :meth:`parse`."""

    closed: bool | None = None
    opens_at: dt.datetime | None = _UNCHANGED
    closes_at: dt.datetime | None = _UNCHANGED
    url: str | None = None
    title: str | None = None

    @classmethod
    def parse(cls, body: Mapping[str, object]) -> PostChanges:
        if set(body) - {"closed", *WINDOW_FIELDS, *NAMING_FIELDS}:
            # Named, not repeated: a field's name is the sender's text, as long as they like.
            fields = ", ".join(("closed", *WINDOW_FIELDS, *NAMING_FIELDS))
            raise ValidationFailed(
                fields={"post": f"A post change has only these fields: {fields}"}
            )
        if not set(body) & {"closed", *WINDOW_FIELDS}:
            raise ValidationFailed(fields={"closed": "Give closed (true or false)"})
        errors: dict[str, str] = {}
        naming: dict[str, str] = {}
        for name, limit in NAMING_FIELDS.items():
            raw = body.get(name)
            if raw is None:
                continue
            if not isinstance(raw, str) or len(raw) > limit or ONE_LINE_FORBIDDEN.search(raw):
                errors[name] = f"Give the post's {name} as one line of at most {limit} characters"
            elif raw.strip():
                naming[name] = raw.strip()
        if "url" in naming and _scheme(naming["url"]) not in ("http", "https"):
            errors["url"] = "The post address must start with http:// or https://"
        closed = body.get("closed")
        if "closed" in body and not isinstance(closed, bool):
            errors["closed"] = "Give true or false"
        ends: dict[str, Any] = {}
        for name in WINDOW_FIELDS:
            if name not in body:
                continue
            raw = body[name]
            try:
                ends[name] = None if raw is None else parse_time(raw)
            except ValueError:
                errors[name] = "Give a date and time in RFC 3339, like 2024-03-28T17:00:00Z"
        if errors:
            raise ValidationFailed(fields=errors)
        return cls(
            closed if isinstance(closed, bool) else None,
            **ends,
            url=naming.get("url"),
            title=naming.get("title"),
        )


def _scheme(url: str) -> str:
    try:
        return urlsplit(url).scheme
    except ValueError:  # "http://[x" (an unclosed IPv6 literal) is no address at all
        return ""


def _origin(url: str) -> str:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError on a port that is no port)
    except ValueError:
        return ""
    return f"{parts.scheme}://{parts.netloc}".lower()


def find_post_for(
    session: Session, moderator: Moderator | None, site_slug: str, key: str, *, lock: bool = False
) -> Post:
    """A post of a site ``moderator`` moderates (None: the operator, at the command line).
    Another site's post is "not found", like its comments. ``lock``: its row, until the
    transaction ends (PostgreSQL), so two changes at once are made one after the other."""
    site = _site_for(session, moderator, site_slug)
    post = _find_post(session, site, key, lock=lock)
    if post is None:
        raise NotFound("There is no post with that key.")
    return post


def _site_for(session: Session, moderator: Moderator | None, site_slug: str) -> Site:
    site = session.scalar(select(Site).where(Site.slug == site_slug))
    if site is None or (moderator is not None and not moderator.may_moderate(site.id)):
        raise NotFound("There is no site with that name.")
    return site


def _find_post(session: Session, site: Site, key: str, *, lock: bool) -> Post | None:
    query = select(Post).where(Post.site_id == site.id, Post.key == key)
    if lock:
        query = query.with_for_update(of=Post).execution_options(populate_existing=True)
    return session.scalar(query)


def _named_post(
    session: Session, site: Site, key: str, changes: PostChanges, now: dt.datetime
) -> Post:
    """The post a change names, created when the service has not seen it yet and the change gives
    its ``url`` (on one of the site's origins, as a first comment's must be). Two such changes at
    once: the second finds the first's post, locked."""
    post = _find_post(session, site, key, lock=True)
    if post is not None:
        return post
    if changes.url is None:
        raise NotFound("There is no post with that key.")
    if not key.startswith("/") or len(key) > MAX_KEY or ONE_LINE_FORBIDDEN.search(key):
        raise ValidationFailed(
            fields={"post": f"Give the post by its path, starting with /, in {MAX_KEY} characters"}
        )
    origins = {origin.lower().rstrip("/") for origin in site.origins}
    if _origin(changes.url) not in origins:
        raise ValidationFailed(fields={"url": "The post address must be on this site"})
    post = Post(
        site=site,
        key=key,
        title=changes.title or "",
        url=changes.url,
        created_at=now,
        closed=False,
        version=1,
    )
    try:
        with session.begin_nested():
            session.add(post)
            session.flush()
    except IntegrityError:
        found = _find_post(session, site, key, lock=True)
        if found is None:
            raise
        return found
    return post


def posts_with_key(
    session: Session, moderator: Moderator, key: str, site_slug: str | None = None
) -> list[Post]:
    """The posts with this key on the sites ``moderator`` moderates (a few: keys are paths, and
    two blogs may share one), for the queue's post filter."""
    query = select(Post).join(Post.site).where(Post.key == key)
    if site_slug:
        query = query.where(Site.slug == site_slug)
    if not moderator.is_admin:
        query = query.where(Post.site_id.in_([site.id for site in moderator.sites]))
    return list(session.scalars(query.order_by(Site.slug).limit(MAX_QUEUE_POSTS)))


def _window(post: Post) -> dict[str, Any]:
    return {
        "closed": post.closed,
        "opens_at": rfc3339(post.opens_at) if post.opens_at else None,
        "closes_at": rfc3339(post.closes_at) if post.closes_at else None,
    }


def post_data(post: Post, now: dt.datetime) -> dict[str, Any]:
    """A post's state as moderators and webhook consumers see it."""
    state = post_state(post, now)
    return {
        "key": post.key,
        "title": post.title,
        "url": post.url,
        **_window(post),
        "published_at": rfc3339(post.published_at) if post.published_at else None,
        "open": state is PostState.OPEN,
        "state": state.value,
    }


def update_post(
    session: Session,
    moderator: Moderator | None,
    site_slug: str,
    key: str,
    changes: PostChanges,
    *,
    actor: Actor,
    now: dt.datetime,
) -> Post:
    """Close or open a post, or set its window; audited, and announced (``post.closed``,
    ``post.opened``) when it closes (or a moderator closes it) or opens again.

    Opening a post that the automatic close has closed (no window set) opens its window now:
    a moderator's decision outranks the rule. A post the service has not seen is created when
    ``changes`` gives its address (:func:`_named_post`), as it is before it is closed.
    """
    post = _named_post(session, _site_for(session, moderator, site_slug), key, changes, now)
    opens_at = post.opens_at if changes.opens_at is _UNCHANGED else changes.opens_at
    closes_at = post.closes_at if changes.closes_at is _UNCHANGED else changes.closes_at
    if opens_at is not None and closes_at is not None and closes_at <= opens_at:
        raise ValidationFailed(fields={"closes_at": "Give a time after opens_at"})
    closed = post.closed if changes.closed is None else changes.closed
    if changes.closed is False and closes_at is not None and closes_at <= now:
        raise ValidationFailed(
            fields={"closes_at": "Give a time in the future to open the post (or leave it out)"}
        )
    before_state, before = post_state(post, now), _window(post)
    post.closed, post.opens_at, post.closes_at = closed, opens_at, closes_at
    if changes.closed is False and post_state(post, now) is PostState.CLOSED:
        post.opens_at = now  # closed by age: the window that opens it starts now
    after_state, after = post_state(post, now), _window(post)
    if after == before:
        return post
    # Every public read of the thread (its ETag) changes at once.
    session.execute(update(Post).where(Post.id == post.id).values(version=Post.version + 1))
    closing = after_state is PostState.CLOSED and (
        before_state is not PostState.CLOSED or (post.closed and not before["closed"])
    )
    opening = before_state is PostState.CLOSED and after_state is not PostState.CLOSED
    action = AuditAction.POST_UPDATE
    if closing or opening:
        action = AuditAction.POST_CLOSE if closing else AuditAction.POST_OPEN
        kind = EventType.POST_CLOSED if closing else EventType.POST_OPENED
        record_site_event(session, kind, post.site, post_data(post, now), now=now)
    record_admin_audit(
        session,
        actor,
        action,
        site_id=post.site_id,
        before={"post": post.key, **before, "state": before_state.value},
        after={"post": post.key, **after, "state": after_state.value},
        now=now,
    )
    return post
