"""Readers' reports of published comments: no account, and one report per client network counts.

A comment with a live report for personal data, or with live reports from at least the site's
``report_threshold`` networks, is taken down at once: back to the queue as ``pending`` with the
signal ``reported`` (reasons and counts), through the transition every moderation action uses
(a conditional UPDATE, the thread's version bumped, audited, an outbox event). A moderator who
dismisses the reports republishes it if they took it down; dismissed reports never count again,
and a network whose report was dismissed cannot report that comment again.

What a reader is told never depends on what happened (no oracle): an unknown id, a comment that
is not published and a network's second report are answered like a counted report. Reports of
one comment are serialised on the comment's row, so concurrent reports count exactly.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import exists, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from moderation import metrics
from moderation.actions import (
    MAX_PINS,
    _transition,
    dismiss_live_reports,
    get_comment_for,
    pinned_count,
)
from moderation.comments import get_site, is_closed, origin_allowed
from moderation.db import become_writer
from moderation.errors import NotFound, OriginNotAllowed, ThreadClosed, ValidationFailed
from moderation.events import Actor, AuditAction, record_audit, rfc3339
from moderation.mail import outbox
from moderation.models import (
    Comment,
    CommentStatus,
    Moderator,
    Post,
    Report,
    ReportReason,
    Site,
)
from moderation.outbox.events import EventType, record_event
from moderation.sanitising import normalise_text
from moderation.validation import CONTROL_CHARACTERS

MAX_DETAIL = 500
# Longer than any public id (new_public_id gives 16 characters): looked up no further.
MAX_ID = 64
REPORTED = "reported"
# Who the audit log names for a report: readers have no account, and their network is not shown.
READERS = Actor("a reader (report)", None, "reader")
# Where the client's address is unknown, all such reporters share one network.
UNKNOWN_NETWORK = "unknown"
REASON_LABELS = {
    ReportReason.PERSONAL_DATA: "personal data",
    ReportReason.ABUSIVE: "abusive",
    ReportReason.SPAM: "spam",
    ReportReason.OFF_TOPIC: "off topic",
    ReportReason.OTHER: "other",
}


@dataclasses.dataclass(frozen=True)
class ReportSubmission:
    """A reader's report, checked: a reason, and what they added (at most 500 characters)."""

    reason: ReportReason
    detail: str | None = None


def parse_report(data: Mapping[str, object]) -> ReportSubmission:
    """Check a report from JSON or the form; one ValidationFailed names every wrong field."""
    errors: dict[str, str] = {}
    raw_reason = data.get("reason")
    reason = ReportReason.OTHER
    if isinstance(raw_reason, str) and raw_reason in ReportReason.__members__.values():
        reason = ReportReason(raw_reason)
    else:
        errors["reason"] = "Choose why you are reporting this comment"
    raw_detail = data.get("detail")
    detail: str | None = None
    if raw_detail is not None and not isinstance(raw_detail, str):
        errors["detail"] = "Give the detail as text"
    elif raw_detail:
        # Two linear passes, and none over a value far past the limit.
        if len(raw_detail) <= 4 * MAX_DETAIL:
            detail = normalise_text(CONTROL_CHARACTERS.sub("", raw_detail)) or None
        if len(raw_detail) > 4 * MAX_DETAIL or len(detail or "") > MAX_DETAIL:
            errors["detail"] = f"Give detail of up to {MAX_DETAIL} characters"
    if errors:
        raise ValidationFailed(fields=errors)
    return ReportSubmission(reason, detail)


def _locked_comment(session: Session, site: Site, public_id: str) -> Comment | None:
    """The site's comment with that id, its row locked until the transaction ends (PostgreSQL;
    SQLite's write transaction serialises every writer already)."""
    if len(public_id) > MAX_ID:
        return None
    return session.scalar(
        select(Comment)
        .join(Post, Comment.post_id == Post.id)
        .where(Comment.public_id == public_id, Post.site_id == site.id)
        .with_for_update(of=Comment)
        .execution_options(populate_existing=True)  # as it is once the lock is ours
    )


