"""Bans: an email address, a mail domain or a client network barred from one site, or from every
site, until an expiry or for good (docs/after-publication.md, "Bans").

A banned submission is filed as spam by the spam pipeline's ban check (``spam.BanCheck``, one
indexed lookup per submission); this module makes, lists and lifts bans, rejects a banned
author's recent comments on request, and answers for bans in exports and erasure.

Who may ban where: admins oversee every site, so an admin's ban without a site bars every site
(those added later too); a moderator bans on the sites they moderate, one site at a time, and
sees the bans that act on their sites (theirs and the admins' every-site bans).

What a ban holds: an email ban holds an address (personal data), stored as its ``address_key``.
It is in the person's export, erasing the address lifts it, and the audit log never holds the
address (the ban's id and kind only); domain and network bans name no person and are audited in
full.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import ipaddress
from collections.abc import Mapping, Sequence
from typing import Any

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import delete, func, or_, select
from sqlalchemy.orm import Session

from moderation import actions
from moderation.comments import client_network, decode_cursor, encode_cursor
from moderation.db import become_writer
from moderation.errors import Forbidden, NotFound, ValidationFailed
from moderation.events import Actor, AuditAction, record_admin_audit, rfc3339
from moderation.models import (
    Ban,
    BanKind,
    Comment,
    CommentStatus,
    Moderator,
    Post,
    Site,
    address_key,
)
from moderation.spam import BAN_NETWORK_PREFIXES, ascii_domain

MAX_REASON = 500
MAX_REMOVE_DAYS = 90
# The durations the moderators' pages offer; the API takes any future expires_at.
DURATIONS: dict[str, dt.timedelta | None] = {
    "day": dt.timedelta(days=1),
    "week": dt.timedelta(days=7),
    "month": dt.timedelta(days=30),
    "forever": None,
}
FIELDS = ("site", "email", "domain", "network", "reason", "expires_at", "remove_recent_days")
KINDS = tuple(kind.value for kind in BanKind)
# Longest text read from each field before it is parsed: a hostile value costs nothing more.
_LONGEST = {"site": 64, "email": 320, "domain": 260, "network": 64, "expires_at": 40}
MESSAGES = {
    "email": "Enter an email address in the correct format, like name@example.com",
    "domain": "Enter a domain, like example.com",
    "network": (
        "Enter a network like 203.0.113.0/24 (/8 to /24; for IPv6 /16 to /48), or one address "
        "to ban the /24 or /48 that holds it"
    ),
    "kind": "Give one of email, domain or network",
    "reason": f"Give a reason of up to {MAX_REASON} characters",
    "expires_at": "Give a future time like 2027-01-31T12:00:00Z, or null for a ban without end",
    "remove_recent_days": f"Give a number of days from 1 to {MAX_REMOVE_DAYS}, or leave it out",
    "site": "Choose one of your sites",
    "site_required": "Choose one of your sites: only admins ban on every site",
    "duplicate": "That is banned already, in the same place",
}
DEFAULT_PAGE = 50
MAX_PAGE = 200
# PostgreSQL advisory lock (this number, a hash of what is banned where) held while a ban is
# checked for a twin and made.
BAN_LOCK = 0x62616E


def normalise_email(raw: str) -> str:
    """An address as submissions are matched: email-validator's form, casefolded."""
    return address_key(validate_email(raw.strip(), check_deliverability=False).normalized)


def normalise_domain(raw: str) -> str:
    """A mail domain in lower-case ASCII (IDNA), as email-validator reads an address's domain."""
    text = raw.strip().removeprefix("@").rstrip(".")
    if not text or "@" in text:
        raise ValueError("not a domain")
    domain = validate_email(f"x@{text}", check_deliverability=False).ascii_domain.lower()
    if "." not in domain:
        raise ValueError("not a domain")
    return domain


def normalise_network(raw: str) -> str:
    """A network in CIDR, no narrower than what a comment keeps (/24, /48); a single address
    stands for the /24 or /48 that holds it, as for comments."""
    text = raw.strip()
    if "/" not in text:
        network = client_network(text)
        if network is None:
            raise ValueError("not an address")
        return network
    net = ipaddress.ip_network(text, strict=False)
    widest, narrowest = BAN_NETWORK_PREFIXES[net.version]
    if not widest <= net.prefixlen <= narrowest:
        raise ValueError("prefix out of range")
    return str(net)


