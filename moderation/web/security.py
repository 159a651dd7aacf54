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
    headers = response.headers
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "strict-origin-when-cross-origin")
    path = request.path
    if path.startswith("/moderate"):
        headers.setdefault("Cache-Control", "no-store")
    elif not path.startswith(("/demo", "/mail")):
        return response
    if response.mimetype == "text/html":
        headers.setdefault("Content-Security-Policy", PAGE_CSP)
    return response


def register(app: Flask) -> None:
    app.after_request(add_security_headers)
