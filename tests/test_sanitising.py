"""The sanitiser's invariants, for generated and mutated hostile input: only allowed elements and
attributes come out, links only go to http, https or mailto, and cleaning is idempotent."""

from __future__ import annotations

from html.parser import HTMLParser
from urllib.parse import urlsplit

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from moderation.sanitising import (
    ALLOWED_ATTRIBUTES,
    ALLOWED_PROTOCOLS,
    ALLOWED_TAGS,
    LINK_REL,
    clean,
    render_comment,
)

FRAGMENTS = [
    "<script>alert(1)</script>", "<img src=x onerror=alert(1)>", "<svg><script>alert(1)</script>",
    "<svg onload=alert(1)>", "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
    "<noscript><p title=\"</noscript><img src=x onerror=alert(1)>\">", "<template><script>x</script>",
    "<a href=\"javascript:alert(1)\">x</a>", "<a href=\"jav&#x09;ascript:alert(1)\">x</a>",
    "<a href=\" JaVaScRiPt:alert(1)\">x</a>", "<a href=\"data:text/html,<script>x</script>\">x</a>",
    "<a href=\"vbscript:x\">x</a>", "<a href=\"//evil.example\">x</a>", "<a href=mailto:a@b.c>m</a>",
    "<a href=\"https://ok.example\" onclick=\"x\" style=\"x\" target=_blank>ok</a>",
    "<iframe src=//evil.example>", "<object data=x>", "<embed src=x>", "<base href=//evil>",
    "<form action=//evil><button>x</button></form>", "<style>*{}</style>", "<!-- comment -->",
    "<![CDATA[<script>x</script>]]>", "<b>bold<i>both</b>italic</i>", "<code>www.example.com</code>",
    "www.gov.uk", "http://example.com/?a=1&b=<2>", "&lt;script&gt;", "&#60;script&#62;", "\x00",
    "<em>", "</strong>", "<br/>", "<p>", "\n", "\n\n", "<", ">", "\"", "'", "`", "&",
]  # fmt: skip
hostile = st.lists(
    st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=12)), min_size=1, max_size=12
).map("".join)


class Inspector(HTMLParser):
    """Collects every start tag with its attributes, as a browser's tokenizer sees them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))


def inspect(html: str) -> list[tuple[str, list[tuple[str, str | None]]]]:
    parser = Inspector()
    parser.feed(html)
    parser.close()
    return parser.tags


def assert_safe(html: str) -> None:
    for tag, attrs in inspect(html):
        assert tag in ALLOWED_TAGS | {"p"}, tag
        for name, value in attrs:
            assert name in ALLOWED_ATTRIBUTES.get(tag, []), (tag, name)
            if name == "href":
                assert value is not None
                scheme = urlsplit(value.strip()).scheme.lower()
                assert scheme in ALLOWED_PROTOCOLS, value
            if name == "rel":
                assert value == LINK_REL


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hostile)
@example("<a href='javascript:alert(1)'>x</a>")
@example("<svg><a href='javascript:x'>y</a></svg>")
def test_only_allowed_markup_survives(text: str) -> None:
    assert_safe(clean(text))
    assert_safe(render_comment(text))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hostile)
def test_cleaning_is_idempotent(text: str) -> None:
    once = clean(text)
    assert clean(once) == once


def test_links_get_rel_and_plain_urls_become_links() -> None:
    html = render_comment("See www.gov.uk or <a href='https://x.example.com' rel='opener'>this</a>")
    assert html.count(f'rel="{LINK_REL}"') == 2
    assert 'href="http://www.gov.uk"' in html


def test_paragraphs_and_line_breaks() -> None:
    assert render_comment("one\ntwo\n\n\nthree") == "<p>one<br>two</p>\n<p>three</p>"
    assert render_comment("<em>open\n\nnext") == "<p><em>open</em></p>\n<p>next</p>"
