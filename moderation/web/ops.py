"""For operators: liveness and readiness probes, Prometheus metrics, and one log line per request
with its id.

Log lines carry the method, the path without its query string (queries can hold a searched email
address), the status, the duration and the request id: never an email address or comment text.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import re
import secrets
import time
from typing import Any

from flask import Blueprint, Flask, Response, g, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import text

from moderation import metrics, schema
from moderation.errors import Forbidden, NotFound
from moderation.web.context import client_address, now, settings
from moderation.web.sessions import get_session
from moderation.webhooks.network import parse_networks

bp = Blueprint("ops", __name__)
log = logging.getLogger("moderation.requests")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
RETRY_AFTER_SECONDS = 5


@bp.get("/healthz")
def healthz() -> Response:
    """The process is up and answering."""
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz() -> tuple[Response, int] | Response:
    """The database answers and its schema is at the latest migration."""
    head = schema.head_revision()
    try:
        connection = get_session().connection()
        connection.execute(text("SELECT 1"))
        current = schema.current_revision(connection)
    except Exception as error:  # any failure to reach the database means "not ready"
        log.warning("not ready: database unavailable (%s)", type(error).__name__)
        return _not_ready("The database is not answering.")
    if current != head:
        return _not_ready(
            f"The database schema is at {current}, not {head}: run 'moderation db upgrade'."
        )
    return jsonify({"status": "ready", "revision": current})


@bp.get("/metrics")
def prometheus_metrics() -> Response:
    """Prometheus metrics in the text format, for the scraper only."""
    _check_scraper()
    body = metrics.render(get_session(), now())
    return Response(body, content_type=CONTENT_TYPE_LATEST, headers={"Cache-Control": "no-store"})


def _check_scraper() -> None:
    """Off (404) unless a token or an allow-list is set; 403 for anyone who has neither."""
    config = settings()
    if not config.metrics_token and not config.metrics_allow:
        raise NotFound()
    given = request.headers.get("Authorization", "").encode()
    if config.metrics_token and hmac.compare_digest(
        given, f"Bearer {config.metrics_token}".encode()
    ):
        return
    try:
        address = ipaddress.ip_address(client_address() or "")
    except ValueError:
        address = None
    if address and any(address in network for network in parse_networks(config.metrics_allow)):
        return
    raise Forbidden("Metrics need the scraper's bearer token or an allowed address.")


def _not_ready(message: str) -> tuple[Response, int]:
    response = jsonify({"error": {"code": "unavailable", "message": message, "fields": {}}})
    response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    response.headers["Cache-Control"] = "no-store"
    return response, 503


def request_id_of(environ: dict[str, Any]) -> str:
    """The caller's X-Request-ID when it is a sane token, otherwise a new one."""
    incoming = environ.get("HTTP_X_REQUEST_ID", "")
    return incoming if _REQUEST_ID.match(incoming) else secrets.token_hex(8)


def start_request() -> None:
    g.request_id = request_id_of(request.environ)
    g.started = time.perf_counter()


def finish_request(response: Response) -> Response:
    request_id = g.get("request_id") or secrets.token_hex(8)
    response.headers["X-Request-ID"] = request_id
    duration = time.perf_counter() - g.get("started", time.perf_counter())
    metrics.observe_request(request.endpoint or "unmatched", duration)
    log_request(
        settings().log_format == "json",
        request.method,
        request.path,
        response.status_code,
        duration,
        request_id,
    )
    return response


def log_request(
    json_lines: bool, method: str, path: str, status: int, seconds: float, request_id: str
) -> None:
    """One line per request (also for replayed ones: web/replay.py)."""
    if not log.isEnabledFor(logging.INFO):
        return
    fields = {
        "request_id": request_id,
        "method": method,
        "path": path,
        "status": status,
        "duration_ms": round(seconds * 1000, 1),
    }
    if json_lines:
        log.info(json.dumps(fields))
    else:
        log.info("%(method)s %(path)s %(status)s %(duration_ms)sms id=%(request_id)s", fields)


def register(app: Flask) -> None:
    app.register_blueprint(bp)
    app.before_request(start_request)
    app.after_request(finish_request)
    # Werkzeug's own access log prints query strings; ours replaces it.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
