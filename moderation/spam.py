"""Spam and trust: an ordered pipeline of explainable checks run on every submission.

Each check looks at one candidate comment and returns a :class:`Signal` (a verdict and a reason)
or nothing. The pipeline keeps every signal that fired on the comment (``Comment.signals``), so a
moderator sees why a comment was held, and the strongest verdict decides the comment's fate:
``reject`` refuses the submission (422 naming the field), ``spam`` files it as spam (the sender
still sees the normal answer), ``hold`` and ``accept`` leave it pending for a moderator.

Checks are plain callables; a later check (a verified email, say) is one more entry in the list.
Nothing here reaches the network: the one lookup that needs DNS (deliverability) is made by the
caller before the database transaction and handed in as :class:`Evidence`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import functools
import hashlib
import hmac
import ipaddress
import re
from collections.abc import Sequence
from typing import Any, Protocol

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import bindparam, func, or_, select
from sqlalchemy.orm import Session

from moderation import duplicates, i18n, learning
from moderation.db import DriverQuery
from moderation.errors import Banned, ValidationFailed
from moderation.models import Ban, BanKind, BanResponse, Post, Site, address_key


class Verdict(enum.StrEnum):
    """What a check says about a submission, weakest first."""

    ACCEPT = "accept"
    HOLD = "hold"
    SPAM = "spam"
    REJECT = "reject"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {Verdict.ACCEPT: 0, Verdict.HOLD: 1, Verdict.SPAM: 2, Verdict.REJECT: 3}


class MailDomain(enum.StrEnum):
    """The result of the deliverability lookup for the author's email domain."""

    ACCEPTS = "accepts"
    NO_MAIL = "no_mail"  # NXDOMAIN, null MX, no MX and no usable address: definitely undeliverable
    UNKNOWN = "unknown"  # timeout, no answer from the nameservers, lookup not made


@dataclasses.dataclass(frozen=True)
class Signal:
    """One check that fired: which, its verdict and a reason a moderator can read."""

    check: str
    verdict: Verdict
    reason: str
    field: str | None = None
    # The learned check's spam score (0 to 1), kept even when it does not fire.
    score: float | None = None
    # Checks whose spam verdict this signal turns into a hold (it vouches for the comment).
    overrules: tuple[str, ...] = ()

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "check": self.check,
            "verdict": self.verdict.value,
            "reason": self.reason,
        }
        if self.field:
            data["field"] = self.field
        if self.score is not None:
            data["score"] = round(self.score, 4)
        return data


@dataclasses.dataclass(frozen=True)
class Evidence:
    """What the edge knows about a submission beyond its fields."""

    client_address: str | None = None
    honeypot: str | None = None
    form_token: str | None = None
    mail_domain: MailDomain = MailDomain.UNKNOWN


@dataclasses.dataclass(frozen=True)
class Candidate:
    """A submission about to become a comment, with everything the checks may look at."""

    site: Site
    post: Post
    author_name: str
    author_email: str
    body: str
    evidence: Evidence
    now: dt.datetime
    # The client's network as a comment keeps it (/24, /48; comments.client_network), and the
    # language of the form it came from.
    client_network: str | None = None
    lang: str = i18n.DEFAULT_LANGUAGE

    @functools.cached_property
    def words(self) -> list[str]:
        """The body's words, split once: for its sketch and for the learned check's tokens."""
        return duplicates.words(self.body)

    @functools.cached_property
    def sketch(self) -> duplicates.Sketch:
        """The body's sketch, made once: the duplicate check reads it, the comment stores it."""
        return duplicates.sketch(self.body, self.words)


class Check(Protocol):
    @property
    def name(self) -> str:
        """What its signals are stored under (``{"check": name, ...}``)."""

    @property
    def label(self) -> str:
        """What it found, in a moderator's words: the queue's "Why it was held" filter."""

    def __call__(self, session: Session, candidate: Candidate) -> Signal | None: ...


