"""Small request-scoped helpers shared by the blueprints."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from flask import current_app, request

from moderation.comments import client_ip
from moderation.config import Settings
from moderation.errors import Malformed, UnsupportedMediaType
from moderation.models import utcnow


def settings() -> Settings:
    result: Settings = current_app.extensions["moderation.settings"]
    return result


def hasher() -> PasswordHasher:
    result: PasswordHasher = current_app.extensions["moderation.hasher"]
    return result


def now() -> dt.datetime:
    return utcnow()


def client_address() -> str | None:
    """The client's address; behind proxies, ProxyFix (trusted hops only) has set it. An IPv4
    address carried in IPv6 (``::ffff:1.2.3.4``) is given as IPv4, so blocklists, rate limits
    and the metrics allow-list see the client as it is."""
    ip = client_ip(request.remote_addr)
    return str(ip) if ip is not None else request.remote_addr


def foreign_origin() -> str | None:
    """The request's Origin, or None when it is this service itself (its iframe page, the demo):
    only other origins are checked against the site's list."""
    origin = request.headers.get("Origin")
    if origin is None or origin.rstrip("/").lower() == request.host_url.rstrip("/").lower():
        return None
    return origin


def json_object() -> dict[str, Any]:
    """The request body as a JSON object, or the documented 415/400 error."""
    if request.mimetype != "application/json":
        raise UnsupportedMediaType()
    raw = request.get_data(cache=False)
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise Malformed("The request body is not valid UTF-8.") from None
    except (ValueError, RecursionError):
        raise Malformed("The request body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise Malformed("The request body must be a JSON object.")
    try:
        # A \ud800 escape decodes to a lone surrogate, which no database can store.
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise Malformed("The request body holds an unpaired surrogate (\\ud800-\\udfff).") from None
    return data


def required_post_key() -> str:
    """The ``post`` query parameter that every thread endpoint needs."""
    key = request.args.get("post", "")
    if not key:
        raise Malformed("Say which post with ?post=KEY.", fields={"post": "Required"})
    return key


def save_body(path: Path, limit: int) -> None:
    """Write the request body to ``path`` as it arrives, never all of it in memory: for uploads
    larger than the usual request cap. Past ``limit`` bytes the request fails with 413."""
    request.max_content_length = limit
    with path.open("wb") as out:
        shutil.copyfileobj(request.stream, out, 64 * 1024)
