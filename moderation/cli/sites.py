"""moderation site: sites (blogs) and their settings."""

from __future__ import annotations

import click
from sqlalchemy import select

from moderation.cli.common import CLI, load_app, sessions
from moderation.db import write_transaction
from moderation.models import Site, utcnow


@click.group()
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

    with write_transaction(sessions(load_app())) as session:
        created = create_site(session, slug=slug, name=name, origins=list(origins), actor=CLI)
        click.echo(f"Added site {created.slug} ({', '.join(created.origins)}).")


@site.command("list")
def site_list() -> None:
    """List the sites."""
    with write_transaction(sessions(load_app())) as session:
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

    with write_transaction(sessions(load_app())) as session:
        found = get_site(session, slug)
        changes = {"hold_terms": list(hold_terms), "spam_terms": list(spam_terms)}
        update_site(session, found, changes, actor=CLI, now=utcnow())
        click.echo(
            f"Site {found.slug}: {len(found.hold_terms)} hold terms, "
            f"{len(found.spam_terms)} spam terms."
        )
