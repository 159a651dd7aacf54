"""moderation post: close a post to comments, or open it again (with a closing time)."""

from __future__ import annotations

import datetime as dt

import click

from moderation.cli.common import CLI, load_app, sessions
from moderation.db import write_transaction
from moderation.models import Post, utcnow


@click.group()
def post() -> None:
    """Posts: close them to comments, open them again."""


def _report(found: Post, now: dt.datetime) -> None:
    from moderation.posts import post_data

    data = post_data(found, now)
    window = ""
    if data["opens_at"] or data["closes_at"]:
        window = f" (window {data['opens_at'] or '…'} to {data['closes_at'] or '…'})"
    click.echo(f"Post {data['key']}: {data['state'].replace('_', ' ')}{window}.")


@post.command("close")
@click.argument("site")
@click.argument("key")
def post_close(site: str, key: str) -> None:
    """Close the post KEY of SITE to comments (its thread's ETag changes at once)."""
    from moderation.posts import PostChanges, update_post

    now = utcnow()
    with write_transaction(sessions(load_app())) as session:
        found = update_post(session, None, site, key, PostChanges(closed=True), actor=CLI, now=now)
        _report(found, now)


@post.command("open")
@click.argument("site")
@click.argument("key")
@click.option(
    "--opens-at", default=None, help="When comments open, RFC 3339 (2026-03-01T09:00:00Z)."
)
@click.option(
    "--closes-at", default=None, help="When comments close, RFC 3339 (2026-03-12T23:59:00Z)."
)
def post_open(site: str, key: str, opens_at: str | None, closes_at: str | None) -> None:
    """Open the post KEY of SITE to comments again, for good or until --closes-at."""
    from moderation.posts import PostChanges, update_post

    body: dict[str, object] = {"closed": False}
    if opens_at is not None:
        body["opens_at"] = opens_at
    if closes_at is not None:
        body["closes_at"] = closes_at
    now = utcnow()
    with write_transaction(sessions(load_app())) as session:
        found = update_post(session, None, site, key, PostChanges.parse(body), actor=CLI, now=now)
        _report(found, now)
