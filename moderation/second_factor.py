"""Second factors for password logins: TOTP (RFC 6238), passkeys (WebAuthn), recovery codes.

A code is accepted once: TOTP remembers the last time step it accepted, and recovery codes are
marked used by one conditional UPDATE. The second step is throttled like the password: each
attempt is recorded and counted, under a lock on the moderator's row, before the code is checked.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import secrets
from typing import Any, cast

import pyotp
import segno
from sqlalchemy import CursorResult, delete, func, select, update
from sqlalchemy.orm import Session
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import bytes_to_base64url
from webauthn.helpers.exceptions import InvalidAuthenticationResponse, InvalidRegistrationResponse
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from moderation.db import become_writer
from moderation.errors import InvalidSecondFactor, NotFound, RateLimited, ValidationFailed
from moderation.events import Actor, AuditAction, record_admin_audit
from moderation.models import (
    LoginSession,
    Moderator,
    Passkey,
    RecoveryCode,
    Role,
    SecondFactorAttempt,
)

ISSUER = "Comment moderation"
RECOVERY_CODE_COUNT = 10
TOTP_PERIOD = 30
# Codes from the step before and after are accepted too (clocks drift, people type slowly).
TOTP_DRIFT_STEPS = 1
SECOND_STEP_WINDOW = dt.timedelta(minutes=15)
MAX_SECOND_STEPS_PER_ACCOUNT = 5
MAX_SECOND_STEPS_PER_NETWORK = 20
# Creating an API token, or changing one's second factors, needs one proved this recently.
FRESH_FOR = dt.timedelta(minutes=10)
# A password step waits this long for its second step.
PENDING_FOR = dt.timedelta(minutes=5)


def required_for(moderator: Moderator, policy: str) -> bool:
    """Whether ``MODERATION_MFA_REQUIRED`` (off, admins, all) asks this moderator for one."""
    return policy == "all" or (policy == "admins" and moderator.role is Role.ADMIN)


def passkeys_of(session: Session, moderator: Moderator) -> list[Passkey]:
    return list(
        session.scalars(
            select(Passkey).where(Passkey.moderator_id == moderator.id).order_by(Passkey.id)
        )
    )


def has_second_factor(session: Session, moderator: Moderator) -> bool:
    if moderator.totp_secret:
        return True
    found = session.scalar(select(Passkey.id).where(Passkey.moderator_id == moderator.id).limit(1))
    return found is not None


def recovery_codes_left(session: Session, moderator: Moderator) -> int:
    query = select(func.count()).where(
        RecoveryCode.moderator_id == moderator.id, RecoveryCode.used_at.is_(None)
    )
    return session.scalar(query) or 0


# Throttling -----------------------------------------------------------------------------------


def count_attempt(
    session: Session, moderator: Moderator, network: str | None, *, now: dt.datetime
) -> None:
    """Record a second-step attempt and refuse it past the limits.

    The moderator's row is locked (``FOR UPDATE``; SQLite's write lock) while the attempt is
    added and counted, so concurrent guesses are all counted: the caller commits this before
    checking the code, and the code is checked with no transaction open.
    """
    become_writer(session)
    session.execute(
        select(Moderator.id).where(Moderator.id == moderator.id).with_for_update()
    ).scalar()
    session.add(SecondFactorAttempt(at=now, moderator_id=moderator.id, network=network))
    session.flush()
    since = now - SECOND_STEP_WINDOW
    recent = select(func.count()).where(SecondFactorAttempt.at >= since)
    per_account = session.scalar(recent.where(SecondFactorAttempt.moderator_id == moderator.id))
    per_network = (
        session.scalar(recent.where(SecondFactorAttempt.network == network)) if network else 0
    )
    if (per_account or 0) > MAX_SECOND_STEPS_PER_ACCOUNT or (
        per_network or 0
    ) > MAX_SECOND_STEPS_PER_NETWORK:
        raise RateLimited(
            "Too many attempts at the second step. Wait 15 minutes and try again.",
            retry_after=int(SECOND_STEP_WINDOW.total_seconds()),
        )


def clear_attempts(session: Session, moderator: Moderator) -> None:
    session.execute(
        delete(SecondFactorAttempt).where(SecondFactorAttempt.moderator_id == moderator.id)
    )


# TOTP -----------------------------------------------------------------------------------------


def new_totp_secret() -> str:
    """A 160-bit shared secret, base32 (RFC 4226 recommends 160 bits)."""
    return pyotp.random_base32(32)


def provisioning_uri(secret: str, moderator: Moderator) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=moderator.login, issuer_name=ISSUER)


def qr_code_svg(uri: str) -> str:
    """The provisioning URI as an inline SVG QR code (no script, no image request)."""
    svg: str = segno.make(uri, error="m").svg_inline(scale=4, dark="#0b0c0c", light="#ffffff")
    return svg


def grouped(secret: str) -> str:
    """The secret in groups of four, for typing it into an app by hand."""
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


def _clean_code(code: str) -> str:
    return "".join(code.split()).replace("-", "").lower()


def _totp_step(secret: str, code: str, *, after: int | None, now: dt.datetime) -> int | None:
    """The time step ``code`` is right for, near ``now`` and later than ``after``; else None."""
    code = _clean_code(code)
    if len(code) != 6 or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret)
    current = int(now.timestamp()) // TOTP_PERIOD
    for step in range(current - TOTP_DRIFT_STEPS, current + TOTP_DRIFT_STEPS + 1):
        if after is not None and step <= after:
            continue
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def enrol_totp(
    session: Session,
    moderator: Moderator,
    secret: str,
    code: str,
    *,
    actor: Actor,
    now: dt.datetime,
) -> list[str]:
    """Turn on TOTP once the app shows the right code; returns new recovery codes if the
    moderator had none left (shown once)."""
    step = _totp_step(secret, code, after=None, now=now)
    if step is None:
        raise ValidationFailed(
            fields={"code": "Enter the 6-digit code your authenticator app shows now"}
        )
    moderator.totp_secret = secret
    moderator.totp_last_step = step
    record_admin_audit(
        session,
        actor,
        AuditAction.MODERATOR_MFA_ADD,
        site_id=None,
        before={"login": moderator.login},
        after={"login": moderator.login, "factor": "totp"},
        now=now,
    )
    return _codes_if_none_left(session, moderator)


def _keep_one(session: Session, moderator: Moderator, *, passkeys: int, totp: bool) -> None:
    """Refuse to remove the last second factor of a moderator who must have one."""
    left = (
        len(passkeys_of(session, moderator))
        - passkeys
        + (0 if totp else bool(moderator.totp_secret))
    )
    if left <= 0:
        raise ValidationFailed(
            fields={"factor": "You must keep a second factor: add another one first"}
        )


def remove_totp(
    session: Session,
    moderator: Moderator,
    *,
    actor: Actor,
    now: dt.datetime,
    required: bool = False,
) -> None:
    if required:
        _keep_one(session, moderator, passkeys=0, totp=True)
    moderator.totp_secret = None
    moderator.totp_last_step = None
    _audit_removal(session, moderator, "totp", actor=actor, now=now)


def verify_code(session: Session, moderator: Moderator, code: str, *, now: dt.datetime) -> str:
    """Check a TOTP or recovery code, using it up; returns which it was (``totp``, ``recovery``)
    or raises :class:`InvalidSecondFactor`."""
    if moderator.totp_secret:
        step = _totp_step(moderator.totp_secret, code, after=moderator.totp_last_step, now=now)
        if step is not None:
            # Conditional, so two requests with one code cannot both pass.
            taken = session.execute(
                update(Moderator)
                .where(
                    Moderator.id == moderator.id,
                    (Moderator.totp_last_step.is_(None)) | (Moderator.totp_last_step < step),
                )
                .values(totp_last_step=step)
                .execution_options(synchronize_session=False)
            )
            if cast(CursorResult[Any], taken).rowcount == 1:
                moderator.totp_last_step = step
                return "totp"
            raise InvalidSecondFactor()
    if _use_recovery_code(session, moderator, code, now=now):
        return "recovery"
    raise InvalidSecondFactor()


# Recovery codes -------------------------------------------------------------------------------


def _hash_code(code: str) -> str:
    # 80 random bits each, so a fast hash is enough at rest (as for API tokens).
    return hashlib.sha256(_clean_code(code).encode()).hexdigest()


def _new_code() -> str:
    raw = base64.b32encode(secrets.token_bytes(10)).decode().lower()  # 80 bits, 16 characters
    return "-".join(raw[i : i + 4] for i in range(0, 16, 4))


def new_recovery_codes(
    session: Session, moderator: Moderator, *, actor: Actor, now: dt.datetime
) -> list[str]:
    """Replace the moderator's recovery codes with ten new ones; shown once, stored hashed."""
    session.execute(delete(RecoveryCode).where(RecoveryCode.moderator_id == moderator.id))
    codes = [_new_code() for _ in range(RECOVERY_CODE_COUNT)]
    session.add_all(RecoveryCode(moderator_id=moderator.id, code_hash=_hash_code(c)) for c in codes)
    record_admin_audit(
        session,
        actor,
        AuditAction.MODERATOR_MFA_CODES,
        site_id=None,
        before={"login": moderator.login},
        after={"login": moderator.login, "recovery_codes": RECOVERY_CODE_COUNT},
        now=now,
    )
    return codes


