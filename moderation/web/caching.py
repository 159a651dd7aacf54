"""HTTP caching of public reads: strong ETags from thread versions, Cache-Control, 304s."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from importlib.metadata import PackageNotFoundError, version

from flask import Response, current_app, g, request
from sqlalchemy import Connection

from moderation.publishing import Probe, ThreadHead, ThreadHeads, read_thread_head
from moderation.web.context import now, settings
from moderation.web.sessions import get_session


def _build() -> str:
    try:
        return version("moderation")
    except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "dev"


BUILD = _build()
# Seconds a cache may keep serving a stale read while it revalidates in the background. Not a
# setting: operators choose freshness with MODERATION_PUBLIC_MAX_AGE; this only hides latency.
STALE_WHILE_REVALIDATE = 60


def strong_etag(*parts: object) -> str:
    """A strong ETag: the same parts (version, variant, query) always give the same bytes."""
    raw = "|".join(str(p) for p in (BUILD, *parts))
    return '"' + hashlib.blake2b(raw.encode(), digest_size=12).hexdigest() + '"'


def thread_head(slug: str, key: str, published: dt.datetime | None = None) -> ThreadHead | None:
    """The thread's head (what its ETag is made of), from memory while the database is unchanged.

    It also leaves the site's origins for the CORS hook (embed.cors_for_site), so a public read
    never loads the site just for them.
    """
    heads: ThreadHeads = current_app.extensions["moderation.heads"]
    head = heads.get(lambda: get_session().connection(), slug, key, now=now(), published=published)
    if head is not None:
        g.site_origins = head.site_state[2]
    return head


def thread_probe(slug: str, key: str, published: dt.datetime | None = None) -> Probe:
    """Reads a thread's head again, for the replay layer (see replay.Replayable)."""

    def probe(connection: Connection, at: dt.datetime) -> object:
        return read_thread_head(connection, slug, key, now=at, published=published)

    return probe


def variant() -> str:
    """What else the representation depends on: the scheme (absolute links are built with it)
    and the parsed query values, sorted, encoded so that no value can pose as another: joined
    back as a query string, ``?lang=cy%26page%3D1`` and ``?lang=cy&page=1`` were one key."""
    pairs = sorted(request.args.items(multi=True))
    return json.dumps([request.scheme, pairs], ensure_ascii=False, separators=(",", ":"))


def cache_control() -> str:
    value: str | None = current_app.extensions.get("moderation.cache_control")
    if value is None:  # built once per app: settings never change while it runs
        config = settings()
        value = current_app.extensions["moderation.cache_control"] = (
            f"public, max-age={config.public_max_age}, "
            f"stale-while-revalidate={STALE_WHILE_REVALIDATE}"
        )
    return value


def revalidated_cache_control() -> str:
    """For the embedded thread: browsers revalidate on every load (``max-age=0``: a 304 while
    nothing changed), so an approval shows on the next reload of the post; shared caches (a CDN
    in front) may keep it ``s-maxage`` seconds. No ``stale-while-revalidate``: browsers honour
    it too, and would show the old thread once more after an approval."""
    value: str | None = current_app.extensions.get("moderation.revalidated_cache_control")
    if value is None:
        value = current_app.extensions["moderation.revalidated_cache_control"] = (
            f"public, max-age=0, s-maxage={settings().public_max_age}"
        )
    return value


def not_modified(etag: str, *, revalidate: bool = False) -> Response | None:
    """A bodiless 304 if the client already holds ``etag``; built without touching templates."""
    if not matches(request.environ.get("HTTP_IF_NONE_MATCH"), etag):
        return None
    return cacheable(Response(status=304), etag, revalidate=revalidate)


def matches(if_none_match: str | None, etag: str) -> bool:
    """Whether an If-None-Match header names ``etag`` (weak comparison, RFC 9110 13.1.2)."""
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    return any(tag.strip().removeprefix("W/") == etag for tag in if_none_match.split(","))


def cacheable(response: Response, etag: str, *, revalidate: bool = False) -> Response:
    """ETag and Cache-Control; ``revalidate`` for what browsers must check on every load."""
    response.headers["ETag"] = etag
    response.headers["Cache-Control"] = (
        revalidated_cache_control() if revalidate else cache_control()
    )
    return response
