"""Turning a comment as typed into safe HTML: the one place that decides what markup survives.

Comments are plain text with paragraphs (blank lines) and line breaks, a few inline tags, and
links made clickable. bleach's ``Cleaner`` decides what markup survives (the allow-lists below)
and its ``LinkifyFilter`` makes links in the same pass, at write time; reads serve the stored HTML.
Cleaners are not thread-safe, so each thread keeps its own.

Worst cases are bounded, whatever the shape of the text:

- Links are found by :class:`LinkScanner`, linear in the text. bleach's own URL expression
  backtracks catastrophically (``"a.a-" * 2500`` took about a minute of CPU).
- bleach's parser is pure Python and costs tens of microseconds per tag or character reference,
  so one comment hands it at most :data:`MAX_TAGS` tags and no references. Past that budget, and
  for every ``<`` or ``&`` that cannot start a tag, the character is replaced by a placeholder
  before the cleaner and by what bleach would have written after it (``&lt;``; ``&amp;``, or the
  reference itself where it is one bleach keeps): the text a browser shows is the same, and
  bleach never parses it. Line and paragraph breaks travel the same way, so one cleaner pass
  serves every paragraph without tags.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from functools import partial
from typing import Any
from urllib.parse import urlsplit

import bleach
from bleach.html5lib_shim import convert_entity
from bleach.linkifier import TLDS, LinkifyFilter

ALLOWED_TAGS = frozenset({"a", "b", "br", "code", "em", "i", "strong"})
ALLOWED_ATTRIBUTES = {"a": ["href", "rel"]}
ALLOWED_PROTOCOLS = frozenset({"http", "https", "mailto"})
LINK_REL = "nofollow ugc noopener"

# Tags bleach parses per comment, their length and their attributes (its parser checks each
# attribute's name against all the others); the rest are shown as typed.
MAX_TAGS = 100
MAX_TAG_CHARS = 2_100
MAX_TAG_ATTRIBUTES = 12

_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")
_local = threading.local()

# Private-use characters stand for text the cleaner must not parse. A comment's own characters in
# this range are shown as U+FFFD, so a placeholder in the output is always one of ours.
_LT, _AMP, _REF, _BR, _PARAGRAPH = "\ue000", "\ue001", "\ue002", "\ue003", "\ue004"
_OWN_PLACEHOLDERS = {ord(c): "\ufffd" for c in (_LT, _AMP, _REF, _BR, _PARAGRAPH)}
# Code points the HTML parser reports one by one as errors (controls, noncharacters, surrogates):
# never meaningful in a comment, so shown as U+FFFD rather than parsed.
_INVALID = re.compile(
    "[\x01-\x08\x0b\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufdd0-\ufdef\ufffe\uffff"
    + "".join(chr(plane << 16 | 0xFFFE) + chr(plane << 16 | 0xFFFF) for plane in range(1, 17))
    + "]"
)
# A "<" or "&" that cannot start a tag or a reference is text; NUL is dropped, as bleach does.
_TEXT_LT = re.compile(r"<(?![A-Za-z/!?])")
_TEXT_AMP = re.compile(r"&(?!#[0-9]|#[xX][0-9A-Fa-f]|[A-Za-z])")
# A tag, comment or declaration up to its ">" (or the next "<"); a character reference.
_MARKUP = re.compile(
    r"<[A-Za-z/!?][^<>]*+>?|&(?:#[0-9]++|#[xX][0-9A-Fa-f]++|[A-Za-z][A-Za-z0-9]*+);?"
)


def _allowed_attribute(tag: str, name: str, value: str) -> bool:
    """Only absolute links: a relative or scheme-less href (``//evil.example``, ``/admin``)
    would resolve against the host page's own origin."""
    if name not in ALLOWED_ATTRIBUTES.get(tag, []):
        return False
    if name != "href":
        return True
    try:
        return urlsplit(value.strip()).scheme.lower() in ALLOWED_PROTOCOLS
    except ValueError:  # "http://[x": not a URL a browser would follow either
        return False


def _set_rel(attrs: dict[Any, str], new: bool = False) -> dict[Any, str]:
    attrs[(None, "rel")] = LINK_REL
    return attrs


# Links -------------------------------------------------------------------------------------------

_TLD_NAMES = frozenset(TLDS)
# A host name (with an optional scheme and user), found only where a run of name characters
# starts: every run is read once, so the search is linear. Possessive quantifiers never give back.
_HOST = re.compile(
    r"(?<![\w.@:/-])"
    r"(?:(?:https?|mailto):/{0,3}+(?:\w++(?::\w++)?@)?)?"
    r"(?P<host>\w[\w-]*+(?:\.[\w-]++)++)"
    r"(?::[0-9]++)?",
    re.IGNORECASE,
)
# A path or query: up to white space, an RFC 3986 "unsafe" character, a "<" or a break.
_PATH = re.compile(r"[/?][^\s{}|\\^`<>\"\ue000\ue003\ue004]*+")
_SPAN = re.compile(r".*", re.DOTALL)


class LinkScanner:
    """bleach's ``url_re``: finds the same links as bleach's expression (a domain with a known
    top-level domain, an optional http, https or mailto scheme, a path), in linear time.

    Trailing full stops, commas and unbalanced closing brackets are left out of the link here,
    in one pass, so bleach's own trimming (a loop that copies the link per character) has
    nothing to do.
    """

    def finditer(self, text: str) -> Iterator[re.Match[str]]:
        position = 0
        while match := _HOST.search(text, position):
            previous, end = position, match.end()
            position = end
            if match.group("host").rpartition(".")[2].lower() not in _TLD_NAMES:
                continue
            path = _PATH.match(text, end)
            if path:
                end = path.end()
                # As bleach does: a ")" closes each "(" just before the link, then trailing
                # full stops, commas and a ")" with no "(" in the link are not part of it.
                before = match.start()
                while before > previous and text[before - 1] == "(" and text[end - 1] == ")":
                    before -= 1
                    end -= 1
                opened = "(" in text[match.start() : end]
                while text[end - 1] in ".," or (text[end - 1] == ")" and not opened):
                    end -= 1
                position = end
            span = _SPAN.match(text, match.start(), end)
            assert span is not None
            yield span


def _cleaner() -> bleach.Cleaner:
    cleaner: bleach.Cleaner | None = getattr(_local, "cleaner", None)
    if cleaner is None:
        linkify = partial(
            LinkifyFilter, callbacks=[_set_rel], skip_tags={"code"}, url_re=LinkScanner()
        )
        cleaner = bleach.Cleaner(
            tags=ALLOWED_TAGS,
            attributes=_allowed_attribute,
            protocols=ALLOWED_PROTOCOLS,
            strip=False,
            strip_comments=True,
            filters=[linkify],
        )
        _local.cleaner = cleaner
    return cleaner


# Bounding the parser's work ----------------------------------------------------------------------


class _Markup:
    """Replaces what bleach need not parse with placeholders, counting what it must parse."""

    def __init__(self, budget: int, breaks: bool):
        self.budget = budget
        self.breaks = breaks  # line breaks become <br> (a comment) or stay (markup)
        self.tags = 0

    def prepare(self, text: str) -> str:
        text = _INVALID.sub("\ufffd", text.translate(_OWN_PLACEHOLDERS)).replace("\x00", "")
        text = _TEXT_AMP.sub(_AMP, _TEXT_LT.sub(_LT, text))
        text = _MARKUP.sub(self._replace, text)
        return text.replace("\n", _BR) if self.breaks else text

    def _replace(self, match: re.Match[str]) -> str:
        found = match.group()
        if found[0] == "&":
            # bleach keeps a numeric reference, or a named one it knows (its own table, smaller
            # than HTML5's: "&colon;" it escapes), and escapes the rest.
            kept = found[-1] == ";" and (found[1] == "#" or convert_entity(found[1:-1]) is not None)
            return (_REF if kept else _AMP) + found[1:]
        if self.budget > 0 and _is_tag(found):
            self.budget -= 1
            self.tags += 1
            return found.replace("\n", " ") if self.breaks else found
        # Over budget or not a tag at all: text, as the browser would show it.
        return _LT + found[1:].replace("&", _AMP).replace("\x00", "")


_SEPARATORS = re.compile(r"[\s/]+")
# A quoted attribute value counts as one separator, whatever its spaces and slashes (a link's
# path), so that the next attribute, written straight after it, still counts.
_QUOTED = re.compile(r"\"[^\"]*+\"|'[^']*+'")


def _is_tag(found: str) -> bool:
    """A whole tag (or comment) of bounded size: an unterminated one is text."""
    return (
        len(found) > 1
        and found[-1] == ">"
        and len(found) <= MAX_TAG_CHARS
        and len(_SEPARATORS.findall(_QUOTED.sub(" ", found))) <= MAX_TAG_ATTRIBUTES + 1
    )


# A named character reference in the cleaner's output (linear: possessive, no nesting).
_NAMED_REFERENCE = re.compile(r"&([A-Za-z][A-Za-z0-9]*+);")


def _known_reference(match: re.Match[str]) -> str:
    return (
        match.group()
        if convert_entity(match.group(1)) is not None
        else "&amp;" + match.group(1) + ";"
    )


def _restore(html: str) -> str:
    """The placeholders back to what bleach would have written; then any named reference bleach
    does not know escaped, wherever it is. bleach passes such a reference through where it
    escapes markup itself (a disallowed tag's text, a bogus comment) and escapes it on the next
    pass, so without this, cleaning the output again would change it."""
    restored = html.replace(_LT, "&lt;").replace(_AMP, "&amp;").replace(_REF, "&")
    return _NAMED_REFERENCE.sub(_known_reference, restored.replace(_BR, "<br>"))


def normalise_text(text: str) -> str:
    """Line endings to ``\\n``, trailing space trimmed: the text as it is stored and shown."""
    return text.replace("\r\n", "\n").replace("\r", "\n").strip()


def clean(html: str) -> str:
    """One pass of the allow-list and the linkifier over a piece of markup."""
    prepared = _Markup(MAX_TAGS, breaks=False).prepare(html)
    result: str = _cleaner().clean(prepared)
    return _restore(result)


def render_comment(text: str) -> str:
    """Safe HTML for a comment's text: paragraphs, line breaks, allowed inline tags, links."""
    paragraphs = [p.strip() for p in _PARAGRAPH_BREAK.split(normalise_text(text)) if p.strip()]
    markup = _Markup(MAX_TAGS, breaks=True)
    cleaned: list[str | None] = []
    plain: list[str] = []
    for paragraph in paragraphs:
        tags = markup.tags
        prepared = markup.prepare(paragraph)
        if markup.tags > tags:
            # A paragraph with tags is cleaned on its own, so an unclosed tag cannot span
            # paragraphs; there are at most MAX_TAGS of them.
            cleaned.append(_cleaner().clean(prepared))
        else:
            cleaned.append(None)
            plain.append(prepared)
    # Paragraphs without tags take one pass between them, however many there are.
    plain_html = iter(_cleaner().clean(_PARAGRAPH.join(plain)).split(_PARAGRAPH) if plain else [])
    return "\n".join(
        f"<p>{_restore(html if html is not None else next(plain_html))}</p>" for html in cleaned
    )
