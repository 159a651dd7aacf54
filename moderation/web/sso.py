"""Single sign-on pages under /moderate/sso: the redirect to the provider and its callback.

Authlib runs the OpenID Connect authorization code flow: discovery, PKCE (S256), ``state`` and
``nonce`` kept in the (signed) session cookie and used once, and the ID token's signature (the
provider's JWKS, fetched again when a new key id appears), issuer, audience, expiry and nonce.
Registered inside the moderate blueprint; both routes are public (no login yet).
"""

from __future__ import annotations

from typing import Any

import requests
from authlib.integrations.base_client import MismatchingStateError, OAuthError
from authlib.integrations.flask_client import OAuth
from flask import (
    Blueprint,
    Flask,
    current_app,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.typing import ResponseReturnValue
from joserfc.errors import ExpiredTokenError, JoseError

from moderation import moderators, sso
from moderation.comments import client_network
from moderation.db import begin_as_writer
from moderation.errors import SignInRefused
from moderation.models import LoginMethod
from moderation.web.context import client_address, now, settings
from moderation.web.logins import enter
from moderation.web.sessions import get_session

bp = Blueprint("sso", __name__, url_prefix="/sso")

PUBLIC_ENDPOINTS = frozenset({"moderate.sso.start", "moderate.sso.callback"})
SCOPES = "openid email profile"
# Seconds of clock difference allowed between the provider and this service.
LEEWAY = 60
HTTP_TIMEOUT = 10


def register(app: Flask) -> None:
    """Register the provider with Authlib (when ``MODERATION_OIDC_ISSUER`` is set)."""
    config = app.extensions["moderation.settings"]
    if not config.sso_enabled:
        return
    oauth = OAuth(app)
    oauth.register(
        "oidc",
        client_id=config.oidc_client_id,
        client_secret=config.oidc_client_secret,
        server_metadata_url=config.oidc_issuer.rstrip("/") + "/.well-known/openid-configuration",
        client_kwargs={
            "scope": SCOPES,
            "code_challenge_method": "S256",
            "token_endpoint_auth_method": "client_secret_basic",
            "default_timeout": HTTP_TIMEOUT,
        },
    )


def _client() -> Any:
    return current_app.extensions["authlib.integrations.flask_client"].oidc


@bp.get("/start")
def start() -> ResponseReturnValue:
    if not settings().sso_enabled:
        return redirect(url_for("moderate.login"))
    client = _client()
    try:
        metadata = client.load_server_metadata()
    except requests.RequestException:
        return _refused(sso.refused("unavailable"), None)
    scope = SCOPES
    # A refresh token lets the workers ask the provider, while the login lasts, whether the
    # person may still come in; offline_access asks for one where the provider offers it.
    if "offline_access" in metadata.get("scopes_supported", ()):
        scope += " offline_access"
    session["sso_next"] = request.args.get("next") or ""
    response: ResponseReturnValue = client.authorize_redirect(
        url_for("moderate.sso.callback", _external=True), scope=scope
    )
    return response


@bp.get("/callback")
def callback() -> ResponseReturnValue:
    if not settings().sso_enabled:
        return redirect(url_for("moderate.login"))
    identity: sso.ProviderIdentity | None = None
    try:
        token = _fetch_checked_token()
        identity = sso.ProviderIdentity.from_claims(token["userinfo"])
        db = get_session()
        begin_as_writer(db)
        moderator, linked = sso.sign_in(
            db,
            identity,
            allowed_domains=settings().sso_allowed_domains,
            create_moderators=settings().oidc_create_moderators,
            now=now(),
        )
    except SignInRefused as error:
        return _refused(error, identity)
    refresh = token.get("refresh_token")
    login_token = moderators.start_login_session(
        db,
        moderator,
        now=now(),
        method=LoginMethod.SSO,
        user_agent=request.user_agent.string,
        network=client_network(client_address()),
        sso_identity=linked,
        refresh_token=sso.seal(refresh, settings().effective_secret_key) if refresh else None,
    )
    db.commit()
    return enter(login_token, session.get("sso_next"))


def _fetch_checked_token() -> dict[str, Any]:
    """The provider's token response with its ID token checked, or :class:`SignInRefused`."""
    try:
        token: dict[str, Any] = _client().authorize_access_token(leeway=LEEWAY)
    except MismatchingStateError:
        raise sso.refused("state") from None
    except OAuthError:
        raise sso.refused("provider_error") from None
    except ExpiredTokenError:
        raise sso.refused("expired") from None
    except (JoseError, ValueError, KeyError):
        raise sso.refused("bad_token") from None
    except requests.RequestException:
        raise sso.refused("unavailable") from None
    claims = token.get("userinfo")
    if not claims:
        raise sso.refused("bad_token")
    if "email" not in claims and _client().load_server_metadata().get("userinfo_endpoint"):
        # Providers that keep the ID token small (conforming to the spec) give the e-mail
        # address at the UserInfo endpoint; its answer counts only for the same ``sub``.
        try:
            extra = _client().userinfo(token=token)
        except (OAuthError, requests.RequestException, ValueError):
            raise sso.refused("unavailable") from None
        if extra.get("sub") != claims.get("sub"):
            raise sso.refused("bad_token")
        for name in ("email", "email_verified"):
            if name in extra:
                claims[name] = extra[name]
    return token


def _refused(error: SignInRefused, identity: sso.ProviderIdentity | None) -> ResponseReturnValue:
    db = get_session()
    db.rollback()
    begin_as_writer(db)
    sso.record_refusal(db, error.reason, identity, now=now())
    db.commit()
    page = render_template("moderate/sso_refused.html", message=error.message)
    return page, error.status
