"""moderation moderator and moderation token: accounts and the moderation API's tokens."""

from __future__ import annotations

import click
from sqlalchemy import select

from moderation.cli.common import CLI, load_app, read_password, sessions
from moderation.db import write_transaction
from moderation.models import Moderator, Role, utcnow


@click.group()
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

    password = read_password(password_stdin)
    app = load_app()
    with write_transaction(sessions(app)) as session:
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

    password = read_password(password_stdin)
    app = load_app()
    with write_transaction(sessions(app)) as session:
        set_password(
            session,
            app.extensions["moderation.hasher"],
            get_moderator(session, login),
            password,
            actor=CLI,
            now=utcnow(),
        )
        click.echo(f"Set the password of {login}.")


@click.group()
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

    with write_transaction(sessions(load_app())) as session:
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
