"""Sites: the blogs whose comments this service moderates, and their moderation settings."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import types
from collections.abc import Callable, Mapping
from typing import Any

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import select
from sqlalchemy.orm import Session

from moderation import i18n, mail
from moderation.errors import ValidationFailed
from moderation.events import Actor, AuditAction, record_admin_audit
from moderation.models import BanResponse, ModerationPolicy, Site, utcnow
from moderation.validation import split_url

_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
EDITABLE = (
    "name",
    "origins",
    "policy",
    "link_limit",
    "close_after_days",
    "privacy_notice_url",
    "comment_policy_url",
    "reject_reasons",
    "erasure_keeps_text",
    "privacy_text",
    "hold_terms",
    "spam_terms",
    "verify_email",
    "notify_emails",
    "spam_threshold",
    "closed_text",
    "time_zone",
    "ban_response",
    "banned_text",
    "report_threshold",
)
# Said in the admin pages too: no environment variable in it (the docs on mail name those).
VERIFY_NEEDS_MAIL = (
    "Mail is not set up on this server, so commenters cannot be asked to confirm their email "
    "address: the operator sets mail up first (see the documentation on mail)"
)


MAX_ORIGIN = 300
MAX_URL = 2000


def normalise_origin(value: str) -> str:
    """``https://Example.org/`` -> ``https://example.org``; refuse what is not an origin (the
    reason never repeats the value)."""
    parts = split_url(value.strip()) if len(value) <= MAX_ORIGIN else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("an origin is http(s)://host[:port]")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise ValueError("an origin has no path, query, fragment or user")
    return f"{parts.scheme}://{parts.netloc.lower()}"


def _origins(values: list[str], errors: dict[str, str]) -> list[str]:
    cleaned: list[str] = []
    for position, origin in enumerate(values, start=1):
        try:
            cleaned.append(normalise_origin(origin))
        except ValueError as exc:
            errors["origins"] = f"Origin {position} is not an origin: {exc}"
    if not cleaned:
        errors.setdefault("origins", "Give at least one origin, like https://blog.example.gov.uk")
    return cleaned


def create_site(
    session: Session,
    *,
    slug: str,
    name: str,
    origins: list[str],
    actor: Actor | None = None,
    now: dt.datetime | None = None,
) -> Site:
    """Add a site; with an ``actor`` (every UI, API and CLI path gives one) it is audited."""
    errors: dict[str, str] = {}
    if not _SLUG.match(slug):
        errors["slug"] = "Use lower-case letters, digits and hyphens, up to 64 characters"
    elif session.scalar(select(Site).where(Site.slug == slug)):
        errors["slug"] = "A site with that slug exists already"
    if not name.strip() or len(name) > 200:
        errors["name"] = "Give the site a name of up to 200 characters"
    cleaned = _origins(origins, errors)
    if errors:
        raise ValidationFailed(fields=errors)
    site = Site(slug=slug, name=name.strip(), origins=cleaned)
    session.add(site)
    session.flush()
    if actor is not None:
        record_admin_audit(
            session,
            actor,
            AuditAction.SITE_ADD,
            site_id=site.id,
            before={},
            after={"slug": slug, **site_settings(site)},
            now=now or utcnow(),
        )
    return site


def site_settings(site: Site) -> dict[str, Any]:
    return {name: _plain(getattr(site, name)) for name in EDITABLE}


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, ModerationPolicy | BanResponse) else value


def settings_from_export(record: dict[str, Any]) -> dict[str, Any]:
    """A site's settings as :func:`site_settings` exported them, as model values again; a
    setting an older export lacks keeps its default."""
    values = {name: record[name] for name in EDITABLE if name in record}
    if "policy" in values:
        values["policy"] = ModerationPolicy(values["policy"])
    if "ban_response" in values:
        values["ban_response"] = BanResponse(values["ban_response"])
    return values


def _optional_url(raw: object, field: str, errors: dict[str, str]) -> str | None:
    if raw in (None, ""):
        return None
    parts = split_url(raw) if isinstance(raw, str) and len(raw) <= MAX_URL else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        errors[field] = "Give an address starting with https://"
        return None
    return str(raw)


def _addresses(raw: object, errors: dict[str, str]) -> list[str]:
    """Notification addresses, normalised by email-validator (so none can carry a header)."""
    if not isinstance(raw, list) or not all(isinstance(a, str) for a in raw) or len(raw) > 20:
        errors["notify_emails"] = "Give a list of up to 20 email addresses"
        return []
    cleaned: list[str] = []
    for address in raw:
        try:
            cleaned.append(validate_email(address.strip(), check_deliverability=False).normalized)
        except EmailNotValidError:
            errors["notify_emails"] = (
                "Enter email addresses in the correct format, like name@example.com"
            )
    return list(dict.fromkeys(cleaned))


def _whole(raw: object) -> bool:
    return isinstance(raw, int) and not isinstance(raw, bool)


def _optional_days(raw: object, errors: dict[str, str]) -> int | None:
    if raw is None:
        return None
    days = raw if isinstance(raw, int) and _whole(raw) else -1
    if not 1 <= days <= 3650:
        errors["close_after_days"] = "Give a number of days from 1 to 3650, or leave it empty"
        return None
    return days


def _name(raw: object, name: str, errors: dict[str, str]) -> str | None:
    if not isinstance(raw, str) or not raw.strip() or len(raw) > 200:
        errors[name] = "Give the site a name of up to 200 characters"
        return None
    return raw.strip()


def _origin_list(raw: object, name: str, errors: dict[str, str]) -> list[str] | None:
    if not isinstance(raw, list) or not all(isinstance(o, str) for o in raw):
        errors[name] = "Give a list of origins"
        return None
    return _origins(raw, errors)


def _policy(raw: object, name: str, errors: dict[str, str]) -> ModerationPolicy | None:
    if isinstance(raw, str) and raw in {p.value for p in ModerationPolicy}:
        return ModerationPolicy(raw)
    errors[name] = "Choose all or trusted"
    return None


def _link_limit(raw: object, name: str, errors: dict[str, str]) -> int | None:
    if not isinstance(raw, int) or not _whole(raw) or not 0 <= raw <= 100:
        errors[name] = "Give a number of links from 0 to 100"
        return None
    return raw


def _privacy_text(raw: object, name: str, errors: dict[str, str]) -> str | None:
    if raw is not None and (not isinstance(raw, str) or len(raw) > 500):
        errors[name] = "Give a privacy text of up to 500 characters, or leave it empty"
        return None
    return raw.strip() or None if isinstance(raw, str) else None


def _closed_text(raw: object, name: str, errors: dict[str, str]) -> str | None:
    if raw is not None and (not isinstance(raw, str) or len(raw) > 500):
        errors[name] = "Give a closed text of up to 500 characters, or leave it empty"
        return None
    return raw.strip() or None if isinstance(raw, str) else None


def _time_zone(raw: object, name: str, errors: dict[str, str]) -> str | None:
    """An IANA zone name the system knows (looked up in the set of names: never a path)."""
    if not isinstance(raw, str) or len(raw) > 64 or raw.strip() not in i18n.time_zones():
        errors[name] = "Give a time zone by its name, like Europe/London"
        return None
    return raw.strip()


def _spam_threshold(raw: object, name: str, errors: dict[str, str]) -> float | None:
    number = raw if isinstance(raw, int | float) and not isinstance(raw, bool) else -1
    if not 0.5 <= number <= 1:
        errors[name] = "Give a spam score from 0.5 to 1 (1: never file as spam)"
        return None
    return float(number)


def _ban_response(raw: object, name: str, errors: dict[str, str]) -> BanResponse | None:
    if isinstance(raw, str) and raw in {r.value for r in BanResponse}:
        return BanResponse(raw)
    errors[name] = "Choose quiet (banned senders see the usual answer) or refuse"
    return None


def _banned_text(raw: object, name: str, errors: dict[str, str]) -> str | None:
    if raw is not None and (not isinstance(raw, str) or len(raw) > 500):
        errors[name] = "Give a text of up to 500 characters, or leave it empty"
        return None
    return raw.strip() or None if isinstance(raw, str) else None


def _report_threshold(raw: object, name: str, errors: dict[str, str]) -> int | None:
    if not _whole(raw) or not 1 <= raw <= 100:  # type: ignore[operator]
        errors[name] = "Give a number of networks from 1 to 100"
        return None
    return raw  # type: ignore[return-value]


def _flag(message: str) -> Callable[[object, str, dict[str, str]], bool | None]:
    def parse(raw: object, name: str, errors: dict[str, str]) -> bool | None:
        if not isinstance(raw, bool):
            errors[name] = message
            return None
        return raw

    return parse


def _lines(
    message: str, longest: int, *, allow_empty: bool
) -> Callable[[object, str, dict[str, str]], list[str] | None]:
    """A list of strings of up to ``longest`` characters, each stripped, blank ones dropped."""

    def parse(raw: object, name: str, errors: dict[str, str]) -> list[str] | None:
        if not isinstance(raw, list) or not all(
            isinstance(item, str) and (allow_empty or item) and len(item) <= longest for item in raw
        ):
            errors[name] = message
            return None
        return [item.strip() for item in raw if item.strip()]

    return parse


# How each setting is read from a request or the command line, and what it says when it can't be.
_PARSERS: dict[str, Callable[[object, str, dict[str, str]], Any]] = {
    "name": _name,
    "origins": _origin_list,
    "policy": _policy,
    "link_limit": _link_limit,
    "close_after_days": lambda raw, _name, errors: _optional_days(raw, errors),
    "privacy_notice_url": _optional_url,
    "comment_policy_url": _optional_url,
    "privacy_text": _privacy_text,
    "erasure_keeps_text": _flag("Choose whether erasure keeps the text"),
    "notify_emails": lambda raw, _name, errors: _addresses(raw, errors),
    "verify_email": _flag("Choose whether commenters confirm their email address"),
    "reject_reasons": _lines(
        "Give a list of reasons of up to 500 characters each", 500, allow_empty=False
    ),
    "hold_terms": _lines(
        "Give a list of terms of up to 200 characters each", 200, allow_empty=True
    ),
    "spam_terms": _lines(
        "Give a list of terms of up to 200 characters each", 200, allow_empty=True
    ),
    "spam_threshold": _spam_threshold,
    "closed_text": _closed_text,
    "time_zone": _time_zone,
    "ban_response": _ban_response,
    "banned_text": _banned_text,
    "report_threshold": _report_threshold,
}
assert set(_PARSERS) == set(EDITABLE)


@dataclasses.dataclass(frozen=True)
class SiteChanges:
    """Valid new values for some of a site's settings (names among EDITABLE), built at the
    boundary by :meth:`parse` from a JSON object, the admin form or the command line."""

    values: Mapping[str, Any]

    @classmethod
    def parse(cls, changes: Mapping[str, object]) -> SiteChanges:
        """Check every setting given; one ValidationFailed names every field that is wrong."""
        unknown = set(changes) - set(EDITABLE)
        if unknown:
            # Named, not repeated: a field's name is the sender's text, as long as they like.
            raise ValidationFailed(
                fields={"settings": "A site's settings are only these: " + ", ".join(EDITABLE)}
            )
        errors: dict[str, str] = {}
        values = {name: _PARSERS[name](raw, name, errors) for name, raw in changes.items()}
        if errors:
            raise ValidationFailed(fields=errors)
        return cls(types.MappingProxyType(values))


def update_site(
    session: Session,
    site: Site,
    changes: SiteChanges | Mapping[str, object],
    *,
    actor: Actor,
    now: dt.datetime,
) -> Site:
    """Change a site's settings, audited. A plain mapping is checked as :meth:`SiteChanges.parse`
    checks it."""
    if not isinstance(changes, SiteChanges):
        changes = SiteChanges.parse(changes)
    if changes.values.get("verify_email") and not site.verify_email and not mail.enabled(session):
        raise ValidationFailed(fields={"verify_email": VERIFY_NEEDS_MAIL})
    before = site_settings(site)
    for name, value in changes.values.items():
        setattr(site, name, value)
    after = site_settings(site)
    changed = {k for k in after if after[k] != before[k]}
    if changed:
        record_admin_audit(
            session,
            actor,
            AuditAction.SITE_UPDATE,
            site_id=site.id,
            before={k: before[k] for k in changed},
            after={k: after[k] for k in changed},
            now=now,
        )
    return site
