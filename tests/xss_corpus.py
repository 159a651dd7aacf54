"""The vendored XSS payload corpora (tests/data/xss, sources and licences in its README), read
into one list of distinct payloads for the browser corpus test and the sanitiser invariants."""

from __future__ import annotations

import dataclasses
import functools
import re
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data" / "xss"
PATT = DATA / "payloadsallthethings"
# One payload per line in these PayloadsAllTheThings intruder lists.
PATT_LISTS = (
    "IntrudersXSS.txt",
    "JHADDIX_XSS.txt",
    "XSSDetection.txt",
    "RSNAKE_XSS.txt",
    "xss_payloads_quick.txt",
)
# The HTML5 Security Cheatsheet's vectors() dump wraps each vector in a numbered <div>.
_H5SC_VECTOR = re.compile(r'<div id="(\d+)">(.*?)//\["\'`-->\]\]>\]</div>', re.S)


@dataclasses.dataclass(frozen=True)
class Payload:
    source: str
    text: str


def _lines(path: Path) -> list[str]:
    return [line for line in path.read_text(encoding="utf-8").split("\n") if line.strip()]


def h5sc_vectors() -> list[str]:
    return [
        vector for _, vector in _H5SC_VECTOR.findall((DATA / "h5sc" / "vectors.txt").read_text())
    ]


def blns_strings() -> list[str]:
    """The Big List of Naughty Strings: every string, comments (``#``) left out."""
    return [line for line in _lines(DATA / "blns" / "blns.txt") if not line.startswith("#")]


def event_handler_payloads() -> list[str]:
    """Derived, not vendored: one element per event handler in PortSwigger's list, made to be
    focusable, editable and draggable so the synthetic events can reach it."""
    return [
        f"<xss {name}=alert(1) tabindex=1 contenteditable draggable=true>{name}</xss>"
        for name in _lines(PATT / "port_swigger_xss_cheatsheet_event_handlers.txt")
    ]


@functools.cache
def payloads() -> tuple[Payload, ...]:
    """Every distinct payload, first source wins, in a stable order."""
    seen: set[str] = set()
    found: list[Payload] = []
    groups: list[tuple[str, list[str]]] = [
        *((f"PayloadsAllTheThings/{name}", _lines(PATT / name)) for name in PATT_LISTS),
        ("H5SC/vectors.txt", h5sc_vectors()),
        ("BLNS/blns.txt", blns_strings()),
        ("derived/event-handlers", event_handler_payloads()),
    ]
    for source, texts in groups:
        for text in texts:
            if text not in seen:
                seen.add(text)
                found.append(Payload(source, text))
    return tuple(found)


def counts() -> dict[str, int]:
    """Distinct payloads per source (as attributed by :func:`payloads`)."""
    result: dict[str, int] = {}
    for payload in payloads():
        result[payload.source] = result.get(payload.source, 0) + 1
    return result