def _codes_if_none_left(session: Session, moderator: Moderator) -> list[str]:
    if recovery_codes_left(session, moderator):
        return []
    codes = [_new_code() for _ in range(RECOVERY_CODE_COUNT)]
    session.execute(delete(RecoveryCode).where(RecoveryCode.moderator_id == moderator.id))
    session.add_all(RecoveryCode(moderator_id=moderator.id, code_hash=_hash_code(c)) for c in codes)
    return codes


def _use_recovery_code(
    session: Session, moderator: Moderator, code: str, *, now: dt.datetime
) -> bool:
    cleaned = _clean_code(code)
    if len(cleaned) != 16:
        return False
    used = session.execute(
        update(RecoveryCode)
        .where(
            RecoveryCode.moderator_id == moderator.id,
            RecoveryCode.code_hash == _hash_code(cleaned),
            RecoveryCode.used_at.is_(None),
        )
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    return cast(CursorResult[Any], used).rowcount == 1


# Passkeys (WebAuthn) --------------------------------------------------------------------------


def _user_handle(moderator: Moderator) -> bytes:
    return f"moderator:{moderator.id}".encode()


def passkey_registration_options(
    session: Session, moderator: Moderator, *, rp_id: str
) -> tuple[str, bytes]:
    """Options for navigator.credentials.create() (JSON) and the challenge to keep."""
    options = generate_registration_options(
        rp_id=rp_id,
        rp_name=ISSUER,
        user_id=_user_handle(moderator),
        user_name=moderator.login,
        exclude_credentials=[
            PublicKeyCredentialDescriptor(id=_b64decode(p.credential_id))
            for p in passkeys_of(session, moderator)
        ],
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.PREFERRED,
            user_verification=UserVerificationRequirement.PREFERRED,
        ),
    )
    return options_to_json(options), options.challenge


