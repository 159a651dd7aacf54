"""The data model: sites, posts, comments, moderators, tokens, audit events and the event outbox."""

from __future__ import annotations

import datetime as dt
import enum
import secrets
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
)
from sqlalchemy import Enum as SAEnum
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def address_key(address: str) -> str:
    """What addresses are matched by: the normalised address, casefolded in Python, because
    SQLite's lower() folds ASCII letters only (so ``Ärger@`` and ``ärger@`` would differ)."""
    return address.casefold()


def _address_key_default(context: Any) -> str:
    return address_key(context.get_current_parameters()["author_email"])


def new_public_id() -> str:
    """An opaque, unguessable identifier for things named in public URLs and payloads."""
    return secrets.token_urlsafe(12)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Aware UTC datetimes on every backend (SQLite keeps no zone, so it is attached on read)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; times are aware UTC")
        return value.astimezone(dt.UTC)

    def process_result_value(
        self, value: dt.datetime | None, dialect: Dialect
    ) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


def _enum(kind: type[enum.StrEnum]) -> SAEnum:
    return SAEnum(
        kind,
        native_enum=False,
        length=16,
        values_callable=lambda members: [m.value for m in members],
        validate_strings=True,
    )


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dt.datetime: UTCDateTime, dict[str, Any]: JSON, list[Any]: JSON}


class CommentStatus(enum.StrEnum):
    # Waiting for its author to confirm their email address; not in the queue, never public.
    UNCONFIRMED = "unconfirmed"
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    SPAM = "spam"
    DELETED = "deleted"


class ModerationPolicy(enum.StrEnum):
    ALL = "all"
    TRUSTED = "trusted"


class BanResponse(enum.StrEnum):
    """What a banned sender is told: the usual answer (``quiet``) or ``403 banned`` (``refuse``)."""

    QUIET = "quiet"
    REFUSE = "refuse"


class Role(enum.StrEnum):
    ADMIN = "admin"
    MODERATOR = "moderator"


class MailPreference(enum.StrEnum):
    """How a moderator hears of held comments."""

    EACH = "each"
    DIGEST = "digest"
    OFF = "off"


moderator_sites = Table(
    "moderator_sites",
    Base.metadata,
    Column("moderator_id", ForeignKey("moderators.id", ondelete="CASCADE"), primary_key=True),
    Column("site_id", ForeignKey("sites.id", ondelete="CASCADE"), primary_key=True),
)


class Site(Base):
    __tablename__ = "sites"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    origins: Mapped[list[Any]] = mapped_column(default=list)
    policy: Mapped[ModerationPolicy] = mapped_column(
        _enum(ModerationPolicy), default=ModerationPolicy.ALL
    )
    link_limit: Mapped[int] = mapped_column(default=2)
    close_after_days: Mapped[int | None] = mapped_column(default=None)
    privacy_notice_url: Mapped[str | None] = mapped_column(String(2000), default=None)
    notify_emails: Mapped[list[Any]] = mapped_column(default=list)
    # The site's published comment policy, and the reasons from it a moderator may give.
    comment_policy_url: Mapped[str | None] = mapped_column(String(2000), default=None)
    reject_reasons: Mapped[list[Any]] = mapped_column(default=list)
    # On erasure of a commenter's personal data: keep their comments' text (True) or remove it.
    # The hint under the email field; None shows the default, in the commenter's language.
    privacy_text: Mapped[str | None] = mapped_column(String(500), default=None)
    erasure_keeps_text: Mapped[bool] = mapped_column(default=True)
    # Blocklists, WordPress-style: a comment matching a spam term is spam, a hold term is held.
    hold_terms: Mapped[list[Any]] = mapped_column(default=list)
    spam_terms: Mapped[list[Any]] = mapped_column(default=list)
    # New comments wait until their author confirms their address by a link sent by mail.
    verify_email: Mapped[bool] = mapped_column(default=False, server_default=false())
    # The learned spam check files a comment as spam at this score or above (0.5 to 1; higher
    # is safer), once the model has enough decisions; "likely spam" below it is held.
    spam_threshold: Mapped[float] = mapped_column(default=0.9, server_default="0.9")
    # Readers' reports from this many client networks take a published comment down (back to
    # the queue); one report for personal data is enough.
    report_threshold: Mapped[int] = mapped_column(default=3, server_default="3")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # What replaces a closed post's form; None shows the default, in the reader's language.
    closed_text: Mapped[str | None] = mapped_column(String(500), default=None)
    # The zone local times are shown in to readers and moderators (an IANA name).
    time_zone: Mapped[str] = mapped_column(
        String(64), default="Europe/London", server_default="Europe/London"
    )
    # Bans (moderation/bans.py): a banned sender sees the usual answer, or 403 with this text.
    ban_response: Mapped[BanResponse] = mapped_column(
        _enum(BanResponse), default=BanResponse.QUIET, server_default=BanResponse.QUIET.value
    )
    banned_text: Mapped[str | None] = mapped_column(String(500), default=None)

    def __repr__(self) -> str:
        return f"<Site {self.slug}>"


