"""Rendering an outbox row into a MIME message: a plain-text part and an HTML part.

Every value that comes from a comment (name, text, post title) is shown, never obeyed: the HTML
part escapes it (Jinja autoescape) and neither part lets it become a link, since mail programs
turn anything that looks like an address into one. Header values are single lines.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import email.utils
import re
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jinja2
from sqlalchemy import select
from sqlalchemy.orm import Session

from moderation import i18n
from moderation.mail import links, outbox
from moderation.models import Comment, CommentStatus, Moderator, OutgoingMail, WebhookEndpoint

PACKAGE_DIR = Path(__file__).resolve().parent.parent
# Actions a moderator may take from a notification.
MAIL_ACTIONS = ("approve", "reject", "spam")

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# What a mail program would turn into a link: a scheme, "www.", an address, a dotted name.
# A scheme is the run of scheme characters before a ":" (with a letter in it), read once per run:
# tried from every letter, "a" * 10000 took a second.
_SCHEME = re.compile(r"(?<![a-z0-9+.-])([a-z0-9+.-]*+):(//)?", re.IGNORECASE)
_LETTER = re.compile(r"[a-z]", re.IGNORECASE)
_DOT = re.compile(r"(?<=[a-z0-9-])\.(?=[a-z0-9-])", re.IGNORECASE)
_AT = re.compile(r"(?<=\S)@(?=\S)")


def defang(text: str) -> str:
    """Comment text for mail: readable, with nothing a mail program would make a live link.

    ``http://evil.example/x`` becomes ``http[:]//evil[.]example/x``; ``a@b.c`` becomes
    ``a[at]b[.]c``.
    """
    text = _SCHEME.sub(
        lambda m: f"{m[1]}[:]{m[2] or ''}" if _LETTER.search(m[1]) else m[0],
        text,
    )
    text = _AT.sub("[at]", text)
    return _DOT.sub("[.]", text)


def header_text(value: str, limit: int = 150) -> str:
    """One line of header text: no control characters (so no header injection), bounded."""
    flat = " ".join(_CONTROL.sub(" ", value).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _template_folder() -> Path:
    """The templates bundled in the wheel, or the top-level folder of a source checkout."""
    bundled = PACKAGE_DIR / "templates"
    return bundled if bundled.is_dir() else PACKAGE_DIR.parent / "templates"


@dataclasses.dataclass(frozen=True)
class MailConfig:
    """What rendering needs: where links point, who mail is from, the key that signs links."""

    public_url: str
    mail_from: str
    secret: str


class Renderer:
    """Jinja environments for the two parts; the HTML one autoescapes everything."""

    def __init__(self, config: MailConfig):
        self.config = config
        loader = jinja2.FileSystemLoader(_template_folder())
        self.html = jinja2.Environment(
            loader=loader, autoescape=True, undefined=jinja2.StrictUndefined
        )
        # The text part is not markup, so nothing in it is escaped; comment text is defanged.
        self.text = jinja2.Environment(loader=loader, undefined=jinja2.StrictUndefined)  # noqa: S701
        for env in (self.html, self.text):
            env.filters["defang"] = defang

    def url(self, path: str) -> str:
        return self.config.public_url.rstrip("/") + path

    def link(
        self, purpose: str, payload: dict[str, Any], *, now: dt.datetime, valid_for: dt.timedelta
    ) -> str:
        token = links.sign(self.config.secret, purpose, payload, now=now, valid_for=valid_for)
        return self.url(f"/mail/{purpose}/{token}")

    def message(
        self,
        template: str,
        *,
        to: str,
        subject: str,
        now: dt.datetime,
        message_id: str,
        unsubscribe: str | None,
        lang: str = i18n.DEFAULT_LANGUAGE,
        **context: Any,
    ) -> EmailMessage:
        """The two parts of ``template`` in ``lang`` (the commenter's; moderators read English)."""
        lang = i18n.language(lang)
        context = {
            **context,
            "unsubscribe_url": unsubscribe,
            "lang": lang,
            "t": i18n.translator(lang),
        }
        msg = EmailMessage()
        msg["From"] = self.config.mail_from
        msg["To"] = to
        msg["Subject"] = header_text(subject)
        msg["Date"] = email.utils.format_datetime(now.astimezone(dt.UTC))
        msg["Message-ID"] = message_id
        msg["Auto-Submitted"] = "auto-generated"
        if unsubscribe is not None:
            # RFC 8058: a mail program may unsubscribe with one POST, no page to visit.
            msg["List-Unsubscribe"] = f"<{unsubscribe}>"
            msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        msg.set_content(self.text.get_template(f"mail/{template}.txt").render(context))
        msg.add_alternative(
            self.html.get_template(f"mail/{template}.html").render(context), subtype="html"
        )
        return msg

    def message_id(self) -> str:
        host = urlsplit(self.config.public_url).hostname or "localhost"
        return email.utils.make_msgid(domain=host)


def render(
    session: Session, renderer: Renderer, rows: list[OutgoingMail], *, now: dt.datetime
) -> EmailMessage | None:
    """The message for ``rows`` (one row, or a digest's rows for one moderator); None when there
    is nothing to say any more (the comment was moderated, erased or unsubscribed meanwhile)."""
    row = rows[0]
    message_id = row.message_id or renderer.message_id()
    for each in rows:
        each.message_id = message_id
    common: dict[str, Any] = {"now": now, "message_id": message_id}
    if row.kind == outbox.HELD_DIGEST:
        return _digest(session, renderer, rows, **common)
    if row.kind == outbox.WEBHOOK_DISABLED:
        return _endpoint_disabled(session, renderer, row, **common)
    comment = row.comment
    if comment is None:
        return None
    if row.kind == outbox.HELD:
        return _held(session, renderer, row, comment, **common)
    return _to_commenter(session, renderer, row, comment, **common)


def _endpoint_disabled(
    session: Session,
    renderer: Renderer,
    row: OutgoingMail,
    *,
    now: dt.datetime,
    message_id: str,
) -> EmailMessage | None:
    endpoint = session.scalar(
        select(WebhookEndpoint).where(WebhookEndpoint.public_id == row.data.get("endpoint"))
    )
    if endpoint is None or endpoint.enabled or not row.to_address:
        return None  # deleted or enabled again meanwhile: nothing to say
    return renderer.message(
        "webhook_disabled",
        to=row.to_address,
        subject="Webhooks stopped: an endpoint was disabled",
        now=now,
        message_id=message_id,
        unsubscribe=None,
        endpoint=endpoint,
        endpoint_url=renderer.url(f"/moderate/webhooks/{endpoint.public_id}"),
    )


def _post_title(comment: Comment) -> str:
    return defang(comment.post.title or comment.post.key)


def _action_links(
    renderer: Renderer, moderator: Moderator | None, comment: Comment, now: dt.datetime
) -> dict[str, str]:
    if moderator is None or not moderator.may_moderate(comment.post.site_id):
        return {}
    return {
        action: renderer.link(
            links.ACT,
            {"c": comment.public_id, "m": moderator.id, "a": action},
            now=now,
            valid_for=links.ACT_FOR,
        )
        for action in MAIL_ACTIONS
    }


def _held(
    session: Session,
    renderer: Renderer,
    row: OutgoingMail,
    comment: Comment,
    *,
    now: dt.datetime,
    message_id: str,
) -> EmailMessage | None:
    if comment.status is not CommentStatus.PENDING or not row.to_address:
        return None
    return renderer.message(
        "held",
        to=row.to_address,
        subject=f"Comment waiting for moderation on {_post_title(comment)}",
        now=now,
        message_id=message_id,
        unsubscribe=None,
        comment=comment,
        site=comment.post.site,
        queue_url=renderer.url(f"/moderate/comments/{comment.public_id}"),
        actions=_action_links(renderer, row.moderator, comment, now),
        act_hours=int(links.ACT_FOR.total_seconds() // 3600),
    )


def _digest(
    session: Session,
    renderer: Renderer,
    rows: list[OutgoingMail],
    *,
    now: dt.datetime,
    message_id: str,
) -> EmailMessage | None:
    moderator = rows[0].moderator
    waiting = [
        r.comment
        for r in rows
        if r.comment is not None and r.comment.status is CommentStatus.PENDING
    ]
    if moderator is None or not waiting:
        return None
    items = [{"comment": c, "actions": _action_links(renderer, moderator, c, now)} for c in waiting]
    count = len(items)
    return renderer.message(
        "digest",
        to=moderator.email,
        subject=f"{count} comment{'' if count == 1 else 's'} waiting for moderation",
        now=now,
        message_id=message_id,
        unsubscribe=None,
        items=items,
        queue_url=renderer.url("/moderate/"),
        act_hours=int(links.ACT_FOR.total_seconds() // 3600),
    )


def _to_commenter(
    session: Session,
    renderer: Renderer,
    row: OutgoingMail,
    comment: Comment,
    *,
    now: dt.datetime,
    message_id: str,
) -> EmailMessage | None:
    if not comment.author_email:
        return None  # erased
    site = comment.post.site
    context: dict[str, Any] = {"comment": comment, "site": site, "post": comment.post}
    t = i18n.translator(comment.lang)
    kind = row.kind
    if kind == outbox.CONFIRM:
        if comment.status is not CommentStatus.UNCONFIRMED:
            return None
        subject = t("mail_confirm_subject", site=site.name)
        context["confirm_url"] = renderer.link(
            links.CONFIRM, {"c": comment.public_id}, now=now, valid_for=links.CONFIRM_FOR
        )
        context["confirm_hours"] = int(links.CONFIRM_FOR.total_seconds() // 3600)
    elif kind == outbox.APPROVED:
        if comment.status is not CommentStatus.APPROVED or not comment.notify_decision:
            return None
        subject = t("mail_approved_subject", title=_post_title(comment))
        context["comment_url"] = f"{comment.post.url}#comment-{comment.public_id}"
    elif kind == outbox.REJECTED:
        if comment.status is not CommentStatus.REJECTED or not comment.notify_decision:
            return None
        subject = t("mail_rejected_subject", title=_post_title(comment))
    elif kind == outbox.REPLY:
        reply = session.get(Comment, int(row.data.get("reply_id", 0)))
        if (
            reply is None
            or reply.status is not CommentStatus.APPROVED
            or not comment.notify_replies
        ):
            return None
        subject = t("mail_reply_subject", title=_post_title(comment))
        context["reply"] = reply
        context["reply_url"] = f"{comment.post.url}#comment-{reply.public_id}"
    else:
        return None
    unsubscribe = renderer.link(
        links.UNSUBSCRIBE, {"c": comment.public_id}, now=now, valid_for=links.UNSUBSCRIBE_FOR
    )
    return renderer.message(
        kind,
        to=comment.author_email,
        subject=subject,
        now=now,
        message_id=message_id,
        unsubscribe=unsubscribe,
        lang=comment.lang,
        **context,
    )