def register_passkey(
    session: Session,
    moderator: Moderator,
    credential: str,
    *,
    name: str,
    challenge: bytes,
    rp_id: str,
    origin: str,
    actor: Actor,
    now: dt.datetime,
) -> list[str]:
    """Keep a passkey the browser created; returns new recovery codes if none were left."""
    name = name.strip()[:100] or "Passkey"
    try:
        verified = verify_registration_response(
            credential=_credential_json(credential),
            expected_challenge=challenge,
            expected_rp_id=rp_id,
            expected_origin=origin,
        )
    except InvalidRegistrationResponse:
        raise ValidationFailed(fields={"passkey": "The passkey could not be checked"}) from None
    session.add(
        Passkey(
            moderator_id=moderator.id,
            credential_id=bytes_to_base64url(verified.credential_id),
            public_key=verified.credential_public_key,
            sign_count=verified.sign_count,
            name=name,
            created_at=now,
        )
    )
    record_admin_audit(
        session,
        actor,
        AuditAction.MODERATOR_MFA_ADD,
        site_id=None,
        before={"login": moderator.login},
        after={"login": moderator.login, "factor": "passkey", "name": name},
        now=now,
    )
    return _codes_if_none_left(session, moderator)


def passkey_authentication_options(
    session: Session, moderator: Moderator, *, rp_id: str
) -> tuple[str, bytes]:
    options = generate_authentication_options(
        rp_id=rp_id,
        allow_credentials=[
            PublicKeyCredentialDescriptor(id=_b64decode(p.credential_id))
            for p in passkeys_of(session, moderator)
        ],
        user_verification=UserVerificationRequirement.PREFERRED,
    )
    return options_to_json(options), options.challenge


