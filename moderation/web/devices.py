"""A short description of a browser from its User-Agent, for "Your sessions"."""

from __future__ import annotations

# Checked in order; plain substring tests, so a hostile 10 kB header costs linear time.
BROWSERS = (
    ("Edg/", "Edge"),
    ("OPR/", "Opera"),
    ("Firefox/", "Firefox"),
    ("Chromium/", "Chromium"),
    ("Chrome/", "Chrome"),
    ("Safari/", "Safari"),
    ("curl/", "curl"),
)
SYSTEMS = (
    ("Android", "Android"),
    ("iPhone", "iPhone"),
    ("iPad", "iPad"),
    ("Windows", "Windows"),
    ("Mac OS X", "macOS"),
    ("CrOS", "ChromeOS"),
    ("Linux", "Linux"),
)


def describe(user_agent: str | None) -> str:
    """ "Firefox on Windows", "Chrome on Android", or "Unknown browser"."""
    text = (user_agent or "")[:512]
    browser = next((name for mark, name in BROWSERS if mark in text), "Unknown browser")
    system = next((name for mark, name in SYSTEMS if mark in text), None)
    return f"{browser} on {system}" if system else browser
