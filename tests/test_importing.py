"""Importing WordPress and Disqus exports: field mapping, threading, idempotency, malformed files,
hostile content, and memory that stays bounded on a large file."""

from __future__ import annotations

import datetime as dt
import json
import os
import pty
import re
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from flask.testing import FlaskClient
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session

from moderation import schema
from moderation.cli import main
from moderation.db import begin_as_writer, make_engine
from moderation.events import Actor
from moderation.importing import (
    ImportReport,
    MalformedExport,
    Source,
    import_export,
    read_export,
)
from moderation.models import AuditEvent, Comment, CommentStatus, Event, Post, Role, Site
from moderation.sites import create_site
from tests.data.generate_imports import write_wordpress
from tests.helpers import (
    MODERATION,
    TEST_SECRET,
    app_in_transaction,
    database_url,
    json_of,
    make_moderator,
    make_site,
    make_token,
)

DATA = Path(__file__).parent / "data"
NOW = dt.datetime(2026, 11, 29, 9, 0, tzinfo=dt.UTC)
ACTOR = Actor("command line")
ORIGIN_URL = "https://levellingupadvisorycouncil.blog.gov.uk"
INTRO = "/2024/03/28/from-industrial-decline/"


def load(session: Session, site: Site, source: Source, path: Path | None = None) -> ImportReport:
    plan = read_export(path or DATA / f"{source}.xml", source)
    report = import_export(session, site, plan, now=NOW, actor=ACTOR)
    session.commit()
    return report


def imported(session: Session, source: Source) -> dict[str, Comment]:
    rows = session.scalars(select(Comment).where(Comment.import_ref.startswith(f"{source}:")))
    return {c.import_ref.split(":", 1)[1]: c for c in rows if c.import_ref}


def count(session: Session, model: type[Comment] | type[Post] | type[Event]) -> int:
    return session.scalar(select(func.count()).select_from(model)) or 0


# WordPress -------------------------------------------------------------------------------------


def test_wordpress_fields_and_statuses_are_mapped(session: Session) -> None:
    site = make_site(session)
    report = load(session, site, "wordpress")

    assert report.imported == 6 and report.posts_added == 2 and report.without_email == 1
    assert report.skipped == {
        "pingback or trackback": 1,
        "post: not a post or page": 1,
        "comment on a skipped post: not a post or page": 1,
        "post: address not on this site": 1,
        "comment on a skipped post: address not on this site": 1,
    }
    assert not report.failed

    posts = {p.key: p for p in session.scalars(select(Post).where(Post.site_id == site.id))}
    assert set(posts) == {INTRO, "/about/"}
    assert posts[INTRO].title == "From industrial decline to growth"
    assert posts[INTRO].url == "https://levellingupadvisorycouncil.blog.gov.uk" + INTRO
    assert posts[INTRO].created_at == dt.datetime(2024, 3, 28, 10, 0, tzinfo=dt.UTC)
    assert not posts[INTRO].closed and posts["/about/"].closed

    c = imported(session, "wordpress")
    assert set(c) == {"7", "9", "12", "8", "10", "3"}
    first = c["7"]
    assert first.post.key == INTRO and first.author_name == "Siân Jones"
    # email-validator's normal form (domain lower-cased), without a DNS check
    assert first.author_email == "Sian.Jones@example.cymru"
    assert first.submitted_at == dt.datetime(2024, 3, 28, 10, 30, tzinfo=dt.UTC)  # the GMT date
    assert first.client_network == "203.0.113.0/24"  # reduced like a live submission's
    assert first.body_text.startswith("Diolch! This matches")
    assert first.body_html == (
        "<p>Diolch! This matches what we see in Merthyr Tudful.</p>\n"
        "<p>Our high street has <strong>three</strong> new shops — see "
        "https://merthyr.example/news</p>"
    )
    assert c["9"].client_network == "2001:db8:85a3::/48"
    assert c["3"].client_network is None and c["3"].body_text.endswith("日本語も読めますか\uff1f")
    assert c["3"].author_name == "Zoë Ødegård" and c["3"].post.key == "/about/"
    statuses = {ref: comment.status for ref, comment in c.items()}
    assert statuses == {
        "7": CommentStatus.APPROVED,
        "9": CommentStatus.APPROVED,
        "12": CommentStatus.PENDING,
        "8": CommentStatus.APPROVED,
        "10": CommentStatus.SPAM,
        "3": CommentStatus.DELETED,
    }
    assert all(not x.signals and x.moderated_at is None and not x.official for x in c.values())
    # An address email-validator refuses is not kept: the comment is, with no address.
    assert c["8"].author_email == ""


