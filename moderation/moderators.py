"""Moderators, their passwords, login sessions and API tokens."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import secrets
from collections.abc import Callable, Container

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from email_validator import EmailNotValidError, validate_email
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from moderation.comments import MAX_ID
from moderation.db import become_writer, write_transaction
from moderation.errors import (
    Forbidden,
    InvalidCredentials,
    NotFound,
    RateLimited,
    Unauthorized,
    ValidationFailed,
)
from moderation.events import Actor, AuditAction, record_admin_audit
from moderation.models import (
    ApiToken,
    LoginAttempt,
    LoginSession,
    MailPreference,
    Moderator,
    Role,
    Site,
    utcnow,
)

LOGIN_WINDOW = dt.timedelta(minutes=15)
MAX_FAILURES_PER_ACCOUNT = 5
MAX_FAILURES_PER_NETWORK = 20
MIN_PASSWORD = 8
MAX_PASSWORD = 1024
TOKEN_PREFIX = "mod_"  # noqa: S105 (a label, not a secret)


def password_hasher(*, fast: bool = False) -> PasswordHasher:
    """argon2id at argon2-cffi's defaults (RFC 9106 low-memory: 64 MiB, t=3, p=4).

    ``fast`` is the cheapest setting, for test suites only.
    """
    if fast:
        return PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    return PasswordHasher()


def _common_passwords() -> Container[str]:
    from zxcvbn.matching import RANKED_DICTIONARIES

    passwords: Container[str] = RANKED_DICTIONARIES["passwords"]
    return passwords


def check_password_rules(password: str) -> None:
    """OWASP ASVS 5: at least 8 characters, long ones allowed, no composition rules, and none of
    the most common passwords."""
    if len(password) < MIN_PASSWORD:
        raise ValidationFailed(
            fields={"password": f"Use a password of at least {MIN_PASSWORD} characters"}
        )
    if len(password) > MAX_PASSWORD:
        raise ValidationFailed(
            fields={"password": f"Use a password of at most {MAX_PASSWORD} characters"}
        )
    if password.lower() in _common_passwords():
        raise ValidationFailed(
            fields={"password": "That password is one of the most common ones; choose another"}
        )


def log_in(
    session_factory: Callable[[], Session],
    hasher: PasswordHasher,
    login: str,
    password: str,
    network: str | None,
    *,
    now: dt.datetime,
) -> int:
    """The id of the moderator with this login and password; raise :class:`RateLimited` when the
    account or the client's network has tried too often recently, :class:`InvalidCredentials`
    for every other failure. Three short transactions, none open while a password is hashed:

    1. the attempt is recorded and committed before anything is checked, so concurrent attempts
       count each other (each sees at least every attempt committed before its own);
    2. the attempts are counted and the stored hash read, in a read transaction ended at once;
    3. after hashing, a success clears the account's attempts (and stores a rehashed password).
    """
    login = login[:64]
    with write_transaction(session_factory) as session:
        session.add(LoginAttempt(at=now, login=login, network=network))
    with session_factory() as session:
        since = now - LOGIN_WINDOW
        recent = select(func.count()).select_from(LoginAttempt).where(LoginAttempt.at >= since)
        per_account = session.scalar(recent.where(LoginAttempt.login == login)) or 0
        per_network = (
            session.scalar(recent.where(LoginAttempt.network == network)) if network else 0
        )
        found = session.execute(
            select(Moderator.id, Moderator.password_hash).where(Moderator.login == login)
        ).first()
    if per_account > MAX_FAILURES_PER_ACCOUNT or (per_network or 0) > MAX_FAILURES_PER_NETWORK:
        raise RateLimited(
            "Too many failed attempts to log in. Wait 15 minutes and try again.",
            retry_after=int(LOGIN_WINDOW.total_seconds()),
        )
    if found is None:
        _verify_nothing(hasher, password)
        raise InvalidCredentials()
    moderator_id, stored = found
    try:
        hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        raise InvalidCredentials() from None
    rehashed = hasher.hash(password) if hasher.check_needs_rehash(stored) else None
    with write_transaction(session_factory) as session:
        session.execute(delete(LoginAttempt).where(LoginAttempt.login == login))
        if rehashed is not None:
            session.execute(
                update(Moderator).where(Moderator.id == moderator_id).values(password_hash=rehashed)
            )
    return int(moderator_id)


def _verify_nothing(hasher: PasswordHasher, password: str) -> None:
    """As long as a real check, so an unknown login takes no less time than a known one."""
    key = id(hasher)
    if key not in _DUMMY_HASHES:
        _DUMMY_HASHES[key] = hasher.hash(secrets.token_urlsafe(16))
    with contextlib.suppress(VerificationError):
        hasher.verify(_DUMMY_HASHES[key], password)


def create_moderator(
    session: Session,
    hasher: PasswordHasher,
    *,
    login: str,
    email: str,
    password: str,
    role: Role,
    site_slugs: tuple[str, ...] = (),
    actor: Actor | None = None,
    now: dt.datetime | None = None,
) -> Moderator:
    """Add a moderator; with an ``actor`` (every UI, API and CLI path gives one) it is audited."""
    errors: dict[str, str] = {}
    if not login or len(login) > 64 or not login.replace("-", "").replace("_", "").isalnum():
        errors["login"] = "Use up to 64 letters, digits, hyphens or underscores"
    elif session.scalar(select(Moderator).where(Moderator.login == login)):
        errors["login"] = "That login name is taken"
    try:
        email = validate_email(email, check_deliverability=False).normalized
    except EmailNotValidError:
        errors["email"] = "Enter an email address in the correct format, like name@example.com"
    sites = list(session.scalars(select(Site).where(Site.slug.in_(site_slugs))))
    missing = set(site_slugs) - {site.slug for site in sites}
    if missing:
        errors["sites"] = "No such site: " + ", ".join(sorted(missing))
    if errors:
        raise ValidationFailed(fields=errors)
    check_password_rules(password)
    moderator = Moderator(
        login=login, email=email, password_hash=hasher.hash(password), role=role, sites=sites
    )
    session.add(moderator)
    session.flush()
    if actor is not None:
        record_admin_audit(
            session,
            actor,
            AuditAction.MODERATOR_ADD,
            site_id=None,
            before={},
            after={"login": login, **moderator_settings(moderator)},
            now=now or utcnow(),
        )
    return moderator


# Verified against when the login name is unknown, so both paths cost the same.
_DUMMY_HASHES: dict[int, str] = {}


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start_login_session(session: Session, moderator: Moderator, *, now: dt.datetime) -> str:
    """Record a new login; the returned token goes in the browser's session cookie."""
    token = secrets.token_urlsafe(32)
    session.add(LoginSession(token_hash=_digest(token), moderator=moderator, created_at=now))
    return token


