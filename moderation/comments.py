"""Comments: submitting, moderating and publishing them.

Services take the session first, flush when they need ids and never commit: the caller owns the
transaction.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as dt
import functools
import ipaddress
from collections.abc import Iterable, Sequence
from typing import Any, cast
from urllib.parse import urlsplit

from sqlalchemy import Select, Table, bindparam, func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, contains_eager, make_transient_to_detached
from sqlalchemy.sql.dml import ReturningInsert

from moderation import duplicates, learning, metrics, posts, verification
from moderation.db import become_writer
from moderation.errors import (
    Banned,
    Malformed,
    NotFound,
    OriginNotAllowed,
    ThreadClosed,
    ValidationFailed,
)
from moderation.mail import outbox
from moderation.models import Comment, CommentStatus, Post, Site, new_public_id
from moderation.outbox.events import EventType, record_event
from moderation.sanitising import render_comment
from moderation.spam import Candidate, Evidence, Pipeline, Verdict, filed_for_ban_only
from moderation.validation import MAX_DEPTH, CommentSubmission

DEFAULT_PAGE = 50
MAX_PAGE = 200
MAX_ID = 2**63  # ids are 64-bit signed integers in both databases


@dataclasses.dataclass(frozen=True)
class Page:
    comments: Sequence[Comment]
    next_cursor: str | None


@functools.cache
def _site_by_slug() -> Select[Site]:
    return select(Site).where(Site.slug == bindparam("slug"))


@functools.cache
def _post_by_key() -> Select[Post]:
    return select(Post).where(Post.site_id == bindparam("site_id"), Post.key == bindparam("key"))


@functools.cache
def _post_with_site() -> Select[Post]:
    """A post and its site in one query, by the site's slug and the post's key."""
    return (
        select(Post)
        .join(Post.site)
        .where(Site.slug == bindparam("slug"), Post.key == bindparam("key"))
        .options(contains_eager(Post.site))
    )


def get_site(session: Session, slug: str) -> Site:
    # Statements on every submission and read are built once: building one costs more than
    # running it.
    site = session.scalar(_site_by_slug(), {"slug": slug})
    if site is None:
        raise NotFound("There is no site with that name.")
    return site


def origin_of(url: str) -> str:
    try:
        parts = urlsplit(url)
    except ValueError:  # an unclosed IPv6 literal: an origin no site lists
        return ""
    return f"{parts.scheme}://{parts.netloc}".lower()


def origin_allowed(site: Site, origin: str) -> bool:
    return origin_listed(site.origins, origin)


def origin_listed(origins: Iterable[str], origin: str) -> bool:
    return origin.lower().rstrip("/") in {o.lower().rstrip("/") for o in origins}


# NAT64's well-known prefix (RFC 6052): an IPv4 address in the last 32 bits.
NAT64_PREFIX = ipaddress.ip_network("64:ff9b::/96")


def client_ip(address: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The client's address, with an IPv4 address carried in IPv6 unwrapped: IPv4-mapped
    (``::ffff:1.2.3.4``, from a dual-stack listener or a proxy), 6to4, Teredo (the client's
    public address) and NAT64. Otherwise every IPv4 client would share one IPv6 /48."""
    if not address:
        return None
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        if ip.sixtofour is not None:
            return ip.sixtofour
        if ip.teredo is not None:
            return ip.teredo[1]
        if ip in NAT64_PREFIX:
            return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip


def client_network(address: str | None) -> str | None:
    """Reduce a client address to its network (/24 or /48) before it is stored."""
    ip = client_ip(address)
    if ip is None:
        return None
    prefix = 24 if ip.version == 4 else 48
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))


def is_closed(post: Post, now: dt.datetime, *, published: dt.datetime | None = None) -> bool:
    """Whether the post takes no comments now (closed, or its window not yet open): one rule,
    :func:`moderation.posts.state_at`, shared with the thread's ETag."""
    return posts.post_state(post, now, published=published) is not posts.PostState.OPEN