def test_wordpress_replies_thread_even_when_the_parent_comes_later(session: Session) -> None:
    site = make_site(session)
    load(session, site, "wordpress")
    c = imported(session, "wordpress")
    # In the file, 12 (a reply to 9) comes before 9.
    assert c["9"].parent_id == c["7"].id
    assert c["12"].parent_id == c["9"].id
    assert c["7"].parent_id is None and c["8"].parent_id is None


def test_a_second_run_adds_nothing_and_each_run_is_audited_once(session: Session) -> None:
    site = make_site(session)
    events = count(session, Event)
    first = load(session, site, "wordpress")
    comments, posts = count(session, Comment), count(session, Post)
    second = load(session, site, "wordpress")

    assert first.imported == 6
    assert second.imported == 0 and second.posts_added == 0
    assert second.skipped["comment already imported"] == 6
    assert (count(session, Comment), count(session, Post)) == (comments, posts)
    # History, not news: no webhook events; one audit row per run, with the summary.
    assert count(session, Event) == events
    audits = session.scalars(
        select(AuditEvent).where(AuditEvent.action == "comments.import").order_by(AuditEvent.id)
    ).all()
    assert [a.after["imported"] for a in audits] == [6, 0]
    assert audits[0].site_id == site.id and audits[0].actor == "command line"
    assert audits[0].after["source"] == "wordpress" and audits[0].after["file"] == "wordpress.xml"
    assert audits[1].after["skipped"]["comment already imported"] == 6


def test_an_existing_post_gets_the_comments_and_a_new_etag(session: Session) -> None:
    site = make_site(session)
    post = Post(
        site=site, key=INTRO, title="", url="https://levellingupadvisorycouncil.blog.gov.uk"
    )
    session.add(post)
    session.commit()
    version = post.version
    report = load(session, site, "wordpress")
    session.refresh(post)
    assert report.posts_added == 1  # only /about/
    assert post.title == "From industrial decline to growth" and post.version == version + 1
    assert count(session, Comment) == 6


def test_a_reply_to_a_comment_not_imported_stays_at_the_top_level(
    session: Session, tmp_path: Path
) -> None:
    site = make_site(session)
    text = (DATA / "wordpress.xml").read_text()
    # Make comment 9 a reply to the pingback (11), which is never imported.
    text = text.replace(
        "<wp:comment_parent>7</wp:comment_parent>", "<wp:comment_parent>11</wp:comment_parent>"
    )
    (tmp_path / "wxr.xml").write_text(text)
    report = load(session, site, "wordpress", tmp_path / "wxr.xml")
    assert report.top_level_replies == 1
    c = imported(session, "wordpress")
    assert c["9"].parent_id is None and c["12"].parent_id == c["9"].id


def test_imported_threads_reach_readers_and_fresh_etags(
    client: FlaskClient, session: Session
) -> None:
    site = make_site(session)
    session.add(Post(site=site, key=INTRO, title="", url=ORIGIN_URL + INTRO))
    session.commit()
    url = f"/api/v1/sites/luac/comments?post={INTRO}"
    before = client.get(url)
    assert json_of(before)["comments"] == []

    load(session, site, "wordpress")
    after = client.get(url, headers={"If-None-Match": before.headers["ETag"]})
    assert after.status_code == 200 and after.headers["ETag"] != before.headers["ETag"]
    refs = imported(session, "wordpress")
    shown = json_of(after)["comments"]
    # Approved only, in the file's order, threaded, without addresses.
    assert [c["id"] for c in shown] == [refs[r].public_id for r in ("7", "9", "8")]
    assert shown[1]["parent_id"] == refs["7"].public_id
    assert "example.cymru" not in after.get_data(as_text=True)
    page = client.get(f"/embed/luac/thread?post={INTRO}").get_data(as_text=True)
    assert "Diolch!" in page and "Croeso" not in page and "Cheap pills" not in page
    assert "<script>alert" not in page


# Disqus ----------------------------------------------------------------------------------------