def resolve_login_session(
    session: Session, token: str, *, now: dt.datetime, max_age: dt.timedelta
) -> Moderator | None:
    """The moderator logged in by ``token``, or None if it was ended or is too old."""
    login = session.scalar(select(LoginSession).where(LoginSession.token_hash == _digest(token)))
    if login is None or now - login.created_at > max_age:
        return None
    return login.moderator


def end_login_session(session: Session, token: str) -> None:
    session.execute(delete(LoginSession).where(LoginSession.token_hash == _digest(token)))


def get_moderator(session: Session, login: str) -> Moderator:
    moderator = session.scalar(select(Moderator).where(Moderator.login == login))
    if moderator is None:
        raise NotFound("There is no moderator with that login name.")
    return moderator


def create_api_token(
    session: Session,
    moderator: Moderator,
    name: str,
    *,
    now: dt.datetime,
    actor: Actor | None = None,
) -> tuple[ApiToken, str]:
    """A new bearer token for ``moderator``; the plain token is returned once, stored hashed.

    With an ``actor`` (every UI, API and CLI path gives one) the creation is audited.
    """
    if not name or len(name) > 100:
        raise ValidationFailed(fields={"name": "Give the token a name of up to 100 characters"})
    plain = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(
        moderator=moderator,
        name=name,
        token_hash=_digest(plain),
        prefix=plain[: len(TOKEN_PREFIX) + 6],
        created_at=now,
    )
    session.add(token)
    session.flush()
    if actor is not None:
        record_admin_audit(
            session,
            actor,
            AuditAction.TOKEN_ADD,
            site_id=None,
            before={},
            after={"token": name, "moderator": moderator.login, "prefix": token.prefix},
            now=now,
        )
    return token, plain


# A token's last use is recorded to the minute, so that an integration reading through the API
# writes (and, on SQLite, waits for the lock every writer shares) at most once a minute.
TOKEN_USE_RESOLUTION = dt.timedelta(minutes=1)


