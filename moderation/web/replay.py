"""Replaying public reads: a thin WSGI layer in front of the app that answers a GET of a thread
(the fragment, the standalone page or the comments JSON) with the response the app gave last for
the same request, for as long as nobody has committed to the database since (SQLite's commit
counter, read on every request: a moderation action in any process is seen at once) and at most
a second (a thread can close by age with no commit).

What is replayed is the app's own answer: its status, headers and body, with a new request id and,
in a form, a freshly signed time-trap token; a matching ``If-None-Match`` gets the 304 the app
gives (the same headers without the entity ones). Replays are logged and timed like any request.
Everything else, and everything on PostgreSQL (no commit counter), goes to the app.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from flask import Flask, request
from werkzeug.datastructures import Headers
from werkzeug.http import remove_entity_headers

from moderation import metrics, spam
from moderation.models import utcnow
from moderation.web import ops
from moderation.web.caching import matches

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

MARK = "moderation.replayable"
TTL_SECONDS = 1.0
# Answers kept per process: a thread page is tens of KB, so a full table stays near 10 MB.
SIZE = 256


@dataclasses.dataclass(frozen=True)
class Replayable:
    """Set by a view on its request: this answer may be replayed. ``token``: the form token in
    the body, replaced by a fresh one for ``site`` on every replay."""

    etag: str
    site: str
    endpoint: str
    token: str | None = None


@dataclasses.dataclass(frozen=True)
class Answer:
    seen: int
    until: float
    mark: Replayable
    not_modified: list[tuple[str, str]]
    ok: list[tuple[str, str]] | None  # None: only a 304 was seen
    pieces: tuple[bytes, ...] = ()


def mark_replayable(etag: str, site: str, token: str | None = None) -> None:
    request.environ[MARK] = Replayable(etag, site, request.endpoint or "unmatched", token)


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
        if seen is None:
            return self.app(environ, start_response)
        key = (
            environ.get("PATH_INFO"),
            environ.get("QUERY_STRING"),
            environ.get("HTTP_HOST"),
            environ.get("HTTP_ORIGIN"),
            environ.get("wsgi.url_scheme"),
        )
        answer = self._answers.get(key)
        if answer is not None and answer.seen == seen and time.monotonic() < answer.until:
            if matches(environ.get("HTTP_IF_NONE_MATCH"), answer.mark.etag):
                return self._send(environ, start_response, answer, "304 NOT MODIFIED", None)
            if answer.ok is not None:
                return self._send(environ, start_response, answer, "200 OK", answer.ok)
        return self._record(environ, start_response, key, seen)

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
        seen: int,
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
        seen: int,
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
