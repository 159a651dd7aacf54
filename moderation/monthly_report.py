"""A site's monthly report: what came in, what was decided and how long commenters waited, for
a team's service-performance figures and FOI answers.

Decisions are counted from the audit log, arrivals from the comments. The report holds counts and
durations only: no names, addresses, texts, networks or moderators' logins.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
import math
import re
import statistics
import zoneinfo
from collections import Counter
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from moderation.actions import AUTOMATIC, DECISIONS
from moderation.audit import safe_cell
from moderation.comments import get_site
from moderation.errors import Malformed, NotFound
from moderation.events import AuditAction
from moderation.models import AuditEvent, Comment, Moderator, Post, Site

# A site's months run midnight to midnight in this zone until sites have their own setting.
DEFAULT_ZONE = "Europe/London"
# The audit actions of a reader's counted report and of a new ban (issue 18), as its parts name
# them (AuditAction.REPORT, AuditAction.BAN_ADD): counted once they are on main.
REPORT_ACTIONS = frozenset({"report"})
BAN_ACTIONS = frozenset({"ban.add"})
CSV_COLUMNS = ("site", "month", "time_zone", "measure", "detail", "value")
NO_REASON = "No reason given"
_MONTH = re.compile(r"(\d{4})-(\d{2})")
FIRST_YEAR = 2000


def site_zone(site: Site) -> zoneinfo.ZoneInfo:
    """The time zone a site's days and months are counted in: its own setting."""
    return zoneinfo.ZoneInfo(site.time_zone or DEFAULT_ZONE)