def test_disqus_fields_threads_and_statuses_are_mapped(session: Session) -> None:
    site = make_site(session)
    report = load(session, site, "disqus")

    assert report.imported == 6 and report.posts_added == 2 and report.without_email == 1
    assert report.skipped == {
        "post: address not on this site": 1,
        "comment on a skipped post: address not on this site": 1,
        "comment deleted, with no text left": 1,
    }
    assert report.failed == {"comment on a post or thread not in the file": 1}

    posts = {p.key: p for p in session.scalars(select(Post).where(Post.site_id == site.id))}
    assert set(posts) == {INTRO, "/2023/11/02/town-deals/"}
    assert posts["/2023/11/02/town-deals/"].closed
    assert posts[INTRO].title == "From industrial decline to growth | LUAC"

    c = imported(session, "disqus")
    assert set(c) == {"900001", "900002", "900003", "900004", "900005", "900008"}
    ama = c["900001"]
    assert ama.author_name == "Ama Owusu" and ama.author_email == "Ama.Owusu@example.com"
    assert ama.client_network == "203.0.113.0/24"
    assert ama.submitted_at == dt.datetime(2024, 3, 28, 10, 30, tzinfo=dt.UTC)
    # Disqus's HTML paragraphs and breaks become the text as typed, then render like a submission.
    assert ama.body_text.startswith("Great summary, thank you.\n\nTwo questions:\nfirst, when?\n")
    assert ama.body_html.startswith(
        "<p>Great summary, thank you.</p>\n<p>Two questions:<br>first, when?<br>second, where?"
    )
    assert (
        '<a href="https://data.example.gov.uk/towns" rel="nofollow ugc noopener">' in ama.body_html
    )
    assert "target" not in ama.body_html and "title=" not in ama.body_html
    # Threads come after some of their posts, and a reply before its parent.
    assert c["900002"].parent_id == ama.id and c["900005"].parent_id == ama.id
    assert c["900002"].post.key == INTRO
    assert {ref: x.status for ref, x in c.items()} == {
        "900001": CommentStatus.APPROVED,
        "900002": CommentStatus.APPROVED,
        "900003": CommentStatus.APPROVED,
        "900004": CommentStatus.SPAM,
        "900005": CommentStatus.DELETED,
        "900008": CommentStatus.APPROVED,
    }
    assert c["900003"].author_email == "" and c["900003"].client_network == "2001:db8:1234::/48"
    assert c["900008"].body_text == "Ffantastig — ça marche très bien. 👍"
    assert c["900008"].author_name == "Gwenllïan"

    again = load(session, site, "disqus")
    assert again.imported == 0 and again.skipped["comment already imported"] == 6


def test_hostile_content_is_sanitised_like_a_submission(session: Session) -> None:
    site = make_site(session)
    load(session, site, "wordpress")
    load(session, site, "disqus")
    for comment in [imported(session, "wordpress")["8"], imported(session, "disqus")["900003"]]:
        html = comment.body_html
        assert "<script" not in html and "<img" not in html and "javascript:" not in html
        assert not re.search(r"<[a-z][^>]*\son\w+\s*=", html)  # no live event handler
        assert "&lt;script&gt;" in html  # shown as text, as a submission's would be
    wp = imported(session, "wordpress")["8"]
    assert '<a href="https://ok.example/" rel="nofollow ugc noopener">fine</a>' in wp.body_html
    assert "<a rel=" in wp.body_html  # the javascript: link lost its href
    # The name is stored as text; templates escape it.
    assert wp.author_name == '<script>alert("name")</script>Mallory'


# Malformed files -------------------------------------------------------------------------------

SAMPLE = (DATA / "wordpress.xml").read_text()
DISQUS = (DATA / "disqus.xml").read_text()

