"""The ``moderation`` command: database, sites, moderators, tokens, serving."""

from __future__ import annotations

import secrets
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import click
from flask import Flask
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from moderation import schema
from moderation.config import ConfigError
from moderation.db import begin_write
from moderation.errors import ServiceError
from moderation.events import Actor
from moderation.models import Moderator, Post, Role, Site, utcnow

if TYPE_CHECKING:
    from moderation.importing import Source


def _app() -> Flask:
    from moderation.app import create_app

    try:
        return create_app()
    except ConfigError as error:
        raise click.ClickException(str(error)) from None


@contextmanager
def write_session(app: Flask) -> Iterator[Session]:
    """One write transaction, committed if the block succeeds; service errors become messages."""
    session: Session = app.extensions["moderation.sessionmaker"]()
    begin_write(session)
    try:
        yield session
        session.commit()
    except ServiceError as error:
        session.rollback()
        details = "; ".join(f"{k}: {v}" for k, v in error.fields.items())
        raise click.ClickException(f"{error.message} {details}".strip()) from None
    finally:
        session.close()


# Who the audit log names for changes made at the command line.
CLI = Actor("command line")


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    password: str = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    return password


@click.group()
def main() -> None:
    """Comment moderation service. Settings come from MODERATION_* environment variables."""


@main.group()
def db() -> None:
    """The database schema."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision: str) -> None:
    """Apply the migrations (creates the database on first run)."""
    app = _app()
    schema.upgrade(app.extensions["moderation.engine"], revision)
    click.echo(
        f"Database is at revision {schema.head_revision() if revision == 'head' else revision}."
    )


@main.group()
def site() -> None:
    """Sites (blogs)."""


@site.command("add")
@click.argument("slug")
@click.option("--name", required=True, help="The blog's name, shown to commenters.")
@click.option(
    "--origin", "origins", multiple=True, required=True, help="An origin allowed to embed (repeat)."
)
def site_add(slug: str, name: str, origins: tuple[str, ...]) -> None:
    """Add a site whose pages at ORIGIN may embed and post comments."""
    from moderation.sites import create_site

    with write_session(_app()) as session:
        created = create_site(session, slug=slug, name=name, origins=list(origins), actor=CLI)
        click.echo(f"Added site {created.slug} ({', '.join(created.origins)}).")


@site.command("list")
def site_list() -> None:
    """List the sites."""
    with write_session(_app()) as session:
        for found in session.scalars(select(Site).order_by(Site.slug)):
            click.echo(f"{found.slug}\t{found.name}\t{' '.join(found.origins)}")


@site.command("set-blocklist")
@click.argument("slug")
@click.option("--hold", "hold_terms", multiple=True, help="A term that holds a comment (repeat).")
@click.option("--spam", "spam_terms", multiple=True, help="A term that marks spam (repeat).")
def site_set_blocklist(slug: str, hold_terms: tuple[str, ...], spam_terms: tuple[str, ...]) -> None:
    """Replace a site's blocklists: terms matched in a comment's text, name, email or address."""
    from moderation.comments import get_site
    from moderation.sites import update_site

    with write_session(_app()) as session:
        found = get_site(session, slug)
        changes = {"hold_terms": list(hold_terms), "spam_terms": list(spam_terms)}
        update_site(session, found, changes, actor=CLI, now=utcnow())
        click.echo(
            f"Site {found.slug}: {len(found.hold_terms)} hold terms, "
            f"{len(found.spam_terms)} spam terms."
        )


@main.group()
def moderator() -> None:
    """Moderator accounts."""


@moderator.command("add")
@click.argument("login")
@click.option("--email", required=True)
@click.option("--role", type=click.Choice([r.value for r in Role]), default=Role.MODERATOR.value)
@click.option("--site", "sites", multiple=True, help="A site this moderator moderates (repeat).")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def moderator_add(
    login: str, email: str, role: str, sites: tuple[str, ...], password_stdin: bool
) -> None:
    """Add a moderator; the password is prompted for, or read from standard input."""
    from moderation.moderators import create_moderator

    password = _read_password(password_stdin)
    app = _app()
    with write_session(app) as session:
        created = create_moderator(
            session,
            app.extensions["moderation.hasher"],
            login=login,
            email=email,
            password=password,
            role=Role(role),
            site_slugs=sites,
            actor=CLI,
        )
        click.echo(f"Added {created.role.value} {created.login}.")


@moderator.command("set-password")
@click.argument("login")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def moderator_set_password(login: str, password_stdin: bool) -> None:
    """Set a moderator's password (ending their logins), e.g. after an import."""
    from moderation.moderators import get_moderator, set_password

    password = _read_password(password_stdin)
    app = _app()
    with write_session(app) as session:
        set_password(
            session,
            app.extensions["moderation.hasher"],
            get_moderator(session, login),
            password,
            actor=CLI,
            now=utcnow(),
        )
        click.echo(f"Set the password of {login}.")