@dataclasses.dataclass(frozen=True)
class Outcome:
    verdict: Verdict
    signals: tuple[Signal, ...]
    spam_score: float | None = None

    def signals_json(self) -> list[dict[str, Any]]:
        return [s.as_json() for s in self.signals]


@dataclasses.dataclass(frozen=True)
class Pipeline:
    """Checks run in order; every one runs (so every reason is kept) unless one rejects."""

    checks: Sequence[Check]

    def run(self, session: Session, candidate: Candidate) -> Outcome:
        fired: list[Signal] = []
        spam_score = None
        overruled: set[str] = set()
        for check in self.checks:
            signal = check(session, candidate)
            if signal is not None and signal.score is not None:
                spam_score = signal.score
            if signal is not None:
                overruled.update(signal.overrules)
            if signal is None or signal.verdict is Verdict.ACCEPT:
                continue
            fired.append(signal)
            if signal.verdict is Verdict.REJECT:
                field = signal.field or "body"
                raise ValidationFailed(fields={field: signal.reason})
        if overruled:
            fired = [_overrule(s) if s.check in overruled else s for s in fired]
        verdict = max((s.verdict for s in fired), key=lambda v: v.rank, default=Verdict.ACCEPT)
        return Outcome(verdict, tuple(fired), spam_score)


def _overrule(signal: Signal) -> Signal:
    if signal.verdict is not Verdict.SPAM:
        return signal
    reason = f"{signal.reason} (held, not filed: the learned check finds it legitimate)"
    return dataclasses.replace(signal, verdict=Verdict.HOLD, reason=reason)


@functools.cache
def check_labels() -> dict[str, str]:
    """Every check's name and label in the pipeline's order, optional checks included: what the
    queue and the moderation API filter signals by, read from the pipeline so as never to drift."""
    # A pipeline built only to be read: no check runs, so its form-token key is never used.
    pipeline = default_pipeline(secret="unused")  # noqa: S106
    return {check.name: check.label for check in pipeline.checks}


# Honeypot ------------------------------------------------------------------------------------

HONEYPOT_FIELD = "website"


@dataclasses.dataclass(frozen=True)
class HoneypotCheck:
    """A field people never see or fill in; bots that fill every field give themselves away."""

    name: str = "honeypot"
    label: str = "Hidden field filled in"

    def __call__(self, session: Session, candidate: Candidate) -> Signal | None:
        if candidate.evidence.honeypot:
            return Signal(self.name, Verdict.SPAM, "filled in the hidden field people never see")
        return None


# Time-trap ------------------------------------------------------------------------------------

FORM_TOKEN_FIELD = "form_token"  # noqa: S105 (a field name, not a secret)


@functools.cache
def _token_hmac(secret: str) -> hmac.HMAC:
    """The form tokens' HMAC, keyed once with their own key derived from the app's secret: every
    submission checks a token, and keying (deriving, padding, hashing the key) cost more than
    signing. Each MAC is made on a copy, so this one is never changed."""
    key = hashlib.sha256(b"moderation.form-token\x00" + secret.encode()).digest()
    return hmac.new(key, digestmod=hashlib.sha256)


def _token_mac(secret: str, payload: str) -> str:
    mac = _token_hmac(secret).copy()
    mac.update(payload.encode())
    return mac.hexdigest()[:32]


def issue_form_token(secret: str, site_slug: str, *, now: dt.datetime) -> str:
    """A signed token carrying the site and the time the form was rendered."""
    payload = f"{site_slug}.{int(now.timestamp())}"
    return f"{payload}.{_token_mac(secret, payload)}"


# An issued token: the site's slug, the time in seconds, 32 hex digits of signature.
_FORM_TOKEN_SHAPE = re.compile(r"([a-z0-9][a-z0-9-]{0,63})\.([0-9]{1,12})\.([0-9a-f]{32})")


