"""Reading the audit log: append-only, so this module only ever selects."""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
import json
from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session, selectinload

from moderation.comments import decode_cursor, encode_cursor
from moderation.events import rfc3339
from moderation.models import AuditEvent, Comment, Moderator, Site

CSV_COLUMNS = ("at", "actor", "action", "site", "comment", "before", "after")


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
                _safe_cell(event.actor),
                event.action,
                sites.get(event.site_id or 0, ""),
                event.comment.public_id if event.comment else "",
                _safe_cell(json.dumps(event.before, ensure_ascii=False)),
                _safe_cell(json.dumps(event.after, ensure_ascii=False)),
            ]
        )
        yield _drain(buffer)


def _drain(buffer: io.StringIO) -> str:
    value = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    return value


def _safe_cell(value: str) -> str:
    """Defuse spreadsheet formulas (CSV injection): a leading = + - @ is quoted as text."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value