@moderator.command("mfa-reset")
@click.argument("login")
def moderator_mfa_reset(login: str) -> None:
    """Remove a moderator's second factors and end their logins (they lost them); they set
    up a new one at their next login."""
    from moderation.moderators import get_moderator
    from moderation.second_factor import reset

    with write_session(_app()) as session:
        reset(session, get_moderator(session, login), actor=CLI, now=utcnow())
        click.echo(f"Reset the second factors of {login} and ended their logins.")


@main.group()
def token() -> None:
    """API tokens for the moderation API."""


@token.command("create")
@click.argument("name")
@click.option(
    "--moderator",
    "login",
    help="The moderator the token acts as (default: the only admin, if there is one).",
)
def token_create(name: str, login: str | None) -> None:
    """Create an API token called NAME and print it once."""
    from moderation.moderators import create_api_token, get_moderator

    with write_session(_app()) as session:
        if login:
            owner = get_moderator(session, login)
        else:
            admins = session.scalars(select(Moderator).where(Moderator.role == Role.ADMIN)).all()
            if len(admins) != 1:
                raise click.ClickException(
                    "Say which moderator the token acts as with --moderator LOGIN."
                )
            owner = admins[0]
        created, plain = create_api_token(session, owner, name, now=utcnow(), actor=CLI)
        click.echo(f"Token {created.name} for {owner.login} (shown once, keep it secret):")
        click.echo(plain)


@main.group("personal-data")
def personal_data() -> None:
    """A commenter's personal data: export it, erase it."""


@personal_data.command("export")
@click.option("--email", required=True, help="The commenter's email address.")
def personal_data_export(email: str) -> None:
    """Print everything held about an address, as JSON."""
    import json

    from moderation.personal_data import export_personal_data

    with write_session(_app()) as session:
        document = export_personal_data(session, email, now=utcnow())
    click.echo(json.dumps(document, indent=2, ensure_ascii=False))


