"""Sites: the blogs whose comments this service moderates, and their moderation settings."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import select
from sqlalchemy.orm import Session

from moderation import mail
from moderation.errors import Forbidden, ValidationFailed
from moderation.events import Actor, record_admin_audit
from moderation.models import ModerationPolicy, Moderator, Site, utcnow

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
)
VERIFY_NEEDS_MAIL = (
    "Email verification sends mail, and mail is off: set MODERATION_SMTP_HOST, "
    "MODERATION_MAIL_FROM and MODERATION_PUBLIC_URL first"
)


def normalise_origin(value: str) -> str:
    """``https://Example.org/`` -> ``https://example.org``; refuse what is not an origin."""
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("an origin is http(s)://host[:port]")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise ValueError("an origin has no path, query, fragment or user")
    return f"{parts.scheme}://{parts.netloc.lower()}"


def _origins(values: list[str], errors: dict[str, str]) -> list[str]:
    cleaned: list[str] = []
    for origin in values:
        try:
            cleaned.append(normalise_origin(origin))
        except ValueError as exc:
            errors["origins"] = f"{origin!r} is not an origin: {exc}"
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
            "site.add",
            site_id=site.id,
            before={},
            after={"slug": slug, **site_settings(site)},
            now=now or utcnow(),
        )
    return site


def site_settings(site: Site) -> dict[str, Any]:
    return {name: _plain(getattr(site, name)) for name in EDITABLE}


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, ModerationPolicy) else value


def _optional_url(raw: object, field: str, errors: dict[str, str]) -> str | None:
    if raw in (None, ""):
        return None
    if not isinstance(raw, str) or urlsplit(raw).scheme not in ("http", "https") or len(raw) > 2000:
        errors[field] = "Give an address starting with https://"
        return None
    return raw


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


def update_site(
    session: Session, site: Site, changes: Mapping[str, object], *, actor: Actor, now: dt.datetime
) -> Site:
    """Change a site's settings (the keys of ``changes`` among EDITABLE), audited."""
    unknown = set(changes) - set(EDITABLE)
    if unknown:
        raise ValidationFailed(fields={name: "Not a site setting" for name in sorted(unknown)})
    errors: dict[str, str] = {}
    values: dict[str, Any] = {}
    for name, raw in changes.items():
        if name == "name":
            if not isinstance(raw, str) or not raw.strip() or len(raw) > 200:
                errors["name"] = "Give the site a name of up to 200 characters"
            else:
                values["name"] = raw.strip()
        elif name == "origins":
            if not isinstance(raw, list) or not all(isinstance(o, str) for o in raw):
                errors["origins"] = "Give a list of origins"
            else:
                values["origins"] = _origins(raw, errors)
        elif name == "policy":
            if isinstance(raw, str) and raw in {p.value for p in ModerationPolicy}:
                values["policy"] = ModerationPolicy(str(raw))
            else:
                errors["policy"] = "Choose all or trusted"
        elif name == "link_limit":
            if not _whole(raw) or not 0 <= raw <= 100:  # type: ignore[operator]
                errors["link_limit"] = "Give a number of links from 0 to 100"
            else:
                values["link_limit"] = raw
        elif name == "close_after_days":
            values["close_after_days"] = _optional_days(raw, errors)
        elif name in ("privacy_notice_url", "comment_policy_url"):
            values[name] = _optional_url(raw, name, errors)
        elif name == "privacy_text":
            if raw is not None and (not isinstance(raw, str) or len(raw) > 500):
                errors[name] = "Give a privacy text of up to 500 characters, or leave it empty"
            else:
                values[name] = raw.strip() or None if isinstance(raw, str) else None
        elif name == "erasure_keeps_text":
            if not isinstance(raw, bool):
                errors[name] = "Choose whether erasure keeps the text"
            else:
                values[name] = raw
        elif name == "notify_emails":
            values[name] = _addresses(raw, errors)
        elif name == "verify_email":
            if not isinstance(raw, bool):
                errors[name] = "Choose whether commenters confirm their email address"
            elif raw and not site.verify_email and not mail.enabled(session):
                errors[name] = VERIFY_NEEDS_MAIL
            else:
                values[name] = raw
        elif name == "reject_reasons":
            if not isinstance(raw, list) or not all(
                isinstance(r, str) and 0 < len(r) <= 500 for r in raw
            ):
                errors["reject_reasons"] = "Give a list of reasons of up to 500 characters each"
            else:
                values["reject_reasons"] = [r.strip() for r in raw if r.strip()]
        elif name == "spam_threshold":
            number = raw if isinstance(raw, int | float) and not isinstance(raw, bool) else -1
            if not 0.5 <= number <= 1:
                errors[name] = "Give a spam score from 0.5 to 1 (1: never file as spam)"
            else:
                values[name] = float(number)
        elif name in ("hold_terms", "spam_terms"):
            if not isinstance(raw, list) or not all(
                isinstance(t, str) and len(t) <= 200 for t in raw
            ):
                errors[name] = "Give a list of terms of up to 200 characters each"
            else:
                values[name] = [t.strip() for t in raw if t.strip()]
    if errors:
        raise ValidationFailed(fields=errors)
    before = site_settings(site)
    for name, value in values.items():
        setattr(site, name, value)
    after = site_settings(site)
    changed = {k for k in after if after[k] != before[k]}
    if changed:
        record_admin_audit(
            session,
            actor,
            "site.update",
            site_id=site.id,
            before={k: before[k] for k in changed},
            after={k: after[k] for k in changed},
            now=now,
        )
    return site


@dataclasses.dataclass(frozen=True)
class SiteForm:
    """The site form's text fields turned into settings (lists are one item a line)."""

    fields: Mapping[str, str]

    def changes(self) -> dict[str, object]:
        changes: dict[str, object] = {}
        for name, raw in self.fields.items():
            value = raw.strip()
            if name in ("origins", "reject_reasons", "hold_terms", "spam_terms", "notify_emails"):
                changes[name] = [line.strip() for line in raw.splitlines() if line.strip()]
            elif name in ("link_limit", "close_after_days"):
                changes[name] = int(value) if value.isdigit() else (value or None)
            elif name == "spam_threshold":
                try:
                    changes[name] = float(value)
                except ValueError:
                    changes[name] = value
            elif name in ("erasure_keeps_text", "verify_email"):
                changes[name] = {"true": True, "false": False}.get(value, value)
            elif name in EDITABLE:
                changes[name] = value
        return changes


def require_admin(moderator: Moderator) -> None:
    if not moderator.is_admin:
        raise Forbidden("Only admins can do that.")