_NORMALISERS = {
    BanKind.EMAIL: normalise_email,
    BanKind.DOMAIN: normalise_domain,
    BanKind.NETWORK: normalise_network,
}


def parse_time(raw: str) -> dt.datetime:
    """An RFC 3339 time with its offset, as aware UTC."""
    moment = dt.datetime.fromisoformat(raw.strip().replace("z", "Z").replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError("no offset")
    return moment.astimezone(dt.UTC)


@dataclasses.dataclass(frozen=True)
class BanRequest:
    """A ban to make, checked and normalised at the boundary."""

    kind: BanKind
    value: str
    site: str | None
    reason: str
    expires_at: dt.datetime | None = None
    remove_recent_days: int | None = None

    @classmethod
    def parse(cls, data: Mapping[str, object], *, now: dt.datetime) -> BanRequest:
        """Check every field; one ValidationFailed names every field that is wrong (and never
        repeats what was sent)."""
        errors: dict[str, str] = {}
        if set(data) - set(FIELDS):
            errors["ban"] = "A ban has only these fields: " + ", ".join(FIELDS)
        given = [kind for kind in BanKind if data.get(kind.value) not in (None, "")]
        kind, value = BanKind.EMAIL, ""
        if len(given) != 1:
            errors["email"] = MESSAGES["kind"]
        else:
            kind = given[0]
            raw = data.get(kind.value)
            try:
                if not isinstance(raw, str) or len(raw) > _LONGEST[kind.value]:
                    raise ValueError("not text, or too long")
                value = _NORMALISERS[kind](raw)
            except (ValueError, EmailNotValidError):
                errors[kind.value] = MESSAGES[kind.value]
        site = data.get("site")
        if site is not None and not (isinstance(site, str) and 0 < len(site) <= _LONGEST["site"]):
            errors["site"] = MESSAGES["site"]
        reason = data.get("reason")
        if not isinstance(reason, str) or not reason.strip() or len(reason) > MAX_REASON:
            errors["reason"] = MESSAGES["reason"]
        expires_at = _expiry(data.get("expires_at"), now, errors)
        days = data.get("remove_recent_days")
        if days is not None and not (
            isinstance(days, int) and not isinstance(days, bool) and 1 <= days <= MAX_REMOVE_DAYS
        ):
            errors["remove_recent_days"] = MESSAGES["remove_recent_days"]
        if errors:
            raise ValidationFailed(fields=errors)
        assert isinstance(reason, str)
        return cls(
            kind=kind,
            value=value,
            site=site if isinstance(site, str) else None,
            reason=reason.strip(),
            expires_at=expires_at,
            remove_recent_days=days if isinstance(days, int) else None,
        )


def _expiry(raw: object, now: dt.datetime, errors: dict[str, str]) -> dt.datetime | None:
    if raw is None:
        return None
    try:
        if not isinstance(raw, str) or len(raw) > _LONGEST["expires_at"]:
            raise ValueError("not text, or too long")
        moment = parse_time(raw)
    except (ValueError, OverflowError):
        errors["expires_at"] = MESSAGES["expires_at"]
        return None
    if moment <= now:
        errors["expires_at"] = MESSAGES["expires_at"]
        return None
    return moment


def expiry_after(duration: str, now: dt.datetime) -> dt.datetime | None:
    """The end of a ban of one of :data:`DURATIONS` ("day", "week", "month", "forever")."""
    if duration not in DURATIONS:
        raise ValidationFailed(fields={"duration": "Choose a day, a week, a month or forever"})
    length = DURATIONS[duration]
    return None if length is None else now + length


# Making, listing and lifting ------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Created:
    ban: Ban
    # The public ids of the comments remove_recent_days rejected.
    removed: tuple[str, ...] = ()


def _site_for(session: Session, moderator: Moderator, slug: str | None) -> Site | None:
    if slug is None:
        if not moderator.is_admin:
            raise ValidationFailed(fields={"site": MESSAGES["site_required"]})
        return None
    site = session.scalar(select(Site).where(Site.slug == slug))
    if site is None or not moderator.may_moderate(site.id):
        raise ValidationFailed(fields={"site": MESSAGES["site"]})
    return site


def audit_record(ban: Ban) -> dict[str, Any]:
    """What the audit log keeps of a ban: never an email address."""
    return {
        "ban": ban.id,
        "kind": ban.kind.value,
        "value": None if ban.kind is BanKind.EMAIL else ban.value,
        "site": ban.site.slug if ban.site else None,
        "reason": ban.reason,
        "expires_at": rfc3339(ban.expires_at) if ban.expires_at else None,
    }


def create_ban(
    session: Session,
    moderator: Moderator,
    request: BanRequest,
    *,
    actor: Actor,
    now: dt.datetime,
) -> Created:
    """Make a ban, audited; with ``remove_recent_days`` also reject the banned author's approved
    comments of those days on the ban's site(s), audited as one bulk action."""
    site = _site_for(session, moderator, request.site)
    _lock_ban(session, request, site)
    same = select(Ban.id).where(
        Ban.value == request.value,
        Ban.kind == request.kind,
        Ban.site_id.is_(None) if site is None else Ban.site_id == site.id,
        or_(Ban.expires_at.is_(None), Ban.expires_at > now),
    )
    if session.scalar(same.limit(1)) is not None:
        raise ValidationFailed(fields={request.kind.value: MESSAGES["duplicate"]})
    ban = Ban(
        site=site,
        kind=request.kind,
        value=request.value,
        reason=request.reason,
        expires_at=request.expires_at,
        created_by_id=moderator.id,
        created_at=now,
    )
    session.add(ban)
    session.flush()
    record_admin_audit(
        session,
        actor,
        AuditAction.BAN_ADD,
        site_id=ban.site_id,
        before={},
        after=audit_record(ban),
        now=now,
    )
    removed: tuple[str, ...] = ()
    if request.remove_recent_days:
        removed = remove_recent(session, ban, request.remove_recent_days, actor=actor, now=now)
    return Created(ban, removed)


def _lock_ban(session: Session, request: BanRequest, site: Site | None) -> None:
    """Serialise the making of one ban, so that of two moderators banning the same at once the
    second finds the first's: a twin would outlive its lifting. SQLite's write lock serialises
    every writer; PostgreSQL takes an advisory lock on what is banned where."""
    become_writer(session)
    if session.connection().dialect.name != "postgresql":
        return
    what = f"{request.kind.value}|{request.value}|{site.id if site else ''}".encode()
    key = int.from_bytes(hashlib.blake2b(what, digest_size=4).digest(), "big", signed=True)
    session.execute(select(func.pg_advisory_xact_lock(BAN_LOCK, key)))


def ban_comment_author(
    session: Session,
    moderator: Moderator,
    public_id: str,
    *,
    target: str,
    duration: str,
    reason: str,
    every_site: bool = False,
    remove_recent_days: object = None,
    actor: Actor,
    now: dt.datetime,
) -> Created:
    """ "Ban this address" on a comment's page: its author's address, the address's domain or
    the network it was sent from, on the comment's site (or, by an admin, on every site), for
    one of :data:`DURATIONS`."""
    comment = actions.get_comment_for(session, moderator, public_id)
    if target not in KINDS:
        raise ValidationFailed(fields={"target": "Choose the address, its domain or its network"})
    values = {
        BanKind.EMAIL.value: comment.author_email,
        BanKind.DOMAIN.value: ascii_domain(comment.author_email) if comment.author_email else "",
        BanKind.NETWORK.value: comment.client_network or "",
    }
    if not values[target]:
        gone = "Its network is no longer kept" if target == "network" else "Its address was erased"
        raise ValidationFailed(fields={"target": f"{gone}: it cannot be banned from here"})
    data: dict[str, object] = {
        target: values[target],
        "reason": reason,
        "site": None if every_site else comment.post.site.slug,
        "remove_recent_days": remove_recent_days,
    }
    wanted = BanRequest.parse(data, now=now)
    wanted = dataclasses.replace(wanted, expires_at=expiry_after(duration, now))
    return create_ban(session, moderator, wanted, actor=actor, now=now)


def _visible(moderator: Moderator) -> Any:
    if moderator.is_admin:
        return True
    return or_(Ban.site_id.is_(None), Ban.site_id.in_([s.id for s in moderator.sites]))


@dataclasses.dataclass(frozen=True)
class Page:
    bans: Sequence[Ban]
    next_cursor: str | None


def list_bans(
    session: Session,
    moderator: Moderator,
    *,
    now: dt.datetime,
    site: str | None = None,
    include_expired: bool = False,
    cursor: str | None = None,
    limit: int = DEFAULT_PAGE,
) -> Page:
    """The bans the moderator may see, newest first: in force only, unless ``include_expired``.
    ``site`` narrows to the bans acting on that site (its own and every-site bans)."""
    query = select(Ban).where(_visible(moderator))
    if site is not None:
        found = session.scalar(select(Site.id).where(Site.slug == site))
        if found is None or not moderator.may_moderate(found):
            raise NotFound("There is no site with that name.")
        query = query.where(or_(Ban.site_id.is_(None), Ban.site_id == found))
    if not include_expired:
        query = query.where(or_(Ban.expires_at.is_(None), Ban.expires_at > now))
    before = decode_cursor(cursor)
    if before is not None:
        query = query.where(Ban.id < before)
    rows = session.scalars(query.order_by(Ban.id.desc()).limit(limit + 1)).all()
    shown = rows[:limit]
    more = len(rows) > limit and shown
    return Page(shown, encode_cursor(shown[-1].id) if more else None)


def get_ban_for(session: Session, moderator: Moderator, ban_id: int) -> Ban:
    """A ban the moderator may see; another site's is "not found"."""
    ban = session.get(Ban, ban_id) if 0 < ban_id < 2**63 else None
    if ban is None or (ban.site_id is not None and not moderator.may_moderate(ban.site_id)):
        raise NotFound("There is no ban with that id.")
    return ban


def lift_ban(
    session: Session, moderator: Moderator, ban_id: int, *, actor: Actor, now: dt.datetime
) -> Ban:
    """Lift a ban at once, audited. Every-site bans are lifted by admins only."""
    ban = get_ban_for(session, moderator, ban_id)
    if ban.site_id is None and not moderator.is_admin:
        raise Forbidden("Only admins lift a ban on every site.")
    record, site_id = audit_record(ban), ban.site_id
    # A conditional delete: of two moderators lifting it at once, the second finds nothing.
    gone = session.execute(
        delete(Ban).where(Ban.id == ban.id).execution_options(synchronize_session=False)
    )
    if gone.rowcount != 1:  # type: ignore[attr-defined]
        raise NotFound("There is no ban with that id.")
    session.expunge(ban)
    record_admin_audit(
        session,
        actor,
        AuditAction.BAN_LIFT,
        site_id=site_id,
        before=record,
        after={"lifted": True},
        now=now,
    )
    return ban


# Removing a banned author's recent comments ---------------------------------------------------


def _contained(network: str | None, ban: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
    try:
        return network is not None and ipaddress.ip_network(network).subnet_of(ban)  # type: ignore[arg-type]
    except (ValueError, TypeError):
        return False


def _network_prefilter(ban: ipaddress.IPv4Network | ipaddress.IPv6Network) -> str:
    """A LIKE pattern every comment network inside ``ban`` matches: the first octet or the first
    group, which every ban covers whole (bans are /8 or narrower, /16 for IPv6)."""
    if ban.version == 4:
        return f"{str(ban.network_address).split('.')[0]}.%"
    first = int(ban.network_address) >> 112
    return f"{first:x}:%" if first else "::%"


def authors_comments(session: Session, ban: Ban, *, since: dt.datetime) -> list[Comment]:
    """The banned author's approved comments submitted since ``since`` on the ban's site(s):
    the address (email ban), any address at the domain or its subdomains (domain ban), or the
    comments sent from inside the network (network ban, while comments keep their network)."""
    query = (
        select(Comment)
        .join(Post, Comment.post_id == Post.id)
        .where(
            Comment.status == CommentStatus.APPROVED,
            Comment.submitted_at >= since,
            Comment.official.is_(False),
        )
        .order_by(Comment.id)
    )
    if ban.site_id is not None:
        query = query.where(Post.site_id == ban.site_id)
    if ban.kind is BanKind.EMAIL:
        return list(session.scalars(query.where(Comment.email_key == ban.value)))
    if ban.kind is BanKind.DOMAIN:
        # Comments keep the domain as email-validator gave it: Unicode where it was typed so.
        forms = {ban.value, _unicode_domain(ban.value)}
        patterns = [f"%{sep}{_like_escaped(d)}" for d in forms for sep in ("@", ".")]
        matches = or_(*(Comment.email_key.like(p, escape="\\") for p in patterns))
        found = session.scalars(query.where(matches))
        return [c for c in found if _at_domain(c.email_key, forms)]
    network = ipaddress.ip_network(ban.value)
    near = query.where(Comment.client_network.like(_network_prefilter(network)))
    return [c for c in session.scalars(near) if _contained(c.client_network, network)]


def _unicode_domain(domain: str) -> str:
    try:
        return domain.encode("ascii").decode("idna").casefold()
    except UnicodeError:
        return domain


def _like_escaped(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _at_domain(key: str, domains: set[str]) -> bool:
    domain = key.rpartition("@")[2]
    return any(domain == d or domain.endswith("." + d) for d in domains)


def remove_recent(
    session: Session, ban: Ban, days: int, *, actor: Actor, now: dt.datetime
) -> tuple[str, ...]:
    """Reject the banned author's approved comments of the last ``days`` days: each leaves its
    public thread at once (its ETag changes) and records ``comment.rejected``; the whole is one
    audit event. Returns the rejected comments' public ids."""
    found = authors_comments(session, ban, since=now - dt.timedelta(days=days))
    rejected = actions.reject_published(session, found, actor=actor, now=now)
    ids = tuple(c.public_id for c in rejected)
    record_admin_audit(
        session,
        actor,
        AuditAction.BAN_REMOVE_RECENT,
        site_id=ban.site_id,
        before={"status": "approved"},
        after={
            "status": "rejected",
            "ban": ban.id,
            "days": days,
            "count": len(ids),
            "comments": list(ids),
        },
        now=now,
    )
    return ids


# Personal data --------------------------------------------------------------------------------


def ban_json(ban: Ban, *, now: dt.datetime) -> dict[str, Any]:
    """A ban as moderators see it (and as its subject's export lists it)."""
    return {
        "id": ban.id,
        "site": ban.site.slug if ban.site else None,
        "email": ban.value if ban.kind is BanKind.EMAIL else None,
        "domain": ban.value if ban.kind is BanKind.DOMAIN else None,
        "network": ban.value if ban.kind is BanKind.NETWORK else None,
        "reason": ban.reason,
        "expires_at": rfc3339(ban.expires_at) if ban.expires_at else None,
        "active": ban.active(now),
        "created_by": ban.created_by.login if ban.created_by else None,
        "created_at": rfc3339(ban.created_at),
    }


def bans_of_address(session: Session, address: str) -> list[Ban]:
    """The email bans of a (normalised) address, in force or not."""
    query = select(Ban).where(Ban.kind == BanKind.EMAIL, Ban.value == address_key(address))
    return list(session.scalars(query.order_by(Ban.id)))


def erase_bans_of(session: Session, address: str, *, actor: Actor, now: dt.datetime) -> int:
    """Erasure lifts the address's email bans: a ban would keep the address it was asked to
    forget (a keyed hash of it would still single the person out). Each lift is audited, without
    the address. Domain and network bans name no one and stay."""
    found = bans_of_address(session, address)
    for ban in found:
        record_admin_audit(
            session,
            actor,
            AuditAction.BAN_LIFT,
            site_id=ban.site_id,
            before={"ban": ban.id, "kind": ban.kind.value},
            after={"lifted": "erased"},
            now=now,
        )
    if found:
        session.execute(delete(Ban).where(Ban.id.in_([b.id for b in found])))
    return len(found)