def form_token_shaped(site_slug: str, token: str) -> bool:
    """Whether ``token`` has exactly the shape of one issued for this site: only such a token is
    sent back in a form (its signature and age are the time-trap's to judge)."""
    match = _FORM_TOKEN_SHAPE.fullmatch(token)
    return match is not None and match[1] == site_slug


def form_token_age(secret: str, site_slug: str, token: str, *, now: dt.datetime) -> float | None:
    """Seconds since the token was issued for this site, or None if it is forged or malformed."""
    payload, _, mac = token.rpartition(".")
    slug, _, issued = payload.rpartition(".")
    if slug != site_slug or not issued.isdigit():
        return None
    if not hmac.compare_digest(mac, _token_mac(secret, payload)):
        return None
    return now.timestamp() - int(issued)


# Faster than a person writes a comment, and older than a reader leaves a form open. Fixed, not
# settings: they are part of the check's design, and the embed shows the minimum to the reader.
TIME_TRAP_MIN_SECONDS = 3
TIME_TRAP_MAX_AGE = dt.timedelta(hours=24)


@dataclasses.dataclass(frozen=True)
class TimeTrapCheck:
    """People take more than a few seconds to write a comment; scripts post at once."""

    secret: str
    min_seconds: int = TIME_TRAP_MIN_SECONDS
    max_age: dt.timedelta = TIME_TRAP_MAX_AGE
    verdict: Verdict = Verdict.HOLD
    name: str = "time_trap"
    label: str = "Sent too fast or without a valid form token"

    def __call__(self, session: Session, candidate: Candidate) -> Signal | None:
        token = candidate.evidence.form_token
        if not token:
            return Signal(self.name, self.verdict, "sent without a form token")
        age = form_token_age(self.secret, candidate.site.slug, token, now=candidate.now)
        if age is None:
            return Signal(self.name, self.verdict, "sent with a form token that is not valid")
        if age > self.max_age.total_seconds():
            return Signal(self.name, self.verdict, "sent with an expired form token")
        if age < self.min_seconds:
            reason = f"sent less than {self.min_seconds} s after the form was shown"
            return Signal(self.name, self.verdict, reason)
        return None


# Links ----------------------------------------------------------------------------------------

# "http://", "https://" or "www." after a word boundary, or "<a" and a space, any case. Written so
# that sre skips from one 'h', 'w' or '<' to the next (a pattern that starts with \b, or ignores
# case in its first character, is tried at every position: five times the cost): the first
# character is a case-sensitive set, the rest ignores case, and "(?<!\w.)" is the \b before the
# first character. Same matches as the plain expression (tests/test_spam_equivalence.py).
_LINK = re.compile(r"[HWhw<](?i:(?<=h)(?<!\w.)ttps?://|(?<=w)(?<!\w.)ww\.|(?<=<)a\s)")


def count_links(text: str) -> int:
    return len(_LINK.findall(text))


@dataclasses.dataclass(frozen=True)
class LinksCheck:
    """More links than the site allows (default 2) is the shape of most link spam."""

    name: str = "links"
    label: str = "Too many links"

    def __call__(self, session: Session, candidate: Candidate) -> Signal | None:
        links = count_links(candidate.body)
        limit = candidate.site.link_limit
        if links > limit:
            return Signal(
                self.name,
                Verdict.HOLD,
                f"{links} links; this site allows {limit}",
                field="body",
            )
        return None


# Blocklists -----------------------------------------------------------------------------------

_BLOCKLIST_FIELDS = (
    ("body", "the comment"),
    ("author_name", "the name"),
    ("author_email", "the email address"),
    ("client_address", "the client address"),
)