@dataclasses.dataclass(frozen=True, order=True)
class Month:
    year: int
    month: int

    @classmethod
    def parse(cls, raw: str) -> Month:
        """``2026-11`` into a month; anything else is malformed (and never echoed)."""
        match = _MONTH.fullmatch(raw)
        if match is None or not 1 <= int(match[2]) <= 12 or int(match[1]) < FIRST_YEAR:
            raise Malformed("Unknown month.", fields={"month": "A month like 2026-11"})
        return cls(int(match[1]), int(match[2]))

    @classmethod
    def of(cls, moment: dt.datetime, zone: dt.tzinfo) -> Month:
        local = moment.astimezone(zone)
        return cls(local.year, local.month)

    def previous(self) -> Month:
        return Month(self.year - 1, 12) if self.month == 1 else Month(self.year, self.month - 1)

    def next(self) -> Month:
        return Month(self.year + 1, 1) if self.month == 12 else Month(self.year, self.month + 1)

    def start(self, zone: dt.tzinfo) -> dt.datetime:
        """Midnight on the first of the month in ``zone``, as UTC."""
        return dt.datetime(self.year, self.month, 1, tzinfo=zone).astimezone(dt.UTC)

    @property
    def value(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    @property
    def label(self) -> str:
        return f"{dt.date(self.year, self.month, 1):%B %Y}"


@dataclasses.dataclass(frozen=True)
class MonthlyReport:
    site_slug: str
    site_name: str
    month: Month
    zone: str
    # True while the month is not over: the figures so far.
    partial: bool
    # Comments sent by readers (not the blog's replies, not imports), and of them filed as spam
    # by the filter on arrival, with no moderator.
    received: int
    filed_as_spam: int
    # Decisions taken in the month, less those undone: approvals (of which automatic, for a
    # trusted address), rejections by reason (most first), comments marked spam by a moderator.
    published: int
    published_automatically: int
    rejected: int
    rejected_by_reason: tuple[tuple[str, int], ...]
    marked_spam: int
    # From arrival (or the address's confirmation) to a moderator's decision, over the month's
    # first decision on each comment.
    decisions_timed: int
    median_seconds: int | None
    p95_seconds: int | None
    reports: int
    bans: int

    @property
    def spam(self) -> int:
        return self.filed_as_spam + self.marked_spam

    def rows(self) -> list[tuple[str, str, int | str]]:
        """(measure, detail, value) rows, the CSV's; durations in whole seconds."""
        rows: list[tuple[str, str, int | str]] = [
            ("received", "", self.received),
            ("published", "", self.published),
            ("published", "automatically (trusted address)", self.published_automatically),
            ("rejected", "", self.rejected),
            *(("rejected", reason, count) for reason, count in self.rejected_by_reason),
            ("spam", "", self.spam),
            ("spam", "filed by the filter on arrival", self.filed_as_spam),
            ("spam", "marked by a moderator", self.marked_spam),
            ("decisions timed", "", self.decisions_timed),
            ("time to decision", "median seconds", _blank(self.median_seconds)),
            ("time to decision", "95th percentile seconds", _blank(self.p95_seconds)),
            ("reports", "", self.reports),
            ("bans", "", self.bans),
        ]
        return rows


def _blank(value: int | None) -> int | str:
    return "" if value is None else value


@dataclasses.dataclass
class _Tally:
    """Decisions as the audit log's rows come, oldest first; an undo takes back the comment's
    last decision."""

    kept: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    last: dict[int, dict[str, Any]] = dataclasses.field(default_factory=dict)

    def add(self, row: dict[str, Any]) -> None:
        comment_id = row["comment_id"]
        if row["action"] == AuditAction.UNDO:
            undone = self.last.pop(comment_id, None) if comment_id is not None else None
            if undone is not None:
                undone["undone"] = True
            return
        row["undone"] = False
        self.kept.append(row)
        if comment_id is not None:
            self.last[comment_id] = row

    def decisions(self) -> list[dict[str, Any]]:
        return [row for row in self.kept if not row["undone"]]


def percentile(values: Sequence[float], share: float) -> float:
    """The nearest-rank percentile: the smallest value at or below which ``share`` of them lie."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def report_sites(session: Session, moderator: Moderator) -> list[Site]:
    """The sites whose reports the moderator may see, by name."""
    if moderator.is_admin:
        return list(session.scalars(select(Site).order_by(Site.name)))
    return sorted(moderator.sites, key=lambda site: site.name)


def monthly_report(
    session: Session,
    moderator: Moderator,
    slug: str,
    month: Month | None,
    *,
    now: dt.datetime,
) -> MonthlyReport:
    """The report of one site the moderator may see, for one month (not one yet to begin);
    without a month, the last whole month."""
    site = get_site(session, slug)
    if not moderator.may_moderate(site.id):
        raise NotFound("There is no site with that name.")
    zone = site_zone(site)
    month = month or Month.of(now, zone).previous()
    start = month.start(zone)
    if start > now:  # checked first: the month after December 9999 has no datetime
        raise Malformed("That month has not begun.", fields={"month": "A month up to this one"})
    end = month.next().start(zone)
    received, filed = _arrivals(session, site, start, end)
    tally = _Tally()
    for row in session.execute(_audit_rows(site, start, end)).mappings():
        tally.add(dict(row))
    decisions = tally.decisions()
    actions = Counter(row["action"] for row in decisions)
    reasons = Counter(
        (row["after"] or {}).get("reason") or NO_REASON
        for row in decisions
        if row["action"] == AuditAction.REJECT
    )
    waits = _waits(decisions)
    return MonthlyReport(
        site_slug=site.slug,
        site_name=site.name,
        month=month,
        zone=str(zone),
        partial=end > now,
        received=received,
        filed_as_spam=filed,
        published=actions[AuditAction.APPROVE],
        published_automatically=sum(
            1
            for row in decisions
            if row["action"] == AuditAction.APPROVE and row["actor"] == AUTOMATIC.label
        ),
        rejected=actions[AuditAction.REJECT],
        rejected_by_reason=tuple(sorted(reasons.items(), key=lambda item: (-item[1], item[0]))),
        marked_spam=actions[AuditAction.SPAM],
        decisions_timed=len(waits),
        median_seconds=round(statistics.median(waits)) if waits else None,
        p95_seconds=round(percentile(waits, 0.95)) if waits else None,
        reports=_count_actions(session, site, REPORT_ACTIONS, start, end),
        bans=_count_actions(session, site, BAN_ACTIONS, start, end),
    )


def _arrivals(
    session: Session, site: Site, start: dt.datetime, end: dt.datetime
) -> tuple[int, int]:
    """Comments readers sent in the period, and how many of them the filter filed as spam."""
    query = (
        select(func.count(), func.count().filter(Comment.verdict == "spam"))
        .select_from(Comment)
        .join(Post, Post.id == Comment.post_id)
        .where(
            Post.site_id == site.id,
            Comment.submitted_at >= start,
            Comment.submitted_at < end,
            Comment.official.is_(False),
            Comment.import_ref.is_(None),
        )
    )
    received, filed = session.execute(query).one()
    return int(received), int(filed)


def _audit_rows(site: Site, start: dt.datetime, end: dt.datetime) -> Any:
    """The period's decisions and undos, oldest first, with when each comment began to wait."""
    decided = (
        select(AuditEvent.comment_id)
        .where(
            AuditEvent.site_id == site.id,
            AuditEvent.at >= start,
            AuditEvent.at < end,
            AuditEvent.action.in_(list(DECISIONS)),
        )
        .scalar_subquery()
    )
    confirmed = (
        select(AuditEvent.comment_id, func.max(AuditEvent.at).label("at"))
        .where(AuditEvent.action == AuditAction.CONFIRM, AuditEvent.comment_id.in_(decided))
        .group_by(AuditEvent.comment_id)
        .subquery()
    )
    return (
        select(
            AuditEvent.id,
            AuditEvent.at,
            AuditEvent.action,
            AuditEvent.actor,
            AuditEvent.comment_id,
            AuditEvent.after,
            Comment.submitted_at,
            confirmed.c.at.label("confirmed_at"),
        )
        .outerjoin(Comment, Comment.id == AuditEvent.comment_id)
        .outerjoin(confirmed, confirmed.c.comment_id == AuditEvent.comment_id)
        .where(
            AuditEvent.site_id == site.id,
            AuditEvent.at >= start,
            AuditEvent.at < end,
            AuditEvent.action.in_([*DECISIONS, AuditAction.UNDO]),
        )
        .order_by(AuditEvent.id)
    )


def _waits(decisions: list[dict[str, Any]]) -> list[float]:
    """Seconds from each comment's arrival in the queue to its first decision by a person."""
    waits: list[float] = []
    seen: set[int] = set()
    for row in decisions:
        comment_id = row["comment_id"]
        if comment_id is None or comment_id in seen or row["submitted_at"] is None:
            continue
        seen.add(comment_id)
        if row["actor"] == AUTOMATIC.label:
            continue
        began = row["confirmed_at"] or row["submitted_at"]
        waits.append(max(0.0, (row["at"] - began).total_seconds()))
    return waits


def _count_actions(
    session: Session, site: Site, names: frozenset[str], start: dt.datetime, end: dt.datetime
) -> int:
    query = select(func.count(AuditEvent.id)).where(
        AuditEvent.site_id == site.id,
        AuditEvent.at >= start,
        AuditEvent.at < end,
        AuditEvent.action.in_(sorted(names)),
    )
    return int(session.scalar(query) or 0)


def describe_duration(seconds: int | None) -> str:
    """A duration in at most its two largest units: "1 day 3 hours", "12 minutes", "40 seconds"."""
    if seconds is None:
        return "—"
    parts: list[str] = []
    rest = seconds
    for size, unit in ((86400, "day"), (3600, "hour"), (60, "minute"), (1, "second")):
        count, rest = divmod(rest, size)
        if count:
            parts.append(f"{count} {unit}{'' if count == 1 else 's'}")
        elif parts:
            break  # "1 day", not "1 day 0 hours 5 minutes"
        if len(parts) == 2:
            break
    return " ".join(parts) or "0 seconds"


def report_csv(report: MonthlyReport) -> str:
    """The report as CSV: one row per measure; cells that look like formulas are defused."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    for measure, detail, value in report.rows():
        writer.writerow(
            [report.site_slug, report.month.value, report.zone, measure, safe_cell(detail), value]
        )
    return buffer.getvalue()
