"""moderation webhook: endpoints that receive signed events."""

from __future__ import annotations

import click

from moderation.cli.common import CLI, load_app, sessions
from moderation.db import write_transaction
from moderation.models import utcnow


@click.group()
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
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["standard", "slack", "teams"]),
    default="standard",
    help="slack or teams: their incoming-webhook JSON (a line and a link to the queue).",
)
def webhook_add(
    url: str,
    events: tuple[str, ...],
    site_slug: str | None,
    personal_data: bool,
    description: str,
    fmt: str,
) -> None:
    """Add an endpoint at URL and print its secret."""
    from moderation.webhooks.endpoints import create_endpoint

    app = load_app()
    with write_transaction(sessions(app)) as session:
        endpoint = create_endpoint(
            session,
            url=url,
            event_types=events,
            site_slug=site_slug,
            include_personal_data=personal_data,
            description=description,
            allow_http=app.extensions["moderation.settings"].webhook_allow_http,
            fmt=fmt,
            public_url=app.extensions["moderation.settings"].public_url,
            actor=CLI,
            now=utcnow(),
        )
        click.echo(f"Added webhook endpoint {endpoint.public_id} for {endpoint.url}.")
        click.echo(f"Secret (keep it secret; verify signatures with it): {endpoint.secret}")


@webhook.command("list")
def webhook_list() -> None:
    """List the endpoints."""
    from moderation.webhooks.endpoints import list_endpoints

    with write_transaction(sessions(load_app())) as session:
        for found in list_endpoints(session):
            state = "enabled" if found.enabled else f"disabled ({found.disabled_reason})"
            events = ",".join(found.event_types) or "all events"
            site_name = found.site.slug if found.site else "all sites"
            click.echo(f"{found.public_id}\t{found.url}\t{events}\t{site_name}\t{state}")


def _set_webhook_enabled(endpoint_id: str, enabled: bool) -> None:
    from moderation.webhooks.endpoints import get_endpoint, set_enabled

    with write_transaction(sessions(load_app())) as session:
        endpoint = get_endpoint(session, endpoint_id)
        set_enabled(session, endpoint, enabled, actor=CLI, now=utcnow())
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
    from moderation.webhooks.endpoints import ROTATION_OVERLAP, get_endpoint, rotate_secret

    app = load_app()
    hours = int(ROTATION_OVERLAP.total_seconds() // 3600)
    with write_transaction(sessions(app)) as session:
        endpoint = get_endpoint(session, endpoint_id)
        secret = rotate_secret(session, endpoint, actor=CLI, now=utcnow())
        click.echo(f"New secret (the old one stays valid for {hours} h): {secret}")


@webhook.command("test")
@click.argument("endpoint_id")
def webhook_test(endpoint_id: str) -> None:
    """Queue a webhook.test event for an endpoint; a worker delivers it."""
    from moderation.webhooks.endpoints import get_endpoint, send_test_event

    with write_transaction(sessions(load_app())) as session:
        endpoint = get_endpoint(session, endpoint_id)
        delivery = send_test_event(session, endpoint, now=utcnow())
        click.echo(f"Queued test delivery {delivery.id} ({delivery.event.public_id}).")