MALFORMED: dict[str, tuple[Source, str, str]] = {
    # The line where the file ends, the column where the parser stopped.
    "truncated": (
        "wordpress",
        SAMPLE[: SAMPLE.index("<wp:comment_id>3<")],
        r"^line 178, column 4: not well-formed XML \(Premature end of data in tag comment",
    ),
    "bad tag": (
        "wordpress",
        SAMPLE.replace("<wp:comment_id>10</wp:comment_id>", "<wp:comment_id>10</wp:comment>"),
        r"^line 128, column 34: not well-formed XML \(Opening and ending tag mismatch",
    ),
    "wrong root": (
        "wordpress",
        DISQUS,
        r"^line 2: this is not a WordPress export: it starts with <disqus>",
    ),
    "not XML": (
        "wordpress",
        '{"meta": {"format": "moderation-export"}}',
        r"^line 1, column 1: not well-formed XML",
    ),
    "empty": ("wordpress", "", r"^the file is empty"),
    "undeclared entity": (
        "wordpress",
        SAMPLE.replace("<title>", "<title>Caf&eacute; &nbsp;", 1),
        r"^line \d+, column \d+: not well-formed XML \(Entity 'eacute' not defined\)",
    ),
    "RSS feed, not an export": (
        "wordpress",
        SAMPLE.replace("<wp:wxr_version>1.2</wp:wxr_version>", ""),
        r"^line 33: this is not a WordPress export: no <wp:wxr_version>",
    ),
    "entity expansion": (
        "wordpress",
        '<?xml version="1.0"?>\n<!DOCTYPE rss [<!ENTITY a "aaaaaaaaaa">'
        '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>\n<rss><channel>&b;</channel></rss>',
        r"^line 3: the file declares a DTD",
    ),
    "Disqus, truncated": (
        "disqus",
        DISQUS[: DISQUS.index('<post dsq:id="900008">') + 30],
        r"^line 163, column 8: not well-formed XML \(Couldn't find end of Start Tag id\)",
    ),
    "Disqus, wrong root": (
        "disqus",
        SAMPLE,
        r"^line 10: this is not a Disqus export: it starts with <rss>, not <disqus>",
    ),
    "Disqus, external entity": (
        "disqus",
        '<?xml version="1.0"?>\n<!DOCTYPE disqus [<!ENTITY e SYSTEM "file:///etc/passwd">]>\n'
        '<disqus xmlns="http://disqus.com"><post><message>&e;</message></post></disqus>',
        r"^line 3: the file declares a DTD",
    ),
}


@pytest.mark.parametrize("case", MALFORMED)
def test_a_malformed_file_is_refused_with_its_line_and_nothing_is_imported(
    session: Session, tmp_path: Path, case: str
) -> None:
    site = make_site(session)
    source, text, expected = MALFORMED[case]
    path = tmp_path / "export.xml"
    path.write_text(text)
    with pytest.raises(MalformedExport) as caught:
        load(session, site, source, path)
    assert re.search(expected, caught.value.message), caught.value.message
    assert caught.value.message.endswith("nothing was imported")
    assert count(session, Comment) == 0 and count(session, Post) == 0


def test_a_file_that_breaks_during_the_import_pass_rolls_back_everything(
    session: Session, tmp_path: Path
) -> None:
    """The file is checked first; if it changes under the import, the one transaction goes."""
    site = make_site(session)
    path = tmp_path / "export.xml"
    path.write_text(SAMPLE)
    plan = read_export(path, "wordpress")
    path.write_text(SAMPLE[: SAMPLE.index("<wp:comment_id>3<")])
    with pytest.raises(MalformedExport):
        import_export(session, site, plan, now=NOW, actor=ACTOR)
    session.rollback()
    assert count(session, Comment) == 0 and count(session, Post) == 0


# The endpoint ----------------------------------------------------------------------------------

IMPORTS = "/api/v1/moderation/sites/luac/imports"


def upload(client: FlaskClient, token: str, body: bytes, url: str = IMPORTS, **headers: str) -> Any:
    return client.post(
        url,
        data=body,
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/xml",
            **headers,
        },
    )