@dataclasses.dataclass(frozen=True)
class BlocklistCheck:
    """The site's own terms, WordPress-style: spam terms mark spam, hold terms hold.

    Terms match case-insensitively anywhere in the text, name, email or client address (so
    ``203.0.113.`` blocks a network). The reason names the field, never the address or term.
    """

    name: str = "blocklist"
    label: str = "Blocklisted term"

    def __call__(self, session: Session, candidate: Candidate) -> Signal | None:
        site = candidate.site
        if not site.spam_terms and not site.hold_terms:
            return None  # most sites have no terms: nothing to casefold the fields for
        values = {
            "body": candidate.body,
            "author_name": candidate.author_name,
            "author_email": candidate.author_email,
            "client_address": candidate.evidence.client_address or "",
        }
        lowered = {k: v.casefold() for k, v in values.items()}
        for terms, verdict, kind in (
            (site.spam_terms, Verdict.SPAM, "spam"),
            (site.hold_terms, Verdict.HOLD, "hold"),
        ):
            for term in terms or []:
                needle = str(term).strip().casefold()
                if not needle:
                    continue
                for field, label in _BLOCKLIST_FIELDS:
                    if needle in lowered[field]:
                        return Signal(
                            self.name,
                            verdict,
                            f"{label} contains one of the site's {kind} terms",
                            field=field if field != "client_address" else None,
                        )
        return None


# Duplicates -----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class DuplicateCheck:
    """The same comment again on the same post: exact copies are spam, near copies are held.

    A short exact copy ("Thank you!") is only held: two people may well write it. The texts are
    compared by their sketches (moderation.duplicates), found by index: the cost depends neither
    on how many comments the post has nor on how long they are.
    """

    window: dt.timedelta = dt.timedelta(days=7)
    near: float = 0.8
    min_spam_words: int = 6
    name: str = "duplicate"
    label: str = "Duplicate comment"

    def __call__(self, session: Session, candidate: Candidate) -> Signal | None:
        post_id: int | None = candidate.post.id  # None: a new post, so nothing to repeat
        if post_id is None:
            return None
        mine = candidate.sketch
        since = candidate.now - self.window
        same, best = duplicates.nearest(session, post_id, mine, since=since, at_least=self.near)
        if same:
            verdict = Verdict.SPAM if mine.words >= self.min_spam_words else Verdict.HOLD
            return Signal(self.name, verdict, "the same as a recent comment on this post")
        if best >= self.near:
            return Signal(
                self.name,
                Verdict.HOLD,
                f"nearly the same ({best:.0%}) as a recent comment on this post",
            )
        return None


# Personal data --------------------------------------------------------------------------------

PERSONAL_DATA = "contains personal data"


@dataclasses.dataclass(frozen=True)
class _PersonalPattern:
    """A kind of personal data, its expression, and a clue: a cheaper expression found in every
    match. sre tries the expression (it starts with \\b or a lookbehind) at every position of a
    text, but finds a clue skipping from one '@' or digit to the next: the expression is tried
    only on a text holding its clue, which most comments do not (0.1 ms a kilobyte to 0.01)."""

    kind: str
    pattern: re.Pattern[str]
    clue: re.Pattern[str]

    @property
    def digit_clue(self) -> bool:
        return self.clue.pattern.startswith(r"\d")


_PERSONAL_PATTERNS = (
    _PersonalPattern(
        "email address",
        # Tried only where a run of address characters starts, each run read once (possessive):
        # tried at every position, "a" * 10000 cost a second.
        re.compile(r"(?<![\w.+'-])[\w.+'-]++@[\w-]++(?:\.[\w-]++)++"),
        re.compile("@"),
    ),
    _PersonalPattern(
        "National Insurance number",
        re.compile(
            r"\b(?!BG|GB|KN|NK|NT|TN|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z]"
            r"\s?\d{2}\s?\d{2}\s?\d{2}\s?[A-D]\b",
            re.IGNORECASE,
        ),
        re.compile(r"\d\d\s?\d\d\s?\d\d"),
    ),
    _PersonalPattern(
        "phone number",
        # UK numbers: 0 or +44 (optionally "(0)") then 9 or 10 more digits, spaced or dashed.
        re.compile(r"(?<![\w+])(?:\+44\s?(?:\(0\)\s?)?|\(?0)\d(?:[\s)-]{0,2}\d){8,9}(?!\d)"),
        re.compile(r"\d(?:[\s)-]{0,2}\d){8}"),
    ),
    _PersonalPattern(
        "postcode",
        re.compile(
            r"\b(?:GIR\s?0AA|[A-PR-UWYZ][A-HK-Y]?\d[A-HJKPSTUW\d]?\s?\d[ABD-HJLNP-UW-Z]{2})\b",
            re.IGNORECASE,
        ),
        # The inward code's digit and letters ("0AA" too): any letters, in any case.
        re.compile(r"\d[^\W\d_]{2}"),
    ),
)
# The clues that start with a digit, sought in one scan first: most texts with digits (sums,
# dates, a house number) hold none of them, and then none is sought alone.
_DIGIT_CLUES = re.compile("|".join(p.clue.pattern for p in _PERSONAL_PATTERNS if p.digit_clue))