def _new_post(site: Site, submission: CommentSubmission, now: dt.datetime) -> Post:
    """A first comment's post, its address checked, not yet added: it is created with the
    comment, under the write lock (see :func:`_create_post`)."""
    url = submission.post_url
    if url is None:
        if not (submission.post.startswith("/") and site.origins):
            raise ValidationFailed(fields={"post_url": "Enter the address of the post"})
        url = site.origins[0].rstrip("/") + submission.post
    if not origin_allowed(site, origin_of(url)):
        raise ValidationFailed(fields={"post_url": "The post address must be on this site"})
    return Post(
        site=site,
        key=submission.post,
        title=submission.post_title or "",
        url=url,
        created_at=now,
        closed=False,
        version=1,
    )


def _create_post(session: Session, post: Post) -> Post:
    """Add a first comment's new post. Two first comments may race to create it: the loser finds
    the winner's."""
    try:
        with session.begin_nested():
            session.add(post)
            session.flush()
    except IntegrityError:
        found = find_post(session, post.site, post.key)
        if found is None:
            raise
        return found
    return post


def _reply_parent(session: Session, post: Post, parent_public_id: str) -> Comment:
    parent = session.scalar(
        select(Comment).where(
            Comment.public_id == parent_public_id,
            Comment.post_id == post.id,
            Comment.status == CommentStatus.APPROVED,
        )
    )
    if parent is None:
        raise ValidationFailed(
            fields={"parent_id": "The comment you are replying to cannot be found"}
        )
    # Threads nest MAX_DEPTH deep; a reply to the deepest level joins that level's thread.
    ancestors = [parent]
    while ancestors[-1].parent is not None and len(ancestors) < MAX_DEPTH:
        ancestors.append(ancestors[-1].parent)
    if len(ancestors) >= MAX_DEPTH:
        return ancestors[1]
    return parent


