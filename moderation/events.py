"""Recording what people did: audit events, written in the caller's transaction together with
the change they describe. Events for machines are the outbox's (moderation/outbox/events.py).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
from typing import Any

from sqlalchemy.orm import Session

from moderation import metrics
from moderation.models import AuditEvent, Comment


class AuditAction(enum.StrEnum):
    """What the audit log says someone did: to a comment, or to the service's set-up."""

    APPROVE = "approve"
    REJECT = "reject"
    SPAM = "spam"
    DELETE = "delete"
    RESTORE = "restore"
    CONFIRM = "confirm"
    UNDO = "undo"
    EDIT = "edit"
    REPLY = "reply"
    ERASE = "erase"
    # Reversible decisions and pins (docs/after-publication.md).
    UNAPPROVE = "unapprove"
    PIN = "pin"
    UNPIN = "unpin"
    # Readers' reports (moderation/reports.py): one counted report, and a moderator's dismissal.
    REPORT = "report"
    DISMISS_REPORTS = "dismiss_reports"
    SITE_ADD = "site.add"
    SITE_UPDATE = "site.update"
    MODERATOR_ADD = "moderator.add"
    MODERATOR_UPDATE = "moderator.update"
    MODERATOR_PASSWORD = "moderator.password"  # noqa: S105 (an action's name)
    MODERATOR_MAIL_PREFERENCE = "moderator.mail_preference"
    MODERATOR_DISABLE = "moderator.disable"
    MODERATOR_ENABLE = "moderator.enable"
    TOKEN_ADD = "token.add"  # noqa: S105 (an action's name)
    TOKEN_REVOKE = "token.revoke"  # noqa: S105 (an action's name)
    COMMENTS_IMPORT = "comments.import"
    # Sign-in (docs/sign-in.md): single sign-on, second factors, sessions.
    MODERATOR_SSO_LOGIN = "moderator.sso_login"
    MODERATOR_SSO_REFUSED = "moderator.sso_refused"
    MODERATOR_SSO_LINK = "moderator.sso_link"
    MODERATOR_SSO_UNLINK = "moderator.sso_unlink"
    MODERATOR_SSO_ENDED = "moderator.sso_ended"
    MODERATOR_MFA_ADD = "moderator.mfa_add"
    MODERATOR_MFA_REMOVE = "moderator.mfa_remove"
    MODERATOR_MFA_CODES = "moderator.mfa_codes"
    MODERATOR_MFA_RESET = "moderator.mfa_reset"
    MODERATOR_SESSIONS_END = "moderator.sessions_end"
    # Posts close and reopen (moderation/posts.py); a change of the window alone is an update.
    POST_CLOSE = "post.close"
    POST_OPEN = "post.open"
    POST_UPDATE = "post.update"
    # Webhook endpoints (docs/webhooks.md) and the retention purge (one row per batch).
    WEBHOOK_ADD = "webhook.add"
    WEBHOOK_UPDATE = "webhook.update"
    WEBHOOK_ENABLE = "webhook.enable"
    WEBHOOK_DISABLE = "webhook.disable"
    WEBHOOK_ROTATE_SECRET = "webhook.rotate_secret"  # noqa: S105 (an action's name)
    RETENTION_PURGE = "retention.purge"
    # Bans (moderation/bans.py): made, lifted, and a banned author's recent comments rejected.
    BAN_ADD = "ban.add"
    BAN_LIFT = "ban.lift"
    BAN_REMOVE_RECENT = "ban.remove_recent"


# The actions on comments, which the audit page filters by.
COMMENT_ACTIONS = tuple(a for a in AuditAction if "." not in a.value)


@dataclasses.dataclass(frozen=True)
class Actor:
    """Who acts: a moderator (through the web queue or a token), or the operator's CLI.

    ``source`` says through which door: ``ui``, ``api`` or ``cli`` (a metrics label).
    """

    label: str
    moderator_id: int | None = None
    source: str = "cli"


def rfc3339(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def record_audit(
    session: Session,
    actor: Actor,
    action: AuditAction,
    comment: Comment,
    *,
    before: dict[str, Any],
    after: dict[str, Any],
    now: dt.datetime,
) -> AuditEvent:
    """Add an audit event for an action on ``comment`` to the session's transaction."""
    metrics.count_action(session, action, actor.source)
    audit = _audit(session, actor, action, comment.post.site_id, comment.id, before, after, now)
    audit.comment_public_id = comment.public_id
    audit.post_key = comment.post.key
    return audit


def record_admin_audit(
    session: Session,
    actor: Actor,
    action: AuditAction,
    *,
    site_id: int | None,
    before: dict[str, Any],
    after: dict[str, Any],
    now: dt.datetime,
) -> AuditEvent:
    """Add an audit event for an administrative change (a site, a moderator, a token)."""
    return _audit(session, actor, action, site_id, None, before, after, now)


def _audit(
    session: Session,
    actor: Actor,
    action: AuditAction,
    site_id: int | None,
    comment_id: int | None,
    before: dict[str, Any],
    after: dict[str, Any],
    now: dt.datetime,
) -> AuditEvent:
    audit = AuditEvent(
        at=now,
        moderator_id=actor.moderator_id,
        actor=actor.label,
        action=action,
        site_id=site_id,
        comment_id=comment_id,
        before=before,
        after=after,
    )
    session.add(audit)
    return audit
