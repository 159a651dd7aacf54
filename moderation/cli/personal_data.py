"""moderation personal-data and moderation purge: a commenter's data, and retention."""

from __future__ import annotations

import click

from moderation.cli.common import CLI, load_app, sessions
from moderation.db import write_transaction
from moderation.models import utcnow


@click.group("personal-data")
def personal_data() -> None:
    """A commenter's personal data: export it, erase it."""


@personal_data.command("export")
@click.option("--email", required=True, help="The commenter's email address.")
def personal_data_export(email: str) -> None:
    """Print everything held about an address, as JSON."""
    import json

    from moderation.personal_data import export_personal_data

    with write_transaction(sessions(load_app())) as session:
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
    app = load_app()
    with write_transaction(sessions(app)) as session:
        erased = erase_personal_data(
            session, email, actor=CLI, now=utcnow(), secret=app.config["SECRET_KEY"]
        )
    click.echo(
        f"Erased personal data from {erased.comments} comments "
        f"({erased.texts_removed} texts removed)."
    )


@click.command()
@click.option("--dry-run", is_flag=True, help="Only report what would go.")
def purge(dry_run: bool) -> None:
    """Apply the retention periods: drop old client data, delete old rejected and spam comments
    and comments whose author never confirmed their address."""
    from moderation.personal_data import Retention, purge_expired

    app = load_app()
    settings = app.extensions["moderation.settings"]
    with write_transaction(sessions(app)) as session:
        report = purge_expired(
            session, Retention.from_settings(settings), now=utcnow(), dry_run=dry_run, actor=CLI
        )
    verb = "Would clear" if dry_run else "Cleared"
    delete = "would delete" if dry_run else "deleted"
    click.echo(
        f"{verb} client data from {report.client_data_cleared} comments; "
        f"{delete} {report.comments_deleted} rejected or spam comments; "
        f"{delete} {report.unconfirmed_deleted} comments whose address was never confirmed."
    )
