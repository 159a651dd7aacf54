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
) -> None:
    """Deliver webhooks and send mail until ``stop`` is set; sleeps ``interval`` when idle.
    Applies the retention periods once a day (the first worker to claim the day does)."""
    owner = worker_name()
    now = clock or (lambda: dt.datetime.now(dt.UTC))
    logger.info("webhook worker %s started", owner)
    while not stop.is_set():
        try:
            purge_if_due(session_factory, settings, now())
        except Exception:
            logger.exception("worker %s: the daily retention purge failed; retrying", owner)
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
        if not done:
            stop.wait(interval)
    logger.info("webhook worker %s stopped", owner)


def start_thread(
    session_factory: sessionmaker[Session], settings: Settings, stop: threading.Event
) -> threading.Thread:
    """Run the worker in a daemon thread of this process (the embedded, one-process setup)."""
    thread = threading.Thread(
        target=run_worker,
        args=(session_factory, settings, stop),
        name="webhook-worker",
        daemon=True,
    )
    thread.start()
    return thread
