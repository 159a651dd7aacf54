"""Replaying public reads: a thin WSGI layer in front of the app that answers a GET of a thread
(the fragment, the standalone page or the comments JSON) or of counts with the response the app
gave last for the same request, for as long as what the answer was made of is unchanged.

On a SQLite file that is "nobody has committed to the database since" (SQLite's commit counter,
read on every request: a moderation action in any process is seen at once) and at most a second
(a thread can close by age with no commit). On PostgreSQL, which has no such counter, the view
names its answer's state (the thread's head: site settings, the post's version, whether it is
closed; or the counted posts' versions), read before the answer was made, and a probe that reads
it again: each replay runs that one small indexed query, on a connection of the layer's own, and
replays only if the state is equal. Every moderation action bumps the post's version in its own
transaction, so the first read after its commit, in any worker, misses and reaches the app.

What is replayed is the app's own answer: its status, headers and body, with a new request id and,
in a form, a freshly signed time-trap token; a matching ``If-None-Match`` gets the 304 the app
gives (the same headers without the entity ones). Replays are logged and timed like any request.
Everything else goes to the app.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from flask import Flask, request
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.datastructures import Headers
from werkzeug.http import remove_entity_headers

from moderation import metrics, spam
from moderation.db import make_engine
from moderation.models import utcnow
from moderation.publishing import Probe
from moderation.web import ops
from moderation.web.caching import matches

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

log = logging.getLogger(__name__)

MARK = "moderation.replayable"
TTL_SECONDS = 1.0
# Answers kept per process: a thread page is tens of KB, so a full table stays near 10 MB.
SIZE = 256
PROBE_REST_SECONDS = 5.0
PROBE_CONNECT_TIMEOUT_SECONDS = 1


@dataclasses.dataclass(frozen=True)
class Replayable:
    """Set by a view on its request: this answer may be replayed. ``token``: the form token in
    the body, replaced by a fresh one for ``site`` on every replay. ``state``: what the answer
    was made of, read before it; ``probe`` reads it again (PostgreSQL replays only then)."""

    etag: str
    site: str
    endpoint: str
    token: str | None = None
    state: object = None
    probe: Probe | None = None


@dataclasses.dataclass(frozen=True)
class Answer:
    seen: int | None  # the commit counter's value, None where there is none (PostgreSQL)
    until: float
    mark: Replayable
    not_modified: list[tuple[str, str]]
    ok: list[tuple[str, str]] | None  # None: only a 304 was seen
    pieces: tuple[bytes, ...] = ()


def mark_replayable(
    etag: str,
    site: str,
    token: str | None = None,
    *,
    state: object = None,
    probe: Probe | None = None,
) -> None:
    request.environ[MARK] = Replayable(
        etag, site, request.endpoint or "unmatched", token, state, probe
    )


_UNREADABLE = object()  # a probe that failed: equal to no state


class Probes:
    """The replay layer's own connections to PostgreSQL, for probes: autocommit (a one-row read
    needs no BEGIN and ROLLBACK around it) and no ping on checkout (a dropped connection fails its
    probe, the request goes to the app, and the pool replaces the connection). Made lazily in
    each process, so a forked worker never shares one. After a failure the probes rest for
    :data:`PROBE_REST_SECONDS`: while the database is away, requests go straight to the app
    (which answers 503) instead of waiting twice."""

    def __init__(self, engine: Engine) -> None:
        self.url = engine.url.render_as_string(hide_password=False)
        self._engine: Engine | None = None
        self._pid = 0
        self._lock = threading.Lock()
        self._resting_until = 0.0

    def _connect(self) -> Connection:
        if self._engine is None or self._pid != os.getpid():
            with self._lock:
                if self._engine is None or self._pid != os.getpid():
                    self._engine = make_engine(
                        self.url,
                        isolation_level="AUTOCOMMIT",
                        pool_pre_ping=False,
                        # A probe is a one-row read: a server that takes longer than this to
                        # accept a connection is left to the app (which waits its own timeout).
                        connect_args={"connect_timeout": PROBE_CONNECT_TIMEOUT_SECONDS},
                    )
                    self._pid = os.getpid()
        return self._engine.connect()

    def dispose(self) -> None:
        if self._engine is not None:
            self._engine.dispose()

    def read(self, probe: Probe) -> object:
        if time.monotonic() < self._resting_until:
            return _UNREADABLE
        try:
            with self._connect() as connection:
                return probe(connection, utcnow())
        except SQLAlchemyError as error:
            self._resting_until = time.monotonic() + PROBE_REST_SECONDS
            log.warning("replay probe failed (%s): the app answers", type(error).__name__)
            return _UNREADABLE


def probes_for(engine: Engine) -> Probes | None:
    """Probes for an engine without a commit counter that has them (PostgreSQL); else None."""
    return Probes(engine) if engine.dialect.name == "postgresql" else None


class Replay:
    def __init__(self, app: WSGIApplication, flask_app: Flask) -> None:
        self.app = app
        self.flask_app = flask_app
        self.json_lines = flask_app.extensions["moderation.settings"].log_format == "json"
        self._answers: dict[tuple[Any, ...], Answer] = {}
        self._lock = threading.Lock()

    def _commits(self) -> int | None:
        commits = self.flask_app.extensions["moderation.heads"].commits
        return None if commits is None else commits.value()

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") != "GET":
            return self.app(environ, start_response)
        seen = self._commits()
        probes: Probes | None = self.flask_app.extensions.get("moderation.probes")
        if seen is None and probes is None:
            return self.app(environ, start_response)
        key = (
            environ.get("PATH_INFO"),
            environ.get("QUERY_STRING"),
            environ.get("HTTP_HOST"),
            environ.get("HTTP_ORIGIN"),
            environ.get("wsgi.url_scheme"),
        )
        answer = self._answers.get(key)
        if answer is not None and self._current(answer, seen, probes):
            if matches(environ.get("HTTP_IF_NONE_MATCH"), answer.mark.etag):
                return self._send(environ, start_response, answer, "304 NOT MODIFIED", None)
            if answer.ok is not None:
                return self._send(environ, start_response, answer, "200 OK", answer.ok)
        return self._record(environ, start_response, key, seen)

    @staticmethod
    def _current(answer: Answer, seen: int | None, probes: Probes | None) -> bool:
        """Whether ``answer`` is still what the app would say."""
        if seen is not None:
            return answer.seen == seen and time.monotonic() < answer.until
        mark = answer.mark
        if probes is None or mark.probe is None or mark.state is None:
            return False
        return bool(probes.read(mark.probe) == mark.state)

    def _send(
        self,
        environ: WSGIEnvironment,
        start_response: StartResponse,
        answer: Answer,
        status: str,
        headers: list[tuple[str, str]] | None,
    ) -> Iterable[bytes]:
        started = time.perf_counter()
        request_id = ops.request_id_of(environ)
        body: list[bytes] = []
        if headers is None:
            headers = answer.not_modified
        else:
            mark = answer.mark
            body = [answer.pieces[0]]
            if mark.token is not None:  # the page around a fresh token, sent without copying it
                secret = self.flask_app.config["SECRET_KEY"]
                body += [spam.issue_form_token(secret, mark.site, now=utcnow()).encode()]
                body += answer.pieces[1:]
            headers = [*headers, ("Content-Length", str(sum(map(len, body))))]
        start_response(status, [*headers, ("X-Request-ID", request_id)])
        duration = time.perf_counter() - started
        metrics.observe_request(answer.mark.endpoint, duration)
        path = environ.get("PATH_INFO", "")
        ops.log_request(self.json_lines, "GET", path, int(status[:3]), duration, request_id)
        return body

    def _record(
        self,
        environ: WSGIEnvironment,
        start_response: StartResponse,
        key: tuple[Any, ...],
        seen: int | None,
    ) -> Iterable[bytes]:
        sent: dict[str, Any] = {}

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            sent["status"], sent["headers"] = status, headers
            return start_response(status, headers, exc_info)

        result = self.app(environ, capture)
        mark: Replayable | None = environ.get(MARK)
        status = sent.get("status", "")
        if mark is None or not status.startswith(("200", "304")):
            return result
        if seen is None and (mark.probe is None or mark.state is None):
            return result  # without a commit counter, only an answer that can be probed
        try:
            body = b"".join(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        self._keep(key, seen, mark, environ, status, sent["headers"], body)
        return [body]

    def _keep(
        self,
        key: tuple[Any, ...],
        seen: int | None,
        mark: Replayable,
        environ: WSGIEnvironment,
        status: str,
        sent: list[tuple[str, str]],
        body: bytes,
    ) -> None:
        headers = Headers(sent)
        if "Set-Cookie" in headers:  # never the case for public reads; never replay one
            return
        del headers["X-Request-ID"]
        del headers["Content-Length"]
        ok: list[tuple[str, str]] | None = None
        pieces: tuple[bytes, ...] = ()
        if status.startswith("200"):
            ok = headers.to_wsgi_list()
            if mark.token is None:
                pieces = (body,)
            else:
                pieces = tuple(body.split(mark.token.encode()))
                if len(pieces) != 2:  # the token must be in the page exactly once
                    return
        remove_entity_headers(headers)
        answer = Answer(
            seen, time.monotonic() + TTL_SECONDS, mark, headers.to_wsgi_list(), ok, pieces
        )
        with self._lock:
            if len(self._answers) >= SIZE:
                self._answers.clear()
            self._answers[key] = answer
