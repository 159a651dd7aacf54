"""Single sign-on: who may enter with an identity from the organisation's OpenID provider.

The web layer (moderation/web/sso.py) runs the authorization code flow with Authlib, which checks
the ID token (signature against the provider's JWKS, issuer, audience, expiry, nonce). What it
hands here is the checked identity; nothing else from the provider is trusted. An identity is
the provider's ``sub``: an e-mail address only matches once, to link a first login.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
import logging
import secrets
from collections.abc import Callable, Iterator, Mapping
from typing import Any, cast

import requests
from authlib.integrations.base_client import OAuthError
from cryptography.fernet import Fernet, InvalidToken
from email_validator import EmailNotValidError, validate_email
from sqlalchemy import CursorResult, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from moderation.config import Settings
from moderation.errors import NotFound, SignInRefused, ValidationFailed
from moderation.events import Actor, AuditAction, record_admin_audit
from moderation.models import LoginSession, Moderator, Role, SsoIdentity
from moderation.moderators import is_disabled

logger = logging.getLogger(__name__)

# Who the audit log names for a refused single sign-on (nobody signed in).
SSO_ACTOR = Actor("single sign-on")

# Seconds the workers wait for the provider.
PROVIDER_TIMEOUT = 10

# Never a valid argon2 hash: a moderator created by single sign-on has no password.
NO_PASSWORD = "!sso"  # noqa: S105 (a marker, not a secret)

REFUSALS = {
    "provider_error": "Your organisation's sign-in service did not let you in.",
    "state": "This sign-in link has been used already or has expired. Start again.",
    "bad_token": "The answer from your organisation's sign-in service failed its checks.",
    "expired": "The answer from your organisation's sign-in service has expired. Start again.",
    "unverified": "Your organisation's sign-in service has not verified your e-mail address.",
    "domain": "Your e-mail address is not in a domain that may sign in here.",
    "unknown": "There is no moderator account for you here. Ask an admin to add you.",
    "other_identity": "Your account here is linked to another identity at your organisation.",
    "disabled": "Your moderator account is disabled.",
    "unavailable": "Your organisation's sign-in service cannot be reached. Try again later.",
}


def refused(reason: str) -> SignInRefused:
    return SignInRefused(REFUSALS[reason], reason=reason)


@dataclasses.dataclass(frozen=True)
class ProviderIdentity:
    """What the checked ID token says about the person: only these claims are used."""

    issuer: str
    subject: str
    email: str
    email_verified: bool

    @classmethod
    def from_claims(cls, claims: Mapping[str, Any]) -> ProviderIdentity:
        email = claims.get("email")
        return cls(
            issuer=str(claims["iss"])[:255],
            subject=str(claims["sub"])[:255],
            email=email[:254] if isinstance(email, str) else "",
            email_verified=claims.get("email_verified") is True,
        )

    @property
    def domain(self) -> str:
        return self.email.rpartition("@")[2].lower()


def _normalised(email: str) -> str | None:
    try:
        return validate_email(email, check_deliverability=False).normalized.lower()
    except EmailNotValidError:
        return None


def sign_in(
    session: Session,
    identity: ProviderIdentity,
    *,
    allowed_domains: frozenset[str],
    create_moderators: bool,
    now: dt.datetime,
) -> tuple[Moderator, SsoIdentity]:
    """The moderator this identity signs in as, audited; :class:`SignInRefused` otherwise.

    Known ``sub``: its moderator. Otherwise a verified e-mail in an allowed domain matches an
    identity an admin linked, or a moderator with that e-mail and no identity at this provider,
    or (when allowed) becomes a new moderator with no sites.
    """
    if allowed_domains and identity.domain not in allowed_domains:
        raise refused("domain")
    linked = session.scalar(
        select(SsoIdentity).where(
            SsoIdentity.issuer == identity.issuer, SsoIdentity.subject == identity.subject
        )
    )
    if linked is None:
        linked = _first_link(session, identity, create_moderators=create_moderators, now=now)
    elif identity.email and identity.email_verified:
        linked.email = identity.email  # the provider's current address, for the admins' list
    moderator = linked.moderator
    if is_disabled(moderator):
        raise refused("disabled")
    linked.last_login_at = now
    record_admin_audit(
        session,
        Actor(moderator.login, moderator.id, "ui"),
        AuditAction.MODERATOR_SSO_LOGIN,
        site_id=None,
        before={},
        after={"login": moderator.login, "issuer": identity.issuer, "subject": identity.subject},
        now=now,
    )
    return moderator, linked


def _first_link(
    session: Session, identity: ProviderIdentity, *, create_moderators: bool, now: dt.datetime
) -> SsoIdentity:
    email = _normalised(identity.email)
    if email is None:
        raise refused("unverified")
    # An identity an admin linked to this address at this provider: the admin vouched for the
    # provider's addresses (Entra ID, for one, sends no email_verified claim).
    pending = session.scalar(
        select(SsoIdentity).where(
            SsoIdentity.issuer == identity.issuer,
            SsoIdentity.subject.is_(None),
            func.lower(SsoIdentity.email) == email,
        )
    )
    if pending is not None:
        pending.subject = identity.subject
        return pending
    if not identity.email_verified:
        raise refused("unverified")
    matches = list(
        session.scalars(select(Moderator).where(func.lower(Moderator.email) == email).limit(2))
    )
    if len(matches) == 1:
        moderator = matches[0]
        other = session.scalar(
            select(SsoIdentity).where(
                SsoIdentity.moderator_id == moderator.id, SsoIdentity.issuer == identity.issuer
            )
        )
        if other is not None:
            raise refused("other_identity")
    elif not matches and create_moderators:
        moderator = _create_moderator(session, email, now=now)
    else:
        # Two moderators share the address: an admin must link one of them by hand.
        raise refused("unknown")
    linked = SsoIdentity(
        moderator=moderator,
        issuer=identity.issuer,
        subject=identity.subject,
        email=identity.email,
        created_at=now,
    )
    session.add(linked)
    session.flush()
    return linked


def _create_moderator(session: Session, email: str, *, now: dt.datetime) -> Moderator:
    base = "".join(c if c.isalnum() or c in "-_" else "-" for c in email.partition("@")[0])[:56]
    login = base or "moderator"
    while session.scalar(select(Moderator.id).where(Moderator.login == login)) is not None:
        login = f"{base}-{secrets.randbelow(10_000)}"
    moderator = Moderator(
        login=login, email=email, password_hash=NO_PASSWORD, role=Role.MODERATOR, sites=[]
    )
    session.add(moderator)
    session.flush()
    record_admin_audit(
        session,
        SSO_ACTOR,
        AuditAction.MODERATOR_ADD,
        site_id=None,
        before={},
        after={"login": login, "role": Role.MODERATOR.value, "sites": [], "via": "sso"},
        now=now,
    )
    return moderator


def record_refusal(
    session: Session, reason: str, identity: ProviderIdentity | None, *, now: dt.datetime
) -> None:
    """Audit a refused single sign-on (no e-mail address: its domain only)."""
    after: dict[str, Any] = {"reason": reason}
    if identity is not None:
        after |= {"issuer": identity.issuer, "subject": identity.subject, "domain": identity.domain}
    record_admin_audit(
        session,
        SSO_ACTOR,
        AuditAction.MODERATOR_SSO_REFUSED,
        site_id=None,
        before={},
        after=after,
        now=now,
    )


def link_identity(
    session: Session,
    moderator: Moderator,
    *,
    issuer: str,
    email: str,
    actor: Actor,
    now: dt.datetime,
) -> SsoIdentity:
    """Let the provider identity with this e-mail sign in as ``moderator`` (on its first login)."""
    normalised = _normalised(email)
    if normalised is None:
        raise ValidationFailed(
            fields={"email": "Enter an email address in the correct format, like name@example.com"}
        )
    linked = SsoIdentity(moderator=moderator, issuer=issuer, subject=None, email=normalised)
    linked.created_at = now
    session.add(linked)
    session.flush()
    record_admin_audit(
        session,
        actor,
        AuditAction.MODERATOR_SSO_LINK,
        site_id=None,
        before={"login": moderator.login},
        after={"login": moderator.login, "issuer": issuer, "domain": normalised.partition("@")[2]},
        now=now,
    )
    return linked


def unlink_identity(
    session: Session, moderator: Moderator, identity_id: int, *, actor: Actor, now: dt.datetime
) -> None:
    linked = session.get(SsoIdentity, identity_id)
    if linked is None or linked.moderator_id != moderator.id:
        raise NotFound("There is no such identity.")
    session.delete(linked)
    record_admin_audit(
        session,
        actor,
        AuditAction.MODERATOR_SSO_UNLINK,
        site_id=None,
        before={"login": moderator.login, "issuer": linked.issuer, "subject": linked.subject},
        after={"login": moderator.login},
        now=now,
    )


def identities_of(session: Session, moderator: Moderator) -> list[SsoIdentity]:
    return list(
        session.scalars(
            select(SsoIdentity)
            .where(SsoIdentity.moderator_id == moderator.id)
            .order_by(SsoIdentity.id)
        )
    )


# Refresh tokens at rest ---------------------------------------------------------------------


def _fernet(secret: str) -> Fernet:
    key = hashlib.sha256(b"moderation sso refresh token\x00" + secret.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(key))


def seal(refresh_token: str, secret: str) -> str:
    return _fernet(secret).encrypt(refresh_token.encode()).decode()


def unseal(sealed: str, secret: str) -> str | None:
    try:
        return _fernet(secret).decrypt(sealed.encode()).decode()
    except InvalidToken:
        return None


# The workers ask the provider, with each SSO login's refresh token, whether it still lets the
# person in; a refusal ends the login. Network calls happen with no transaction open.


class RefreshRefused(Exception):
    """The provider refused the refresh token (the person was disabled, or the grant revoked)."""


Refresher = Callable[[str], Mapping[str, Any]]


def due_for_refresh(session: Session, *, now: dt.datetime, every: dt.timedelta) -> list[int]:
    return list(
        session.scalars(
            select(LoginSession.id).where(
                LoginSession.refresh_token.is_not(None),
                func.coalesce(LoginSession.refreshed_at, LoginSession.created_at) <= now - every,
            )
        )
    )


def refresh_sessions(
    session_factory: sessionmaker[Session],
    refresher: Refresher,
    *,
    secret: str,
    now: dt.datetime,
    every: dt.timedelta,
) -> Iterator[tuple[int, bool]]:
    """Refresh each SSO login not refreshed for ``every``; yields (login id, still allowed).

    A refused refresh ends the login (audited); an unreachable provider leaves it for next time.
    """
    with session_factory() as session:
        due = due_for_refresh(session, now=now, every=every)
    for login_id in due:
        with session_factory() as session:
            # Claimed by a conditional update, so two workers never ask with one refresh token
            # (a provider that rotates them would refuse the second and end the login).
            claimed = session.execute(
                update(LoginSession)
                .where(
                    LoginSession.id == login_id,
                    LoginSession.refresh_token.is_not(None),
                    func.coalesce(LoginSession.refreshed_at, LoginSession.created_at)
                    <= now - every,
                )
                .values(refreshed_at=now)
                .execution_options(synchronize_session=False)
            )
            if cast(CursorResult[Any], claimed).rowcount != 1:
                session.rollback()
                continue
            sealed = session.scalar(
                select(LoginSession.refresh_token).where(LoginSession.id == login_id)
            )
            session.commit()  # no transaction open across the call
            plain = unseal(sealed, secret) if sealed else None
        try:
            if plain is None:
                raise RefreshRefused()
            answer = refresher(plain)
        except RefreshRefused:
            with session_factory() as session:
                login = session.get(LoginSession, login_id)
                if login is not None:
                    record_admin_audit(
                        session,
                        SSO_ACTOR,
                        AuditAction.MODERATOR_SSO_ENDED,
                        site_id=None,
                        before={"login": login.moderator.login},
                        after={"login": login.moderator.login, "reason": "refresh refused"},
                        now=now,
                    )
                    session.delete(login)
                    session.commit()
            yield login_id, False
            continue
        except Exception:
            logger.warning("single sign-on: the provider could not be asked; trying later")
            continue
        with session_factory() as session:
            login = session.get(LoginSession, login_id)
            if login is not None:
                new_token = answer.get("refresh_token")
                if isinstance(new_token, str) and new_token:
                    login.refresh_token = seal(new_token, secret)
                login.refreshed_at = now
                session.commit()
        yield login_id, True


_REFRESHERS: dict[tuple[str, str], Refresher] = {}


def cached_refresher(config: Settings) -> Refresher:
    """One refresher per provider and client in this process (it keeps the discovery answer)."""
    key = (config.oidc_issuer, config.oidc_client_id)
    if key not in _REFRESHERS:
        _REFRESHERS[key] = provider_refresher(config)
    return _REFRESHERS[key]


def provider_refresher(config: Settings) -> Refresher:
    """Ask the provider's token endpoint with a refresh token (for the workers)."""
    from authlib.integrations.requests_client import OAuth2Session

    metadata_url = config.oidc_issuer.rstrip("/") + "/.well-known/openid-configuration"
    cache: dict[str, Any] = {}

    def refresh(refresh_token: str) -> dict[str, Any]:
        if "token_endpoint" not in cache:
            answer = requests.get(metadata_url, timeout=PROVIDER_TIMEOUT)
            answer.raise_for_status()
            cache.update(answer.json())
        with OAuth2Session(
            config.oidc_client_id, config.oidc_client_secret, default_timeout=PROVIDER_TIMEOUT
        ) as client:
            try:
                token: dict[str, Any] = client.refresh_token(
                    cache["token_endpoint"], refresh_token=refresh_token
                )
            except OAuthError as error:
                if error.error in ("invalid_grant", "unauthorized_client", "invalid_client"):
                    raise RefreshRefused() from None
                raise
        return token

    return refresh
