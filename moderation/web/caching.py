"""HTTP caching of public reads: strong ETags from thread versions, Cache-Control, 304s."""

from __future__ import annotations

import hashlib
from importlib.metadata import PackageNotFoundError, version

from flask import Response, current_app, g, request

from moderation.publishing import ThreadHead, ThreadHeads
from moderation.web.context import now, settings
from moderation.web.sessions import get_session


def _build() -> str:
    try:
        return version("moderation")
    except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "dev"


BUILD = _build()


def strong_etag(*parts: object) -> str:
    """A strong ETag: the same parts (version, variant, query) always give the same bytes."""
    raw = "|".join(str(p) for p in (BUILD, *parts))
    return '"' + hashlib.blake2b(raw.encode(), digest_size=12).hexdigest() + '"'


def thread_head(slug: str, key: str) -> ThreadHead | None:
    """The thread's head (what its ETag is made of), from memory while the database is unchanged.

    It also leaves the site's origins for the CORS hook (embed.cors_for_site), so a public read
    never loads the site just for them.
    """
    heads: ThreadHeads = current_app.extensions["moderation.heads"]
    head = heads.get(lambda: get_session().connection(), slug, key, now=now())
    if head is not None:
        g.site_origins = head.site_state[2]
    return head


def variant() -> str:
    """What else the representation depends on: the query string, sorted."""
    return "&".join(f"{k}={v}" for k, v in sorted(request.args.items(multi=True)))


def cache_control() -> str:
    value: str | None = current_app.extensions.get("moderation.cache_control")
    if value is None:  # built once per app: settings never change while it runs
        config = settings()
        value = current_app.extensions["moderation.cache_control"] = (
            f"public, max-age={config.public_max_age}, "
            f"stale-while-revalidate={config.public_stale_while_revalidate}"
        )
    return value


def not_modified(etag: str) -> Response | None:
    """A bodiless 304 if the client already holds ``etag``; built without touching templates."""
    if not matches(request.environ.get("HTTP_IF_NONE_MATCH"), etag):
        return None
    return cacheable(Response(status=304), etag)


def matches(if_none_match: str | None, etag: str) -> bool:
    """Whether an If-None-Match header names ``etag`` (weak comparison, RFC 9110 13.1.2)."""
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    return any(tag.strip().removeprefix("W/") == etag for tag in if_none_match.split(","))


def cacheable(response: Response, etag: str) -> Response:
    response.headers["ETag"] = etag
    response.headers["Cache-Control"] = cache_control()
    return response
