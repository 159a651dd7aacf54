"""Domain errors: each has a stable ``code`` and an HTTP status, and is raised, never returned.

Messages are shown to users as they are, so they never contain an email address, an IP
address or SQL.
"""

from __future__ import annotations

from collections.abc import Mapping


class ServiceError(Exception):
    code = "error"
    status = 400
    default_message = "The request could not be completed."
    # The i18n catalogue's key for the message, where a commenter may read it in their language.
    message_key: str | None = None

    def __init__(self, message: str | None = None, fields: Mapping[str, str] | None = None):
        self.message = message or self.default_message
        self.fields = dict(fields or {})
        super().__init__(self.message)


class ValidationFailed(ServiceError):
    code = "validation_failed"
    status = 422
    default_message = "Some fields need correcting."


class Malformed(ServiceError):
    code = "malformed"
    status = 400
    default_message = "The request could not be read."


class NotFound(ServiceError):
    code = "not_found"
    status = 404
    default_message = "Not found."


class OriginNotAllowed(ServiceError):
    code = "origin_not_allowed"
    status = 403
    default_message = "This site does not accept comments from that address."


class ThreadClosed(ServiceError):
    code = "thread_closed"
    status = 403
    default_message = "Comments are closed on this post."


class Banned(ServiceError):
    """A banned sender, on a site that says so (``ban_response`` refuse); the message is the
    site's own text, or the catalogue's in the sender's language."""

    code = "banned"
    status = 403
    default_message = "You cannot comment on this blog."


class Forbidden(ServiceError):
    code = "forbidden"
    status = 403
    default_message = "You are not allowed to do that."


class Unauthorized(ServiceError):
    code = "unauthorized"
    status = 401
    default_message = "Authentication is required."


class AlreadyModerated(ServiceError):
    code = "already_moderated"
    status = 409
    default_message = "This comment has already been moderated."


class InvalidCredentials(ServiceError):
    code = "invalid_credentials"
    status = 401
    default_message = "The login name or password is not correct."


class UnsupportedMediaType(ServiceError):
    code = "unsupported_media_type"
    status = 415
    default_message = "Send the request body as application/json."


class RateLimited(ServiceError):
    code = "rate_limited"
    status = 429
    default_message = "Too many attempts. Wait a while and try again."

    def __init__(self, message: str | None = None, *, retry_after: int = 60):
        super().__init__(message)
        self.retry_after = retry_after


class SignInRefused(ServiceError):
    """Single sign-on refused: the provider's answer failed a check, or nobody may enter with it.

    ``reason`` is a stable word for the audit log (``bad_token``, ``domain``, ...).
    """

    code = "sign_in_refused"
    status = 403
    default_message = "You could not be signed in."

    def __init__(self, message: str | None = None, *, reason: str):
        super().__init__(message)
        self.reason = reason


class SecondFactorRequired(ServiceError):
    code = "second_factor_required"
    status = 403
    default_message = "Confirm it is you with your second factor first."


class InvalidSecondFactor(ServiceError):
    code = "invalid_second_factor"
    status = 401
    default_message = "The code is not correct, or has been used already."
