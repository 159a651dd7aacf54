"""Turning a comment as typed into safe HTML: the one place that decides what markup survives.

Comments are plain text with paragraphs (blank lines) and line breaks, a few inline tags, and
links made clickable. Everything passes through one ``bleach.Cleaner`` with ``LinkifyFilter``, so
sanitising and linkifying happen in a single pass at write time; reads serve the stored HTML.
Cleaners are not thread-safe, so each thread keeps its own.
"""

from __future__ import annotations

import re
import threading
from functools import partial
from typing import Any
from urllib.parse import urlsplit

import bleach
from bleach.linkifier import LinkifyFilter

ALLOWED_TAGS = frozenset({"a", "b", "br", "code", "em", "i", "strong"})
ALLOWED_ATTRIBUTES = {"a": ["href", "rel"]}
ALLOWED_PROTOCOLS = frozenset({"http", "https", "mailto"})
LINK_REL = "nofollow ugc noopener"

_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")
_local = threading.local()


def _allowed_attribute(tag: str, name: str, value: str) -> bool:
    """Only absolute links: a relative or scheme-less href (``//evil.example``, ``/admin``)
    would resolve against the host page's own origin."""
    if name not in ALLOWED_ATTRIBUTES.get(tag, []):
        return False
    return name != "href" or urlsplit(value.strip()).scheme.lower() in ALLOWED_PROTOCOLS


def _set_rel(attrs: dict[Any, str], new: bool = False) -> dict[Any, str]:
    attrs[(None, "rel")] = LINK_REL
    return attrs


def _cleaner() -> bleach.Cleaner:
    cleaner: bleach.Cleaner | None = getattr(_local, "cleaner", None)
    if cleaner is None:
        cleaner = bleach.Cleaner(
            tags=ALLOWED_TAGS,
            attributes=_allowed_attribute,
            protocols=ALLOWED_PROTOCOLS,
            strip=False,
            strip_comments=True,
            filters=[partial(LinkifyFilter, callbacks=[_set_rel], skip_tags={"code"})],
        )
        _local.cleaner = cleaner
    return cleaner


def normalise_text(text: str) -> str:
    """Line endings to ``\\n``, trailing space trimmed: the text as it is stored and shown."""
    return text.replace("\r\n", "\n").replace("\r", "\n").strip()


def clean(html: str) -> str:
    """One pass of the allow-list and the linkifier over a piece of markup."""
    result: str = _cleaner().clean(html)
    return result


def render_comment(text: str) -> str:
    """Safe HTML for a comment's text: paragraphs, line breaks, allowed inline tags, links."""
    paragraphs = [p.strip() for p in _PARAGRAPH_BREAK.split(normalise_text(text)) if p.strip()]
    # Each paragraph is cleaned on its own so an unclosed tag cannot span paragraphs.
    return "\n".join(
        f"<p>{clean(paragraph.replace(chr(10), '<br>'))}</p>" for paragraph in paragraphs
    )
