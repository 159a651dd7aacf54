"""Settings from ``MODERATION_*`` environment variables and an optional TOML file.

Every setting is one field of :class:`Settings`; the README's configuration table lists them.
Precedence: environment variable, then the TOML file named by ``MODERATION_CONFIG_FILE``, then the
default. Defaults suit the embedded SQLite mode of ``make run``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import tomllib
from collections.abc import Mapping
from ipaddress import ip_network
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

PREFIX = "MODERATION_"
# Former settings, now constants in the module that uses them (CHANGELOG.md says where). A
# deployment that still sets one starts, with a warning that the value is ignored.
REMOVED = frozenset(
    {
        "public_stale_while_revalidate",
        "webhook_response_cap_bytes",
        "webhook_rotation_overlap_hours",
        "webhook_disable_after_hours",
        "ratelimit_key_prefix",
        "time_trap_min_seconds",
        "time_trap_max_age_hours",
        "mail_digest_minutes",
    }
)

logger = logging.getLogger(__name__)


class ConfigError(Exception):
    """The configuration cannot run; the message says which setting and why."""


@dataclasses.dataclass(frozen=True)
class Settings:
    """The service's configuration; field ``x`` is read from ``MODERATION_X``."""

    env: Literal["development", "production", "testing"] = "production"
    secret_key: str = ""
    instance_path: str = "instance"
    database_url: str = ""
    max_request_bytes: int = 64 * 1024
    # An export sent to the import endpoint (POST /api/v1/moderation/sites/<site>/imports).
    max_import_bytes: int = 64 * 1024 * 1024
    session_cookie_secure: bool | None = None
    session_idle_minutes: int = 30
    session_max_hours: int = 12
    trusted_proxy_hops: int = 0
    retention_client_days: int = 30
    retention_rejected_days: int = 90
    # Comments whose email address was never confirmed are deleted after this many days.
    retention_unconfirmed_days: int = 7
    demo: bool | None = None
    log_level: str = "INFO"
    log_format: Literal["text", "json"] = "text"
    # /metrics (Prometheus) answers a bearer token or client addresses in these comma-separated
    # networks (CIDR); with neither set it is off (404).
    metrics_token: str = ""
    metrics_allow: str = ""
    # HTTP caching of public reads (thread fragment, comments JSON, counts, feeds), in seconds.
    public_max_age: int = 10
    # Comments per page of the embedded thread ("show more" loads the next page).
    embed_page_size: int = 100
    # Cheap password hashing is only for test suites; never set it in production.
    fast_password_hashing: bool = False
    # Webhooks (docs/webhooks.md). Timeouts in seconds; both default to 15 s.
    webhook_connect_timeout: float = 15.0
    webhook_timeout: float = 15.0
    # Plain http:// endpoint URLs are refused unless this is on (https only by default).
    webhook_allow_http: bool = False
    # Comma-separated networks (CIDR) that may be delivered to although not globally routable,
    # e.g. "127.0.0.0/8" for a consumer on the same host. Empty: only global addresses.
    webhook_allowed_networks: str = ""
    # How long a worker's claim on a delivery lasts before another worker may take it over.
    webhook_lease_seconds: int = 120
    # The in-process delivery thread of `moderation serve`; default: on with SQLite only.
    webhook_worker_thread: bool | None = None
    # Spam checks (see moderation/spam.py). Rate limits are limits-library strings per key.
    ratelimit_enabled: bool = True
    ratelimit_storage_url: str = "memory://"
    ratelimit_network: str = "10/minute;60/hour"
    ratelimit_email: str = "5/minute;30/hour"
    ratelimit_post: str = "30/minute"
    time_trap: bool = True
    time_trap_verdict: Literal["hold", "spam"] = "hold"
    # None: on, except in development, where a laptop demo must not depend on the network.
    check_deliverability: bool | None = None
    # host or host:port of the nameserver for the deliverability lookup; the system's when empty.
    dns_nameserver: str = ""
    dns_timeout_ms: int = 900
    check_disposable_email: bool = True
    # Mail (moderation/mail/): off while the host is empty. Sent by the workers from the outbox.
    smtp_host: str = ""
    # 0: the usual port for the security mode (25 none, 587 starttls, 465 tls).
    smtp_port: int = 0
    smtp_username: str = ""
    smtp_password: str = ""
    smtp_security: Literal["none", "starttls", "tls"] = "starttls"
    smtp_timeout: float = 15.0
    mail_from: str = ""
    # How the service is reached from outside, for links in mail: https://comments.example.org
    public_url: str = ""
    # Single sign-on through the organisation's OpenID Connect provider (docs/sso/): off while
    # the issuer is empty. Allowed domains: comma-separated e-mail domains, empty for any.
    oidc_issuer: str = ""
    oidc_client_id: str = ""
    oidc_client_secret: str = ""
    oidc_allowed_domains: str = ""
    # Turn password logins off (the login page offers only the provider).
    oidc_only: bool = False
    # The name on the login page's button: "Sign in with <name>".
    oidc_provider_name: str = "your organisation's account"
    # An unknown identity (allowed domain, verified e-mail) becomes a moderator with no sites.
    oidc_create_moderators: bool = False
    # Who must have a second factor: off, admins or all. Empty: admins, except in development.
    mfa_required: str = ""

    @property
    def development(self) -> bool:
        return self.env == "development"

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{Path(self.instance_path).resolve() / 'moderation.db'}"

    @property
    def cookie_secure(self) -> bool:
        if self.session_cookie_secure is None:
            return not self.development
        return self.session_cookie_secure

    @property
    def deliverability_enabled(self) -> bool:
        if self.check_deliverability is None:
            return not self.development
        return self.check_deliverability

    @property
    def effective_secret_key(self) -> str:
        """The key that signs sessions, CSRF tokens and links (a fixed one in development)."""
        return self.secret_key or "development-only-secret-key-not-for-production"

    @property
    def mail_enabled(self) -> bool:
        return bool(self.smtp_host)

    @property
    def effective_smtp_port(self) -> int:
        return self.smtp_port or {"none": 25, "starttls": 587, "tls": 465}[self.smtp_security]

    @property
    def sso_enabled(self) -> bool:
        return bool(self.oidc_issuer)

    @property
    def sso_allowed_domains(self) -> frozenset[str]:
        return frozenset(
            d.strip().lower().lstrip("@") for d in self.oidc_allowed_domains.split(",") if d.strip()
        )

    @property
    def effective_mfa_required(self) -> str:
        if self.mfa_required:
            return self.mfa_required
        return "off" if self.development else "admins"

    @property
    def demo_enabled(self) -> bool:
        return self.development if self.demo is None else self.demo

    def check(self) -> None:
        """Refuse settings that cannot run safely."""
        if self.env not in ("development", "production", "testing"):
            raise ConfigError(
                f"MODERATION_ENV must be development, production or testing, not {self.env!r}"
            )
        if not self.development and len(self.secret_key) < 32:
            raise ConfigError(
                "MODERATION_SECRET_KEY must be set to a random value of at least 32 characters "
                "outside development: it signs moderator sessions and CSRF tokens. Generate one "
                'with: python -c "import secrets; print(secrets.token_urlsafe(48))"'
            )
        if self.log_format not in ("text", "json"):
            raise ConfigError(
                f"MODERATION_LOG_FORMAT must be text or json, not {self.log_format!r}"
            )
        if self.metrics_token and len(self.metrics_token) < 16:
            raise ConfigError("MODERATION_METRICS_TOKEN must be at least 16 characters long")
        try:
            [ip_network(n.strip()) for n in self.metrics_allow.split(",") if n.strip()]
        except ValueError as error:
            raise ConfigError(f"MODERATION_METRICS_ALLOW: {error}") from None
        if self.webhook_lease_seconds <= self.webhook_timeout:
            raise ConfigError(
                "MODERATION_WEBHOOK_LEASE_SECONDS must be longer than MODERATION_WEBHOOK_TIMEOUT"
            )
        if self.time_trap_verdict not in ("hold", "spam"):
            raise ConfigError(
                f"MODERATION_TIME_TRAP_VERDICT must be hold or spam, not {self.time_trap_verdict!r}"
            )
        if self.smtp_security not in ("none", "starttls", "tls"):
            raise ConfigError(
                "MODERATION_SMTP_SECURITY must be none, starttls or tls, "
                f"not {self.smtp_security!r}"
            )
        if self.mail_enabled and not (self.mail_from and self.public_url):
            raise ConfigError(
                "MODERATION_SMTP_HOST is set, so mail is on: set MODERATION_MAIL_FROM (the sender "
                "address) and MODERATION_PUBLIC_URL (https://... where this service is reached, "
                "for the links in mail) too"
            )
        if self.public_url and not _http_address(self.public_url):
            raise ConfigError(
                "MODERATION_PUBLIC_URL must be an http(s) address, like https://comments.example.org"
            )
        if self.mfa_required not in ("", "off", "admins", "all"):
            raise ConfigError(
                f"MODERATION_MFA_REQUIRED must be off, admins or all, not {self.mfa_required!r}"
            )
        if self.oidc_issuer and not (self.oidc_client_id and self.oidc_client_secret):
            raise ConfigError(
                "MODERATION_OIDC_ISSUER is set, so single sign-on is on: set "
                "MODERATION_OIDC_CLIENT_ID and MODERATION_OIDC_CLIENT_SECRET too"
            )
        if self.oidc_only and not self.oidc_issuer:
            raise ConfigError("MODERATION_OIDC_ONLY needs MODERATION_OIDC_ISSUER")
        if self.fast_password_hashing and self.env != "testing":
            raise ConfigError("MODERATION_FAST_PASSWORD_HASHING is only allowed in testing")