def test_the_endpoint_imports_reports_like_the_command_and_adds_nothing_the_second_time(
    client: FlaskClient, session: Session
) -> None:
    site = make_site(session)
    token = make_token(session, make_moderator(session))
    body = (DATA / "wordpress.xml").read_bytes()

    first = upload(client, token, body)
    assert first.status_code == 200, first.get_data(as_text=True)
    assert json_of(first) == {
        "site": "luac",
        "source": "wordpress",
        "posts_added": 2,
        "imported": 6,
        "without_email": 1,
        "top_level_replies": 0,
        "skipped": {
            "pingback or trackback": 1,
            "post: not a post or page": 1,
            "comment on a skipped post: not a post or page": 1,
            "post: address not on this site": 1,
            "comment on a skipped post: address not on this site": 1,
        },
        "failed": {},
    }
    c = imported(session, "wordpress")
    assert c["12"].status == CommentStatus.PENDING and c["12"].parent_id == c["9"].id
    comments, posts = count(session, Comment), count(session, Post)

    second = json_of(upload(client, token, body))
    assert second["imported"] == 0 and second["posts_added"] == 0
    assert second["skipped"]["comment already imported"] == 6
    assert (count(session, Comment), count(session, Post)) == (comments, posts)
    audits = session.scalars(
        select(AuditEvent).where(AuditEvent.action == "comments.import").order_by(AuditEvent.id)
    ).all()
    assert [a.after["imported"] for a in audits] == [6, 0]
    assert audits[0].actor == "editor (token integration)" and audits[0].site_id == site.id
    assert audits[0].after["file"] == "(uploaded)"

    disqus = upload(client, token, (DATA / "disqus.xml").read_bytes(), f"{IMPORTS}?source=disqus")
    assert json_of(disqus)["imported"] == 6 and json_of(disqus)["source"] == "disqus"


def test_the_endpoint_refuses_what_the_command_refuses_and_imports_nothing(
    engine: Engine, connection: Any, session: Session
) -> None:
    make_site(session)
    admin = make_token(session, make_moderator(session))
    editor = make_token(
        session, make_moderator(session, "helper", role=Role.MODERATOR, sites=("luac",))
    )
    client = app_in_transaction(
        engine, connection, max_import_bytes=len(SAMPLE.encode()) + 10
    ).test_client()

    def error(response: Any, status: int) -> dict[str, Any]:
        assert response.status_code == status, response.get_data(as_text=True)
        found: dict[str, Any] = json_of(response)["error"]
        return found

    broken = error(upload(client, admin, SAMPLE[:5000].encode()), 400)
    assert broken["code"] == "malformed_export"
    assert re.match(
        r"line 96, column 17: not well-formed XML .*nothing was imported$", broken["message"]
    )
    assert (
        error(upload(client, admin, b""), 400)["message"]
        == "the file is empty; nothing was imported"
    )
    disqus = upload(client, admin, SAMPLE.encode(), f"{IMPORTS}?source=disqus")
    assert "this is not a Disqus export" in error(disqus, 400)["message"]
    assert error(upload(client, admin, SAMPLE.encode(), f"{IMPORTS}?source=blogger"), 400)[
        "fields"
    ] == {"source": "One of wordpress, disqus"}
    assert error(upload(client, admin, (SAMPLE + " " * 20).encode()), 413)["code"] == "too_large"
    assert error(upload(client, admin, SAMPLE.encode(), **{"Content-Type": "text/csv"}), 415)
    assert error(upload(client, editor, SAMPLE.encode()), 403)["code"] == "forbidden"
    assert error(upload(client, "nope", SAMPLE.encode()), 401)
    unknown = upload(client, admin, SAMPLE.encode(), "/api/v1/moderation/sites/nope/imports")
    assert error(unknown, 404)["code"] == "not_found"
    assert count(session, Comment) == 0 and count(session, Post) == 0
    # Within the cap, the same file goes in.
    assert json_of(upload(client, admin, SAMPLE.encode()))["imported"] == 6


# The command -----------------------------------------------------------------------------------


@pytest.fixture
def cli(tmp_path: Path) -> Callable[..., Result]:
    """The ``moderation`` command in this process, on a migrated SQLite file with one site."""
    env = {
        "MODERATION_ENV": "testing",
        "MODERATION_SECRET_KEY": TEST_SECRET,
        "MODERATION_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
    }
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        return runner.invoke(main, list(args), env=env)

    assert invoke("db", "upgrade").exit_code == 0
    assert invoke("site", "add", "luac", "--name", "LUAC", "--origin", ORIGIN_URL).exit_code == 0
    return invoke


