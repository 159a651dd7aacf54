"""moderation spam: the learned spam filter's model."""

from __future__ import annotations

import click
from sqlalchemy import select

from moderation.cli.common import load_app, sessions
from moderation.db import write_transaction
from moderation.models import Site


@click.group()
def spam() -> None:
    """The learned spam filter."""


@spam.command("train")
@click.option("--site", "slug", help="Only this site (default: every site).")
def spam_train(slug: str | None) -> None:
    """Rebuild each site's model from its decided comments (approved: legitimate, spam: spam)
    and report what it learned."""
    from moderation import learning

    with write_transaction(sessions(load_app())) as session:
        query = select(Site).order_by(Site.slug)
        if slug:
            query = query.where(Site.slug == slug)
        found = session.scalars(query).all()
        if not found:
            raise click.ClickException(f"There is no site {slug!r}.")
        for site in found:
            taught = learning.rebuild(session, site.id)
            click.echo(
                f"{site.slug}: learned from {taught['spam']} spam and "
                f"{taught['legitimate']} legitimate comments."
            )
            strongest = learning.strongest_tokens(session, site.id, limit=8)
            if strongest:
                shown = ", ".join(f"{token!r} ({p:.2f})" for token, p in strongest)
                click.echo(f"  most telling of spam: {shown}")
