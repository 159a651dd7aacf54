"""Mail, the workers' side: claim due rows of the mail outbox, render, send over SMTP, record
the outcome.

Rows are leased and retried as ``outbox.leasing`` says, so two workers never hold the same row
and a worker that dies mid-send leaves a lease that expires (the mail is sent again: at least
once); SMTP is spoken with no transaction open.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import random
import smtplib
import ssl
from email.message import EmailMessage

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, sessionmaker

from moderation.config import Settings
from moderation.db import write_transaction
from moderation.mail import outbox
from moderation.mail.messages import MailConfig, Renderer, render
from moderation.models import MailStatus, OutgoingMail
from moderation.outbox.leasing import (
    RetrySchedule,
    holds_lease,
    lease_free,
    release,
    take_leases,
    worker_name,
)

logger = logging.getLogger(__name__)

RETRY_SCHEDULE = RetrySchedule(
    (
        dt.timedelta(minutes=1),
        dt.timedelta(minutes=5),
        dt.timedelta(minutes=30),
        dt.timedelta(hours=2),
        dt.timedelta(hours=6),
        dt.timedelta(hours=12),
    )
)
LEASE = dt.timedelta(minutes=5)


def claim_due(
    session: Session, owner: str, *, now: dt.datetime, digest_after: dt.timedelta, limit: int = 20
) -> list[list[int]]:
    """Lease due mail to ``owner``, as batches of row ids: one row, or all of a moderator's
    digest rows once the oldest has waited ``digest_after``."""
    free = lease_free(OutgoingMail.lease_expires_at, now)
    rows = session.scalars(
        select(OutgoingMail)
        .where(
            OutgoingMail.status == MailStatus.PENDING,
            OutgoingMail.next_attempt_at <= now,
            free,
            or_(
                OutgoingMail.kind != outbox.HELD_DIGEST,
                OutgoingMail.created_at <= now - digest_after,
            ),
        )
        .order_by(OutgoingMail.next_attempt_at, OutgoingMail.id)
        .limit(limit)
        .with_for_update(skip_locked=True, of=OutgoingMail)
    ).all()
    batches: list[list[OutgoingMail]] = []
    digests: dict[int, list[OutgoingMail]] = {}
    for row in rows:
        if row.kind == outbox.HELD_DIGEST and row.moderator_id is not None:
            if row.moderator_id in digests:
                continue
            batch = list(
                session.scalars(
                    select(OutgoingMail)
                    .where(
                        OutgoingMail.status == MailStatus.PENDING,
                        OutgoingMail.kind == outbox.HELD_DIGEST,
                        OutgoingMail.moderator_id == row.moderator_id,
                        free,
                    )
                    .order_by(OutgoingMail.id)
                    .with_for_update(skip_locked=True, of=OutgoingMail)
                )
            )
            digests[row.moderator_id] = batch
            batches.append(batch)
        else:
            batches.append([row])
    for batch in batches:
        take_leases(batch, owner, until=now + LEASE)
    session.flush()
    return [[row.id for row in batch] for batch in batches]


@dataclasses.dataclass(frozen=True)
class Prepared:
    ids: list[int]
    message: EmailMessage | None


def prepare(session: Session, renderer: Renderer, ids: list[int], *, now: dt.datetime) -> Prepared:
    rows = [session.get_one(OutgoingMail, row_id) for row_id in ids]
    return Prepared(ids, render(session, renderer, rows, now=now))


class Mailer:
    """One SMTP connection per round, opened when the first message is ready."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.smtp: smtplib.SMTP | None = None

    def connect(self) -> smtplib.SMTP:
        s = self.settings
        port, timeout = s.effective_smtp_port, s.smtp_timeout
        context = ssl.create_default_context()
        smtp: smtplib.SMTP
        if s.smtp_security == "tls":
            smtp = smtplib.SMTP_SSL(s.smtp_host, port, timeout=timeout, context=context)
        else:
            smtp = smtplib.SMTP(s.smtp_host, port, timeout=timeout)
            if s.smtp_security == "starttls":
                smtp.starttls(context=context)
        if s.smtp_username:
            smtp.login(s.smtp_username, s.smtp_password)
        return smtp

    def send(self, message: EmailMessage) -> None:
        if self.smtp is None:
            self.smtp = self.connect()
        self.smtp.send_message(message)

    def close(self) -> None:
        if self.smtp is not None:
            try:
                self.smtp.quit()
            except (smtplib.SMTPException, OSError):
                self.smtp.close()
            self.smtp = None


def release_all(session: Session, ids: list[int], *, owner: str) -> None:
    for row_id in ids:
        row = session.get_one(OutgoingMail, row_id)
        if holds_lease(row, owner):
            release(row)


def record(
    session: Session,
    prepared: Prepared,
    error: str | None,
    *,
    owner: str,
    now: dt.datetime,
    rng: random.Random,
) -> None:
    """Move the batch on: sent, dropped (nothing to say), retried later, or failed."""
    for row_id in prepared.ids:
        row = session.get_one(OutgoingMail, row_id)
        if not holds_lease(row, owner) or row.status is not MailStatus.PENDING:
            continue  # our lease ran out and another worker took the row over
        release(row)
        if prepared.message is None:
            row.status = MailStatus.DROPPED
        elif error is None:
            row.status, row.sent_at, row.last_error = MailStatus.SENT, now, None
            row.attempts += 1
        else:
            row.attempts += 1
            row.last_error = error[:500]
            if row.attempts >= RETRY_SCHEDULE.max_attempts:
                row.status = MailStatus.FAILED
            else:
                row.next_attempt_at = now + RETRY_SCHEDULE.backoff(row.attempts, rng)


def send_due_mail(
    session_factory: sessionmaker[Session],
    settings: Settings,
    *,
    secret: str,
    now: dt.datetime,
    owner: str | None = None,
    limit: int = 20,
    rng: random.Random | None = None,
) -> int:
    """Send what is due in the mail outbox; returns the number of messages attempted."""
    if not settings.mail_enabled:
        return 0
    owner = owner or worker_name()
    rng = rng or random.Random()  # noqa: S311 (jitter, not a secret)
    digest_after = dt.timedelta(minutes=settings.mail_digest_minutes)
    with write_transaction(session_factory) as session:
        batches = claim_due(session, owner, now=now, digest_after=digest_after, limit=limit)
    if not batches:
        return 0
    renderer = Renderer(MailConfig(settings.public_url, settings.mail_from, secret))
    mailer = Mailer(settings)
    attempted, server_down = 0, False
    try:
        for ids in batches:
            with write_transaction(session_factory) as session:
                prepared = prepare(session, renderer, ids, now=now)
            error = None
            if prepared.message is not None and server_down:
                # Not tried: let the rows go for the next round rather than count a failure.
                with write_transaction(session_factory) as session:
                    release_all(session, ids, owner=owner)
                continue
            if prepared.message is not None:
                attempted += 1
                try:
                    mailer.send(prepared.message)
                except (smtplib.SMTPException, OSError) as failure:
                    error = f"{type(failure).__name__}: {failure}"
                    logger.warning("mail %s not sent: %s", ids[0], error)
                    server_down = mailer.smtp is None  # could not even connect
                    mailer.close()
            with write_transaction(session_factory) as session:
                record(session, prepared, error, owner=owner, now=now, rng=rng)
    finally:
        mailer.close()
    return attempted
