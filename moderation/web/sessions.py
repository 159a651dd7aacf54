"""One database session per Flask app context: created on first use, closed at teardown.

A request with an unsafe method (POST, ...) gets a write transaction, so that its reads and
writes happen under one SQLite write lock; a view marked :func:`reads_first` takes the lock
later (``db.become_writer``, through the service) when its checks are done.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from flask import current_app, g, has_request_context, request
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from moderation.db import begin_as_writer

log = logging.getLogger(__name__)
P = ParamSpec("P")
R = TypeVar("R")

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def reads_first(view: Callable[P, R]) -> Callable[P, R]:
    """Mark a write view whose session starts as a reader: it calls ``db.become_writer``
    (through the service) when its checks are done."""

    @functools.wraps(view)
    def marked(*args: P.args, **kwargs: P.kwargs) -> R:
        g.db_reads_first = True
        return view(*args, **kwargs)

    return marked


def get_session() -> Session:
    """The session of the current app context, created on first use (a writer for unsafe
    methods, unless the view :func:`reads_first`)."""
    if "db_session" not in g:
        factory: sessionmaker[Session] = current_app.extensions["moderation.sessionmaker"]
        session = factory()
        g.db_session = session
        if (
            has_request_context()
            and request.method not in SAFE_METHODS
            and not g.get("db_reads_first")
        ):
            begin_as_writer(session)
    result: Session = g.db_session
    return result


def close_session(_exc: BaseException | None = None) -> None:
    """Close the app context's session (rolling back what it did not commit), if it has one.

    The rollback of a connection the database dropped fails; the connection is discarded then,
    and the next request draws a fresh one.
    """
    session: Session | None = g.pop("db_session", None)
    if session is not None:
        try:
            session.close()
        except SQLAlchemyError as error:
            log.warning("discarding a broken database connection (%s)", type(error).__name__)
            session.invalidate()
