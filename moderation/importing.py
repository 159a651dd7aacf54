"""Importing comment history from a WordPress (WXR) or Disqus export.

An import reads the file twice, streaming both times. The first pass, :func:`read_export`, checks
that the file is well-formed XML of the expected kind and collects its posts (threads), before
anything is written: a broken file fails with its line and column and imports nothing. The second
pass, :func:`import_export`, writes everything in the caller's one transaction, so an interrupted
run leaves nothing behind either. Memory holds the posts and a map of source comment ids to ours,
never the file: parsed elements are freed as soon as they are read.

Imported comments are sanitised like a submission, keep their source id (``import_ref``) so that
a second run adds nothing, send no webhook events or mail (they are history, not news) and are
audited once per run.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import functools
import html
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, Literal
from urllib.parse import urlsplit

from email_validator import EmailNotValidError, validate_email
from lxml import etree
from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from moderation import duplicates, learning
from moderation.comments import client_network, origin_allowed, origin_of
from moderation.errors import ServiceError
from moderation.events import Actor, AuditAction, record_admin_audit
from moderation.models import Comment, CommentStatus, Post, Site, new_public_id
from moderation.sanitising import normalise_text, render_comment
from moderation.validation import CONTROL_CHARACTERS, MAX_NAME, MAX_POST_KEY, MAX_TITLE, MAX_URL

Source = Literal["wordpress", "disqus"]
SOURCES: tuple[Source, ...] = ("wordpress", "disqus")
# Called with the number of bytes read since the last call.
Progress = Callable[[int], None]

BATCH = 500
# PostgreSQL advisory lock (this number, the site's id) held by an import for its transaction.
IMPORT_LOCK = 0x696D70
ANONYMOUS = "Anonymous"

# wp:comment_approved → our status. "post-trashed": the comment's post went to the trash.
WORDPRESS_STATUSES = {
    "1": CommentStatus.APPROVED,
    "0": CommentStatus.PENDING,
    "spam": CommentStatus.SPAM,
    "trash": CommentStatus.DELETED,
    "post-trashed": CommentStatus.DELETED,
}
WORDPRESS_POST_TYPES = frozenset({"post", "page"})
WORDPRESS_COMMENT_TYPES = frozenset({"", "comment"})
WORDPRESS_LINKBACKS = frozenset({"pingback", "trackback"})


class MalformedExport(ServiceError):
    """The file cannot be read as an export of the kind named; nothing was imported."""

    code = "malformed_export"
    status = 400
    default_message = "The file is not an export that can be read."

    def __init__(self, problem: str, *, line: int | None = None, column: int | None = None):
        where = ""
        if line:
            where = f"line {line}, column {column}: " if column else f"line {line}: "
        super().__init__(f"{where}{problem}; nothing was imported")
        self.line = line
        self.column = column


@dataclasses.dataclass(frozen=True)
class SourcePost:
    """A post (WordPress item, Disqus thread) as the export describes it."""

    ref: str
    link: str
    title: str
    created_at: dt.datetime | None
    closed: bool
    # Why the post and its comments are not imported, when the export itself says so.
    skip: str | None = None


@dataclasses.dataclass(frozen=True)
class SourceComment:
    """A comment as the export describes it; checked and mapped when it is imported."""

    ref: str
    post_ref: str
    parent_ref: str | None
    author_name: str
    author_email: str
    author_address: str | None
    submitted_at: dt.datetime | None
    status: CommentStatus | None
    text: str
    skip: str | None = None


Record = SourcePost | SourceComment


@dataclasses.dataclass(frozen=True)
class ExportPlan:
    """What the first pass found: the file checked, its posts, how many comments it holds."""

    source: Source
    path: Path
    posts: dict[str, SourcePost]
    comments: int
    # What the audit calls the file: its name, or where it came from (an upload has no name).
    name: str = ""


@dataclasses.dataclass
class ImportReport:
    """What a run did: counts, and the reasons for everything not imported."""

    posts_added: int = 0
    imported: int = 0
    without_email: int = 0
    top_level_replies: int = 0
    skipped: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    failed: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)

    def as_dict(self) -> dict[str, Any]:
        return {
            "posts_added": self.posts_added,
            "imported": self.imported,
            "without_email": self.without_email,
            "top_level_replies": self.top_level_replies,
            "skipped": dict(self.skipped.most_common()),
            "failed": dict(self.failed.most_common()),
        }


# Reading ---------------------------------------------------------------------------------------


def read_export(
    path: Path, source: Source, progress: Progress | None = None, *, name: str | None = None
) -> ExportPlan:
    """The first pass: check the whole file and collect its posts; raise
    :class:`MalformedExport`."""
    posts: dict[str, SourcePost] = {}
    comments = 0
    for record in _records(path, source, progress):
        if isinstance(record, SourcePost):
            posts[record.ref] = record
        else:
            comments += 1
    return ExportPlan(
        source=source, path=path, posts=posts, comments=comments, name=name or path.name
    )


class _CountingReader:
    """A binary file that reports how much has been read, for a progress bar."""

    def __init__(self, raw: BinaryIO, progress: Progress):
        self.raw = raw
        self.progress = progress

    def read(self, size: int = -1) -> bytes:
        chunk = self.raw.read(size)
        self.progress(len(chunk))
        return chunk


def _records(path: Path, source: Source, progress: Progress | None) -> Iterator[Record]:
    with path.open("rb") as raw:
        stream: Any = _CountingReader(raw, progress) if progress else raw
        etree.clear_error_log()  # this thread's log: only this file's errors are read below
        try:
            if source == "wordpress":
                yield from _wordpress_records(stream)
            else:
                yield from _disqus_records(stream)
        except etree.XMLSyntaxError as error:
            line, column = error.position
            # Some errors (an undeclared entity such as &nbsp; with entities unresolved) come
            # with no position; the parser's log has the first real one.
            logged = [e for e in error.error_log if e.line > 0]
            if line == 0 and logged:
                first = logged[0]
                raise MalformedExport(
                    f"not well-formed XML ({first.message})", line=first.line, column=first.column
                ) from None
            if line == 0:
                raise MalformedExport("the file is empty") from None
            message = re.sub(r",? line \d+, column \d+$", "", error.msg or "")
            raise MalformedExport(
                f"not well-formed XML ({message})", line=line, column=column
            ) from None


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _ended_at(stream: Any, root: str, kind: str, depth: int) -> Iterator[Any]:
    """Elements ending ``depth`` levels below the root, each freed once the consumer moves on."""
    level = 0
    parser = etree.iterparse(
        stream,
        events=("start", "end"),
        # No entity expansion, no DTD or network fetch, libxml2's size limits kept (huge_tree
        # off): exports never need any of them, and they are how XML files attack parsers.
        resolve_entities=False,
        load_dtd=False,
        no_network=True,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )
    for event, element in parser:
        if event == "start":
            if level == 0:
                if element.getroottree().docinfo.internalDTD is not None:
                    raise MalformedExport(
                        "the file declares a DTD, which exports never do", line=element.sourceline
                    )
                if _local(element.tag) != root:
                    raise MalformedExport(
                        f"this is not a {kind} export: it starts with <{_local(element.tag)}>, "
                        f"not <{root}>",
                        line=element.sourceline,
                    )
            level += 1
            continue
        level -= 1
        if level == depth:
            yield element
            element.clear(keep_tail=False)
            parent = element.getparent()
            if parent is not None:
                while element.getprevious() is not None:
                    del parent[0]


def _fields(element: Any, wanted: frozenset[str]) -> dict[str, str]:
    return {
        _local(child.tag): (child.text or "").strip()
        for child in element
        if _local(child.tag) in wanted
    }


def _one_line(value: str, limit: int) -> str:
    return " ".join(CONTROL_CHARACTERS.sub("", value).split())[:limit]


def _text(value: str) -> str:
    return normalise_text(CONTROL_CHARACTERS.sub("", value))


def _wordpress_time(value: str | None) -> dt.datetime | None:
    try:
        moment = dt.datetime.strptime((value or "").strip(), "%Y-%m-%d %H:%M:%S")
    except ValueError:  # missing, or WordPress's "0000-00-00 00:00:00" for "never"
        return None
    return moment.replace(tzinfo=dt.UTC)


_ITEM_FIELDS = frozenset(
    {"title", "link", "post_id", "post_type", "post_date_gmt", "post_date", "comment_status"}
)
_COMMENT_FIELDS = frozenset(
    {
        "comment_id",
        "comment_author",
        "comment_author_email",
        "comment_author_IP",
        "comment_date_gmt",
        "comment_date",
        "comment_content",
        "comment_approved",
        "comment_type",
        "comment_parent",
    }
)


def _wordpress_records(stream: Any) -> Iterator[Record]:
    """Items (posts, pages, ...) and their comments from a WXR file, as they come."""
    versioned = False
    for element in _ended_at(stream, "rss", "WordPress", depth=2):
        name = _local(element.tag)
        if name == "wxr_version":
            versioned = True
        elif name == "item":
            if not versioned:
                raise MalformedExport(
                    "this is not a WordPress export: no <wp:wxr_version> before the first item",
                    line=element.sourceline,
                )
            yield from _wordpress_item(element)
    if not versioned:
        raise MalformedExport("this is not a WordPress export: it has no <wp:wxr_version>")


def _wordpress_item(item: Any) -> Iterator[Record]:
    fields = _fields(item, _ITEM_FIELDS)
    post_ref = fields.get("post_id") or f"line {item.sourceline}"
    post_type = fields.get("post_type", "post")
    yield SourcePost(
        ref=post_ref,
        link=fields.get("link", ""),
        title=_one_line(fields.get("title", ""), MAX_TITLE),
        created_at=_wordpress_time(fields.get("post_date_gmt"))
        or _wordpress_time(fields.get("post_date")),
        closed=fields.get("comment_status") == "closed",
        skip=None if post_type in WORDPRESS_POST_TYPES else "not a post or page",
    )
    for child in item:
        if _local(child.tag) != "comment":
            continue
        comment = _fields(child, _COMMENT_FIELDS)
        kind = comment.get("comment_type", "")
        skip = None
        if kind in WORDPRESS_LINKBACKS:
            skip = "pingback or trackback"
        elif kind not in WORDPRESS_COMMENT_TYPES:
            skip = "not a comment (another comment type)"
        parent = comment.get("comment_parent", "0")
        yield SourceComment(
            ref=comment.get("comment_id", ""),
            post_ref=post_ref,
            parent_ref=None if parent in ("", "0") else parent,
            author_name=_one_line(comment.get("comment_author", ""), MAX_NAME),
            author_email=comment.get("comment_author_email", ""),
            author_address=comment.get("comment_author_IP") or None,
            # The local time stands in for UTC only when the export lacks the UTC time.
            submitted_at=_wordpress_time(comment.get("comment_date_gmt"))
            or _wordpress_time(comment.get("comment_date")),
            status=WORDPRESS_STATUSES.get(comment.get("comment_approved", "")),
            text=_text(comment.get("comment_content", "")),
            skip=skip,
        )


def _dsq_id(element: Any) -> str:
    for key, value in element.attrib.items():
        if _local(key) == "id":
            return str(value).strip()
    return ""


def _child(element: Any, name: str) -> Any:
    for child in element:
        if _local(child.tag) == name:
            return child
    return None


def _disqus_time(value: str | None) -> dt.datetime | None:
    try:
        moment = dt.datetime.fromisoformat((value or "").strip())
    except ValueError:
        return None
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)


# Tried only where a run of white space starts and read once (possessive); attributes end at the
# next "<" too: tried at every position, a long run of spaces or of "</p><p x" was quadratic.
_PARAGRAPH_BREAK = re.compile(r"(?<!\s)\s*+</p>\s*+<p(?:\s[^<>]*+)?>\s*+", re.IGNORECASE)
_PARAGRAPH_EDGE = re.compile(r"^\s*<p(?:\s[^>]*)?>|</p>\s*$", re.IGNORECASE)
_LINE_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)


def disqus_text(message: str) -> str:
    """Disqus stores a comment as HTML paragraphs; turn it back into the text as it was typed.

    Other markup is left for the sanitiser, which keeps the allowed inline tags and escapes the
    rest, exactly as for a submission.
    """
    text = _PARAGRAPH_BREAK.sub("\n\n", message)
    text = _LINE_BREAK.sub("\n", _PARAGRAPH_EDGE.sub("", text))
    return _text(html.unescape(text))


_THREAD_FIELDS = frozenset({"link", "title", "createdAt", "isClosed"})
_POST_FIELDS = frozenset({"message", "createdAt", "isDeleted", "isSpam", "isApproved", "ipAddress"})
_AUTHOR_FIELDS = frozenset({"name", "username", "email"})


def _disqus_records(stream: Any) -> Iterator[Record]:
    """Threads and posts (comments) from a Disqus export, in file order (either may come first)."""
    for element in _ended_at(stream, "disqus", "Disqus", depth=1):
        name = _local(element.tag)
        if name == "thread":
            fields = _fields(element, _THREAD_FIELDS)
            yield SourcePost(
                ref=_dsq_id(element) or f"line {element.sourceline}",
                link=fields.get("link", ""),
                title=_one_line(fields.get("title", ""), MAX_TITLE),
                created_at=_disqus_time(fields.get("createdAt")),
                closed=fields.get("isClosed") == "true",
            )
        elif name == "post":
            fields = _fields(element, _POST_FIELDS)
            author = _child(element, "author")
            who = _fields(author, _AUTHOR_FIELDS) if author is not None else {}
            thread, parent = _child(element, "thread"), _child(element, "parent")
            if fields.get("isSpam") == "true":
                status = CommentStatus.SPAM
            elif fields.get("isDeleted") == "true":
                status = CommentStatus.DELETED
            elif fields.get("isApproved") == "false":
                status = CommentStatus.PENDING
            else:
                status = CommentStatus.APPROVED
            yield SourceComment(
                ref=_dsq_id(element),
                post_ref=_dsq_id(thread) if thread is not None else "",
                parent_ref=(_dsq_id(parent) or None) if parent is not None else None,
                author_name=_one_line(who.get("name") or who.get("username", ""), MAX_NAME),
                author_email=who.get("email", ""),
                author_address=fields.get("ipAddress") or None,
                submitted_at=_disqus_time(fields.get("createdAt")),
                status=status,
                text=disqus_text(fields.get("message", "")),
            )


# Writing ---------------------------------------------------------------------------------------


def import_export(
    session: Session,
    site: Site,
    plan: ExportPlan,
    *,
    now: dt.datetime,
    actor: Actor,
    progress: Progress | None = None,
) -> ImportReport:
    """The second pass: add the posts and comments not imported before, in one transaction.

    Imports into one site take turns: a second import of the same file, started while the first
    runs, waits for it and then finds every comment already there (on SQLite the write lock
    serialises them already; on PostgreSQL both would insert the same rows and one fail)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(IMPORT_LOCK, site.id)))
    run = _ImportRun(session, site, plan, now)
    for record in _records(plan.path, plan.source, progress):
        if isinstance(record, SourcePost):
            run.post(record.ref)
        else:
            run.comment(record)
    run.finish()
    if run.report.imported:
        # Imported approved and spam comments are the site's history of decisions: learn them.
        learning.rebuild(session, site.id)
    record_admin_audit(
        session,
        actor,
        AuditAction.COMMENTS_IMPORT,
        site_id=site.id,
        before={},
        after={"source": plan.source, "file": plan.name, **run.report.as_dict()},
        now=now,
    )
    return run.report


