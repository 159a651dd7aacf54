"""The ``moderation`` command: database, sites, moderators, tokens, webhooks, serving.

A module per command group. Commands import the services they call inside their functions: the
command starts afresh on every invocation, and loading the app and every service (Flask, the
spam checks, the importers) would make ``moderation --help`` and each small command pay for all
of them.
"""

from __future__ import annotations

from typing import Any

import click

from moderation.cli import (
    db,
    moderators,
    personal_data,
    posts,
    serving,
    sites,
    spam,
    transfer,
    webhooks,
)
from moderation.errors import ServiceError


class Commands(click.Group):
    """The top group: a service's refusal (an unknown site, a bad value) is a message, and the
    command's transaction has been rolled back."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ServiceError as error:
            details = "; ".join(f"{k}: {v}" for k, v in error.fields.items())
            raise click.ClickException(f"{error.message} {details}".strip()) from None


@click.group(cls=Commands)
def main() -> None:
    """Comment moderation service. Settings come from MODERATION_* environment variables."""


for command in (
    db.db,
    sites.site,
    moderators.moderator,
    moderators.token,
    personal_data.personal_data,
    personal_data.purge,
    transfer.export_command,
    transfer.import_group,
    serving.check,
    serving.serve,
    serving.worker,
    serving.demo,
    webhooks.webhook,
    spam.spam,
    posts.post,
):
    main.add_command(command)
