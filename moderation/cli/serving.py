"""moderation serve, worker, check and demo: running the service."""

from __future__ import annotations

import secrets

import click
from flask import Flask
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from moderation import schema
from moderation.cli.common import CLI, load_app, sessions
from moderation.config import ConfigError, Settings
from moderation.db import write_transaction
from moderation.models import Moderator, Post, Role, Site, utcnow


def _mail_problems(engine: Engine, mail_on: bool) -> list[str]:
    if mail_on:
        click.echo("ok: mail is on (sent by 'moderation worker')")
        return []
    with Session(engine) as session:
        verifying = session.scalars(select(Site.slug).where(Site.verify_email)).all()
    return [
        f"site {slug} asks commenters to confirm their email address, but mail is off "
        "(MODERATION_SMTP_HOST is not set): its comments go straight to the queue"
        for slug in verifying
    ]


def _resolver_problems(engine: Engine, settings: Settings) -> list[str]:
    """Whether the deliverability check's resolver resolves names that must exist (the root
    zone's nameservers, the sites' own domains); a broken one makes every answer unknown."""
    from moderation.deliverability import (
        ROOT,
        make_resolver,
        resolver_works,
        site_canaries,
    )

    if not settings.deliverability_enabled:
        click.echo("ok: email deliverability checks are off")
        return []
    with Session(engine) as session:
        origins = [o for found in session.scalars(select(Site.origins)) for o in found]
    canaries = site_canaries(origins)
    resolver = make_resolver(
        settings.dns_nameserver or None, timeout=settings.dns_timeout_ms / 1000
    )
    names = ", ".join((ROOT, *canaries))
    if resolver_works(resolver, canaries):
        click.echo(f"ok: the DNS resolver answers (tried {names})")
        return []
    return [
        f"the DNS resolver resolves none of {names}: it is not working, so every email "
        "address's deliverability is unknown and none is refused for its domain"
    ]


@click.command()
def check() -> None:
    """Check the configuration and the database; say what is wrong, exit 1 if anything is."""
    from moderation.config import load_settings
    from moderation.db import make_engine

    problems: list[str] = []
    try:
        settings = load_settings()
    except ConfigError as error:
        raise click.ClickException(f"problem: {error}") from None
    click.echo(f"ok: settings load (MODERATION_ENV={settings.env})")
    if not settings.development and not settings.cookie_secure:
        problems.append("MODERATION_SESSION_COOKIE_SECURE is off outside development")
    url = settings.effective_database_url
    if url.startswith("sqlite") and not settings.development:
        click.echo("note: SQLite suits one machine; use PostgreSQL for several app processes")
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            current = schema.current_revision(connection)
        head = schema.head_revision()
        if current != head:
            problems.append(f"the schema is at {current}, not {head}: run 'moderation db upgrade'")
        else:
            click.echo(f"ok: database answers, schema at {current}")
            problems.extend(_mail_problems(engine, settings.mail_enabled))
            problems.extend(_resolver_problems(engine, settings))
    except Exception as error:  # report any failure to reach the database
        problems.append(f"the database does not answer ({type(error).__name__})")
    finally:
        engine.dispose()
    for problem in problems:
        click.echo(f"problem: {problem}", err=True)
    if problems:
        raise SystemExit(1)


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option(
    "--demo",
    "with_demo",
    is_flag=True,
    help="Set up the demo first and print its addresses and login once serving (make run).",
)
def serve(host: str, port: int, with_demo: bool) -> None:
    """Serve with the development server (use gunicorn in production).

    With the embedded SQLite database a webhook delivery thread runs in the same process.
    """
    import threading

    from werkzeug.serving import make_server

    from moderation.outbox.worker import start_thread

    app = load_app()
    settings = app.extensions["moderation.settings"]
    url = f"http://{host}:{port}"
    password = _set_up_demo(app, url) if with_demo else None
    thread_on = settings.webhook_worker_thread
    if thread_on is None:
        thread_on = settings.effective_database_url.startswith("sqlite")
    stop, started = threading.Event(), threading.Event()
    if thread_on:
        start_thread(app.extensions["moderation.sessionmaker"], settings, stop, started)
        # The worker's first round logs (its start, the daily retention run): the summary
        # comes after them, last.
        started.wait(timeout=10)
    try:
        server = make_server(host, port, app, threaded=True)
    except OSError as error:
        stop.set()
        raise click.ClickException(f"Cannot serve on {url}: {error.strerror}.") from None
    if password is not None:
        _demo_summary(url, password)
    else:
        click.echo(f"Serving on {url} (press Ctrl+C to stop).")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        server.server_close()