def _coerce(field: dataclasses.Field[Any], raw: Any) -> Any:
    kind = field.type
    if not isinstance(raw, str):
        return raw
    if kind in ("bool", "bool | None"):
        lowered = raw.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{PREFIX}{field.name.upper()} must be true or false, not {raw!r}")
    if kind == "float":
        try:
            return float(raw)
        except ValueError:
            raise ConfigError(f"{PREFIX}{field.name.upper()} must be a number") from None
    if kind == "int":
        try:
            return int(raw)
        except ValueError:
            raise ConfigError(f"{PREFIX}{field.name.upper()} must be a whole number") from None
    return raw


def load_settings(environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Build settings from the environment, the optional TOML file and explicit overrides."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    config_file = environ.get(f"{PREFIX}CONFIG_FILE")
    if config_file:
        try:
            with open(config_file, "rb") as fh:
                values.update(tomllib.load(fh))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read MODERATION_CONFIG_FILE {config_file}: {exc}") from exc
    fields = {f.name: f for f in dataclasses.fields(Settings)}
    removed = {name for name in REMOVED if name in values or f"{PREFIX}{name.upper()}" in environ}
    for name in sorted(removed):
        logger.warning(
            "%s%s is no longer a setting and is ignored (see CHANGELOG.md)", PREFIX, name.upper()
        )
        values.pop(name, None)
    unknown = set(values) - set(fields)
    if unknown:
        raise ConfigError(f"unknown settings in {config_file}: {', '.join(sorted(unknown))}")
    for name in fields:
        key = f"{PREFIX}{name.upper()}"
        if key in environ:
            values[name] = environ[key]
    values.update(overrides)
    settings = Settings(**{name: _coerce(fields[name], raw) for name, raw in values.items()})
    settings.check()
    return settings


def _http_address(url: str) -> bool:
    """An http(s) URL with a host and a port that is a port (urlsplit raises on ``http://[``)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError on a port that is no port)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)