def verify_passkey(
    session: Session,
    moderator: Moderator,
    credential: str,
    *,
    challenge: bytes,
    rp_id: str,
    origin: str,
    now: dt.datetime,
) -> Passkey:
    """The moderator's passkey that signed ``challenge``; :class:`InvalidSecondFactor` otherwise."""
    data = _credential_json(credential)
    raw_id = data.get("rawId") or data.get("id")
    passkey = session.scalar(
        select(Passkey).where(
            Passkey.moderator_id == moderator.id, Passkey.credential_id == str(raw_id)[:1400]
        )
    )
    if passkey is None:
        raise InvalidSecondFactor("That passkey is not registered for your account.")
    try:
        verified = verify_authentication_response(
            credential=data,
            expected_challenge=challenge,
            expected_rp_id=rp_id,
            expected_origin=origin,
            credential_public_key=passkey.public_key,
            credential_current_sign_count=passkey.sign_count,
        )
    except InvalidAuthenticationResponse:
        raise InvalidSecondFactor("The passkey could not be checked.") from None
    passkey.sign_count = verified.new_sign_count
    passkey.last_used_at = now
    return passkey


def remove_passkey(
    session: Session,
    moderator: Moderator,
    passkey_id: int,
    *,
    actor: Actor,
    now: dt.datetime,
    required: bool = False,
) -> None:
    passkey = session.get(Passkey, passkey_id)
    if passkey is None or passkey.moderator_id != moderator.id:
        raise NotFound("There is no such passkey.")
    if required:
        _keep_one(session, moderator, passkeys=1, totp=False)
    session.delete(passkey)
    _audit_removal(session, moderator, "passkey", actor=actor, now=now)


def _credential_json(credential: str) -> dict[str, Any]:
    if len(credential) > 16_384:
        raise ValidationFailed(fields={"passkey": "The passkey's answer is too large"})
    try:
        data = json.loads(credential)
    except ValueError:
        raise ValidationFailed(fields={"passkey": "The passkey's answer is not valid"}) from None
    if not isinstance(data, dict):
        raise ValidationFailed(fields={"passkey": "The passkey's answer is not valid"})
    return data


def _b64decode(value: str) -> bytes:
    from webauthn import base64url_to_bytes

    return base64url_to_bytes(value)


# Resetting ------------------------------------------------------------------------------------


def _audit_removal(
    session: Session, moderator: Moderator, factor: str, *, actor: Actor, now: dt.datetime
) -> None:
    record_admin_audit(
        session,
        actor,
        AuditAction.MODERATOR_MFA_REMOVE,
        site_id=None,
        before={"login": moderator.login, "factor": factor},
        after={"login": moderator.login},
        now=now,
    )


def reset(session: Session, moderator: Moderator, *, actor: Actor, now: dt.datetime) -> None:
    """Remove every second factor and recovery code of a moderator and end their logins, so
    they enrol again at their next login (an admin's or the operator's action); audited."""
    moderator.totp_secret = None
    moderator.totp_last_step = None
    session.execute(delete(Passkey).where(Passkey.moderator_id == moderator.id))
    session.execute(delete(RecoveryCode).where(RecoveryCode.moderator_id == moderator.id))
    session.execute(delete(LoginSession).where(LoginSession.moderator_id == moderator.id))
    clear_attempts(session, moderator)
    record_admin_audit(
        session,
        actor,
        AuditAction.MODERATOR_MFA_RESET,
        site_id=None,
        before={"login": moderator.login},
        after={"login": moderator.login, "second_factors": "removed"},
        now=now,
    )