def test_the_commands_import_report_and_refuse_bad_files(
    cli: Callable[..., Result], tmp_path: Path
) -> None:
    done = cli("import", "wordpress", str(DATA / "wordpress.xml"))
    assert done.exit_code == 0, done.output
    assert "Imported 6 comments (1 without a usable email address) and 2 new posts into luac." in (
        done.stdout
    )
    assert re.search(r"Skipped 5:\n +1  pingback or trackback\n", done.stdout)
    assert "Failed 0." in done.stdout
    assert not done.stderr  # no progress bar when standard error is not a terminal

    disqus = cli("import", "disqus", str(DATA / "disqus.xml"), "--site", "luac")
    assert disqus.exit_code == 0, disqus.output
    assert "Imported 6 comments" in disqus.stdout
    assert re.search(r"Failed 1:\n +1  comment on a post or thread not in the file", disqus.stdout)

    again = cli("import", "wordpress", str(DATA / "wordpress.xml"))
    assert "Imported 0 comments" in again.stdout and "6  comment already imported" in again.stdout

    (tmp_path / "bad.xml").write_text(SAMPLE[:5000])
    bad = cli("import", "wordpress", str(tmp_path / "bad.xml"))
    assert bad.exit_code == 1
    assert re.search(r"Error: bad.xml: line 96, column 17: not well-formed XML", bad.stderr)
    assert "nothing was imported" in bad.stderr

    assert cli("site", "add", "other", "--name", "O", "--origin", ORIGIN_URL).exit_code == 0
    ambiguous = cli("import", "disqus", str(DATA / "disqus.xml"))
    assert ambiguous.exit_code == 2 and "--site SLUG" in ambiguous.stderr
    unknown = cli("import", "disqus", str(DATA / "disqus.xml"), "--site", "nope")
    assert unknown.exit_code == 1 and "There is no site with that name." in unknown.stderr


@pytest.mark.concurrency
def test_two_imports_of_one_file_at_once_import_it_once(engine: Engine, tmp_path: Path) -> None:
    """Started together, each in its own transaction: the second waits for the first, then finds
    everything imported (before, PostgreSQL stopped one with a raw unique-violation error)."""
    postgres = engine.dialect.name == "postgresql"
    url = database_url(tmp_path) if postgres else f"sqlite:///{tmp_path / 'imports.db'}"
    own = make_engine(url)
    schema.upgrade(own)
    with Session(own) as session:
        site_id = create_site(session, slug="twice", name="Twice", origins=[ORIGIN_URL]).id
        session.commit()
    plan = read_export(DATA / "wordpress.xml", "wordpress")
    reports: list[ImportReport] = []
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def run() -> None:
        try:
            start.wait(10)
            with Session(own) as session:
                begin_as_writer(session)
                site = session.get_one(Site, site_id)
                reports.append(import_export(session, site, plan, now=NOW, actor=ACTOR))
                session.commit()
        except BaseException as error:
            errors.append(error)

    try:
        runs = [threading.Thread(target=run) for _ in range(2)]
        for thread in runs:
            thread.start()
        for thread in runs:
            thread.join(60)
        assert not errors, errors
        assert sorted(report.imported for report in reports) == [0, 6]
        with Session(own) as session:
            comments = select(func.count()).select_from(Comment).join(Post)
            assert session.scalar(comments.where(Post.site_id == site_id)) == 6
    finally:
        if postgres:
            with own.begin() as connection:
                connection.execute(text("TRUNCATE sites, posts, comments, audit_events CASCADE"))
        own.dispose()


def test_the_import_survives_an_export_and_import_json_round_trip(
    cli: Callable[..., Result], tmp_path: Path
) -> None:
    """The source ids travel with the comments, so the new installation stays idempotent."""
    assert cli("import", "wordpress", str(DATA / "wordpress.xml")).exit_code == 0
    exported = cli("export")
    document = json.loads(exported.stdout)
    assert sorted(c["import_ref"] for c in document["comments"]) == [
        f"wordpress:{n}" for n in ("10", "12", "3", "7", "8", "9")
    ]
    (tmp_path / "export.json").write_text(exported.stdout)
    second = CliRunner()
    env = {
        "MODERATION_ENV": "testing",
        "MODERATION_SECRET_KEY": TEST_SECRET,
        "MODERATION_DATABASE_URL": f"sqlite:///{tmp_path / 'second.db'}",
    }
    assert second.invoke(main, ["db", "upgrade"], env=env).exit_code == 0
    loaded = second.invoke(main, ["import", "json", str(tmp_path / "export.json")], env=env)
    assert "6 comments" in loaded.stdout, loaded.output
    again = second.invoke(main, ["import", "wordpress", str(DATA / "wordpress.xml")], env=env)
    assert "Imported 0 comments" in again.stdout, again.output