def _worth_trying(text: str) -> list[_PersonalPattern]:
    """The personal-data patterns whose clue the text holds: the only ones that may match it."""
    digit_clues = _DIGIT_CLUES.search(text) is not None
    return [
        p for p in _PERSONAL_PATTERNS if (digit_clues or not p.digit_clue) and p.clue.search(text)
    ]


def redact_personal_data(text: str) -> str:
    """The text with every piece of personal data the check finds replaced by a placeholder
    naming its kind ("[phone number removed]"): what a moderator's redaction leaves behind."""
    for p in _worth_trying(text):
        # Its placeholder holds no '@' and no digit: a clue after it was in the text before.
        text = p.pattern.sub(f"[{p.kind} removed]", text)
    return text


def held_for_personal_data(signals: Sequence[Any]) -> bool:
    """Whether the personal-data check fired on a comment (its stored signals), or readers
    reported it for personal data and it was taken down."""
    return any(
        isinstance(s, dict)
        and (
            s.get("check") == "personal_data"
            or (s.get("check") == "reported" and bool((s.get("counts") or {}).get("personal_data")))
        )
        for s in signals
    )


def personal_data_kinds(text: str) -> list[str]:
    """Which kinds of UK personal data the text seems to contain (never the data itself)."""
    return [p.kind for p in _worth_trying(text) if p.pattern.search(text)]


@dataclasses.dataclass(frozen=True)
class PersonalDataCheck:
    """Commenters often paste their phone number or address: hold so it is not published."""

    name: str = "personal_data"
    label: str = "Contains personal data"

    def __call__(self, session: Session, candidate: Candidate) -> Signal | None:
        kinds = personal_data_kinds(candidate.body)
        if kinds:
            return Signal(
                self.name, Verdict.HOLD, f"{PERSONAL_DATA} ({', '.join(kinds)})", field="body"
            )
        return None


# Email ----------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class DeliverabilityCheck:
    """A domain that definitely takes no mail cannot be "so we know you're a real person".

    The lookup itself is made at the edge, bounded in time; unknown never blocks.
    """

    name: str = "deliverability"
    label: str = "Email domain takes no mail"

    def __call__(self, session: Session, candidate: Candidate) -> Signal | None:
        if candidate.evidence.mail_domain is MailDomain.NO_MAIL:
            return Signal(
                self.name,
                Verdict.REJECT,
                "The domain of this email address does not accept email. Check it is right",
                field="author_email",
            )
        return None


def email_domain(address: str) -> str:
    return address.rpartition("@")[2].casefold()


def is_disposable(domain: str, blocklist: frozenset[str] | set[str]) -> bool:
    """The domain or any parent of it is on the list."""
    labels = domain.split(".")
    return any(".".join(labels[i:]) in blocklist for i in range(len(labels) - 1))


