"""Reading the audit log: append-only, so this module only ever selects."""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import difflib
import io
import json
import re
from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session, selectinload

from moderation.comments import decode_cursor, encode_cursor
from moderation.events import rfc3339
from moderation.models import AuditEvent, Comment, Moderator, Site

CSV_COLUMNS = ("at", "actor", "action", "site", "comment", "before", "after", "post")


@dataclasses.dataclass(frozen=True)
class AuditFilter:
    moderator: str | None = None
    action: str | None = None
    site: str | None = None
    since: dt.date | None = None
    until: dt.date | None = None


@dataclasses.dataclass(frozen=True)
class AuditPage:
    events: Sequence[AuditEvent]
    next_cursor: str | None


def _query(moderator: Moderator, wanted: AuditFilter) -> Select[Any]:
    query = select(AuditEvent)
    if not moderator.is_admin:
        query = query.where(AuditEvent.site_id.in_([s.id for s in moderator.sites]))
    if wanted.moderator:
        query = query.where(
            AuditEvent.moderator_id.in_(
                select(Moderator.id).where(Moderator.login == wanted.moderator)
            )
        )
    if wanted.action:
        query = query.where(AuditEvent.action == wanted.action)
    if wanted.site:
        query = query.where(AuditEvent.site_id.in_(select(Site.id).where(Site.slug == wanted.site)))
    if wanted.since:
        query = query.where(AuditEvent.at >= _midnight(wanted.since))
    if wanted.until:
        query = query.where(AuditEvent.at < _midnight(wanted.until + dt.timedelta(days=1)))
    return query


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)


def list_audit(
    session: Session,
    moderator: Moderator,
    wanted: AuditFilter,
    *,
    cursor: str | None = None,
    limit: int = 100,
) -> AuditPage:
    """Audit events the moderator may see, newest first."""
    query = _query(moderator, wanted)
    before = decode_cursor(cursor)
    if before is not None:
        query = query.where(AuditEvent.id < before)
    rows = session.scalars(
        query.order_by(AuditEvent.id.desc()).limit(limit + 1).options(_related())
    ).all()
    shown = rows[:limit]
    return AuditPage(shown, encode_cursor(shown[-1].id) if len(rows) > limit else None)


def _related() -> Any:
    return selectinload(AuditEvent.comment).selectinload(Comment.post)


def export_csv(session: Session, moderator: Moderator, wanted: AuditFilter) -> Iterator[str]:
    """The filtered audit log as CSV lines, oldest first, streamed in batches."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    yield _drain(buffer)
    query = _query(moderator, wanted).order_by(AuditEvent.id).options(_related())
    sites = {site.id: site.slug for site in session.scalars(select(Site))}
    for event in session.scalars(query.execution_options(yield_per=500)):
        writer.writerow(
            [
                rfc3339(event.at),
                safe_cell(event.actor),
                event.action,
                sites.get(event.site_id or 0, ""),
                event.comment_public_id or (event.comment.public_id if event.comment else ""),
                safe_cell(json.dumps(event.before, ensure_ascii=False)),
                safe_cell(json.dumps(event.after, ensure_ascii=False)),
                safe_cell(event.post_key or ""),
            ]
        )
        yield _drain(buffer)


def _drain(buffer: io.StringIO) -> str:
    value = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    return value


def safe_cell(value: str) -> str:
    """Defuse spreadsheet formulas (CSV injection): a leading = + - @ is quoted as text."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