def published_comment(session: Session, site_slug: str, public_id: str) -> Comment:
    """The published comment a reader may report (the report form's): not the blog's own."""
    site = get_site(session, site_slug)
    comment = None
    if len(public_id) <= MAX_ID:
        comment = session.scalar(
            select(Comment)
            .join(Post, Comment.post_id == Post.id)
            .where(
                Comment.public_id == public_id,
                Post.site_id == site.id,
                Comment.status == CommentStatus.APPROVED,
                Comment.official.is_(False),
            )
        )
    if comment is None:
        raise NotFound("There is no published comment with that id.")
    return comment


def live_counts(session: Session, comment: Comment) -> dict[str, int]:
    """The comment's live (not dismissed) reports by reason; each is one network's."""
    rows = session.execute(
        select(Report.reason, func.count())
        .where(Report.comment_id == comment.id, Report.dismissed_at.is_(None))
        .group_by(Report.reason)
    ).all()
    return {ReportReason(reason).value: count for reason, count in rows}


def reported_signal(
    counts: Mapping[str, int], pinned_at: dt.datetime | None = None
) -> dict[str, Any]:
    """The signal a taken-down comment carries: why, how many networks said so, and when it was
    pinned if it was (a dismissal pins it again: a report must not be a reader's way to unpin)."""
    total = sum(counts.values())
    reasons = ", ".join(
        f"{REASON_LABELS[ReportReason(name)]} ({n})" for name, n in sorted(counts.items())
    )
    signal = {
        "check": REPORTED,
        "verdict": "hold",
        "reason": f"Reported by readers from {total} network{'s' if total != 1 else ''}: {reasons}",
        "counts": dict(counts),
    }
    if pinned_at is not None:
        signal["pinned_at"] = pinned_at.isoformat()  # to the microsecond: pins are ordered by it
    return signal


def _pinned_before(signals: Sequence[Any]) -> dt.datetime | None:
    """When a comment readers took down had been pinned, from its ``reported`` signal."""
    for signal in signals:
        if isinstance(signal, dict) and signal.get("check") == REPORTED and signal.get("pinned_at"):
            return dt.datetime.fromisoformat(str(signal["pinned_at"]))
    return None


def _without_reported(signals: Sequence[Any]) -> list[Any]:
    return [s for s in signals if not (isinstance(s, dict) and s.get("check") == REPORTED)]


def taken_down(comment: Comment) -> bool:
    """Whether readers' reports took the comment down and no moderator has decided since."""
    return comment.status is CommentStatus.PENDING and len(
        _without_reported(comment.signals or [])
    ) != len(comment.signals or [])


