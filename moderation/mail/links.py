"""Signed links in mail, and the keyed hash that remembers a verified address.

A link's token is ``base64url(JSON payload) . base64url(HMAC-SHA256)`` with a key derived from
the app's secret per purpose, so a token for one purpose never passes as another. The payload
carries its expiry (checked against the ``now`` the caller passes) and, for single-use links,
a random nonce recorded in ``used_links`` when the link is used.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import json
import secrets
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from moderation import i18n
from moderation.errors import ServiceError
from moderation.models import UsedLink

CONFIRM = "confirm"
ACT = "act"
UNSUBSCRIBE = "unsubscribe"
CONFIRM_FOR = dt.timedelta(hours=48)
ACT_FOR = dt.timedelta(hours=24)
# Unsubscribe links must keep working for as long as mail may arrive.
UNSUBSCRIBE_FOR = dt.timedelta(days=365)


class BadLink(ServiceError):
    """A link that is forged, damaged, expired or already used; ``status`` is the HTTP answer
    (400 forged, 403 no longer allowed, 410 expired or used). ``key`` names the message in the
    i18n catalogue: a commenter's link fails in their language."""

    code = "link_not_valid"

    def __init__(self, key: str, status: int):
        super().__init__(i18n.CATALOGUE[i18n.DEFAULT_LANGUAGE][key])
        self.status = status
        self.message_key = key


def _key(secret: str, purpose: str) -> bytes:
    return hmac.new(secret.encode(), f"moderation mail link: {purpose}".encode(), "sha256").digest()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(
    secret: str, purpose: str, payload: dict[str, Any], *, now: dt.datetime, valid_for: dt.timedelta
) -> str:
    """A token for ``payload``, valid until ``now + valid_for``, with a fresh nonce."""
    body = {**payload, "exp": int((now + valid_for).timestamp()), "n": secrets.token_urlsafe(16)}
    raw = json.dumps(body, separators=(",", ":"), sort_keys=True).encode()
    mac = hmac.new(_key(secret, purpose), raw, "sha256").digest()
    return f"{_b64(raw)}.{_b64(mac)}"


def verify(secret: str, purpose: str, token: str, *, now: dt.datetime) -> dict[str, Any]:
    """The payload of a genuine, unexpired token; :class:`BadLink` otherwise."""
    payload = genuine_payload(secret, purpose, token)
    if payload is None:
        raise BadLink("link_forged", 400)
    if now.timestamp() > payload["exp"]:
        raise BadLink("link_expired", 410)
    return payload


def genuine_payload(secret: str, purpose: str, token: str) -> dict[str, Any] | None:
    """The payload of a token this service signed, expired or not; None for any other."""
    try:
        raw_text, mac_text = token.split(".", 1)
        raw, mac = _unb64(raw_text), _unb64(mac_text)
    except (ValueError, binascii.Error):
        return None
    expected = hmac.new(_key(secret, purpose), raw, "sha256").digest()
    if not hmac.compare_digest(mac, expected):
        return None
    payload: dict[str, Any] = json.loads(raw)
    return payload


def was_used(session: Session, payload: dict[str, object]) -> bool:
    """Whether the token's nonce was used (for a page that only looks)."""
    return session.get(UsedLink, str(payload.get("n"))[:40]) is not None


def use_once(session: Session, payload: dict[str, object], *, now: dt.datetime) -> None:
    """Record the token's nonce as used; :class:`BadLink` (410) if it was used before."""
    try:
        with session.begin_nested():
            session.add(UsedLink(nonce=str(payload["n"])[:40], used_at=now))
            session.flush()
    except IntegrityError:
        raise BadLink("link_used", 410) from None


def address_hash(secret: str, address: str) -> str:
    """The keyed hash under which a verified address is remembered (never the address)."""
    key = hashlib.sha256(f"moderation verified addresses: {secret}".encode()).digest()
    return hmac.new(key, address.strip().casefold().encode(), "sha256").hexdigest()