# What each action is, in words, for the audit page (the CSV keeps the names of record).
ACTION_LABELS = {
    "approve": "Approved",
    "reject": "Rejected",
    "spam": "Marked as spam",
    "delete": "Deleted",
    "restore": "Restored to the queue",
    "undo": "Undid a decision",
    "edit": "Edited the text",
    "reply": "Replied as the blog",
    "confirm": "Confirmed their address",
    "erase": "Erased personal data",
    "unapprove": "Unpublished (back to the queue)",
    "pin": "Pinned",
    "unpin": "Unpinned",
    "report": "Reported by a reader",
    "dismiss_reports": "Dismissed readers' reports",
    "site.add": "Added a site",
    "site.update": "Changed a site's settings",
    "moderator.add": "Added a moderator",
    "moderator.update": "Changed a moderator",
    "moderator.password": "Set a moderator's password",
    "moderator.mail_preference": "Changed their email settings",
    "moderator.disable": "Disabled a moderator",
    "moderator.enable": "Enabled a moderator",
    "token.add": "Created an API token",
    "token.revoke": "Revoked an API token",
    "post.close": "Closed a post to comments",
    "post.open": "Opened a post to comments",
    "post.update": "Changed a post's comment window",
    "webhook.add": "Added a webhook endpoint",
    "webhook.update": "Changed a webhook endpoint",
    "webhook.enable": "Enabled a webhook endpoint",
    "webhook.disable": "Disabled a webhook endpoint",
    "webhook.rotate_secret": "Rotated a webhook endpoint's secret",
    "retention.purge": "Purged data past its retention period",
    "ban.add": "Banned",
    "ban.lift": "Lifted a ban",
    "ban.remove_recent": "Rejected a banned author's recent comments",
}
# Texts longer than this many words are not compared on the page (the CSV has both whole).
DIFF_MAX_WORDS = 3000
_WORDS = re.compile(r"\S+\s*|\s+")


@dataclasses.dataclass(frozen=True)
class Change:
    """An audit event's before and after, for people: "pending → approved, reason: Off topic",
    and for a text edit the words removed and added."""

    summary: str
    text_edited: bool = False
    # (kind, words) with kind "same", "removed" or "added"; None when too long to compare.
    diff: tuple[tuple[str, str], ...] | None = None


def action_label(action: str) -> str:
    return ACTION_LABELS.get(action, action.replace(".", " ").replace("_", " ").capitalize())


def _shown(value: object) -> str:
    if value is None or value == "" or value == []:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(_shown(v) for v in value)
    text = str(value)
    return text if len(text) <= 200 else text[:199] + "…"


def word_diff(before: str, after: str) -> tuple[tuple[str, str], ...] | None:
    """The words removed and added between two texts (difflib on word tokens)."""
    old, new = _WORDS.findall(before), _WORDS.findall(after)
    if len(old) > DIFF_MAX_WORDS or len(new) > DIFF_MAX_WORDS:
        return None
    parts: list[tuple[str, str]] = []
    matcher = difflib.SequenceMatcher(a=old, b=new, autojunk=False)
    for op, a1, a2, b1, b2 in matcher.get_opcodes():
        if op == "equal":
            parts.append(("same", "".join(old[a1:a2])))
            continue
        if a2 > a1:
            parts.append(("removed", "".join(old[a1:a2])))
        if b2 > b1:
            parts.append(("added", "".join(new[b1:b2])))
    return tuple(parts)


def describe_change(before: dict[str, Any], after: dict[str, Any]) -> Change:
    """Before and after in words; the keys of record stay in the CSV."""
    parts: list[str] = []
    if "status" in before or "status" in after:
        parts.append(f"{before.get('status', 'new')} → {after.get('status', 'unchanged')}")
    text_edited = "body_text" in before and "body_text" in after
    skip = {"status", "body_text", "reason", "login", "post"}
    for key in sorted((set(before) | set(after)) - skip):
        name = key.replace("_", " ")
        if key in before and key in after:
            if before[key] != after[key]:
                parts.append(f"{name}: {_shown(before[key])} → {_shown(after[key])}")
        elif key in after:
            parts.append(f"{name}: {_shown(after[key])}")
        else:
            parts.append(f"{name}: {_shown(before[key])} removed")
    login = after.get("login") or before.get("login")
    if login:
        parts.insert(0, f"moderator {login}")
    post = after.get("post") or before.get("post")
    if isinstance(post, str):
        parts.insert(0, f"post {post}")
    if after.get("reason"):
        parts.append(f"reason: {_shown(after['reason'])}")
    if text_edited:
        parts.append("text edited")
    diff = word_diff(str(before["body_text"]), str(after["body_text"])) if text_edited else None
    return Change(", ".join(parts) or "—", text_edited, diff)