@personal_data.command("erase")
@click.option("--email", required=True, help="The commenter's email address.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def personal_data_erase(email: str, yes: bool) -> None:
    """Erase an address, its name and client data (and text, per site) from every comment."""
    from moderation.personal_data import erase_personal_data

    if not yes:
        click.confirm(f"Erase the personal data of {email} from every comment?", abort=True)
    app = _app()
    with write_session(app) as session:
        erased = erase_personal_data(
            session, email, actor=CLI, now=utcnow(), secret=app.config["SECRET_KEY"]
        )
    click.echo(
        f"Erased personal data from {erased.comments} comments ({erased.texts_removed} texts removed)."
    )


@main.command("export")
@click.option("--output", type=click.File("w", encoding="utf-8"), default="-", show_default=True)
def export_command(output: TextIO) -> None:
    """Write everything (sites, posts, comments, moderators without passwords, audit log) as JSON."""
    import json

    from moderation.transfer import export_records

    app = _app()
    with app.extensions["moderation.sessionmaker"]() as session:
        section = None
        for name, record in export_records(session, now=utcnow()):
            if name == "meta":
                output.write('{"meta": ' + json.dumps(record))
                continue
            output.write(
                ("\n]" if section else "") + f', "{name}": [\n' if name != section else ",\n"
            )
            output.write(json.dumps(record, ensure_ascii=False))
            section = name
        output.write("\n]}\n" if section else "}\n")


@main.group("import")
def import_group() -> None:
    """Load comments from elsewhere."""


@import_group.command("json")
@click.argument("source", type=click.File("r", encoding="utf-8"))
def import_json(source: TextIO) -> None:
    """Load a file written by 'moderation export'; what exists already is skipped."""
    import json

    from moderation.transfer import import_document

    try:
        document = json.load(source)
    except json.JSONDecodeError as error:
        raise click.ClickException(f"not JSON: {error.msg} at line {error.lineno}") from None
    with write_session(_app()) as session:
        added = import_document(session, document)
    click.echo(
        "Imported " + ", ".join(f"{n} {kind.replace('_', ' ')}" for kind, n in added.items()) + "."
    )


def _import_comments(kind: Source, path: Path, site_slug: str | None) -> None:
    """Check the whole file, then import it in one transaction, and say what happened."""
    from moderation.comments import get_site
    from moderation.importing import MalformedExport, import_export, read_export

    app = _app()
    # Which site, before a long first pass: a mistyped slug is reported at once.
    with app.extensions["moderation.sessionmaker"]() as session:
        slug = _import_site(session, site_slug)
    # Two passes over the file: checking, then importing.
    with _progress_bar(2 * path.stat().st_size, f"Importing {path.name}") as advance:
        try:
            plan = read_export(path, kind, advance)
        except MalformedExport as error:
            raise click.ClickException(f"{path.name}: {error.message}") from None
        with write_session(app) as session:
            site = get_site(session, slug)
            report = import_export(session, site, plan, now=utcnow(), actor=CLI, progress=advance)
    click.echo(
        f"Imported {report.imported} comments ({report.without_email} without a usable email "
        f"address) and {report.posts_added} new posts into {site.slug}."
    )
    if report.top_level_replies:
        click.echo(
            f"{report.top_level_replies} replies kept at the top level: parent not imported."
        )
    for title, reasons in (("Skipped", report.skipped), ("Failed", report.failed)):
        click.echo(f"{title} {reasons.total()}" + (":" if reasons else "."))
        for reason, count in reasons.most_common():
            click.echo(f"  {count:>8}  {reason}")


@contextmanager
def _progress_bar(length: int, label: str) -> Iterator[Callable[[int], None] | None]:
    """A progress bar over bytes read, on a terminal only (never in logs or pipes)."""
    if not sys.stderr.isatty():
        yield None
        return
    with click.progressbar(length=length, label=label, file=sys.stderr) as bar:
        yield bar.update


def _import_site(session: Session, slug: str | None) -> str:
    """The slug of the site named, or of the only site there is."""
    if slug:
        if session.scalar(select(Site.id).where(Site.slug == slug)) is None:
            raise click.ClickException("There is no site with that name.")
        return slug
    slugs = session.scalars(select(Site.slug).order_by(Site.slug).limit(2)).all()
    if len(slugs) != 1:
        raise click.UsageError(
            "Name the site to import into with --site SLUG."
            if slugs
            else "There is no site yet: add one with 'moderation site add'."
        )
    return slugs[0]


_SITE_OPTION = click.option(
    "--site",
    "site_slug",
    default=None,
    help="The site to import into (may be left out when there is only one).",
)
_EXPORT_FILE = click.argument(
    "path", type=click.Path(exists=True, dir_okay=False, readable=True, path_type=Path)
)


@import_group.command("wordpress")
@_EXPORT_FILE
@_SITE_OPTION
def import_wordpress(path: Path, site_slug: str | None) -> None:
    """Load posts and comments from a WordPress export (WXR, Tools > Export); idempotent."""
    _import_comments("wordpress", path, site_slug)


@import_group.command("disqus")
@_EXPORT_FILE
@_SITE_OPTION
def import_disqus(path: Path, site_slug: str | None) -> None:
    """Load threads and comments from a Disqus export (XML); idempotent."""
    _import_comments("disqus", path, site_slug)


@main.command()
@click.option("--dry-run", is_flag=True, help="Only report what would go.")
def purge(dry_run: bool) -> None:
    """Apply the retention periods: drop old client data, delete old rejected and spam comments
    and comments whose author never confirmed their address."""
    from moderation.personal_data import Retention, purge_expired

    app = _app()
    settings = app.extensions["moderation.settings"]
    with write_session(app) as session:
        report = purge_expired(
            session, Retention.from_settings(settings), now=utcnow(), dry_run=dry_run
        )
    verb = "Would clear" if dry_run else "Cleared"
    delete = "would delete" if dry_run else "deleted"
    click.echo(
        f"{verb} client data from {report.client_data_cleared} comments; "
        f"{delete} {report.comments_deleted} rejected or spam comments; "
        f"{delete} {report.unconfirmed_deleted} comments whose address was never confirmed."
    )


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


@main.command()
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
    except Exception as error:  # report any failure to reach the database
        problems.append(f"the database does not answer ({type(error).__name__})")
    finally:
        engine.dispose()
    for problem in problems:
        click.echo(f"problem: {problem}", err=True)
    if problems:
        raise SystemExit(1)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
def serve(host: str, port: int) -> None:
    """Serve with the development server (use gunicorn in production).

    With the embedded SQLite database a webhook delivery thread runs in the same process.
    """
    import threading

    from moderation.webhooks.delivery import run_worker

    app = _app()
    settings = app.extensions["moderation.settings"]
    thread_on = settings.webhook_worker_thread
    if thread_on is None:
        thread_on = settings.effective_database_url.startswith("sqlite")
    stop = threading.Event()
    if thread_on:
        threading.Thread(
            target=run_worker,
            args=(app.extensions["moderation.sessionmaker"], settings, stop),
            name="webhook-worker",
            daemon=True,
        ).start()
    try:
        app.run(host=host, port=port, threaded=True, use_reloader=False)
    finally:
        stop.set()


@main.command()
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

    from moderation.mail.sending import send_due_mail
    from moderation.webhooks.delivery import deliver_due, run_worker

    app = _app()
    factory = app.extensions["moderation.sessionmaker"]
    settings = app.extensions["moderation.settings"]
    if once:
        done = deliver_due(factory, settings, now=utcnow(), limit=1000)
        sent = send_due_mail(
            factory, settings, secret=settings.effective_secret_key, now=utcnow(), limit=1000
        )
        click.echo(f"Attempted {done} deliveries and {sent} mails.")
        return
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        run_worker(factory, settings, stop, interval=interval)
    except KeyboardInterrupt:
        stop.set()


@main.group()
def webhook() -> None:
    """Webhook endpoints (signed event deliveries)."""


@webhook.command("add")
@click.argument("url")
@click.option(
    "--event", "events", multiple=True, help="An event type to send (repeat; default: all)."
)
@click.option("--site", "site_slug", default=None, help="Only this site's events (default: all).")
@click.option("--personal-data", is_flag=True, help="Include the author's email address.")
@click.option("--description", default="")
def webhook_add(
    url: str, events: tuple[str, ...], site_slug: str | None, personal_data: bool, description: str
) -> None:
    """Add an endpoint at URL and print its secret."""
    from moderation.webhooks.endpoints import create_endpoint

    app = _app()
    with write_session(app) as session:
        endpoint = create_endpoint(
            session,
            url=url,
            event_types=events,
            site_slug=site_slug,
            include_personal_data=personal_data,
            description=description,
            allow_http=app.extensions["moderation.settings"].webhook_allow_http,
            now=utcnow(),
        )
        click.echo(f"Added webhook endpoint {endpoint.public_id} for {endpoint.url}.")
        click.echo(f"Secret (keep it secret; verify signatures with it): {endpoint.secret}")


@webhook.command("list")
def webhook_list() -> None:
    """List the endpoints."""
    from moderation.webhooks.endpoints import list_endpoints

    with write_session(_app()) as session:
        for found in list_endpoints(session):
            state = "enabled" if found.enabled else f"disabled ({found.disabled_reason})"
            events = ",".join(found.event_types) or "all events"
            site_name = found.site.slug if found.site else "all sites"
            click.echo(f"{found.public_id}\t{found.url}\t{events}\t{site_name}\t{state}")


def _set_webhook_enabled(endpoint_id: str, enabled: bool) -> None:
    from moderation.webhooks.endpoints import get_endpoint, set_enabled

    with write_session(_app()) as session:
        endpoint = get_endpoint(session, endpoint_id)
        set_enabled(session, endpoint, enabled, now=utcnow())
        click.echo(f"Endpoint {endpoint.public_id} {'enabled' if enabled else 'disabled'}.")


@webhook.command("disable")
@click.argument("endpoint_id")
def webhook_disable(endpoint_id: str) -> None:
    """Stop delivering to an endpoint (pending deliveries wait)."""
    _set_webhook_enabled(endpoint_id, False)


@webhook.command("enable")
@click.argument("endpoint_id")
def webhook_enable(endpoint_id: str) -> None:
    """Deliver to an endpoint again."""
    _set_webhook_enabled(endpoint_id, True)


@webhook.command("rotate-secret")
@click.argument("endpoint_id")
def webhook_rotate(endpoint_id: str) -> None:
    """Give an endpoint a new secret; the old one also signs for the overlap period."""
    import datetime as dt

    from moderation.webhooks.endpoints import get_endpoint, rotate_secret

    app = _app()
    hours = app.extensions["moderation.settings"].webhook_rotation_overlap_hours
    with write_session(app) as session:
        endpoint = get_endpoint(session, endpoint_id)
        secret = rotate_secret(session, endpoint, overlap=dt.timedelta(hours=hours), now=utcnow())
        click.echo(f"New secret (the old one stays valid for {hours} h): {secret}")


@webhook.command("test")
@click.argument("endpoint_id")
def webhook_test(endpoint_id: str) -> None:
    """Queue a webhook.test event for an endpoint; a worker delivers it."""
    from moderation.webhooks.endpoints import get_endpoint, send_test_event

    with write_session(_app()) as session:
        endpoint = get_endpoint(session, endpoint_id)
        delivery = send_test_event(session, endpoint, now=utcnow())
        click.echo(f"Queued test delivery {delivery.id} ({delivery.event.public_id}).")


@main.command()
@click.option("--url", default="http://127.0.0.1:5000", show_default=True)
def demo(url: str) -> None:
    """Set up the demo site and a demo admin with a fresh password, and print how to use them."""
    from moderation.moderators import create_moderator
    from moderation.sites import create_site
    from moderation.web.demo import DEMO_POST, DEMO_SITE, DEMO_TITLE

    app = _app()
    hasher = app.extensions["moderation.hasher"]
    password = secrets.token_urlsafe(12)
    with write_session(app) as session:
        site = session.scalar(select(Site).where(Site.slug == DEMO_SITE))
        if site is None:
            origins = [url, url.replace("127.0.0.1", "localhost")]
            site = create_site(
                session, slug=DEMO_SITE, name="Demo blog", origins=origins, actor=CLI
            )
        # The post exists from the start with the include page's address, so the no-JS form
        # returns there whichever of the three pages took the first comment.
        if session.scalar(select(Post).where(Post.site == site, Post.key == DEMO_POST)) is None:
            session.add(Post(site=site, key=DEMO_POST, title=DEMO_TITLE, url=f"{url}{DEMO_POST}"))
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
    click.echo("")
    click.echo(f"  Demo post page:   {url}/demo/")
    click.echo(f"  Moderation queue: {url}/moderate/")
    click.echo(f"  Log in as:        demo / {password}")
    click.echo("")