def authenticate_token(session: Session, plain: str, *, now: dt.datetime) -> ApiToken:
    """The live token ``plain`` is, its use recorded to the minute
    (:data:`TOKEN_USE_RESOLUTION`)."""
    token = session.scalar(select(ApiToken).where(ApiToken.token_hash == _digest(plain)))
    if token is None or token.revoked_at is not None:
        raise Unauthorized("The API token is not valid.")
    if token.last_used_at is None or now - token.last_used_at >= TOKEN_USE_RESOLUTION:
        become_writer(session)
        token.last_used_at = now
    return token


def set_password(
    session: Session,
    hasher: PasswordHasher,
    moderator: Moderator,
    password: str,
    *,
    actor: Actor,
    now: dt.datetime,
) -> None:
    """Give a moderator a new password and end their logins everywhere; audited."""
    check_password_rules(password)
    moderator.password_hash = hasher.hash(password)
    session.execute(delete(LoginSession).where(LoginSession.moderator_id == moderator.id))
    record_admin_audit(
        session,
        actor,
        AuditAction.MODERATOR_PASSWORD,
        site_id=None,
        before={"login": moderator.login},
        after={"login": moderator.login, "password": "changed"},
        now=now,
    )


def moderator_settings(moderator: Moderator) -> dict[str, object]:
    return {
        "role": moderator.role.value,
        "sites": sorted(s.slug for s in moderator.sites),
        "mail_preference": moderator.mail_preference.value,
    }


def set_mail_preference(
    session: Session, moderator: Moderator, value: object, *, actor: Actor, now: dt.datetime
) -> Moderator:
    """How the moderator hears of held comments: each by mail, a digest, or not at all."""
    choices = {p.value for p in MailPreference}
    if not isinstance(value, str) or value not in choices:
        raise ValidationFailed(fields={"mail_preference": "Choose each, digest or off"})
    before = moderator.mail_preference.value
    moderator.mail_preference = MailPreference(value)
    if value != before:
        record_admin_audit(
            session,
            actor,
            AuditAction.MODERATOR_MAIL_PREFERENCE,
            site_id=None,
            before={"login": moderator.login, "mail_preference": before},
            after={"login": moderator.login, "mail_preference": value},
            now=now,
        )
    return moderator


def update_moderator(
    session: Session,
    moderator: Moderator,
    *,
    role: str,
    site_slugs: tuple[str, ...],
    actor: Actor,
    now: dt.datetime,
) -> Moderator:
    """Change a moderator's role and sites, audited. An admin cannot demote themselves."""
    if role not in {r.value for r in Role}:
        raise ValidationFailed(fields={"role": "Choose admin or moderator"})
    if moderator.id == actor.moderator_id and role != Role.ADMIN:
        raise ValidationFailed(fields={"role": "You cannot remove your own admin role"})
    sites = list(session.scalars(select(Site).where(Site.slug.in_(site_slugs))))
    if len(sites) != len(set(site_slugs)):
        raise ValidationFailed(fields={"sites": "Choose sites that exist"})
    before = moderator_settings(moderator)
    moderator.role = Role(role)
    moderator.sites = sites
    after = moderator_settings(moderator)
    if after != before:
        record_admin_audit(
            session,
            actor,
            AuditAction.MODERATOR_UPDATE,
            site_id=None,
            before={"login": moderator.login, **before},
            after={"login": moderator.login, **after},
            now=now,
        )
    return moderator


def list_tokens(session: Session) -> list[ApiToken]:
    return list(session.scalars(select(ApiToken).order_by(ApiToken.id)))


def revoke_token(session: Session, token_id: int, *, actor: Actor, now: dt.datetime) -> ApiToken:
    token = session.get(ApiToken, token_id) if 0 < token_id < MAX_ID else None
    if token is None:
        raise NotFound("There is no token with that id.")
    if token.revoked_at is None:
        token.revoked_at = now
        record_admin_audit(
            session,
            actor,
            AuditAction.TOKEN_REVOKE,
            site_id=None,
            before={"token": token.name, "moderator": token.moderator.login},
            after={"revoked_at": now.isoformat()},
            now=now,
        )
    return token


def require_admin(moderator: Moderator, message: str = "Only admins can do that.") -> None:
    """Refuse a moderator who is not an administrator (403)."""
    if not moderator.is_admin:
        raise Forbidden(message)
