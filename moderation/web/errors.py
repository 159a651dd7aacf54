"""One place that renders every error: the JSON error shape for the API, HTML pages elsewhere."""

from __future__ import annotations

import logging

from flask import Flask, Response, g, jsonify, render_template, request
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException

from moderation import i18n
from moderation.db import database_unavailable, storage_full
from moderation.errors import RateLimited, ServiceError
from moderation.spam import FORM_TOKEN_FIELD
from moderation.web.sessions import close_session

log = logging.getLogger(__name__)

HTTP_CODES = {
    400: "malformed",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "validation_failed",
    429: "rate_limited",
    500: "internal_error",
    503: "unavailable",
}
MESSAGES = {
    400: "The request could not be read.",
    404: "Not found.",
    405: "This address does not accept that method.",
    413: "The request is too large.",
    500: "Something went wrong on our side. Try again later.",
    503: "The service is unavailable for a moment. Try again shortly.",
}
STORAGE_FULL_MESSAGE = "The service cannot store anything at the moment. Try again later."
RETRY_AFTER_SECONDS = 5
# A full disk takes an operator to clear: clients need not retry every few seconds.
STORAGE_FULL_RETRY_AFTER_SECONDS = 60


def wants_json() -> bool:
    """The API and the operators' endpoints (probes, metrics) answer errors in JSON."""
    return request.path.startswith("/api/") or request.blueprint == "ops"


def unsent_comment() -> dict[str, str] | None:
    """What a commenter typed into the no-JavaScript form when it could not be taken (the
    service was unavailable, they sent too many, it failed): the error page gives it back, ready
    to send again, so no error loses what a person wrote. Field errors are shown on the form
    itself (embed.submit); a body too large to read is not given back."""
    from moderation.web.embed import FORM_FIELDS, FORM_TYPES

    if request.endpoint != "embed.submit" or request.mimetype not in FORM_TYPES:
        return None

    try:
        form = request.form
    except HTTPException:
        return None
    return {name: form.get(name, "") for name in (*FORM_FIELDS, FORM_TOKEN_FIELD)}


def commenter_language() -> str | None:
    """The language of a page a commenter reads: the embed's, or that of the comment a mailed
    link is for (set by the link's view). None on the moderators' pages, which are English."""
    if request.blueprint == "embed":
        return i18n.language(request.args.get("lang"))
    lang: str | None = g.get("commenter_lang")
    return lang


def error_response(
    status: int,
    code: str,
    message: str,
    fields: dict[str, str] | None = None,
    message_key: str | None = None,
) -> Response:
    if wants_json():
        response = jsonify({"error": {"code": code, "message": message, "fields": fields or {}}})
    else:
        unsent = unsent_comment() if status != 413 else None
        lang = commenter_language()
        commenter = lang is not None
        lang = lang or i18n.DEFAULT_LANGUAGE
        response = Response(
            render_template(
                "error.html",
                status=status,
                message=i18n.error_message(lang, code, message, message_key),
                fields=i18n.field_errors(lang, fields or {}),
                unsent=unsent,
                commenter=commenter,
                page_lang=lang,
                t=i18n.translator(lang),
            )
        )
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    return response


def handle_service_error(error: ServiceError) -> Response:
    response = error_response(
        error.status, error.code, error.message, error.fields, error.message_key
    )
    if error.status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="moderation"'
    if isinstance(error, RateLimited):
        response.headers["Retry-After"] = str(error.retry_after)
    return response


def handle_http_exception(error: HTTPException) -> Response:
    status = error.code or 500
    code = HTTP_CODES.get(status, "http_error")
    message = MESSAGES.get(status) or error.description or "The request failed."
    response = error_response(status, code, message)
    for name, value in error.get_headers():
        if name.lower() == "allow":
            response.headers["Allow"] = value
    return response


def handle_database_error(error: DBAPIError) -> Response:
    """A database that is down, restarting, locked or full: 503 with Retry-After, never a 500.

    The request's session is closed at once (its transaction is lost), and ``g`` notes the
    outage so that after-request hooks do not go back to the database.
    """
    if not database_unavailable(error):
        return handle_unexpected(error)
    close_session()
    g.database_unavailable = True
    if storage_full(error):
        log.error("database storage full: %s", type(error.orig).__name__)
        response = error_response(503, "storage_full", STORAGE_FULL_MESSAGE)
        response.headers["Retry-After"] = str(STORAGE_FULL_RETRY_AFTER_SECONDS)
        return response
    log.error("database unavailable: %s", type(error.orig).__name__)
    response = error_response(503, "unavailable", MESSAGES[503])
    response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def handle_pool_exhausted(error: PoolTimeout) -> Response:
    """Every connection of the pool busy for longer than its timeout: the database is
    unavailable for this request, as documented (503 with Retry-After), never a 500."""
    close_session()
    g.database_unavailable = True
    log.error("database connection pool exhausted")
    response = error_response(503, "unavailable", MESSAGES[503])
    response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def handle_unexpected(error: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.path)
    return error_response(500, "internal_error", MESSAGES[500])


def register(app: Flask) -> None:
    app.register_error_handler(ServiceError, handle_service_error)
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(DBAPIError, handle_database_error)
    app.register_error_handler(PoolTimeout, handle_pool_exhausted)
    app.register_error_handler(Exception, handle_unexpected)
