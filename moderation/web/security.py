"""Response headers that make every page safer to serve."""

from __future__ import annotations

from flask import Flask, Response, request

# Pages of the service itself (the moderation queue, the demo, the pages behind links in mail):
# no inline script, no framing.
PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; object-src 'none'; base-uri 'none'"
)


def add_security_headers(response: Response) -> Response:
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "strict-origin-when-cross-origin")
    if (
        request.path.startswith(("/moderate", "/demo", "/mail"))
        and response.mimetype == "text/html"
    ):
        response.headers.setdefault("Content-Security-Policy", PAGE_CSP)
    if request.path.startswith("/moderate"):
        response.headers.setdefault("Cache-Control", "no-store")
    return response


def register(app: Flask) -> None:
    app.after_request(add_security_headers)