def submit_comment(
    session: Session,
    site_slug: str,
    submission: CommentSubmission,
    *,
    now: dt.datetime,
    origin: str | None = None,
    client_address: str | None = None,
    user_agent: str | None = None,
    pipeline: Pipeline | None = None,
    evidence: Evidence | None = None,
    secret: str | None = None,
) -> Comment:
    """Accept a commenter's submission into the queue as a pending comment.

    With a ``pipeline``, its checks run first: a reject raises :class:`ValidationFailed`, a spam
    verdict files the comment as spam, and every reason that fired is kept in ``signals``.
    With the app's ``secret`` (which keys verified addresses), a site that verifies email keeps
    the comment unconfirmed and mails its author a confirmation link instead.
    """
    # Everything is read and checked first; the writes come last, together (see become_writer).
    post = session.scalar(_post_with_site(), {"slug": site_slug, "key": submission.post})
    site = post.site if post is not None else get_site(session, site_slug)
    if origin is not None and not origin_allowed(site, origin):
        raise OriginNotAllowed()
    if post is None:
        post = _new_post(site, submission, now)
    if is_closed(post, now, published=submission.published):
        raise ThreadClosed()
    parent = _reply_parent(session, post, submission.parent_id) if submission.parent_id else None
    status, signals = CommentStatus.PENDING, []
    verdict = Verdict.ACCEPT
    spam_score: float | None = None
    text_sketch: duplicates.Sketch | None = None
    network = client_network(client_address)
    if pipeline is not None:
        candidate = Candidate(
            site=site,
            post=post,
            author_name=submission.author_name,
            author_email=submission.author_email,
            body=submission.body,
            evidence=evidence or Evidence(client_address=client_address),
            now=now,
            client_network=network,
            lang=submission.lang,
        )
        try:
            outcome = pipeline.run(session, candidate)
        except ValidationFailed:
            metrics.SUBMISSIONS.labels(Verdict.REJECT.value).inc()  # nothing will be committed
            raise
        except Banned:
            metrics.SUBMISSIONS.labels("banned").inc()
            raise
        verdict, signals = outcome.verdict, outcome.signals_json()
        spam_score = outcome.spam_score
        text_sketch = candidate.sketch
        if outcome.verdict is Verdict.SPAM:
            status = CommentStatus.SPAM
    if (
        status is CommentStatus.PENDING
        and secret is not None
        and verification.needs_confirmation(session, site, submission.author_email, secret=secret)
    ):
        status = CommentStatus.UNCONFIRMED
    body_html = render_comment(submission.body)
    text_sketch = text_sketch or duplicates.sketch(submission.body)
    become_writer(session)
    if status is not CommentStatus.SPAM and post not in session:
        # The date comes from the reader's browser, so it is taken only when the post is created
        # with its first comment: a later comment cannot backdate a post that has been taking
        # comments, and a comment filed as spam (a banned sender's too) changes nothing public.
        posts.published_for(post, submission.published, now)
    if post not in session:
        post = _create_post(session, post)
    elif submission.post_title and not post.title:
        post.title = submission.post_title
    comment = _add_new_comment(
        session,
        public_id=new_public_id(),
        post_id=post.id,
        parent_id=parent.id if parent else None,
        author_name=submission.author_name,
        author_email=submission.author_email,
        body_text=submission.body,
        body_html=body_html,
        status=status,
        signals=signals,
        official=False,
        client_network=network,
        user_agent=(user_agent or "")[:300] or None,
        submitted_at=now,
        moderated_at=None,
        moderated_by_id=None,
        original_text=None,
        reject_reason=None,
        claimed_by_id=None,
        claimed_until=None,
        import_ref=None,
        notify_decision=submission.notify,
        notify_replies=submission.notify_replies,
        lang=submission.lang,
        verdict=verdict.value if pipeline is not None else None,
        spam_score=spam_score,
        learned=None,
        learned_tokens=None,
        text_fingerprint=text_sketch.fingerprint,
        text_sketch=text_sketch.packed(),
    )
    duplicates.record_keys(session, [(comment.id, post.id, now, text_sketch)])
    if status is CommentStatus.UNCONFIRMED:
        # Nothing is announced until the author confirms (verification.confirm_comment).
        outbox.queue_confirmation(session, comment, now=now)
        return comment
    if status is CommentStatus.SPAM and not filed_for_ban_only(signals):
        # Filed with no moderator: learned as spam until a moderator rescues it (which unlearns).
        learning.follow_decision(session, comment)
    record_event(session, EventType.SUBMITTED, comment, now=now)
    metrics.count_submission(session, verdict.value)
    metrics.count_verdicts(session, site.slug, signals)
    if status is CommentStatus.PENDING:
        outbox.queue_held(session, comment, now=now)
    return comment


@functools.cache
def _insert_comment() -> ReturningInsert[int]:
    table = cast(Table, Comment.__table__)
    return insert(table).returning(table.c.id)


def _add_new_comment(session: Session, **values: Any) -> Comment:
    """INSERT a comment with one Core statement, then attach it to the session as though it had
    been loaded: the unit of work costs three times as much, on every submission. ``values``
    name every column but the id, so reading the comment afterwards runs no query."""
    values["id"] = session.execute(_insert_comment(), values).scalar_one()
    comment = Comment(**values)
    make_transient_to_detached(comment)
    session.add(comment)
    return comment


