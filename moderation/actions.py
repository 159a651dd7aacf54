"""What moderators do to comments: decide, edit, reply, undo, claim, and all of it in bulk.

Every change is a conditional UPDATE on the comment's status, so a comment is moderated once
however many moderators act at the same moment; every change writes one audit event and one
outbox event in the caller's transaction and bumps the thread's version (its ETag).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from moderation import duplicates, learning, metrics
from moderation.db import become_writer
from moderation.errors import AlreadyModerated, NotFound, ValidationFailed
from moderation.events import Actor, AuditAction, record_audit
from moderation.mail import outbox
from moderation.models import AuditEvent, Comment, CommentStatus, Event, Moderator, Post, Report
from moderation.outbox.events import EventType, record_event
from moderation.sanitising import normalise_text, render_comment
from moderation.spam import redact_personal_data
from moderation.validation import MAX_BODY, MAX_DEPTH

# Who the audit log names for what happens without a moderator.
COMMENTER = Actor("commenter (email address confirmed)")
AUTOMATIC = Actor("automatic (trusted address)")
UNDO_WINDOW = dt.timedelta(seconds=30)
CLAIM_FOR = dt.timedelta(minutes=5)
S = CommentStatus
A = AuditAction


@dataclasses.dataclass(frozen=True)
class Action:
    """A decision: the statuses it applies to, the status it leads to, the event it records."""

    name: AuditAction
    to: CommentStatus
    applies_to: frozenset[CommentStatus]
    event_type: EventType


ACTIONS: dict[str, Action] = {
    action.name: action
    for action in (
        # From spam or rejected too: a reversal in one step ("not spam"), audited as one.
        Action(
            A.APPROVE, S.APPROVED, frozenset({S.PENDING, S.SPAM, S.REJECTED}), EventType.APPROVED
        ),
        Action(A.REJECT, S.REJECTED, frozenset({S.PENDING}), EventType.REJECTED),
        Action(A.SPAM, S.SPAM, frozenset({S.PENDING}), EventType.SPAM),
        Action(
            A.DELETE,
            S.DELETED,
            frozenset({S.PENDING, S.APPROVED, S.REJECTED, S.SPAM}),
            EventType.DELETED,
        ),
        Action(
            A.RESTORE, S.PENDING, frozenset({S.REJECTED, S.SPAM, S.DELETED}), EventType.RESTORED
        ),
        # Unpublish: back to the queue at once, hidden from every public read.
        Action(A.UNAPPROVE, S.PENDING, frozenset({S.APPROVED}), EventType.UNAPPROVED),
    )
}
BULK_ACTIONS = (A.APPROVE, A.REJECT, A.SPAM, A.DELETE)
# The actions that decide a pending comment's fate; their delay is measured.
DECISIONS = frozenset({A.APPROVE, A.REJECT, A.SPAM})
# How the audit names an approval that reverses an earlier decision.
REVERSALS = {S.SPAM: "not spam", S.REJECTED: "reversed"}
# Pinned comments a post may have at once.
MAX_PINS = 3


def get_comment_for(session: Session, moderator: Moderator, public_id: str) -> Comment:
    """A comment the moderator may see; another site's comment is "not found", not "forbidden"."""
    comment = session.scalar(select(Comment).where(Comment.public_id == public_id))
    if comment is None or not moderator.may_moderate(comment.post.site_id):
        raise NotFound("There is no comment with that id.")
    return comment


