"""The web layer: blueprints per URL space, error rendering and response headers."""

from __future__ import annotations

import datetime as dt
import functools
import zoneinfo

from flask import Flask

from moderation import i18n
from moderation.events import rfc3339
from moderation.web import (
    api,
    demo,
    embed,
    errors,
    mail_links,
    moderate,
    moderation_api,
    ops,
    screening,
    security,
    sso,
)

# Times are shown in UK time, with its name (GMT or BST), for the service's UK readers, unless
# they belong to a site: then in the site's time_zone (Europe/London by default).
DISPLAY_ZONE = "Europe/London"


@functools.cache
def _display_zone() -> dt.tzinfo:
    try:
        return zoneinfo.ZoneInfo(DISPLAY_ZONE)
    except zoneinfo.ZoneInfoNotFoundError:  # pragma: no cover - a system without tz data
        return dt.UTC


def long_date(moment: dt.datetime, zone: str | None = None) -> str:
    """GOV.UK style, in UK time (or a site's ``zone``) with its zone: 29 November 2026 at
    3:41pm GMT."""
    local = moment.astimezone(i18n.time_zone(zone) if zone else _display_zone())
    hour = local.hour % 12 or 12
    suffix = "am" if local.hour < 12 else "pm"
    return f"{local.day} {local:%B %Y} at {hour}:{local:%M}{suffix} {local:%Z}"


def waited(since: dt.datetime, until: dt.datetime) -> str:
    """How long something has waited, in the largest whole unit."""
    seconds = max(0, int((until - since).total_seconds()))
    for size, unit in ((86400, "day"), (3600, "hour"), (60, "minute")):
        if seconds >= size:
            count = seconds // size
            return f"{count} {unit}{'' if count == 1 else 's'}"
    return "less than a minute"


def register(app: Flask) -> None:
    app.session_interface = moderate.ModeratorSessions()
    screening.register(app)
    app.register_blueprint(api.bp)
    app.register_blueprint(embed.bp)
    app.register_blueprint(embed.loader)
    sso.register(app)
    app.register_blueprint(moderate.bp)
    app.register_blueprint(moderation_api.bp)
    app.register_blueprint(mail_links.bp)
    if app.extensions["moderation.settings"].demo_enabled:
        app.register_blueprint(demo.bp)
    app.add_template_filter(rfc3339)
    app.add_template_filter(long_date)
    app.add_template_filter(waited)
    errors.register(app)
    ops.register(app)
    security.register(app)