def encode_cursor(comment_id: int) -> str:
    return base64.urlsafe_b64encode(f"c{comment_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int | None:
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        if raw.startswith("c") and raw[1:].isdigit() and int(raw[1:]) < MAX_ID:
            return int(raw[1:])
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    raise Malformed("The cursor is not valid.", fields={"cursor": "Not a cursor from this API"})


def page_limit(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_PAGE
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_PAGE:
        raise Malformed(
            f"limit must be a whole number from 1 to {MAX_PAGE}.",
            fields={"limit": f"Must be from 1 to {MAX_PAGE}"},
        )
    return int(raw)


def _page(comments: Sequence[Comment], limit: int) -> Page:
    more = len(comments) > limit
    shown = comments[:limit]
    return Page(shown, encode_cursor(shown[-1].id) if more and shown else None)


def find_post(session: Session, site: Site, key: str) -> Post | None:
    return session.scalar(_post_by_key(), {"site_id": site.id, "key": key})


def _unpinned(post: Post) -> Select[Comment]:
    return select(Comment).where(
        Comment.post_id == post.id,
        Comment.status == CommentStatus.APPROVED,
        Comment.pinned_at.is_(None),
    )


def approved_comments(
    session: Session, post: Post, *, cursor: str | None = None, limit: int = DEFAULT_PAGE
) -> Page:
    """A post's approved comments, one page at a time: the first page starts with the pinned
    ones (in the order they were pinned, besides ``limit``), then every other oldest first."""
    after = decode_cursor(cursor)
    query = _unpinned(post)
    if after is not None:
        query = query.where(Comment.id > after)
    rows = session.scalars(query.order_by(Comment.id).limit(limit + 1)).all()
    page = _page(rows, limit)
    if after is not None:
        return page
    pinned = session.scalars(
        select(Comment)
        .where(
            Comment.post_id == post.id,
            Comment.pinned_at.is_not(None),
            Comment.status == CommentStatus.APPROVED,
        )
        .order_by(Comment.pinned_at, Comment.id)
    ).all()
    return Page([*pinned, *page.comments], page.next_cursor) if pinned else page


def cursor_for(session: Session, post: Post, public_id: str, limit: int) -> str | None:
    """The cursor of the page of :func:`approved_comments` that shows ``public_id`` (a permalink
    to comment 350 of 400); None, the first page, for a pinned, unknown or unpublished one."""
    target = session.scalar(
        select(Comment.id).where(
            Comment.public_id == public_id[:64],
            Comment.post_id == post.id,
            Comment.status == CommentStatus.APPROVED,
            Comment.pinned_at.is_(None),
        )
    )
    if target is None:
        return None
    earlier = _unpinned(post).where(Comment.id < target).with_only_columns(func.count())
    before = (session.scalar(earlier) or 0) // limit * limit
    if before == 0:
        return None
    last_id = session.scalar(
        _unpinned(post)
        .with_only_columns(Comment.id)
        .order_by(Comment.id)
        .offset(before - 1)
        .limit(1)
    )
    return encode_cursor(last_id) if last_id is not None else None


def count_approved(session: Session, post: Post) -> int:
    return (
        session.scalar(
            select(func.count())
            .select_from(Comment)
            .where(Comment.post_id == post.id, Comment.status == CommentStatus.APPROVED)
        )
        or 0
    )


@dataclasses.dataclass
class ThreadNode:
    comment: Comment
    replies: list[ThreadNode] = dataclasses.field(default_factory=list)


def nest(flat: Sequence[Comment]) -> list[ThreadNode]:
    """Arrange comments (oldest first) into a thread; a reply whose parent is absent stays top
    level."""
    nodes = {c.id: ThreadNode(c) for c in flat}
    roots: list[ThreadNode] = []
    for comment in flat:
        parent = nodes.get(comment.parent_id) if comment.parent_id else None
        (parent.replies if parent else roots).append(nodes[comment.id])
    return roots


def sender_answer(session: Session, comment: Comment) -> tuple[CommentStatus, str]:
    """What a submission's sender is told: a status and the key of the message to show.

    Every comment a submission stores is received and not public, so the status is ``pending``
    whatever happened to it: filed as spam (bots learn nothing), held, or waiting for its author
    to confirm the address. On a site that confirms addresses the message is the same for an
    address already verified and for one that is not, and says what to do in either case: the
    answer must not tell anyone whether an address was ever verified (a verified address is
    asked again under the trusted policy, so the answer cannot tell that either).
    """
    reply = comment.parent_id is not None
    key = "reply_received" if reply else "received"
    if verification.site_verifies(session, comment.post.site):
        key += "_check_email"
    return CommentStatus.PENDING, key