def report_comment(
    session: Session,
    site_slug: str,
    public_id: str,
    submission: ReportSubmission,
    *,
    now: dt.datetime,
    network: str | None,
    origin: str | None = None,
) -> Comment | None:
    """Record a reader's report and take the comment down when it should go.

    Returns the site's comment with that id (whatever became of the report), or None when the
    site has no such comment; the caller answers the same either way. Raises NotFound for an
    unknown site, OriginNotAllowed, and ThreadClosed for a published comment of a closed post.
    """
    site = get_site(session, site_slug)
    if origin is not None and not origin_allowed(site, origin):
        raise OriginNotAllowed()
    become_writer(session)  # the checks before read only (the routes' reads_first)
    comment = _locked_comment(session, site, public_id)
    if comment is None or comment.status is not CommentStatus.APPROVED or comment.official:
        metrics.count_report(session, submission.reason.value, "ignored")
        return comment
    if is_closed(comment.post, now):
        raise ThreadClosed()
    network = network or UNKNOWN_NETWORK
    already = session.scalar(
        select(exists().where(Report.comment_id == comment.id, Report.network == network))
    )
    if already or not _insert(session, comment, submission, network, now):
        metrics.count_report(session, submission.reason.value, "ignored")
        return comment
    counts = live_counts(session, comment)
    total = sum(counts.values())
    take_down = bool(counts.get(ReportReason.PERSONAL_DATA.value)) or total >= site.report_threshold
    if take_down:
        signals = [
            *_without_reported(comment.signals or []),
            reported_signal(counts, comment.pinned_at),
        ]
        _transition(
            session, comment, [CommentStatus.APPROVED], teach=False,
            status=CommentStatus.PENDING, signals=signals,
        )  # fmt: skip
        outbox.queue_held(session, comment, now=now)  # its moderators hear it is back
    after = {"status": comment.status.value, "reason": submission.reason.value, "reports": total}
    record_audit(
        session, READERS, AuditAction.REPORT, comment,
        before={"status": CommentStatus.APPROVED.value}, after=after, now=now,
    )  # fmt: skip
    report = {
        "reason": submission.reason.value,
        "reports": total,
        "counts": counts,
        "taken_down": take_down,
    }
    record_event(session, EventType.REPORTED, comment, now=now, extra={"report": report})
    metrics.count_report(session, submission.reason.value, "taken_down" if take_down else "counted")
    return comment


def _insert(
    session: Session,
    comment: Comment,
    submission: ReportSubmission,
    network: str,
    now: dt.datetime,
) -> bool:
    """Add the report; False if this network's report is there already (a race the row lock
    leaves to the unique constraint where the database cannot lock)."""
    try:
        with session.begin_nested():
            session.add(
                Report(
                    comment_id=comment.id,
                    reason=submission.reason,
                    detail=submission.detail,
                    network=network,
                    created_at=now,
                )
            )
            session.flush()
    except IntegrityError:
        return False
    return True


def dismiss_reports(
    session: Session, moderator: Moderator, public_id: str, *, actor: Actor, now: dt.datetime
) -> Comment:
    """A moderator finds the reports unfounded: they stop counting, and a comment they took down
    is published again (``comment.approved``). Audited; nothing to dismiss changes nothing."""
    comment = get_comment_for(session, moderator, public_id)
    session.execute(select(Comment.id).where(Comment.id == comment.id).with_for_update())
    session.refresh(comment)
    was_down = taken_down(comment)
    dismissed = dismiss_live_reports(session, comment, now=now, by=actor.moderator_id)
    if not dismissed and not was_down:
        return comment
    before = {"status": comment.status.value, "reports": dismissed}
    if was_down:
        values: dict[str, Any] = {}
        pinned_at = _pinned_before(comment.signals or [])
        if pinned_at is not None:
            # Pinned again, where it was, unless the post has its pins already (post row locked
            # first, as pin_comment does).
            session.execute(select(Post.id).where(Post.id == comment.post_id).with_for_update())
            if pinned_count(session, comment.post_id) < MAX_PINS:
                values["pinned_at"] = pinned_at
        _transition(
            session, comment, [CommentStatus.PENDING],
            status=CommentStatus.APPROVED, signals=_without_reported(comment.signals or []),
            moderated_at=now, moderated_by_id=actor.moderator_id,
            claimed_by_id=None, claimed_until=None, **values,
        )  # fmt: skip
        record_event(session, EventType.APPROVED, comment, now=now)
    after = {"status": comment.status.value, "reports": 0}
    record_audit(
        session, actor, AuditAction.DISMISS_REPORTS, comment, before=before, after=after, now=now
    )
    return comment


def report_json(report: Report) -> dict[str, Any]:
    """A report as moderators see it: never the reporter's network."""
    return {
        "reason": report.reason.value,
        "detail": report.detail,
        "created_at": rfc3339(report.created_at),
        "dismissed_at": rfc3339(report.dismissed_at) if report.dismissed_at else None,
    }
