"""Moving a whole installation: a versioned JSON export of sites, posts, comments, moderators
(without password hashes) and the audit log, and its import.

Records refer to each other by public keys (site slug, post key, comment id, moderator login), so
an export loads into any database. Import is idempotent: what exists already is skipped.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from moderation import duplicates, i18n, learning
from moderation.errors import ValidationFailed
from moderation.events import rfc3339
from moderation.models import (
    AuditEvent,
    Ban,
    BanKind,
    Comment,
    CommentStatus,
    MailPreference,
    Moderator,
    Post,
    Report,
    ReportReason,
    Role,
    Site,
    SpamToken,
)
from moderation.sites import settings_from_export, site_settings

FORMAT = "moderation-export"
VERSION = 1
# Imported moderators cannot log in until an admin sets a password: no hash is ever exported.
NO_PASSWORD = "!imported"  # noqa: S105 (not a hash: no password verifies against it)
BATCH = 500
# What an imported report's client network becomes (exports carry no client data).
IMPORTED_NETWORK = "imported:"


def _time(value: dt.datetime | None) -> str | None:
    return rfc3339(value) if value else None


def _parse_time(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def export_records(session: Session, *, now: dt.datetime) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every record as (section, record), streamed in batches so memory stays bounded."""
    slugs = {site.id: site.slug for site in session.scalars(select(Site))}
    logins = {m.id: m.login for m in session.scalars(select(Moderator))}
    yield "meta", {"format": FORMAT, "version": VERSION, "exported_at": rfc3339(now)}
    for site in session.scalars(select(Site).order_by(Site.id)):
        yield (
            "sites",
            {"slug": site.slug, **site_settings(site), "created_at": _time(site.created_at)},
        )
    for moderator in session.scalars(select(Moderator).order_by(Moderator.id)):
        yield (
            "moderators",
            {
                "login": moderator.login,
                "email": moderator.email,
                "role": moderator.role.value,
                "sites": sorted(site.slug for site in moderator.sites),
                "mail_preference": moderator.mail_preference.value,
                "created_at": _time(moderator.created_at),
                "disabled_at": _time(moderator.disabled_at),
            },
        )
    posts = select(Post).order_by(Post.id).execution_options(yield_per=BATCH)
    for post in session.scalars(posts):
        yield (
            "posts",
            {
                "site": slugs[post.site_id],
                "key": post.key,
                "title": post.title,
                "url": post.url,
                "closed": post.closed,
                "created_at": _time(post.created_at),
                "opens_at": _time(post.opens_at),
                "closes_at": _time(post.closes_at),
                "published_at": _time(post.published_at),
            },
        )
    public_ids = dict(session.execute(select(Comment.id, Comment.public_id)).all())
    comments = select(Comment).order_by(Comment.id).execution_options(yield_per=BATCH)
    for c in session.scalars(comments):
        yield (
            "comments",
            {
                "id": c.public_id,
                "site": slugs[c.post.site_id],
                "post": c.post.key,
                "parent_id": public_ids.get(c.parent_id) if c.parent_id else None,
                "author_name": c.author_name,
                "author_email": c.author_email,
                "body_text": c.body_text,
                "body_html": c.body_html,
                "original_text": c.original_text,
                "status": c.status.value,
                "signals": c.signals,
                "official": c.official,
                "reject_reason": c.reject_reason,
                "notify_decision": c.notify_decision,
                "notify_replies": c.notify_replies,
                "submitted_at": _time(c.submitted_at),
                "moderated_at": _time(c.moderated_at),
                "moderated_by": logins.get(c.moderated_by_id) if c.moderated_by_id else None,
                "import_ref": c.import_ref,
                "lang": c.lang,
                "verdict": c.verdict,
                "spam_score": c.spam_score,
                "learned": c.learned,
                "learned_tokens": c.learned_tokens,
                "pinned_at": _time(c.pinned_at),
            },
        )
    tokens = select(SpamToken).order_by(SpamToken.scope, SpamToken.token)
    for row in session.scalars(tokens.execution_options(yield_per=BATCH)):
        slug = slugs.get(row.scope) if row.scope != learning.INSTALLATION else None
        if row.scope != learning.INSTALLATION and slug is None:
            continue  # a removed site's leftovers
        yield "spam_model", {"site": slug, "token": row.token, "spam": row.spam, "ham": row.ham}
    for ban in session.scalars(select(Ban).order_by(Ban.id)):
        yield (
            "bans",
            {
                "site": slugs[ban.site_id] if ban.site_id else None,
                "kind": ban.kind.value,
                "value": ban.value,
                "reason": ban.reason,
                "expires_at": _time(ban.expires_at),
                "created_by": logins.get(ban.created_by_id) if ban.created_by_id else None,
                "created_at": _time(ban.created_at),
            },
        )
    # Readers' reports, without their networks: client data, which no export carries (an
    # imported report counts as from a network of its own).
    for report in session.scalars(select(Report).order_by(Report.id)):
        yield (
            "reports",
            {
                "comment_id": public_ids[report.comment_id],
                "reason": report.reason.value,
                "detail": report.detail,
                "created_at": _time(report.created_at),
                "dismissed_at": _time(report.dismissed_at),
                "dismissed_by": logins.get(report.dismissed_by_id)
                if report.dismissed_by_id
                else None,
            },
        )
    audits = select(AuditEvent).order_by(AuditEvent.id).execution_options(yield_per=BATCH)
    for audit in session.scalars(audits):
        yield (
            "audit_events",
            {
                "at": _time(audit.at),
                "actor": audit.actor,
                "moderator": logins.get(audit.moderator_id) if audit.moderator_id else None,
                "action": audit.action,
                "site": slugs.get(audit.site_id) if audit.site_id else None,
                "comment_id": public_ids.get(audit.comment_id) if audit.comment_id else None,
                "before": audit.before,
                "after": audit.after,
                # The comment's names kept by the row, deleted comments' too.
                "comment": audit.comment_public_id,
                "post": audit.post_key,
            },
        )


