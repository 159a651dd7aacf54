"""Every setting is documented in one place: a row of a table in the README."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from moderation.config import PREFIX, Settings

README = Path(__file__).resolve().parent.parent / "README.md"
# Read at start but not fields of Settings: the file they come from, and prometheus_client's own.
NOT_FIELDS = {"MODERATION_CONFIG_FILE", "PROMETHEUS_MULTIPROC_DIR"}


def _documented() -> list[str]:
    rows = re.findall(r"^\| `([A-Z_]+)`", README.read_text(encoding="utf-8"), re.MULTILINE)
    return rows


def test_every_setting_has_a_row_in_the_readme() -> None:
    names = {PREFIX + field.name.upper() for field in dataclasses.fields(Settings)}
    assert len(names) > 40  # the walk found the settings
    assert sorted(names - set(_documented())) == []


def test_every_row_names_a_setting_once() -> None:
    names = {PREFIX + field.name.upper() for field in dataclasses.fields(Settings)} | NOT_FIELDS
    rows = _documented()
    assert sorted(set(rows) - names) == []
    assert sorted({row for row in rows if rows.count(row) > 1}) == []