class _ImportRun:
    """One import's state: the id maps that thread replies and make a second run add nothing."""

    def __init__(self, session: Session, site: Site, plan: ExportPlan, now: dt.datetime):
        self.session, self.site, self.plan, self.now = session, site, plan, now
        self.prefix = f"{plan.source}:"
        self.report = ImportReport()
        # Source comment id → our comment id, for this site: earlier runs' and this run's.
        self.known: dict[str, int] = {
            str(ref).removeprefix(self.prefix): comment_id
            for comment_id, ref in session.execute(
                select(Comment.id, Comment.import_ref)
                .join(Post)
                .where(Post.site_id == site.id, Comment.import_ref.startswith(self.prefix))
                .execution_options(yield_per=10_000)
            )
        }
        # Source post id → our post id, or why its comments are not imported.
        self.posts: dict[str, int | _Unusable] = {}
        self.existing_posts: set[int] = set()
        self.touched_posts: set[int] = set()
        self.batch: list[dict[str, Any]] = []
        self.in_batch: set[str] = set()
        self.sketches: list[duplicates.Sketch] = []
        # Replies whose parent had no id yet when they were written: (reply, parent) refs.
        self.later: list[tuple[str, str]] = []

    def post(self, ref: str) -> int | _Unusable:
        found = self.posts.get(ref)
        if found is None:
            found = self.posts[ref] = self._add_post(ref)
        return found

    def _add_post(self, ref: str) -> int | _Unusable:
        source = self.plan.posts.get(ref)
        if source is None:
            return _Unusable("failed", "comment on a post or thread not in the file")
        parts = _split(source.link)
        skip = source.skip
        if skip is None and parts is None:
            skip = "no usable address"
        elif skip is None and parts and not origin_allowed(self.site, origin_of(parts[1])):
            skip = "address not on this site"
        if skip or parts is None:
            self.report.skipped[f"post: {skip}"] += 1
            return _Unusable("skipped", f"comment on a skipped post: {skip}")
        key, url = parts
        post = self.session.scalar(
            select(Post).where(Post.site_id == self.site.id, Post.key == key)
        )
        if post is not None:
            if source.title and not post.title:
                post.title = source.title
            self.existing_posts.add(post.id)
            return post.id
        post = Post(
            site_id=self.site.id,
            key=key,
            title=source.title,
            url=url,
            closed=source.closed,
            created_at=source.created_at or self.now,
        )
        self.session.add(post)
        self.session.flush()
        self.report.posts_added += 1
        return post.id

    def comment(self, record: SourceComment) -> None:
        report = self.report
        if record.skip:
            report.skipped[record.skip] += 1
            return
        if not record.ref:
            report.failed["comment without an id"] += 1
            return
        if record.ref in self.known or record.ref in self.in_batch:
            report.skipped["comment already imported"] += 1
            return
        post_id = self.post(record.post_ref)
        if isinstance(post_id, _Unusable):
            (report.skipped if post_id.outcome == "skipped" else report.failed)[post_id.reason] += 1
            return
        if not record.text and record.status is CommentStatus.DELETED:
            report.skipped["comment deleted, with no text left"] += 1
            return
        problem = _problem(record)
        if problem:
            report.failed[problem] += 1
            return
        assert record.submitted_at is not None and record.status is not None
        email = _email(record.author_email)
        if not email:
            report.without_email += 1
        parent_id = self.known.get(record.parent_ref) if record.parent_ref else None
        if record.parent_ref and parent_id is None:
            self.later.append((record.ref, record.parent_ref))
        text_sketch = duplicates.sketch(record.text)
        self.sketches.append(text_sketch)
        self.batch.append(
            {
                "text_fingerprint": text_sketch.fingerprint,
                "text_sketch": text_sketch.packed(),
                "public_id": new_public_id(),
                "post_id": post_id,
                "parent_id": parent_id,
                "author_name": record.author_name or ANONYMOUS,
                "author_email": email,
                "body_text": record.text,
                "body_html": render_comment(record.text),
                "status": record.status,
                "signals": [],
                "official": False,
                "client_network": client_network(record.author_address),
                "submitted_at": record.submitted_at,
                "import_ref": self.prefix + record.ref,
            }
        )
        self.in_batch.add(record.ref)
        if post_id in self.existing_posts:
            self.touched_posts.add(post_id)
        report.imported += 1
        if len(self.batch) >= BATCH:
            self._write_batch()

    def _write_batch(self) -> None:
        if not self.batch:
            return
        ids = self.session.scalars(
            insert(Comment).returning(Comment.id, sort_by_parameter_order=True), self.batch
        ).all()
        for row, comment_id in zip(self.batch, ids, strict=True):
            self.known[row["import_ref"].removeprefix(self.prefix)] = comment_id
        duplicates.record_keys(
            self.session,
            [
                (comment_id, row["post_id"], row["submitted_at"], text_sketch)
                for row, comment_id, text_sketch in zip(self.batch, ids, self.sketches, strict=True)
            ],
        )
        self.sketches.clear()
        self.batch.clear()
        self.in_batch.clear()

    def finish(self) -> None:
        """Thread the replies that came before their parent, and freshen the ETags of old posts."""
        self._write_batch()
        threads = []
        for reply, parent in self.later:
            if parent in self.known:
                threads.append({"id": self.known[reply], "parent_id": self.known[parent]})
            else:
                self.report.top_level_replies += 1
        for start in range(0, len(threads), BATCH):
            self.session.execute(update(Comment), threads[start : start + BATCH])
        touched = sorted(self.touched_posts)
        for start in range(0, len(touched), BATCH):
            self.session.execute(
                update(Post)
                .where(Post.id.in_(touched[start : start + BATCH]))
                .values(version=Post.version + 1)
            )


@dataclasses.dataclass(frozen=True)
class _Unusable:
    outcome: Literal["skipped", "failed"]
    reason: str


def _split(link: str) -> tuple[str, str] | None:
    """A post's key (its path, with the query if it has one, as WordPress's ?p=123) and URL."""
    parts = re.sub(r"\s", "", link)
    try:
        split = urlsplit(parts)
    except ValueError:  # an unclosed IPv6 literal
        return None
    if split.scheme not in ("http", "https") or not split.netloc or len(parts) > MAX_URL:
        return None
    key = (split.path or "/") + (f"?{split.query}" if split.query else "")
    if len(key) > MAX_POST_KEY:
        return None
    return key, parts


def _problem(record: SourceComment) -> str | None:
    if record.submitted_at is None:
        return "comment without a valid date"
    if record.status is None:
        return "comment with an unknown status"
    if not record.text:
        return "comment without text"
    return None


@functools.lru_cache(maxsize=4096)  # regular commenters come back: check each address once
def _email(address: str) -> str:
    """The address in email-validator's normal form (no DNS check), or "" when there is none."""
    try:
        return validate_email(address.strip(), check_deliverability=False).normalized
    except EmailNotValidError:
        return ""
