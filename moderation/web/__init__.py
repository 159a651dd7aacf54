"""The web layer: blueprints per URL space, error rendering and response headers."""

from __future__ import annotations

import datetime as dt

from flask import Flask

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
)


def long_date(moment: dt.datetime) -> str:
    """GOV.UK style: 29 November 2026 at 3:41pm (UTC)."""
    hour = moment.hour % 12 or 12
    suffix = "am" if moment.hour < 12 else "pm"
    return f"{moment.day} {moment:%B %Y} at {hour}:{moment:%M}{suffix}"


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
