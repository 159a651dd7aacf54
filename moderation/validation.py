"""Checking a submission at the boundary and turning it into an immutable value.

The same rules serve the JSON API and the no-JavaScript form, which use the same field names.
Messages follow the GOV.UK design system's style: they say what to do, in plain words.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Mapping
from urllib.parse import SplitResult, urlsplit

from email_validator import EmailNotValidError, validate_email

from moderation import i18n, posts
from moderation.errors import ValidationFailed
from moderation.sanitising import normalise_text

MAX_NAME = 100
MAX_EMAIL = 254
MAX_BODY = 10_000
# Threads nest this deep; a reply to a comment at the deepest level joins that level.
MAX_DEPTH = 3
MAX_POST_KEY = 500
MAX_TITLE = 300
MAX_URL = 2000
MAX_LANG = 35

# A language tag (BCP 47's shape): "cy", "cy-GB", "en".
LANGUAGE_TAG = re.compile(r"[A-Za-z]{1,8}(?:-[A-Za-z0-9]{1,8})*")

# C0 controls other than tab and newline, DEL, and C1 controls never belong in a comment.
CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
# Nor any control or line separator in a one-line field (a name, a title, a post's address): a CR
# in a post's URL broke the redirect of every later no-JS comment on the post.
SINGLE_LINE_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


@dataclasses.dataclass(frozen=True)
class CommentSubmission:
    """A comment as submitted, checked and normalised; the email is email-validator's form."""

    post: str
    author_name: str
    author_email: str
    body: str
    post_title: str | None = None
    post_url: str | None = None
    parent_id: str | None = None
    # Opt-ins: mail me when my comment is approved or rejected; mail me replies to it.
    notify: bool = False
    notify_replies: bool = False
    # The language of the form ("en", "cy"; others are English), for the mail the author gets.
    lang: str = i18n.DEFAULT_LANGUAGE
    # When the blog published the post (its embed's data-published), for the automatic close.
    published: dt.datetime | None = None


class _Fields:
    """Collects per-field errors so a commenter sees every problem at once."""

    def __init__(self, data: Mapping[str, object]):
        self.data = data
        self.errors: dict[str, str] = {}

    def flag(self, name: str) -> bool:
        """A checkbox (form: present or "on"/"true"/"1") or a JSON boolean."""
        raw = self.data.get(name)
        if raw is None or raw is False or raw == "":
            return False
        if raw is True or (
            isinstance(raw, str) and raw.strip().lower() in ("on", "true", "1", "yes")
        ):
            return True
        if isinstance(raw, str) and raw.strip().lower() in ("off", "false", "0", "no"):
            return False
        self.errors[name] = "Choose yes or no"
        return False

    def text(
        self, name: str, *, label: str, limit: int, required: bool, multiline: bool = False
    ) -> str | None:
        raw = self.data.get(name)
        if raw is None or raw == "":
            if required:
                self.errors[name] = f"Enter {label}"
            return None
        if not isinstance(raw, str):
            self.errors[name] = f"{label[0].upper()}{label[1:]} must be text"
            return None
        value = normalise_text(raw) if multiline else raw.strip()
        if not multiline and ("\n" in value or "\r" in value):
            self.errors[name] = f"{label[0].upper()}{label[1:]} must be on one line"
            return None
        forbidden = CONTROL_CHARACTERS if multiline else SINGLE_LINE_FORBIDDEN
        if forbidden.search(value):
            self.errors[name] = (
                f"{label[0].upper()}{label[1:]} contains characters that are not allowed"
            )
            return None
        if not value:
            if required:
                self.errors[name] = f"Enter {label}"
            return None
        if len(value) > limit:
            self.errors[name] = (
                f"{label[0].upper()}{label[1:]} must be {limit:,} characters or fewer"
            )
            return None
        return value


def split_url(url: str) -> SplitResult | None:
    """``url`` split into its parts, or None where it cannot be an address at all: an unclosed
    or invalid IPv6 literal (``http://[``), a port that is no port (``https://x:99999``).
    urlsplit raises ValueError on those; every caller that checks a URL goes through here."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError on a port out of range or not a number)
    except ValueError:
        return None
    return parts


def _scheme(url: str) -> str:
    try:
        return urlsplit(url).scheme
    except ValueError:  # "http://[x" (an unclosed IPv6 literal) is no address at all
        return ""


def parse_submission(data: Mapping[str, object]) -> CommentSubmission:
    """Validate a submission's fields; raise :class:`ValidationFailed` naming each bad field."""
    fields = _Fields(data)
    post = fields.text("post", label="the post", limit=MAX_POST_KEY, required=True)
    title = fields.text("post_title", label="the post title", limit=MAX_TITLE, required=False)
    url = fields.text("post_url", label="the post address", limit=MAX_URL, required=False)
    name = fields.text("author_name", label="your name", limit=MAX_NAME, required=True)
    email = fields.text("author_email", label="your email address", limit=MAX_EMAIL, required=True)
    body = fields.text("body", label="your comment", limit=MAX_BODY, required=True, multiline=True)
    parent = fields.text("parent_id", label="the comment you reply to", limit=64, required=False)
    notify = fields.flag("notify")
    notify_replies = fields.flag("notify_replies")
    lang = data.get("lang", i18n.DEFAULT_LANGUAGE)
    published = None
    try:
        published = posts.parse_published(data.get("published"))
    except ValueError:
        fields.errors["published"] = "Give the post's publication date, like 2024-03-28"

    if post is not None and not post.startswith("/"):
        fields.errors["post"] = "The post must be given by its path, starting with /"
    if url is not None and _scheme(url) not in ("http", "https"):
        fields.errors["post_url"] = "The post address must start with http:// or https://"
    if not (isinstance(lang, str) and len(lang) <= MAX_LANG and LANGUAGE_TAG.fullmatch(lang)):
        fields.errors["lang"] = "Give the language as a code, like cy or en"
        lang = None
    if email is not None:
        try:
            email = validate_email(email, check_deliverability=False).normalized
        except EmailNotValidError:
            fields.errors["author_email"] = (
                "Enter an email address in the correct format, like name@example.com"
            )

    if fields.errors:
        raise ValidationFailed(fields=fields.errors)
    assert post is not None and name is not None and email is not None and body is not None
    return CommentSubmission(
        post=post,
        post_title=title,
        post_url=url,
        author_name=name,
        author_email=email,
        body=body,
        parent_id=parent,
        notify=notify,
        notify_replies=notify_replies,
        lang=i18n.language(lang),
        published=published,
    )
