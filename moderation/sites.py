"""Sites: the blogs whose comments this service moderates."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from moderation.errors import ValidationFailed
from moderation.models import Site

_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")


def normalise_origin(value: str) -> str:
    """``https://Example.org/`` -> ``https://example.org``; refuse anything that is not an origin."""
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("an origin is http(s)://host[:port]")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise ValueError("an origin has no path, query, fragment or user")
    return f"{parts.scheme}://{parts.netloc.lower()}"


def create_site(session: Session, *, slug: str, name: str, origins: list[str]) -> Site:
    errors: dict[str, str] = {}
    if not _SLUG.match(slug):
        errors["slug"] = "Use lower-case letters, digits and hyphens, up to 64 characters"
    elif session.scalar(select(Site).where(Site.slug == slug)):
        errors["slug"] = "A site with that slug exists already"
    if not name.strip() or len(name) > 200:
        errors["name"] = "Give the site a name of up to 200 characters"
    cleaned: list[str] = []
    for origin in origins:
        try:
            cleaned.append(normalise_origin(origin))
        except ValueError as exc:
            errors["origins"] = f"{origin!r} is not an origin: {exc}"
    if not cleaned:
        errors.setdefault("origins", "Give at least one origin, like https://blog.example.gov.uk")
    if errors:
        raise ValidationFailed(fields=errors)
    site = Site(slug=slug, name=name.strip(), origins=cleaned)
    session.add(site)
    session.flush()
    return site
