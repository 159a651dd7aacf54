"""Mail: queueing messages to moderators and commenters, the signed links they carry, and
rendering. Requests only write outbox rows; the workers send them (``moderation.outbox.mail``)."""

from __future__ import annotations

from sqlalchemy.orm import Session

# The key in ``Session.info`` saying whether mail is on (MODERATION_SMTP_HOST set); the app's
# sessionmaker sets it, so services that queue mail need no settings of their own.
MAIL_ENABLED = "moderation.mail_enabled"


def enabled(session: Session) -> bool:
    return bool(session.info.get(MAIL_ENABLED, False))