class Post(Base):
    __tablename__ = "posts"
    __table_args__ = (UniqueConstraint("site_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(500))
    title: Mapped[str] = mapped_column(String(300), default="")
    url: Mapped[str] = mapped_column(String(2000))
    closed: Mapped[bool] = mapped_column(default=False)
    # Bumped by every change to what the public sees of the thread; the ETag derives from it.
    version: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # A consultation window set by a moderator (moderation.posts): comments are taken from
    # opens_at until closes_at; either set, it replaces the automatic close after N days.
    opens_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    closes_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    # When the blog published the post (the embed's data-published): the automatic close counts
    # from it; without it, from the post's first comment (created_at).
    published_at: Mapped[dt.datetime | None] = mapped_column(default=None)

    site: Mapped[Site] = relationship(lazy="joined", innerjoin=True)


class Moderator(Base):
    __tablename__ = "moderators"

    id: Mapped[int] = mapped_column(primary_key=True)
    login: Mapped[str] = mapped_column(String(64), unique=True)
    email: Mapped[str] = mapped_column(String(254))
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[Role] = mapped_column(_enum(Role), default=Role.MODERATOR)
    mail_preference: Mapped[MailPreference] = mapped_column(
        _enum(MailPreference), default=MailPreference.EACH, server_default=MailPreference.EACH.value
    )
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # Set while the moderator is disabled (offboarded): no login, session, token or mailed link
    # works, and no mail goes to them; the row stays so that the audit keeps naming them.
    disabled_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    # The second factors (moderation/second_factor.py): a TOTP shared secret (base32) and the
    # last time step a code was accepted for, so that a code is never accepted twice.
    totp_secret: Mapped[str | None] = mapped_column(String(64), default=None)
    totp_last_step: Mapped[int | None] = mapped_column(default=None)

    sites: Mapped[list[Site]] = relationship(secondary=moderator_sites, lazy="selectin")

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN

    @property
    def disabled(self) -> bool:
        return self.disabled_at is not None

    def may_moderate(self, site_id: int) -> bool:
        return self.is_admin or any(site.id == site_id for site in self.sites)


class Comment(Base):
    __tablename__ = "comments"
    __table_args__ = (
        # Public thread reads: approved comments of one post in id order.
        Index("ix_comments_post_status_id", "post_id", "status", "id"),
        # The moderation queue: comments of one status in id order.
        Index("ix_comments_status_id", "status", "id"),
        # The duplicate check: a post's newest comments, newest first, without reading the rest.
        Index("ix_comments_post_submitted", "post_id", "submitted_at"),
        # The queue sorted by the learned check's spam score.
        Index("ix_comments_status_spam_score", "status", "spam_score"),
        # An imported comment's id in its source, so that importing the same export twice adds
        # nothing; NULL for comments submitted here (NULLs never collide).
        UniqueConstraint("post_id", "import_ref"),
        # A post's pinned comments, found without reading its unpinned ones.
        Index("ix_comments_post_pinned", "post_id", "pinned_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True, default=new_public_id)
    post_id: Mapped[int] = mapped_column(ForeignKey("posts.id", ondelete="CASCADE"))
    parent_id: Mapped[int | None] = mapped_column(
        ForeignKey("comments.id", ondelete="SET NULL"), index=True
    )
    author_name: Mapped[str] = mapped_column(String(100))
    author_email: Mapped[str] = mapped_column(String(254), index=True)
    # address_key(author_email), set on insert: export, erasure, unsubscribe and the queue's
    # counts match on it exactly. Casefolding may lengthen an address (ß to ss), hence the size.
    email_key: Mapped[str] = mapped_column(
        String(762), index=True, default=_address_key_default, server_default=""
    )
    body_text: Mapped[str] = mapped_column(Text)
    body_html: Mapped[str] = mapped_column(Text)
    status: Mapped[CommentStatus] = mapped_column(
        _enum(CommentStatus), default=CommentStatus.PENDING
    )
    signals: Mapped[list[Any]] = mapped_column(default=list)
    official: Mapped[bool] = mapped_column(default=False)
    # Reduced client data for abuse handling: a truncated address, never the full one.
    client_network: Mapped[str | None] = mapped_column(String(64), default=None)
    user_agent: Mapped[str | None] = mapped_column(String(300), default=None)
    submitted_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    moderated_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    moderated_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("moderators.id", ondelete="SET NULL")
    )
    # The text as the commenter typed it, kept when a moderator edits the comment.
    original_text: Mapped[str | None] = mapped_column(Text, default=None)
    reject_reason: Mapped[str | None] = mapped_column(String(500), default=None)
    # Who is looking at the comment right now, so colleagues do not duplicate the work.
    claimed_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("moderators.id", ondelete="SET NULL")
    )
    claimed_until: Mapped[dt.datetime | None] = mapped_column(default=None)
    # Where an imported comment came from, e.g. "wordpress:1234" or "disqus:5678".
    import_ref: Mapped[str | None] = mapped_column(String(100), default=None)
    # The commenter's opt-ins: a mail when the comment is approved or rejected, and on replies.
    notify_decision: Mapped[bool] = mapped_column(default=False, server_default=false())
    notify_replies: Mapped[bool] = mapped_column(default=False, server_default=false())
    # The language of the form it was sent from ("en", "cy"): its author's mail is in it.
    lang: Mapped[str] = mapped_column(String(8), default="en", server_default="en")
    # The spam checks' verdict at submission and the learned check's score (0 to 1), kept for
    # the queue's order and for counting the moderators' overturns of the filter.
    verdict: Mapped[str | None] = mapped_column(String(8), default=None)
    spam_score: Mapped[float | None] = mapped_column(default=None)
    # What a moderator's decision taught the spam model ("spam", "legitimate" or None) and the
    # tokens it taught, so that undoing the decision or erasing its author unlearns exactly.
    learned: Mapped[str | None] = mapped_column(String(16), default=None)
    learned_tokens: Mapped[list[Any] | None] = mapped_column(default=None)
    # What the duplicate check compares (moderation.duplicates): a hash of the text's words and
    # the smallest hashes of its word 3-grams; NULL once the text is erased.
    text_fingerprint: Mapped[int | None] = mapped_column(BigInteger, default=None)
    text_sketch: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)
    # Set while the blog team has pinned the comment (approved, top level; at most
    # actions.MAX_PINS a post): public reads show it first. Leaving "approved" unpins it.
    pinned_at: Mapped[dt.datetime | None] = mapped_column(default=None)

    post: Mapped[Post] = relationship(lazy="joined", innerjoin=True)
    parent: Mapped[Comment | None] = relationship(remote_side=[id], lazy="select")
    moderated_by: Mapped[Moderator | None] = relationship(
        lazy="select", foreign_keys=[moderated_by_id]
    )
    claimed_by: Mapped[Moderator | None] = relationship(lazy="select", foreign_keys=[claimed_by_id])
    # Readers' reports, for the moderators' eyes only (the queue loads them in one query).
    reports: Mapped[list[Report]] = relationship(lazy="select", viewonly=True, order_by="Report.id")


class ReportReason(enum.StrEnum):
    """Why a reader reports a published comment."""

    PERSONAL_DATA = "personal_data"
    ABUSIVE = "abusive"
    SPAM = "spam"
    OFF_TOPIC = "off_topic"
    OTHER = "other"


class Report(Base):
    """A reader's report of a published comment: no account, only the reader's client network
    (reduced as ``Comment.client_network``), so that one network counts once per comment (the
    unique constraint, also after a moderator dismissed its report). A dismissed report stays
    for the record and counts no more."""

    __tablename__ = "reports"
    __table_args__ = (
        UniqueConstraint("comment_id", "network"),
        # The queue's "Reported" tab: the live reports.
        Index("ix_reports_dismissed_at_comment_id", "dismissed_at", "comment_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    comment_id: Mapped[int] = mapped_column(ForeignKey("comments.id", ondelete="CASCADE"))
    reason: Mapped[ReportReason] = mapped_column(_enum(ReportReason))
    detail: Mapped[str | None] = mapped_column(String(500), default=None)
    network: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    dismissed_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    dismissed_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("moderators.id", ondelete="SET NULL"), default=None
    )


class SpamToken(Base):
    """The learned spam model: how many spam and legitimate decisions contained a token, per
    site (``scope`` is the site's id) and for the whole installation (``scope`` 0). The token ""
    counts the decisions themselves. See :mod:`moderation.learning`."""

    __tablename__ = "spam_tokens"

    scope: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    token: Mapped[str] = mapped_column(String(48), primary_key=True)
    spam: Mapped[int] = mapped_column(default=0)
    ham: Mapped[int] = mapped_column(default=0)


class SpamModelVersion(Base):
    """Where each scope of the learned model stands: ``seq`` counts the changes to its counts,
    ``epoch`` is drawn at random when the row is made, so a model deleted and learned again never
    repeats a (epoch, seq) that named other counts. A process keeps the counts it has read while
    they stand (see :mod:`moderation.learning`). A scope without this row has learned nothing:
    every change to ``spam_tokens`` goes through moderation.learning, which writes it."""

    __tablename__ = "spam_model_versions"

    scope: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    epoch: Mapped[int] = mapped_column(BigInteger)
    seq: Mapped[int] = mapped_column(BigInteger)


class SpamModelChange(Base):
    """Which tokens change ``seq`` of a scope changed (None: any of them), the last
    :data:`moderation.learning.KEPT_CHANGES` per scope: a process brings the counts it keeps up
    to date by reading those tokens again."""

    __tablename__ = "spam_model_changes"

    scope: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    tokens: Mapped[list[Any] | None] = mapped_column(default=None)


class CommentSketchKey(Base):
    """A few of a comment's sketch values, so the duplicate check finds a post's texts that may
    resemble a new one by index, however many comments the post has."""

    __tablename__ = "comment_sketch_keys"
    __table_args__ = (
        # Covering: the check reads comment ids from the index alone.
        Index("ix_comment_sketch_keys_post_key", "post_id", "key", "submitted_at", "comment_id"),
    )

    comment_id: Mapped[int] = mapped_column(
        ForeignKey("comments.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    post_id: Mapped[int] = mapped_column(ForeignKey("posts.id", ondelete="CASCADE"))
    submitted_at: Mapped[dt.datetime]


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    moderator_id: Mapped[int] = mapped_column(ForeignKey("moderators.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    # SHA-256 of the token: tokens are 256-bit random, so a fast hash is enough at rest.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(default=None)

    moderator: Mapped[Moderator] = relationship(lazy="joined", innerjoin=True)


class LoginMethod(enum.StrEnum):
    PASSWORD = "password"  # noqa: S105 (a login method, not a secret)
    SSO = "sso"


class LoginSession(Base):
    """A moderator's login; deleting the row logs the browser out on the server."""

    __tablename__ = "login_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    moderator_id: Mapped[int] = mapped_column(
        ForeignKey("moderators.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # What "Your sessions" shows: recorded at login, last_seen_at to the minute.
    last_seen_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    user_agent: Mapped[str | None] = mapped_column(String(200), default=None)
    network: Mapped[str | None] = mapped_column(String(64), default=None)
    method: Mapped[LoginMethod] = mapped_column(
        _enum(LoginMethod), default=LoginMethod.PASSWORD, server_default=LoginMethod.PASSWORD.value
    )
    # When this login last proved a second factor (None: not in this session).
    second_factor_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    # Single sign-on: the identity, and the provider's refresh token (encrypted with a key derived
    # from the secret key) that the workers use to ask whether the provider still lets them in.
    sso_identity_id: Mapped[int | None] = mapped_column(
        ForeignKey("sso_identities.id", ondelete="CASCADE"), default=None
    )
    refresh_token: Mapped[str | None] = mapped_column(Text, default=None)
    refreshed_at: Mapped[dt.datetime | None] = mapped_column(default=None)

    moderator: Mapped[Moderator] = relationship(lazy="joined", innerjoin=True)


class SsoIdentity(Base):
    """A moderator's identity at the OpenID provider: issuer and ``sub``, never the e-mail alone.

    An admin may link one before its first login (``subject`` None, matched by ``email`` once).
    """

    __tablename__ = "sso_identities"
    __table_args__ = (UniqueConstraint("issuer", "subject"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    moderator_id: Mapped[int] = mapped_column(
        ForeignKey("moderators.id", ondelete="CASCADE"), index=True
    )
    issuer: Mapped[str] = mapped_column(String(255))
    subject: Mapped[str | None] = mapped_column(String(255), default=None)
    email: Mapped[str] = mapped_column(String(254))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[dt.datetime | None] = mapped_column(default=None)

    moderator: Mapped[Moderator] = relationship(lazy="joined", innerjoin=True)


class RecoveryCode(Base):
    """One of a moderator's ten single-use recovery codes, stored hashed."""

    __tablename__ = "recovery_codes"

    id: Mapped[int] = mapped_column(primary_key=True)
    moderator_id: Mapped[int] = mapped_column(
        ForeignKey("moderators.id", ondelete="CASCADE"), index=True
    )
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    used_at: Mapped[dt.datetime | None] = mapped_column(default=None)


class Passkey(Base):
    """A WebAuthn credential (passkey) registered by a moderator as a second factor."""

    __tablename__ = "passkeys"

    id: Mapped[int] = mapped_column(primary_key=True)
    moderator_id: Mapped[int] = mapped_column(
        ForeignKey("moderators.id", ondelete="CASCADE"), index=True
    )
    # base64url of the credential id the authenticator chose (at most 1023 bytes by the spec).
    credential_id: Mapped[str] = mapped_column(String(1400), unique=True)
    public_key: Mapped[bytes] = mapped_column(LargeBinary)
    sign_count: Mapped[int] = mapped_column(default=0)
    name: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(default=None)


class SecondFactorAttempt(Base):
    """A second-step attempt (TOTP, recovery code or passkey), counted per account and network
    to throttle guessing; recorded before the code is checked, removed when it was right."""

    __tablename__ = "second_factor_attempts"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    moderator_id: Mapped[int] = mapped_column(
        ForeignKey("moderators.id", ondelete="CASCADE"), index=True
    )
    network: Mapped[str | None] = mapped_column(String(64), index=True)


class LoginAttempt(Base):
    """A failed login, counted per account and per client network to throttle guessing."""

    __tablename__ = "login_attempts"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    login: Mapped[str] = mapped_column(String(64), index=True)
    network: Mapped[str | None] = mapped_column(String(64), index=True)


class AuditEvent(Base):
    """Who did what to which comment, when, with the state before and after. Append-only."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    moderator_id: Mapped[int | None] = mapped_column(
        ForeignKey("moderators.id", ondelete="SET NULL"), index=True
    )
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(32))
    site_id: Mapped[int | None] = mapped_column(ForeignKey("sites.id", ondelete="SET NULL"))
    comment_id: Mapped[int | None] = mapped_column(
        ForeignKey("comments.id", ondelete="SET NULL"), index=True
    )
    before: Mapped[dict[str, Any]] = mapped_column(default=dict)
    after: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Kept on the row itself: the audit still names the comment and its post once the comment
    # is deleted (by a retention purge, say), which sets comment_id to NULL.
    comment_public_id: Mapped[str | None] = mapped_column(String(32), default=None)
    post_key: Mapped[str | None] = mapped_column(String(500), default=None)

    comment: Mapped[Comment | None] = relationship(lazy="select", viewonly=True)


class Event(Base):
    """The transactional outbox: one row per state change, written with the change itself."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(
        String(40), unique=True, default=lambda: "msg_" + secrets.token_urlsafe(18)
    )
    type: Mapped[str] = mapped_column(String(64))
    site_id: Mapped[int | None] = mapped_column(ForeignKey("sites.id", ondelete="SET NULL"))
    comment_id: Mapped[int | None] = mapped_column(
        ForeignKey("comments.id", ondelete="SET NULL"), index=True
    )
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    # Set when the webhook worker has fanned the event out into deliveries.
    dispatched_at: Mapped[dt.datetime | None] = mapped_column(default=None, index=True)


class DeliveryStatus(enum.StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class WebhookFormat(enum.StrEnum):
    """What an endpoint's deliveries look like: signed Standard Webhooks events, or a short line
    for a team's Slack or Microsoft Teams channel (their incoming-webhook JSON)."""

    STANDARD = "standard"
    SLACK = "slack"
    TEAMS = "teams"


class WebhookEndpoint(Base):
    """A consumer's URL, what it subscribes to, and the secret(s) its deliveries are signed with."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(
        String(40), unique=True, default=lambda: "ep_" + secrets.token_urlsafe(12)
    )
    url: Mapped[str] = mapped_column(String(2000))
    description: Mapped[str] = mapped_column(String(200), default="")
    # Event types wanted; an empty list means every type.
    event_types: Mapped[list[Any]] = mapped_column(default=list)
    # None: every site.
    site_id: Mapped[int | None] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"))
    include_personal_data: Mapped[bool] = mapped_column(default=False)
    format: Mapped[WebhookFormat] = mapped_column(
        _enum(WebhookFormat), default=WebhookFormat.STANDARD, server_default="standard"
    )
    enabled: Mapped[bool] = mapped_column(default=True)
    disabled_reason: Mapped[str | None] = mapped_column(String(300), default=None)
    disabled_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    secret: Mapped[str] = mapped_column(String(200))
    # After a rotation the old secret keeps signing until this moment.
    previous_secret: Mapped[str | None] = mapped_column(String(200), default=None)
    previous_secret_expires_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    # When the current run of failures began; None after a success.
    failing_since: Mapped[dt.datetime | None] = mapped_column(default=None)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    site: Mapped[Site | None] = relationship(lazy="joined")


class WebhookDelivery(Base):
    """One event for one endpoint: its state, schedule and the worker's lease on it."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("endpoint_id", "event_id"),
        # What the workers claim: pending deliveries in due order.
        Index("ix_webhook_deliveries_status_next_attempt_at", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    endpoint_id: Mapped[int] = mapped_column(
        ForeignKey("webhook_endpoints.id", ondelete="CASCADE"), index=True
    )
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"))
    status: Mapped[DeliveryStatus] = mapped_column(
        _enum(DeliveryStatus), default=DeliveryStatus.PENDING
    )
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    lease_owner: Mapped[str | None] = mapped_column(String(100), default=None)
    lease_expires_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    last_status_code: Mapped[int | None] = mapped_column(default=None)
    last_error: Mapped[str | None] = mapped_column(String(500), default=None)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    completed_at: Mapped[dt.datetime | None] = mapped_column(default=None)

    endpoint: Mapped[WebhookEndpoint] = relationship(lazy="joined", innerjoin=True)
    event: Mapped[Event] = relationship(lazy="joined", innerjoin=True)


class WebhookAttempt(Base):
    """One HTTP attempt of a delivery, for the delivery log. Append-only."""

    __tablename__ = "webhook_attempts"

    id: Mapped[int] = mapped_column(primary_key=True)
    delivery_id: Mapped[int] = mapped_column(
        ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), index=True
    )
    attempted_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    webhook_timestamp: Mapped[int] = mapped_column()
    status_code: Mapped[int | None] = mapped_column(default=None)
    duration_ms: Mapped[int] = mapped_column(default=0)
    error: Mapped[str | None] = mapped_column(String(500), default=None)
    response_excerpt: Mapped[str] = mapped_column(Text, default="")
    worker: Mapped[str] = mapped_column(String(100), default="")


class MaintenanceRun(Base):
    """A daily task's run on one UTC day: inserting the row claims the day, so several workers
    and restarts run the task once a day."""

    __tablename__ = "maintenance_runs"

    task: Mapped[str] = mapped_column(String(40), primary_key=True)
    day: Mapped[dt.date] = mapped_column(primary_key=True)
    ran_at: Mapped[dt.datetime] = mapped_column()


class VerifiedAddress(Base):
    """An email address whose owner has confirmed it, kept only as a keyed hash."""

    __tablename__ = "verified_addresses"

    id: Mapped[int] = mapped_column(primary_key=True)
    # HMAC-SHA256 of the normalised, lower-cased address with a key derived from the secret.
    address_hash: Mapped[str] = mapped_column(String(64), unique=True)
    verified_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class UsedLink(Base):
    """The nonce of a single-use link from a mail, recorded when the link is used."""

    __tablename__ = "used_links"

    nonce: Mapped[str] = mapped_column(String(40), primary_key=True)
    used_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)


class MailStatus(enum.StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"
    # Nothing to send any more (the comment or the address went); kept for the record.
    DROPPED = "dropped"


class OutgoingMail(Base):
    """The mail outbox: one message to one recipient, written with the change that causes it.

    The message is rendered by the worker when it sends, from ``kind`` and the rows named here,
    so links carry fresh expiry times and erased personal data is never sent.
    """

    __tablename__ = "mail_outbox"
    __table_args__ = (Index("ix_mail_outbox_status_next_attempt_at", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    # A moderator's or the site's notification address; None: the comment's author.
    to_address: Mapped[str | None] = mapped_column(String(254), default=None)
    moderator_id: Mapped[int | None] = mapped_column(
        ForeignKey("moderators.id", ondelete="CASCADE"), index=True
    )
    comment_id: Mapped[int | None] = mapped_column(
        ForeignKey("comments.id", ondelete="CASCADE"), index=True
    )
    # Kind-specific details, e.g. the comments of a digest.
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[MailStatus] = mapped_column(_enum(MailStatus), default=MailStatus.PENDING)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    lease_owner: Mapped[str | None] = mapped_column(String(100), default=None)
    lease_expires_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    last_error: Mapped[str | None] = mapped_column(String(500), default=None)
    message_id: Mapped[str | None] = mapped_column(String(200), default=None)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[dt.datetime | None] = mapped_column(default=None)

    comment: Mapped[Comment | None] = relationship(lazy="joined")
    moderator: Mapped[Moderator | None] = relationship(lazy="joined")


class BanKind(enum.StrEnum):
    EMAIL = "email"
    DOMAIN = "domain"
    NETWORK = "network"


class Ban(Base):
    """An email address, a mail domain or a client network barred from a site (``site_id``) or
    from every site (None, set by admins only), until ``expires_at`` (None: for good).

    ``value`` is what submissions are matched by, one indexed column for all three kinds so the
    check is one index lookup: an address's ``address_key``, a domain in lower-case ASCII (IDNA),
    a network in CIDR (never narrower than the /24 or /48 a comment keeps).
    """

    __tablename__ = "bans"

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int | None] = mapped_column(
        ForeignKey("sites.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[BanKind] = mapped_column(_enum(BanKind))
    value: Mapped[str] = mapped_column(String(762), index=True)
    reason: Mapped[str] = mapped_column(String(500))
    expires_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    created_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("moderators.id", ondelete="SET NULL")
    )
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    site: Mapped[Site | None] = relationship(lazy="joined")
    created_by: Mapped[Moderator | None] = relationship(lazy="joined")

    def active(self, now: dt.datetime) -> bool:
        return self.expires_at is None or self.expires_at > now