@dataclasses.dataclass(frozen=True)
class DisposableEmailCheck:
    """Throwaway inboxes: hold, as the address says nothing about the person."""

    blocklist: frozenset[str] | set[str]
    name: str = "disposable_email"
    label: str = "Disposable email address"

    def __call__(self, session: Session, candidate: Candidate) -> Signal | None:
        if is_disposable(email_domain(candidate.author_email), self.blocklist):
            return Signal(
                self.name, Verdict.HOLD, "uses a disposable email address", field="author_email"
            )
        return None


def disposable_domains() -> set[str]:
    """The maintained list of the disposable-email-domains project."""
    from disposable_email_domains import blocklist

    result: set[str] = blocklist
    return result


# Bans -----------------------------------------------------------------------------------------

# A network ban is never narrower than what a comment keeps of its client's address (/24, /48),
# nor wider than these: a ban of a sixteen-millionth of the Internet is the broadest there is.
BAN_NETWORK_PREFIXES = {4: (8, 24), 6: (16, 48)}
# A domain ban matches the domain and its subdomains; an address's domain is looked up with this
# many of its suffixes at most (itself and the shortest ones), so a hostile domain costs little.
BAN_DOMAIN_SUFFIXES = 10


def ascii_domain(address: str) -> str:
    """The lower-case ASCII (IDNA) form of an address's domain, as domain bans are stored."""
    domain = email_domain(address)
    if domain.isascii():
        return domain
    try:
        return validate_email(address, check_deliverability=False).ascii_domain.lower()
    except EmailNotValidError:
        return domain


def domain_suffixes(domain: str) -> list[str]:
    """The domain and its parents of two labels or more (a bounded number of them)."""
    labels = domain.split(".")
    suffixes = [".".join(labels[i:]) for i in range(len(labels) - 1)]
    if len(suffixes) > BAN_DOMAIN_SUFFIXES:
        suffixes = [suffixes[0], *suffixes[-(BAN_DOMAIN_SUFFIXES - 1) :]]
    return suffixes


def supernets(network: str | None) -> list[str]:
    """A comment's network (/24 or /48) and every network a ban may name that holds it."""
    return list(_supernets(network)) if network else []


@functools.lru_cache(maxsize=4096)  # a network's commenters come back: worked out once
def _supernets(network: str) -> tuple[str, ...]:
    try:
        net = ipaddress.ip_network(network)
    except ValueError:
        return ()
    widest, narrowest = BAN_NETWORK_PREFIXES[net.version]
    prefixes = range(min(net.prefixlen, narrowest), widest - 1, -1)
    # By integer masks and, for IPv6, by hand in RFC 5952's form (what str() of a network gives):
    # ipaddress's supernet() and IPv6 str() cost ten times as much, on every submission.
    if net.version == 4:
        top = int(net.network_address)
        fours = [top & ~((1 << (32 - p)) - 1) for p in prefixes]
        return tuple(
            f"{m >> 24}.{(m >> 16) & 255}.{(m >> 8) & 255}.{m & 255}/{p}"
            for m, p in zip(fours, prefixes, strict=True)
        )
    top = int(net.network_address) >> 80  # a /48 or wider: the first three groups, then zeros
    found = []
    for p in prefixes:
        masked = top & ~((1 << (48 - p)) - 1)
        groups = [masked >> 32, (masked >> 16) & 0xFFFF, masked & 0xFFFF]
        while groups and groups[-1] == 0:
            groups.pop()  # trailing zero groups join the run of zeros that "::" stands for
        found.append(":".join(f"{g:x}" for g in groups) + f"::/{p}")
    return tuple(found)


def ban_values(author_email: str, client_network: str | None) -> list[str]:
    """Every ``Ban.value`` that would bar this sender: the address's key, its domain and parent
    domains, the network and the networks holding it (the three kinds never share a value)."""
    return [
        address_key(author_email),
        *domain_suffixes(ascii_domain(author_email)),
        *supernets(client_network),
    ]


