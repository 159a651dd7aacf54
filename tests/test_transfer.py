"""Export and import: a round trip gives back the same installation, and importing twice adds
nothing."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from moderation import create_app
from moderation.config import load_settings
from moderation.events import Actor
from moderation.models import Moderator, Site, utcnow
from moderation.sites import EDITABLE, SiteChanges, site_settings, update_site
from moderation.transfer import FORMAT, VERSION, export_records, import_document
from tests.helpers import (
    TEST_SECRET,
    comment_json,
    json_of,
    make_site,
    make_token,
    run_command,
)


def test_export_import_round_trip(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    run_command(first, "db", "upgrade")
    run_command(first, "site", "add", "luac", "--name", "LUAC", "--origin", "https://luac.example")
    run_command(first, "moderator", "add", "ed", "--email", "ed@example.org", "--role", "admin",
        "--site", "luac", "--password-stdin", stdin="a good long passphrase\n")  # fmt: skip
    app = create_app(load_settings({}, env="testing", secret_key=TEST_SECRET,
                                   database_url=f"sqlite:///{first / 'cli.db'}",
                                   check_deliverability=False))  # fmt: skip
    client = app.test_client()
    with app.extensions["moderation.sessionmaker"]() as session:
        token = make_token(session, session.scalars(select(Moderator)).one())
    auth = {"Authorization": f"Bearer {token}"}
    ids = [
        json_of(client.post("/api/v1/sites/luac/comments",
                            json=comment_json(body=f"Comment {n} ✓", post="/p/", lang=lang)))["id"]
        for n, lang in enumerate(("en", "cy", "en"))
    ]  # fmt: skip
    client.post(f"/api/v1/moderation/comments/{ids[0]}/approve", headers=auth)
    client.post(f"/api/v1/moderation/comments/{ids[1]}/edit", json={"body": "Edited"}, headers=auth)
    client.post(
        f"/api/v1/moderation/comments/{ids[0]}/reply", json={"body": "Thanks"}, headers=auth
    )
    for network, reason in (("198.51.100.7", "off_topic"), ("203.0.113.9", "spam")):
        reported = client.post(f"/api/v1/sites/luac/comments/{ids[0]}/reports",
                               json={"reason": reason, "detail": f"Said {reason}"},
                               environ_base={"REMOTE_ADDR": network})  # fmt: skip
        assert reported.status_code == 202
    dismissed = client.post(f"/api/v1/moderation/comments/{ids[0]}/dismiss-reports", headers=auth)
    assert dismissed.status_code == 200
    app.extensions["moderation.engine"].dispose()

    exported = run_command(first, "export")
    assert exported.returncode == 0, exported.stderr
    document = json.loads(exported.stdout)
    assert "password" not in exported.stdout and "argon2" not in exported.stdout
    assert len(document["comments"]) == 4 and len(document["audit_events"]) >= 5
    assert sorted(c["lang"] for c in document["comments"]) == ["cy", "en", "en", "en"]
    # Readers' reports travel with their comment, dismissed by whom; never their networks.
    assert [(r["reason"], r["dismissed_by"]) for r in document["reports"]] == [
        ("off_topic", "ed"),
        ("spam", "ed"),
    ]
    assert "198.51.100" not in exported.stdout and "203.0.113" not in exported.stdout

    (tmp_path / "export.json").write_text(exported.stdout)
    run_command(second, "db", "upgrade")
    loaded = run_command(second, "import", "json", str(tmp_path / "export.json"))
    assert loaded.returncode == 0, loaded.stderr
    assert "4 comments" in loaded.stdout
    again = run_command(second, "import", "json", str(tmp_path / "export.json"))
    assert "0 sites, 0 moderators, 0 posts, 0 comments, 0 audit events" in again.stdout
    assert "0 reports" in again.stdout and "2 reports" in loaded.stdout

    reexported = json.loads(run_command(second, "export").stdout)
    document.pop("meta"), reexported.pop("meta")
    assert reexported == document

    assert run_command(second, "moderator", "set-password", "ed", "--password-stdin",
               stdin="another long passphrase\n").returncode == 0  # fmt: skip

    (tmp_path / "bad.json").write_text('{"meta": {"format": "other"}}')
    bad = run_command(second, "import", "json", str(tmp_path / "bad.json"))
    assert bad.returncode != 0 and "Not a moderation-export" in bad.stderr


def test_every_site_setting_survives_export_and_import(session: Session) -> None:
    """The import listed a site's settings by hand and had dropped spam_threshold; it now reads
    every setting the export writes."""
    site = make_site(session)
    changed = {
        "name": "Renamed", "origins": ["https://other.example"], "policy": "trusted",
        "link_limit": 5, "close_after_days": 30, "privacy_notice_url": "https://p.example/privacy",
        "comment_policy_url": "https://p.example/policy", "reject_reasons": ["Off topic"],
        "erasure_keeps_text": False, "privacy_text": "Private.", "hold_terms": ["hold"],
        "spam_terms": ["spam"], "notify_emails": ["team@example.gov.uk"], "spam_threshold": 0.95,
        "closed_text": "Closed.", "time_zone": "Europe/Paris", "ban_response": "refuse",
        "banned_text": "No.", "report_threshold": 7,
    }  # fmt: skip
    assert set(changed) == set(EDITABLE) - {"verify_email"}  # it needs mail; a default here
    update_site(session, site, SiteChanges.parse(changed), actor=Actor("test"), now=utcnow())
    records = [r for s, r in export_records(session, now=utcnow()) if s == "sites"]
    [exported] = [dict(r, slug="copy") for r in records if r["slug"] == site.slug]
    import_document(session, {"meta": {"format": FORMAT, "version": VERSION}, "sites": [exported]})
    copy = session.scalars(select(Site).where(Site.slug == "copy")).one()
    assert site_settings(copy) == site_settings(site)
    assert site_settings(copy)["spam_threshold"] == 0.95