def _transition(
    session: Session,
    comment: Comment,
    applies_to: Iterable[CommentStatus],
    *,
    teach: bool = True,
    **values: Any,
) -> None:
    """Change the comment only if it is still in one of ``applies_to``; else AlreadyModerated.

    The one place a comment's status changes after submission, so the spam model follows every
    route here: approved teaches legitimate, spam teaches spam, back to pending unlearns
    (``teach`` False: an automatic decision, which teaches nothing).
    """
    before, decided_by = comment.status, comment.moderated_by_id
    if "status" in values and values["status"] is not S.APPROVED:
        values.setdefault("pinned_at", None)  # only a published comment stays pinned
    changed = session.execute(
        update(Comment)
        .where(Comment.id == comment.id, Comment.status.in_(list(applies_to)))
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if changed.rowcount != 1:  # type: ignore[attr-defined]
        session.refresh(comment)
        raise AlreadyModerated(
            f"This comment has already been moderated (it is {comment.status.value})."
        )
    _bump_thread(session, comment)
    session.refresh(comment)
    if "status" in values:
        filed_by_filter = before is S.SPAM and decided_by is None and comment.verdict == "spam"
        _follow_decision(session, comment, filed_by_filter, teach=teach)


def _follow_decision(
    session: Session, comment: Comment, filed_by_filter: bool, *, teach: bool
) -> None:
    """Teach the spam model and count the moderators' overturns of the filter."""
    if filed_by_filter and comment.status in (S.APPROVED, S.PENDING):
        metrics.count_overturn(session, comment.post.site.slug, "rescued")
    if teach and comment.status is S.SPAM and comment.verdict == "accept":
        metrics.count_overturn(session, comment.post.site.slug, "missed")
    learning.follow_decision(session, comment, teach=teach)


def _bump_thread(session: Session, comment: Comment) -> None:
    session.execute(update(Post).where(Post.id == comment.post_id).values(version=Post.version + 1))


def _record(
    session: Session,
    actor: Actor,
    action: AuditAction,
    event_type: EventType,
    comment: Comment,
    before: dict[str, Any],
    after: dict[str, Any],
    now: dt.datetime,
) -> None:
    record_audit(session, actor, action, comment, before=before, after=after, now=now)
    record_event(session, event_type, comment, now=now)


def dismiss_live_reports(
    session: Session, comment: Comment, *, now: dt.datetime, by: int | None = None
) -> int:
    """Mark the comment's live reports dismissed, so they never count again; how many."""
    result = session.execute(
        update(Report)
        .where(Report.comment_id == comment.id, Report.dismissed_at.is_(None))
        .values(dismissed_at=now, dismissed_by_id=by)
        .execution_options(synchronize_session=False)
    )
    dismissed: int = result.rowcount  # type: ignore[attr-defined]
    return dismissed


def check_reason(comment: Comment, reason: str | None) -> str | None:
    """A rejection reason must come from the site's published list, when it has one."""
    if not reason:
        return None
    allowed = comment.post.site.reject_reasons
    if allowed and reason not in allowed:
        raise ValidationFailed(fields={"reason": "Choose a reason from the site's comment policy"})
    if len(reason) > 500:
        raise ValidationFailed(fields={"reason": "Give a reason of up to 500 characters"})
    return reason


def moderate_comment(
    session: Session,
    moderator: Moderator,
    public_id: str,
    action_name: str,
    *,
    actor: Actor,
    now: dt.datetime,
    reason: str | None = None,
) -> Comment:
    """Apply one decision to one comment, exactly once."""
    action = ACTIONS.get(action_name)
    if action is None:
        raise NotFound("There is no such moderation action.")
    comment = get_comment_for(session, moderator, public_id)
    before = {"status": comment.status.value}
    values: dict[str, Any] = {
        "status": action.to,
        "moderated_at": now,
        "moderated_by_id": actor.moderator_id,
        "claimed_by_id": None,
        "claimed_until": None,
    }
    after: dict[str, Any] = {"status": action.to.value}
    if action.name is A.REJECT and reason:
        values["reject_reason"] = after["reason"] = check_reason(comment, reason)
    # The decision applies to the status the moderator acted on, and only to that: a comment
    # decided meanwhile is "already moderated", not decided twice (two moderators at once).
    seen = comment.status
    reversal = REVERSALS.get(seen) if action.name is A.APPROVE else None
    if seen not in action.applies_to or (
        reversal and _freshly_decided_by_another(comment, actor, now)
    ):
        session.refresh(comment)
        raise AlreadyModerated(
            f"This comment has already been moderated (it is {comment.status.value})."
        )
    if reversal:
        values["reject_reason"] = None
        after["reversal"] = reversal
    if len(kept := _without_take_down(comment.signals)) != len(comment.signals or []):
        values["signals"] = kept
    _transition(session, comment, [seen], **values)
    if action.name is A.APPROVE and (
        dismissed := dismiss_live_reports(session, comment, now=now, by=actor.moderator_id)
    ):
        # Approving a comment readers took down answers their reports (moderation/reports.py).
        after["reports_dismissed"] = dismissed
    _record(session, actor, action.name, action.event_type, comment, before, after, now)
    if action.name in DECISIONS and seen is S.PENDING:  # a reversal is no first decision
        metrics.count_decision(session, comment, action.name)
    if action.name in (A.APPROVE, A.REJECT):
        outbox.queue_decision(session, comment, now=now)
    if action.name is A.APPROVE:
        outbox.queue_reply(session, comment, now=now)
    return comment


def _without_take_down(signals: list[Any] | None) -> list[Any]:
    """The signals without readers' take-down mark (moderation/reports.py): a moderator's
    decision ends the take-down, so dismissing the reports later never republishes a comment
    that a moderator has unpublished, rejected or restored since."""
    return [s for s in signals or [] if not (isinstance(s, dict) and s.get("check") == "reported")]


def _freshly_decided_by_another(comment: Comment, actor: Actor, now: dt.datetime) -> bool:
    """Whether another moderator decided the comment within the undo window: until it ends the
    decision is its maker's (to undo or reverse), so two moderators deciding a pending comment at
    the same moment cannot both succeed, the second as a "reversal" of what they never saw."""
    return (
        comment.moderated_by_id is not None
        and comment.moderated_by_id != actor.moderator_id
        and comment.moderated_at is not None
        and now - comment.moderated_at < UNDO_WINDOW
    )


def confirm_address(
    session: Session, comment: Comment, *, trusted: bool, now: dt.datetime
) -> Comment:
    """Its author confirmed the address: the comment enters the queue (``comment.submitted``),
    or with ``trusted`` is then approved at once, audited as automatic."""
    _transition(session, comment, [S.UNCONFIRMED], status=S.PENDING)
    before, after = {"status": "unconfirmed"}, {"status": "pending"}
    _record(session, COMMENTER, A.CONFIRM, EventType.SUBMITTED, comment, before, after, now)
    if not trusted:
        outbox.queue_held(session, comment, now=now)
        return comment
    _transition(session, comment, [S.PENDING], teach=False, status=S.APPROVED, moderated_at=now)
    after = {"status": "approved", "reason": "trusted address"}
    _record(
        session,
        AUTOMATIC,
        A.APPROVE,
        EventType.APPROVED,
        comment,
        {"status": "pending"},
        after,
        now,
    )
    metrics.count_decision(session, comment, A.APPROVE)
    outbox.queue_decision(session, comment, now=now)
    outbox.queue_reply(session, comment, now=now)
    return comment


def undo(
    session: Session, moderator: Moderator, public_id: str, *, actor: Actor, now: dt.datetime
) -> Comment:
    """Take back one's own approve, reject or spam within a few seconds: back to pending."""
    comment = get_comment_for(session, moderator, public_id)
    recent = comment.moderated_at is not None and now - comment.moderated_at <= UNDO_WINDOW
    if comment.moderated_by_id != actor.moderator_id or not recent:
        raise AlreadyModerated("That action can no longer be undone.")
    before = {"status": comment.status.value}
    _transition(
        session,
        comment,
        [S.APPROVED, S.REJECTED, S.SPAM],
        status=S.PENDING,
        moderated_at=None,
        moderated_by_id=None,
        reject_reason=None,
    )
    _record(session, actor, A.UNDO, EventType.RESTORED, comment, before, {"status": "pending"}, now)
    return comment


def pinned_count(session: Session, post_id: int) -> int:
    """How many of a post's published comments are pinned (lock the post's row first)."""
    count = session.scalar(
        select(func.count())
        .select_from(Comment)
        .where(
            Comment.post_id == post_id, Comment.pinned_at.is_not(None), Comment.status == S.APPROVED
        )
    )
    return count or 0


def pin_comment(
    session: Session, moderator: Moderator, public_id: str, *, actor: Actor, now: dt.datetime
) -> Comment:
    """Pin an approved top-level comment to the top of its thread; at most MAX_PINS a post.

    The post's row is locked first (FOR UPDATE on PostgreSQL; SQLite's write transaction already
    serialises writers), so two moderators pinning at once cannot make a fourth pin.
    """
    comment = get_comment_for(session, moderator, public_id)
    become_writer(session)
    session.execute(select(Post.id).where(Post.id == comment.post_id).with_for_update())
    session.refresh(comment)
    if comment.pinned_at is not None:
        return comment
    if comment.status is not S.APPROVED:
        raise ValidationFailed(fields={"comment": "Only a published comment can be pinned"})
    if comment.parent_id is not None:
        raise ValidationFailed(fields={"comment": "Only a top-level comment can be pinned"})
    if pinned_count(session, comment.post_id) >= MAX_PINS:
        raise ValidationFailed(
            fields={"comment": f"A post has at most {MAX_PINS} pinned comments: unpin one first"}
        )
    _transition(session, comment, [S.APPROVED], pinned_at=now)
    after = {"pinned": True}
    _record(session, actor, A.PIN, EventType.PINNED, comment, {"pinned": False}, after, now)
    return comment


def unpin_comment(
    session: Session, moderator: Moderator, public_id: str, *, actor: Actor, now: dt.datetime
) -> Comment:
    """Take the pin off a comment (nothing to do if it is not pinned)."""
    comment = get_comment_for(session, moderator, public_id)
    if comment.pinned_at is None:
        return comment
    _transition(session, comment, [S.APPROVED], pinned_at=None)
    after = {"pinned": False}
    _record(session, actor, A.UNPIN, EventType.UNPINNED, comment, {"pinned": True}, after, now)
    return comment


def _checked_text(text: str, field: str = "body") -> str:
    value = normalise_text(text)
    if not value:
        raise ValidationFailed(fields={field: "Enter the comment's text"})
    if len(value) > MAX_BODY:
        raise ValidationFailed(fields={field: f"The text must be {MAX_BODY:,} characters or fewer"})
    return value


def edit_comment(
    session: Session,
    moderator: Moderator,
    public_id: str,
    text: str,
    *,
    actor: Actor,
    now: dt.datetime,
) -> Comment:
    """Change a comment's text; the commenter's original is kept and the edit audited.

    Redaction really forgets: the original, the audit's before and the copies in earlier
    outbox payloads keep a placeholder wherever personal data was (a phone number, an address).
    """
    comment = get_comment_for(session, moderator, public_id)
    value = _checked_text(text)
    if value == comment.body_text:
        return comment
    before = {"body_text": redact_personal_data(comment.body_text)}
    _transition(
        session,
        comment,
        [S.PENDING, S.APPROVED],
        body_text=value,
        body_html=render_comment(value),
        original_text=redact_personal_data(comment.original_text or comment.body_text),
    )
    _redact_earlier_copies(session, comment)
    duplicates.record(session, comment)
    _record(session, actor, A.EDIT, EventType.EDITED, comment, before, {"body_text": value}, now)
    return comment


def _redact_earlier_copies(session: Session, comment: Comment) -> None:
    """Earlier events' payloads (not yet delivered, or delivered again on request) and earlier
    edit audits hold the text as it was: personal data in them is replaced too."""
    for event in session.scalars(select(Event).where(Event.comment_id == comment.id)):
        data = dict(event.payload.get("data", {}))
        if isinstance(data.get("body_text"), str):
            data["body_text"] = redact_personal_data(data["body_text"])
            data["body_html"] = render_comment(data["body_text"])
            event.payload = {**event.payload, "data": data}
    edits = select(AuditEvent).where(
        AuditEvent.comment_id == comment.id, AuditEvent.action == A.EDIT
    )
    for audit in session.scalars(edits):
        for side in ("before", "after"):
            recorded = getattr(audit, side)
            if isinstance(recorded, dict) and isinstance(recorded.get("body_text"), str):
                redacted = redact_personal_data(recorded["body_text"])
                setattr(audit, side, {**recorded, "body_text": redacted})


def reply_as_blog(
    session: Session,
    moderator: Moderator,
    public_id: str,
    text: str,
    *,
    actor: Actor,
    now: dt.datetime,
    approve_first: bool = False,
) -> Comment:
    """Publish an official reply from the blog team under a comment (approving it first if
    asked)."""
    value = _checked_text(text, "reply")
    parent = get_comment_for(session, moderator, public_id)
    if approve_first and parent.status is S.PENDING:
        parent = moderate_comment(session, moderator, public_id, A.APPROVE, actor=actor, now=now)
    if parent.status is not S.APPROVED:
        raise ValidationFailed(fields={"reply": "Approve the comment before replying to it"})
    # Replies nest MAX_DEPTH deep; under a comment at the deepest level the reply joins it.
    depth, ancestor = 1, parent
    while ancestor.parent is not None:
        depth, ancestor = depth + 1, ancestor.parent
    reply = Comment(
        post=parent.post,
        parent=parent.parent if depth >= MAX_DEPTH else parent,
        author_name=parent.post.site.name,
        author_email=moderator.email,
        body_text=value,
        body_html=render_comment(value),
        status=S.APPROVED,
        official=True,
        submitted_at=now,
        moderated_at=now,
        moderated_by_id=actor.moderator_id,
    )
    session.add(reply)
    duplicates.record(session, reply)
    _bump_thread(session, reply)
    after = {"status": "approved", "official": True, "in_reply_to": parent.public_id}
    _record(session, actor, A.REPLY, EventType.APPROVED, reply, {}, after, now)
    outbox.queue_reply(session, reply, now=now)
    return reply


@dataclasses.dataclass
class BulkResult:
    done: list[str] = dataclasses.field(default_factory=list)
    refused: dict[str, str] = dataclasses.field(default_factory=dict)


def bulk(
    session: Session,
    moderator: Moderator,
    public_ids: Iterable[str],
    action_name: str,
    *,
    actor: Actor,
    now: dt.datetime,
) -> BulkResult:
    """Apply one decision to many comments; each succeeds or is refused on its own."""
    if action_name not in BULK_ACTIONS:
        raise ValidationFailed(fields={"action": "Choose approve, reject, spam or delete"})
    result = BulkResult()
    for public_id in dict.fromkeys(public_ids):
        try:
            with session.begin_nested():
                moderate_comment(session, moderator, public_id, action_name, actor=actor, now=now)
            result.done.append(public_id)
        except (AlreadyModerated, NotFound) as error:
            result.refused[public_id] = error.message
    return result


def claim(session: Session, moderator: Moderator, comment: Comment, *, now: dt.datetime) -> bool:
    """Mark the comment as being handled by ``moderator`` unless a colleague holds it.

    Returns True if the moderator holds the claim afterwards.
    """
    held_by_other = (
        comment.claimed_by_id not in (None, moderator.id)
        and comment.claimed_until is not None
        and comment.claimed_until > now
    )
    if held_by_other:
        return False
    comment.claimed_by_id = moderator.id
    comment.claimed_until = now + CLAIM_FOR
    return True


def reject_published(
    session: Session, found: Iterable[Comment], *, actor: Actor, now: dt.datetime
) -> list[Comment]:
    """Take approved comments down by rejecting them (a ban's ``remove_recent_days``): each
    leaves its thread at once (the thread's version, so its ETag, changes) and records
    ``comment.rejected``; the caller audits the whole as one action. A comment someone else
    moderated meanwhile is left as it is. No mail goes to the authors."""
    done: list[Comment] = []
    for comment in found:
        try:
            _transition(
                session,
                comment,
                [S.APPROVED],
                status=S.REJECTED,
                moderated_at=now,
                moderated_by_id=actor.moderator_id,
                claimed_by_id=None,
                claimed_until=None,
            )
        except AlreadyModerated:
            continue
        record_event(session, EventType.REJECTED, comment, now=now)
        metrics.count_action(session, A.REJECT, actor.source)
        done.append(comment)
    return done
