"""Events as a short line for a team's chat: Slack's and Microsoft Teams' incoming webhooks.

Neither takes Standard Webhooks payloads, so an endpoint with a chat ``format`` gets one line
("Demo blog: new comment held on “A post” (Too many links)") and a link to the comment in the
moderation queue. Never the comment's text, its author or an email address: a chat channel is
read by more people than the queue. The post title and site name come from outside (a post is
created by its first comment), so whatever the chat would read as markup is neutralised.
"""

from __future__ import annotations

from typing import Any

from moderation.models import WebhookFormat

TEST_LINE = "A test message from comment moderation: this channel will hear of held comments."
# What happened, per event type; {post} is the post's title in quotes.
LINES = {
    "comment.approved": "comment approved on {post}",
    "comment.rejected": "comment rejected on {post}",
    "comment.spam": "comment marked as spam on {post}",
    "comment.edited": "comment edited on {post}",
    "comment.deleted": "comment deleted on {post}",
    "comment.restored": "comment back in the queue on {post}",
    "comment.erased": "comment erased on {post} (personal data request)",
    "post.closed": "comments closed on {post}",
    "post.opened": "comments opened again on {post}",
    "comment.unapproved": "comment unpublished (back in the queue) on {post}",
    "comment.pinned": "comment pinned on {post}",
    "comment.unpinned": "comment unpinned on {post}",
    "comment.reported": "comment reported by a reader on {post}",
}
HELD_WITHOUT_SIGNALS = "every comment waits for approval"
MAX_TITLE = 120
_BRACKETS = str.maketrans("[]", "()")


def _plain(value: object, limit: int = MAX_TITLE) -> str:
    """One line of at most ``limit`` characters, no control characters."""
    text = " ".join(str(value or "").split())
    text = "".join(ch for ch in text if ch.isprintable())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def line_for(payload: dict[str, Any]) -> str:
    """The one line an event becomes, in plain text (no markup yet)."""
    kind = payload.get("type", "")
    data = payload.get("data") or {}
    if kind == "webhook.test":
        return TEST_LINE
    post = data.get("post") or {}
    site = data.get("site") or {}
    title = f"“{_plain(post.get('title') or post.get('key'))}”"
    if kind == "comment.submitted":
        if data.get("status") == "pending":
            reasons = [
                _plain(signal.get("reason"), 80)
                for signal in data.get("signals") or []
                if isinstance(signal, dict) and signal.get("reason")
            ]
            why = "; ".join(dict.fromkeys(reasons)) or HELD_WITHOUT_SIGNALS
            what = f"new comment held on {title} ({why})"
        else:
            what = f"new comment published on {title}"
    elif kind == "comment.reported" and (data.get("report") or {}).get("taken_down"):
        what = f"comment reported by readers and taken down on {title}"
    else:
        what = LINES.get(kind, "{post}: " + _plain(kind, 40)).format(post=title)
    name = _plain(site.get("name"), 80)
    return f"{name}: {what}" if name else what[:1].upper() + what[1:]


def queue_link(payload: dict[str, Any], public_url: str) -> str | None:
    """The comment's page in the moderation queue, if the service knows its own address."""
    comment_id = (payload.get("data") or {}).get("id")
    if not public_url or not isinstance(comment_id, str) or payload.get("type") == "webhook.test":
        return None
    return f"{public_url.rstrip('/')}/moderate/comments/{comment_id}"


def _slack_escape(text: str) -> str:
    # Slack reads <...> as links and mentions (<!channel>); & < > must be escaped.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _teams_escape(text: str) -> str:
    # Adaptive Cards read a Markdown subset: [text](url) would make a link.
    return text.translate(_BRACKETS)


def message(fmt: WebhookFormat, payload: dict[str, Any], public_url: str) -> dict[str, Any]:
    """The JSON body an event becomes for a Slack or Teams incoming webhook."""
    line = line_for(payload)
    link = queue_link(payload, public_url)
    if fmt is WebhookFormat.SLACK:
        text = _slack_escape(line)
        if link:
            text += f" <{link}|Open it in the queue>"
        return {"text": text}
    card: dict[str, Any] = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.2",
        "body": [{"type": "TextBlock", "text": _teams_escape(line), "wrap": True}],
    }
    if link:
        card["actions"] = [{"type": "Action.OpenUrl", "title": "Open it in the queue", "url": link}]
    return {
        "type": "message",
        "attachments": [
            {
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": None,
                "content": card,
            }
        ],
    }