@click.command()
@click.option("--interval", default=1.0, show_default=True, help="Seconds to sleep when idle.")
@click.option("--once", is_flag=True, help="Deliver what is due now, then exit.")
def worker(interval: float, once: bool) -> None:
    """Deliver webhooks and send mail, and apply the retention periods daily, until stopped
    (SIGTERM or Ctrl-C).

    Run several against PostgreSQL: they share the deliveries and the mail, and purge once a day
    between them.
    """
    import signal
    import threading

    from moderation.outbox.worker import run_once, run_worker

    app = load_app()
    factory = app.extensions["moderation.sessionmaker"]
    settings = app.extensions["moderation.settings"]
    if once:
        done, sent = run_once(factory, settings, now=utcnow())
        click.echo(f"Attempted {done} deliveries and {sent} mails.")
        return
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        run_worker(factory, settings, stop, interval=interval)
    except KeyboardInterrupt:
        stop.set()


def _set_up_demo(app: Flask, url: str) -> str:
    """The demo site (its origins and post at ``url``) and a demo admin with a fresh password,
    which is returned."""
    from moderation.moderators import create_moderator
    from moderation.sites import create_site
    from moderation.web.demo import DEMO_POST, DEMO_REJECT_REASONS, DEMO_SITE, DEMO_TITLE

    hasher = app.extensions["moderation.hasher"]
    password = secrets.token_urlsafe(12)
    origins = [url, url.replace("127.0.0.1", "localhost")]
    with write_transaction(sessions(app)) as session:
        site = session.scalar(select(Site).where(Site.slug == DEMO_SITE))
        if site is None:
            site = create_site(
                session, slug=DEMO_SITE, name="Demo blog", origins=origins, actor=CLI
            )
        elif not set(origins) <= set(site.origins):
            # Served on another port than last time (make run PORT=...): embed from there too.
            site.origins = list(dict.fromkeys([*origins, *site.origins]))
        if not site.reject_reasons:
            site.reject_reasons = list(DEMO_REJECT_REASONS)
        # The post exists from the start with the include page's address, so the no-JS form
        # returns there whichever of the three pages took the first comment.
        post = session.scalar(select(Post).where(Post.site == site, Post.key == DEMO_POST))
        if post is None:
            session.add(Post(site=site, key=DEMO_POST, title=DEMO_TITLE, url=f"{url}{DEMO_POST}"))
        else:
            post.url = f"{url}{DEMO_POST}"
        existing = session.scalar(select(Moderator).where(Moderator.login == "demo"))
        if existing is None:
            create_moderator(
                session,
                hasher,
                login="demo",
                email="demo@example.org",
                password=password,
                role=Role.ADMIN,
                actor=CLI,
            )
        else:
            existing.password_hash = hasher.hash(password)
    return password


def _demo_summary(url: str, password: str) -> None:
    click.echo("")
    click.echo(f"  Demo post page:   {url}/demo/")
    click.echo(f"  Moderation queue: {url}/moderate/")
    click.echo(f"  Log in as:        demo / {password}")
    click.echo("")


@click.command()
@click.option("--url", default="http://127.0.0.1:5000", show_default=True)
def demo(url: str) -> None:
    """Set up the demo site and a demo admin with a fresh password, and print how to use them."""
    _demo_summary(url, _set_up_demo(load_app(), url))
