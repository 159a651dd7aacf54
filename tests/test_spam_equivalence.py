"""The spam checks' fast paths give the very results of the plain expressions they replaced.

The links expression was rewritten so that sre skips to its candidates, the personal-data
patterns are tried only on texts holding their clue, the blocklist check skips sites without
terms and the form tokens' key is derived once. The expressions and code they replaced are kept
here, and only here, as the oracle: generated texts (the characters and pieces each expression
turns on, in any case, with Unicode letters, digits and spaces mixed in) and every comment of the
YouTube Spam Collection must get the same answers from both.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import hmac
import re

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from bench.spam_corpus import load
from bench.spam_pipeline import kilobyte_body
from moderation.models import Post, Site
from moderation.spam import (
    _LINK,
    BlocklistCheck,
    Candidate,
    Evidence,
    Signal,
    Verdict,
    _token_mac,
    count_links,
    form_token_age,
    issue_form_token,
    personal_data_kinds,
    redact_personal_data,
)

# The oracle: the expressions as they were before the fast paths (moderation/spam.py, b1022bf).
OLD_LINK = re.compile(r"(?:\bhttps?://|\bwww\.|<a\s)", re.IGNORECASE)
OLD_PERSONAL_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("email address", re.compile(r"(?<![\w.+'-])[\w.+'-]++@[\w-]++(?:\.[\w-]++)++")),
    (
        "National Insurance number",
        re.compile(
            r"\b(?!BG|GB|KN|NK|NT|TN|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z]"
            r"\s?\d{2}\s?\d{2}\s?\d{2}\s?[A-D]\b",
            re.IGNORECASE,
        ),
    ),
    (
        "phone number",
        re.compile(r"(?<![\w+])(?:\+44\s?(?:\(0\)\s?)?|\(?0)\d(?:[\s)-]{0,2}\d){8,9}(?!\d)"),
    ),
    (
        "postcode",
        re.compile(
            r"\b(?:GIR\s?0AA|[A-PR-UWYZ][A-HK-Y]?\d[A-HJKPSTUW\d]?\s?\d[ABD-HJLNP-UW-Z]{2})\b",
            re.IGNORECASE,
        ),
    ),
)


def old_personal_data_kinds(text: str) -> list[str]:
    return [kind for kind, pattern in OLD_PERSONAL_PATTERNS if pattern.search(text)]


def old_redact_personal_data(text: str) -> str:
    for kind, pattern in OLD_PERSONAL_PATTERNS:
        text = pattern.sub(f"[{kind} removed]", text)
    return text


def old_token_mac(secret: str, payload: str) -> str:
    key = hashlib.sha256(b"moderation.form-token\x00" + secret.encode()).digest()
    return hmac.new(key, payload.encode(), hashlib.sha256).hexdigest()[:32]


_BLOCKLIST_FIELDS = (
    ("body", "the comment"),
    ("author_name", "the name"),
    ("author_email", "the email address"),
    ("client_address", "the client address"),
)


def old_blocklist(candidate: Candidate) -> Signal | None:
    values = {
        "body": candidate.body,
        "author_name": candidate.author_name,
        "author_email": candidate.author_email,
        "client_address": candidate.evidence.client_address or "",
    }
    lowered = {k: v.casefold() for k, v in values.items()}
    site = candidate.site
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
                        "blocklist",
                        verdict,
                        f"{label} contains one of the site's {kind} terms",
                        field=field if field != "client_address" else None,
                    )
    return None


# What the expressions turn on: digits of several scripts, the separators of phone numbers, the
# letters of postcodes and NI numbers, the pieces of links and addresses, in both cases, and the
# characters that ignoring case makes equal to ASCII letters (long s, Kelvin sign, dotted I).
PIECES = [
    "0", "1", "2", "4", "7", "9", "44", "00", "12", "\u0663", "\uff13", "\u09e7", "\u00b2",
    " ", "  ", "\t", "\n", "\u00a0", "\u2003", "\x1c",
    "a", "A", "b", "B", "c", "C", "e", "E", "g", "G", "h", "H", "i", "I", "j", "k", "K", "m",
    "M", "n", "N", "p", "P", "q", "s", "S", "t", "T", "w", "W", "x", "z", "Z", "_",
    "\u017f", "\u212a", "\u0130", "\u0131", "\u00e9", "\u00c9", "\u0628", "\u4e2d", "\uff21",
    "@", ".", "-", "+", "(", ")", "'", "/", ":", "<", ">", "[", "]", ",",
    "www.", "WWW.", "wWw.", "http://", "https://", "HTTP://", "hTtPs://", "htt", "<a ", "<A\t",
    "<a\n", "<ab", "(0)", "+44", "+44 (0)", "GIR", "0AA", "SW1A", "2AA", "AB", "ZZ", "NI",
    "x@y.z", "@a.", "a@a.", ".com", "07700", "900123",
]  # fmt: skip
pieces = st.lists(st.sampled_from(PIECES), max_size=40).map("".join)
texts = st.one_of(pieces, st.text(max_size=60), st.lists(pieces, max_size=4).map(" ".join))

SHAPED = [
    "Call me on 07700 900123 any time",
    "My office is +44 20 7946 0958.",
    "Ring (020) 7946 0958",
    "+44 (0) 20-7946--0958 and 0800 123 4567 8",
    "My NI number is JG 10 37 21 C",
    "ni: ab123456c, or \u212aM 12 34 56 A, or \u017fA123456D, not BG123456A",
    "write to jane.doe@example.org please, or x@y.z0 7700 900123",
    "I live at 10 Downing Street, London SW1A 2AA (gir 0aa for Girobank)",
    "\u0663\u0663\u0663\u0663\u0663\u0663\u0663\u0663\u0663\u0663 and 0\u0663\u0663 \u0663\u0663"
    "\u0663 \u0663\u0663\u0663\u0663",
    "see http://a.com, HTTPS://B.org, www.c.uk, xwww.d, ahttp://e, <a href=x>, <A\tb>, <ab>",
    "a@a.com+07700900123 a@b.com(020) 7946 0958",
]


@functools.cache
def corpus_texts() -> list[str]:
    return [row.body for rows in load().values() for row in rows]


def same_links(text: str) -> None:
    assert [m.span() for m in _LINK.finditer(text)] == [m.span() for m in OLD_LINK.finditer(text)]
    assert count_links(text) == len(OLD_LINK.findall(text))


def same_personal_data(text: str) -> None:
    assert personal_data_kinds(text) == old_personal_data_kinds(text)
    assert redact_personal_data(text) == old_redact_personal_data(text)


@settings(max_examples=1000, deadline=None)
@given(text=texts)
@example(text="")
def test_links_are_counted_as_the_plain_expression_counts_them(text: str) -> None:
    same_links(text)


@settings(max_examples=1000, deadline=None)
@given(text=texts)
@example(text="")
def test_personal_data_is_found_and_redacted_as_by_the_plain_patterns(text: str) -> None:
    same_personal_data(text)


@pytest.mark.parametrize("text", SHAPED)
def test_shaped_texts_get_the_plain_expressions_answers(text: str) -> None:
    same_links(text)
    same_personal_data(text)
    assert old_personal_data_kinds(text) or OLD_LINK.search(text)  # each shows something


def test_the_youtube_comments_and_kilobyte_bodies_get_the_plain_expressions_answers() -> None:
    comments = corpus_texts()
    joined = " ".join(comments)
    kilobytes = [joined[i : i + 1000] for i in range(0, len(joined), 1000)]
    texts = comments + kilobytes + [kilobyte_body(n) for n in range(300)]
    found = 0
    for text in texts:
        same_links(text)
        same_personal_data(text)
        found += bool(old_personal_data_kinds(text))
    assert found >= 5  # a few phone numbers and addresses: the comparison means something


@settings(max_examples=300, deadline=None)
@given(
    secret=st.text(min_size=1, max_size=50),
    slug=st.from_regex(r"[a-z0-9][a-z0-9-]{0,20}", fullmatch=True),
    seconds=st.integers(min_value=0, max_value=2**34),  # up to the year 2514
)
def test_form_tokens_are_signed_with_the_key_derived_as_before(
    secret: str, slug: str, seconds: int
) -> None:
    payload = f"{slug}.{seconds}"
    assert _token_mac(secret, payload) == old_token_mac(secret, payload)
    now = dt.datetime.fromtimestamp(seconds, dt.UTC)
    token = issue_form_token(secret, slug, now=now)
    assert token == f"{payload}.{old_token_mac(secret, payload)}"
    assert form_token_age(secret, slug, token, now=now) == 0
    assert form_token_age(secret + "x", slug, token, now=now) is None


TERMS = ["", "  ", "casino", "CASINO ", "203.0.113.", "@a@", "stra\u00dfe", "STRASSE", "\u017fpam"]
terms = st.none() | st.lists(st.sampled_from(TERMS), max_size=3)
fields = st.sampled_from(["", "Casino night", "strasse", "Stra\u00dfe", "spam", "x@a@b", "ok"])


@settings(max_examples=500, deadline=None)
@given(
    spam_terms=terms,
    hold_terms=terms,
    body=fields,
    name=fields,
    email=fields,
    address=st.none() | st.sampled_from(["203.0.113.9", "198.51.100.7", ""]),
)
def test_blocklists_give_the_signal_they_gave(
    spam_terms: list[str] | None,
    hold_terms: list[str] | None,
    body: str,
    name: str,
    email: str,
    address: str | None,
) -> None:
    site = Site(slug="s", name="S", spam_terms=spam_terms, hold_terms=hold_terms)
    candidate = Candidate(
        site=site,
        post=Post(site=site, key="/p/", title="P", url="https://example.org/p/"),
        author_name=name,
        author_email=email,
        body=body,
        evidence=Evidence(client_address=address),
        now=dt.datetime(2025, 1, 1, tzinfo=dt.UTC),
    )
    assert BlocklistCheck()(None, candidate) == old_blocklist(candidate)  # type: ignore[arg-type]
