"""moderation export and moderation import: everything out and in, and other services' exports."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import click
from sqlalchemy import select
from sqlalchemy.orm import Session

from moderation.cli.common import CLI, load_app, sessions
from moderation.db import write_transaction
from moderation.models import Site, utcnow

if TYPE_CHECKING:
    from moderation.importing import Source


@click.command("export")
@click.option("--output", type=click.File("w", encoding="utf-8"), default="-", show_default=True)
def export_command(output: TextIO) -> None:
    """Write everything (sites, posts, comments, moderators without passwords, audit log) as
    JSON."""
    import json

    from moderation.transfer import export_records

    app = load_app()
    with sessions(app)() as session:
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


@click.group("import")
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
    with write_transaction(sessions(load_app())) as session:
        added = import_document(session, document)
    click.echo(
        "Imported " + ", ".join(f"{n} {kind.replace('_', ' ')}" for kind, n in added.items()) + "."
    )


def _import_comments(kind: Source, path: Path, site_slug: str | None) -> None:
    """Check the whole file, then import it in one transaction, and say what happened."""
    from moderation.comments import get_site
    from moderation.importing import MalformedExport, import_export, read_export

    app = load_app()
    # Which site, before a long first pass: a mistyped slug is reported at once.
    with sessions(app)() as session:
        slug = _import_site(session, site_slug)
    # Two passes over the file: checking, then importing.
    with _progress_bar(2 * path.stat().st_size, f"Importing {path.name}") as advance:
        try:
            plan = read_export(path, kind, advance)
        except MalformedExport as error:
            raise click.ClickException(f"{path.name}: {error.message}") from None
        with write_transaction(sessions(app)) as session:
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