@functools.cache
def _active_ban(count: int) -> DriverQuery:
    """One indexed lookup (``ix_bans_value``) of ``count`` values, built once per count: the
    check runs on every submission."""
    return DriverQuery(
        select(Ban.id, Ban.kind)
        .where(
            Ban.value.in_([bindparam(f"value{n}") for n in range(count)]),
            # This site's or every site's (NULL); written so that no planner prefers the site's
            # index (a site with many bans) over the value's.
            func.coalesce(Ban.site_id, bindparam("site_id")) == bindparam("site_id"),
            or_(Ban.expires_at.is_(None), Ban.expires_at > bindparam("now")),
        )
        .order_by(Ban.id)
        .limit(1)
    )


def find_ban(
    session: Session, site_id: int, values: Sequence[str], *, now: dt.datetime
) -> tuple[int, BanKind] | None:
    """The first ban in force on the site (or on every site) naming one of ``values``."""
    params: dict[str, object] = {f"value{n}": value for n, value in enumerate(values)}
    rows = _active_ban(len(values)).rows(session, {**params, "site_id": site_id, "now": now})
    return (rows[0][0], BanKind(rows[0][1])) if rows else None


_BANNED = {
    BanKind.EMAIL: "the email address",
    BanKind.DOMAIN: "the email domain",
    BanKind.NETWORK: "the client network",
}


@dataclasses.dataclass(frozen=True)
class BanCheck:
    """A banned address, domain or network: filed as spam, the sender told what anyone is told;
    or, where the site says so, refused with ``403 banned`` and the site's text. Expired bans
    stop matching by themselves (the lookup compares with now)."""

    name: str = "ban"
    label: str = "Banned address, domain or network"

    def __call__(self, session: Session, candidate: Candidate) -> Signal | None:
        values = ban_values(candidate.author_email, candidate.client_network)
        found = find_ban(session, candidate.site.id, values, now=candidate.now)
        if found is None:
            return None
        ban_id, kind = found
        site = candidate.site
        if site.ban_response is BanResponse.REFUSE:
            raise Banned(site.banned_text or i18n.translator(candidate.lang)("banned"))
        return Signal(self.name, Verdict.SPAM, f"{_BANNED[kind]} is banned (ban {ban_id})")


def filed_for_ban_only(signals: Sequence[Any]) -> bool:
    """Whether a comment is spam for a ban alone: it teaches the learned filter nothing, as a ban
    is about its sender, not its text."""
    filed = {s.get("check") for s in signals if isinstance(s, dict) and s.get("verdict") == "spam"}
    return filed == {BanCheck.name}


# The learned check ----------------------------------------------------------------------------

LIKELY_SPAM = "likely spam"
# A score at or above this (more spam than legitimate evidence) holds a comment as likely spam.
HOLD_SCORE = 0.5
# Below HOLD_SCORE a confident model vouches for a comment: a heuristic about its text alone (an
# exact repeat, which popular posts get from different people) then holds it rather than files it.
OVERRULES = ("duplicate",)
_SHOWN_EVIDENCE = 3
_LENGTHS = {"1-3": "1 to 3 words", "4-10": "4 to 10 words", "11-30": "11 to 30 words"}
_DESCRIPTIONS = {
    "link:query": "a link with a query string",
    "shape:email": "an e-mail address",
    "shape:phone": "a phone number",
    "shape:money": "a sum of money",
    "repeat:letter": "a letter repeated",
    "repeat:digit": "a digit repeated",
    "capitals:most": "mostly capital letters",
    "capitals:some": "many capital letters",
    "capitals:few": "few capital letters",
    "title:no words in common": "no words in common with the post's title",
    "title:shares words": "words from the post's title",
    "name:has digits": "digits in the author's name",
    "name:in text": "the author's name in the text",
    "links:0": "no links",
    "links:1": "one link",
    "links:2": "two links",
    "links:3": "three or more links",
}