@pytest.mark.subprocess
def test_a_progress_bar_is_drawn_on_a_terminal(cli: Callable[..., Result], tmp_path: Path) -> None:
    terminal, attached = pty.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODERATION_")}
    env.update(
        MODERATION_ENV="testing",
        MODERATION_SECRET_KEY=TEST_SECRET,
        MODERATION_DATABASE_URL=f"sqlite:///{tmp_path / 'cli.db'}",
    )
    done = subprocess.run(
        [MODERATION, "import", "wordpress", str(DATA / "wordpress.xml")],
        stderr=attached,
        stdout=subprocess.PIPE,
        env=env,
        timeout=60,
        text=True,
    )
    os.close(attached)
    drawn = b""
    while True:
        try:
            chunk = os.read(terminal, 65536)
        except OSError:  # the terminal's other end is closed: everything has been read
            break
        if not chunk:
            break
        drawn += chunk
    os.close(terminal)
    assert done.returncode == 0
    assert b"Importing wordpress.xml" in drawn and b"100%" in drawn
    assert "Imported 6 comments" in done.stdout


# Memory ----------------------------------------------------------------------------------------

# Imports a small file (so every library, cache and connection is warm), notes the peak memory,
# imports the large file, notes the peak again; rolls back: the test database may be shared.
PEAK_SCRIPT = textwrap.dedent(
    """
    import resource, sys
    from pathlib import Path
    from sqlalchemy.orm import Session
    from moderation.db import make_engine
    from moderation.events import Actor
    from moderation.importing import import_export, read_export
    from moderation.models import utcnow
    from moderation.sites import create_site

    def peak():
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    engine = make_engine(sys.argv[1])
    counts = []
    for name in sys.argv[2:4]:
        with Session(engine) as session:
            site = create_site(session, slug="memory", name="M", origins=[sys.argv[4]])
            plan = read_export(Path(name), "wordpress")
            report = import_export(session, site, plan, now=utcnow(), actor=Actor("test"))
            session.rollback()
        counts += [report.imported, peak()]
    print(*counts)
    """
)


@pytest.mark.subprocess
def test_a_large_file_imports_in_bounded_memory(engine: Engine, tmp_path: Path) -> None:
    """Peak memory over a small import's stays well under the file's size: reading the file
    whole, or keeping its parsed elements, would add at least the file's size."""
    from tests.data.generate_imports import ORIGIN

    url = database_url(tmp_path)
    if url.startswith("sqlite"):  # a database file of its own, for the other process
        from moderation import schema
        from moderation.db import make_engine

        own = make_engine(url)
        schema.upgrade(own)
        own.dispose()
    small, large = tmp_path / "small.xml", tmp_path / "large.xml"
    with small.open("w", encoding="utf-8") as out:
        write_wordpress(out, posts=2, comments=5, body_kb=1)
    with large.open("w", encoding="utf-8") as out:
        written = write_wordpress(out, posts=200, comments=5, body_kb=120)
    size = large.stat().st_size
    assert size > 20_000_000

    done = subprocess.run(
        [sys.executable, "-c", PEAK_SCRIPT, url, str(small), str(large), ORIGIN],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    _, baseline, comments, peak = map(int, done.stdout.split())
    assert comments > 0.9 * written
    assert peak - baseline < size / 4, f"{(peak - baseline) / 1e6:.0f} MB over the baseline"


def test_a_wordpress_import_teaches_the_spam_filter_its_approved_and_spam_comments(
    session: Session,
) -> None:
    from moderation import learning
    from moderation.models import SpamToken

    site = make_site(session)
    load(session, site, "wordpress")
    comments = imported(session, "wordpress").values()
    spam = sum(c.status is CommentStatus.SPAM for c in comments)
    approved = sum(c.status is CommentStatus.APPROVED and not c.official for c in comments)
    assert spam >= 1 and approved >= 1
    documents = session.get(SpamToken, (site.id, learning.DOCUMENTS))
    assert documents is not None and (documents.spam, documents.ham) == (spam, approved)
    assert all(
        c.learned for c in comments if c.status in (CommentStatus.SPAM, CommentStatus.APPROVED)
    )