def import_document(session: Session, document: dict[str, Any]) -> dict[str, int]:
    """Load an export; return how many records of each kind were added (existing ones are kept)."""
    meta = document.get("meta", {})
    if meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise ValidationFailed(fields={"file": f"Not a {FORMAT} version {VERSION} document"})
    added = dict.fromkeys(
        (
            "sites",
            "moderators",
            "posts",
            "comments",
            "audit_events",
            "spam_model",
            "bans",
            "reports",
        ),
        0,
    )
    sites = {site.slug: site for site in session.scalars(select(Site))}
    existing_sites = set(sites)
    model_was_empty = learning.installation_decisions(session) == 0
    for record in document.get("sites", []):
        if record["slug"] in sites:
            continue
        site = Site(
            slug=record["slug"],
            created_at=_parse_time(record["created_at"]),
            **settings_from_export(record),
        )
        session.add(site)
        sites[site.slug] = site
        added["sites"] += 1
    moderators = {m.login: m for m in session.scalars(select(Moderator))}
    for record in document.get("moderators", []):
        if record["login"] in moderators:
            continue
        moderator = Moderator(
            login=record["login"],
            email=record["email"],
            password_hash=NO_PASSWORD,
            role=Role(record["role"]),
            sites=[sites[slug] for slug in record["sites"]],
            mail_preference=MailPreference(record.get("mail_preference", "each")),
            created_at=_parse_time(record["created_at"]),
            disabled_at=_parse_time(record.get("disabled_at")),
        )
        session.add(moderator)
        moderators[moderator.login] = moderator
        added["moderators"] += 1
    session.flush()
    posts = {(p.site.slug, p.key): p for p in session.scalars(select(Post))}
    for record in document.get("posts", []):
        if (record["site"], record["key"]) in posts:
            continue
        post = Post(
            site=sites[record["site"]],
            key=record["key"],
            title=record["title"],
            url=record["url"],
            closed=record["closed"],
            created_at=_parse_time(record["created_at"]),
            opens_at=_parse_time(record.get("opens_at")),
            closes_at=_parse_time(record.get("closes_at")),
            published_at=_parse_time(record.get("published_at")),
        )
        session.add(post)
        posts[(record["site"], record["key"])] = post
        added["posts"] += 1
    session.flush()
    comments = dict(session.execute(select(Comment.public_id, Comment.id)).all())
    new_comments: set[str] = set()
    for record in document.get("comments", []):
        if record["id"] in comments:
            continue
        moderated_by = moderators.get(record["moderated_by"]) if record["moderated_by"] else None
        comment = Comment(
            public_id=record["id"],
            post=posts[(record["site"], record["post"])],
            parent_id=comments.get(record["parent_id"]) if record["parent_id"] else None,
            author_name=record["author_name"],
            author_email=record["author_email"],
            body_text=record["body_text"],
            body_html=record["body_html"],
            original_text=record["original_text"],
            status=CommentStatus(record["status"]),
            signals=record["signals"],
            official=record["official"],
            reject_reason=record["reject_reason"],
            notify_decision=record.get("notify_decision", False),
            notify_replies=record.get("notify_replies", False),
            submitted_at=_parse_time(record["submitted_at"]),
            moderated_at=_parse_time(record["moderated_at"]),
            moderated_by=moderated_by,
            import_ref=record.get("import_ref"),
            lang=i18n.language(record.get("lang")),
            verdict=record.get("verdict"),
            spam_score=record.get("spam_score"),
            learned=record.get("learned"),
            learned_tokens=record.get("learned_tokens"),
            pinned_at=_parse_time(record.get("pinned_at")),
        )
        session.add(comment)
        duplicates.record(session, comment)  # flushes: the comment has its id
        if comment.learned and record["site"] in existing_sites:
            # A site that was here already has its own model: add what this decision taught.
            learning.apply_lesson(session, comment)
        comments[record["id"]] = comment.id
        new_comments.add(record["id"])
        added["comments"] += 1
    _import_bans(session, document.get("bans", []), sites, moderators, added)
    # Reports come with the comments they are about, never twice.
    for n, record in enumerate(document.get("reports", [])):
        if record["comment_id"] not in new_comments:
            continue
        dismissed_by = moderators.get(record["dismissed_by"]) if record["dismissed_by"] else None
        session.add(
            Report(
                comment_id=comments[record["comment_id"]],
                reason=ReportReason(record["reason"]),
                detail=record["detail"],
                network=f"{IMPORTED_NETWORK}{n}",  # unique: its comment is new here
                created_at=_parse_time(record["created_at"]),
                dismissed_at=_parse_time(record["dismissed_at"]),
                dismissed_by_id=dismissed_by.id if dismissed_by else None,
            )
        )
        added["reports"] += 1
    # Audit events come along with the comments they describe (or with none), never twice.
    fresh_import = not any(session.scalars(select(AuditEvent.id).limit(1)))
    for record in document.get("audit_events", []):
        if record["comment_id"] not in new_comments and not (
            fresh_import and not record["comment_id"]
        ):
            continue
        actor = moderators.get(record["moderator"]) if record["moderator"] else None
        session.add(
            AuditEvent(
                at=_parse_time(record["at"]),
                actor=record["actor"],
                moderator_id=actor.id if actor else None,
                action=record["action"],
                site_id=sites[record["site"]].id if record["site"] else None,
                comment_id=comments.get(record["comment_id"]) if record["comment_id"] else None,
                before=record["before"],
                after=record["after"],
                comment_public_id=record.get("comment") or record["comment_id"],
                post_key=record.get("post"),
            )
        )
        added["audit_events"] += 1
    # The model of each site this import created comes whole (it remembers decisions on comments
    # since purged); the installation's when this one had learned nothing yet.
    rows = [
        {
            "scope": sites[r["site"]].id if r["site"] else learning.INSTALLATION,
            "token": r["token"],
            "spam": r["spam"],
            "ham": r["ham"],
        }
        for r in document.get("spam_model", [])
        if (r["site"] and r["site"] not in existing_sites) or (not r["site"] and model_was_empty)
    ]
    learning.add_counts(session, rows)
    added["spam_model"] = len(rows)
    return added


def _import_bans(
    session: Session,
    records: list[dict[str, Any]],
    sites: dict[str, Site],
    moderators: dict[str, Moderator],
    added: dict[str, int],
) -> None:
    """Bans, each once: one with the same place, kind, value and time is there already."""
    # Exports keep times to the second.
    have: set[tuple[int | None, str, str, dt.datetime | None]] = {
        (b.site_id, b.kind.value, b.value, b.created_at.replace(microsecond=0))
        for b in session.scalars(select(Ban))
    }
    for record in records:
        site = sites[record["site"]] if record["site"] else None
        created_at = _parse_time(record["created_at"])
        key = (site.id if site else None, record["kind"], record["value"], created_at)
        if key in have:
            continue
        creator = moderators.get(record["created_by"]) if record["created_by"] else None
        session.add(
            Ban(
                site=site,
                kind=BanKind(record["kind"]),
                value=record["value"],
                reason=record["reason"],
                expires_at=_parse_time(record["expires_at"]),
                created_by_id=creator.id if creator else None,
                created_at=created_at,
            )
        )
        have.add(key)
        added["bans"] += 1