def describe_token(token: str) -> str:
    """A token in a moderator's words; the author's name is never spelled out."""
    known = _DESCRIPTIONS.get(token)
    if known is not None:
        return known
    kind, _, value = token.partition(":")
    if kind == "link" and value:
        return f"a link to {value}"
    if kind == "link text":
        return f"a link reading '{value}'"
    if kind == "repeat":
        return f"'{value * 3}'"
    if kind == "length":
        return _LENGTHS.get(value, f"{value} words")
    if kind == "name":
        return "a name of that length" if value.startswith("words:") else "the author's name"
    return f"'{token}'"


def explain(score: learning.Score, candidate: Candidate, *, spam: bool) -> str:
    """The strongest evidence on the side of the verdict, without personal data: words of the
    author's name or address are never named."""
    named = duplicates.words(candidate.author_name + " " + candidate.author_email)
    personal = {*named, *(f"name:{word}" for word in named)}
    shown: list[str] = []
    for item in score.evidence:
        if (item.probability > 0.5) != spam or item.token in personal:
            continue
        words = describe_token(item.token)
        if words not in shown:
            shown.append(words)
        if len(shown) == _SHOWN_EVIDENCE:
            break
    side = "spam" if spam else "legitimate comments"
    signs = f"{len(shown)} sign{'s' if len(shown) != 1 else ''}"
    return f"{signs} often in {side} here: {', '.join(shown)}" if shown else "mixed evidence"


@dataclasses.dataclass(frozen=True)
class ClassifierCheck:
    """What this site's moderators (and the installation's) decided before, learned.

    Files as spam at the site's threshold once the model has enough decisions, holds "likely
    spam" above even odds, never refuses. Its reason names the tokens that weighed most.
    """

    name: str = "classifier"
    label: str = "Likely spam (learned from your decisions)"

    def __call__(self, session: Session, candidate: Candidate) -> Signal | None:
        tokens = learning.tokens(
            candidate.body,
            author_name=candidate.author_name,
            title=candidate.post.title,
            words=candidate.words,
        )
        result = learning.score(session, candidate.site.id, tokens)
        value = result.score
        threshold = candidate.site.spam_threshold
        if value >= threshold and threshold < 1 and result.confident:
            reason = f"spam ({value:.2f}): {explain(result, candidate, spam=True)}"
            return Signal(self.name, Verdict.SPAM, reason, score=value)
        if value >= HOLD_SCORE and result.evidence:
            reason = f"{LIKELY_SPAM} ({value:.2f}): {explain(result, candidate, spam=True)}"
            if not result.confident:
                reason += f"; still learning ({result.site_decisions} decisions so far)"
            return Signal(self.name, Verdict.HOLD, reason, score=value)
        vouch = OVERRULES if value < HOLD_SCORE and result.confident else ()
        return Signal(self.name, Verdict.ACCEPT, "", score=value, overrules=vouch)


def default_pipeline(
    *,
    secret: str,
    time_trap: bool = True,
    time_trap_min_seconds: int = TIME_TRAP_MIN_SECONDS,
    time_trap_max_age: dt.timedelta = TIME_TRAP_MAX_AGE,
    time_trap_verdict: Verdict = Verdict.HOLD,
    disposable: bool = True,
    classifier: bool = True,
) -> Pipeline:
    """Every check, in order: decisive first (a ban is one indexed query), the costly last."""
    # A ban first: where the site refuses banned senders, nothing else need run.
    checks: list[Check] = [BanCheck(), HoneypotCheck(), DeliverabilityCheck()]
    if time_trap:
        checks.append(
            TimeTrapCheck(
                secret,
                min_seconds=time_trap_min_seconds,
                max_age=time_trap_max_age,
                verdict=time_trap_verdict,
            )
        )
    checks += [LinksCheck(), BlocklistCheck(), PersonalDataCheck()]
    if disposable:
        checks.append(DisposableEmailCheck(disposable_domains()))
    checks.append(DuplicateCheck())
    if classifier:
        checks.append(ClassifierCheck())
    return Pipeline(checks)
