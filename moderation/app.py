"""The application factory: settings, database, blueprints, error handlers."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from flask import Flask
from sqlalchemy import Engine
from sqlalchemy.orm import sessionmaker
from werkzeug.middleware.proxy_fix import ProxyFix

from moderation.config import Settings, load_settings
from moderation.db import commit_counter, make_engine
from moderation.mail import MAIL_ENABLED
from moderation.moderators import password_hasher
from moderation.publishing import ThreadHeads
from moderation.web.sessions import close_session

PACKAGE_DIR = Path(__file__).resolve().parent


def _template_folder() -> str:
    """The templates bundled in the wheel, or the top-level folder of a source checkout."""
    bundled = PACKAGE_DIR / "templates"
    return str(bundled if bundled.is_dir() else PACKAGE_DIR.parent / "templates")


def create_app(
    settings: Settings | None = None, *, engine: Engine | None = None, **overrides: Any
) -> Flask:
    """Build the app. ``settings`` default to the environment; ``engine`` lets tests share one."""
    settings = settings or load_settings(**overrides)
    logging.basicConfig(level=settings.log_level)
    app = Flask(
        "moderation",
        template_folder=_template_folder(),
        static_folder=str(PACKAGE_DIR / "static"),
        instance_path=str(Path(settings.instance_path).resolve()),
        instance_relative_config=False,
    )
    app.config.update(
        SECRET_KEY=settings.effective_secret_key,
        MAX_CONTENT_LENGTH=settings.max_request_bytes,
        SESSION_COOKIE_NAME="moderation_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.cookie_secure,
        SESSION_COOKIE_PATH="/moderate",
        JSON_SORT_KEYS=False,
    )
    app.extensions["moderation.settings"] = settings
    if settings.database_url == "" and not Path(app.instance_path).is_dir():
        Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    engine = engine or make_engine(settings.effective_database_url)
    app.extensions["moderation.engine"] = engine
    app.extensions["moderation.sessionmaker"] = sessionmaker(
        engine, expire_on_commit=False, info={MAIL_ENABLED: settings.mail_enabled}
    )
    app.extensions["moderation.heads"] = ThreadHeads(commit_counter(engine))
    app.extensions["moderation.hasher"] = password_hasher(fast=settings.fast_password_hashing)
    app.teardown_appcontext(close_session)

    from moderation.web import register
    from moderation.web.replay import Replay

    # Inside ProxyFix: replays are keyed on the host and scheme it has settled.
    app.wsgi_app = Replay(app.wsgi_app, app)  # type: ignore[method-assign]
    if settings.trusted_proxy_hops:
        hops = settings.trusted_proxy_hops
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)  # type: ignore[method-assign]

    register(app)
    return app
