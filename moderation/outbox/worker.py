"""The worker loop: deliver webhooks, send mail and apply the retention periods once a day.

It runs as ``moderation worker`` (several processes on PostgreSQL share the work through leases)
or as a thread of ``moderation serve`` beside the embedded SQLite database.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable

from sqlalchemy.orm import Session, sessionmaker

from moderation.config import Settings
from moderation.outbox.leasing import worker_name
from moderation.outbox.mail import send_due_mail
from moderation.outbox.webhooks import deliver_due
from moderation.personal_data import purge_if_due

logger = logging.getLogger(__name__)


def run_once(
    session_factory: sessionmaker[Session],
    settings: Settings,
    *,
    now: dt.datetime,
    limit: int = 1000,
) -> tuple[int, int]:
    """Deliver and send what is due now; returns the deliveries and mails attempted."""
    delivered = deliver_due(session_factory, settings, now=now, limit=limit)
    sent = send_due_mail(
        session_factory, settings, secret=settings.effective_secret_key, now=now, limit=limit
    )
    return delivered, sent


def run_worker(
    session_factory: sessionmaker[Session],
    settings: Settings,
    stop: threading.Event,
    *,
    interval: float = 1.0,
    clock: Callable[[], dt.datetime] | None = None,
    started: threading.Event | None = None,
) -> None:
    """Deliver webhooks and send mail until ``stop`` is set; sleeps ``interval`` when idle.
    Applies the retention periods once a day (the first worker to claim the day does).
    ``started`` is set after the first round (so a caller can print its own lines after)."""
    owner = worker_name()
    now = clock or (lambda: dt.datetime.now(dt.UTC))
    logger.info("webhook worker %s started", owner)
    while not stop.is_set():
        try:
            purge_if_due(session_factory, settings, now())
        except Exception:
            logger.exception("worker %s: the daily retention purge failed; retrying", owner)
        try:
            refresh_sso_if_due(session_factory, settings, now())
        except Exception:
            logger.exception("worker %s: asking the sign-in provider failed; retrying", owner)
        try:
            done = deliver_due(session_factory, settings, now=now(), owner=owner)
        except Exception:
            logger.exception("webhook worker %s: a round failed; retrying", owner)
            done = 0
        try:
            done += send_due_mail(
                session_factory, settings, secret=settings.effective_secret_key, now=now(),
                owner=owner,
            )  # fmt: skip
        except Exception:
            logger.exception("worker %s: a mail round failed; retrying", owner)
        if started is not None:
            started.set()
        if not done:
            stop.wait(interval)
    logger.info("webhook worker %s stopped", owner)


def refresh_sso_if_due(
    session_factory: sessionmaker[Session], settings: Settings, now: dt.datetime
) -> None:
    """Ask the OpenID provider about single sign-on logins: a refused refresh ends the login, so
    a person the organisation disabled loses access within half the session idle time."""
    if not settings.sso_enabled:
        return
    from moderation import sso  # Authlib is loaded only where single sign-on is on

    for _ in sso.refresh_sessions(
        session_factory,
        sso.cached_refresher(settings),
        secret=settings.effective_secret_key,
        now=now,
        every=dt.timedelta(minutes=settings.session_idle_minutes) / 2,
    ):
        pass


def start_thread(
    session_factory: sessionmaker[Session],
    settings: Settings,
    stop: threading.Event,
    started: threading.Event | None = None,
) -> threading.Thread:
    """Run the worker in a daemon thread of this process (the embedded, one-process setup)."""
    thread = threading.Thread(
        target=run_worker,
        args=(session_factory, settings, stop),
        kwargs={"started": started},
        name="webhook-worker",
        daemon=True,
    )
    thread.start()
    return thread
