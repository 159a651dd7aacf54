"""A smoke test of the benchmark harness (bench/): one scenario, briefly, at one concurrency."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from bench import harness, peer
from moderation.models import Comment
from tests.helpers import SUBMIT, comment_json, json_of, make_site

pytestmark = pytest.mark.bench

COLUMNS = [
    "scenario", "connections", "requests/s", "p50 ms", "p99 ms", "trivial app requests/s",
    "ratio to trivial", "target", "errors",
]  # fmt: skip
FLOOR = "submission floor (bench/floor.py)"
FLOOR_WITHOUT_DUPLICATES = "submission floor, no duplicate check"


def test_harness_measures_a_scenario_against_the_trivial_app() -> None:
    section = harness.run(
        seconds=1,
        only=["submission", FLOOR, FLOOR_WITHOUT_DUPLICATES],
        concurrency=(1,),
        rounds=1,
        warmup=0,
    )

    lines = section.splitlines()
    header = next(line for line in lines if line.startswith("| scenario"))
    assert [cell.strip() for cell in header.strip("|").split("|")] == COLUMNS
    rows: dict[str, dict[str, str]] = {}
    for line in lines:
        if line.startswith("| submission"):
            cells = dict(zip(COLUMNS, (c.strip() for c in line.strip("|").split("|")), strict=True))
            rows[cells["scenario"]] = cells
    assert list(rows) == ["submission", FLOOR, FLOOR_WITHOUT_DUPLICATES]
    # The floors' submissions were all answered 202 as well.
    for floor in (FLOOR, FLOOR_WITHOUT_DUPLICATES):
        assert rows[floor]["errors"] == "0"
        assert float(rows[floor]["requests/s"].replace(",", "")) > 0
    cells = rows["submission"]
    assert cells["connections"] == "1"
    # Every submission was accepted (202); run() raises if the time-trap held any of them.
    assert cells["errors"] == "0"
    assert float(cells["requests/s"].replace(",", "")) > 0
    assert float(cells["trivial app requests/s"].replace(",", "")) > 0
    assert float(cells["ratio to trivial"]) > 0
    assert cells["target"].startswith(">= 0.25: ")
    assert cells["target"].endswith(("MET", "MISSED"))
    assert "Resident memory of each app worker after the run: " in section


PEER_COLUMNS = [
    "scenario", "this service on", "Isso requests/s", "this service requests/s", "ratio",
    "Isso CPU ms/request", "this service CPU ms/request", "CPU ratio", "target", "errors",
]  # fmt: skip


@pytest.mark.skipif(
    not peer.ISSO_PYTHON.exists(), reason="Isso is not installed: make bench-peer-install"
)
def test_peer_benchmark_compares_the_service_with_isso_side_by_side() -> None:
    scenario = "counts, 20 posts"
    section = peer.run(seconds=1, rounds=1, warmup=0, scenarios=[scenario], scale=0.1)

    lines = section.splitlines()
    header = next(line for line in lines if line.startswith("| scenario"))
    assert [cell.strip() for cell in header.strip("|").split("|")] == PEER_COLUMNS
    rows = [
        dict(zip(PEER_COLUMNS, (c.strip() for c in line.strip("|").split("|")), strict=True))
        for line in lines
        if line.startswith(f"| {scenario}")
    ]
    assert [row["this service on"] for row in rows] == ["SQLite"]
    (row,) = rows
    # Both answered every request with the expected status, and both were measured.
    assert row["errors"] == "0"
    assert float(row["this service requests/s"].replace(",", "")) > 0
    assert float(row["Isso requests/s"].replace(",", "")) >= 0
    # CPU time comes in 10 ms ticks: a second of cheap counts may round to none.
    assert float(row["this service CPU ms/request"]) >= 0
    assert row["ratio"].endswith("x") or row["ratio"] == "-"  # "-": Isso answered nothing
    assert float(row["Isso CPU ms/request"]) > 0
    assert float(row["CPU ratio"].removesuffix("x")) > 0
    assert row["target"].startswith((">= 2x: MET", ">= 2x: MISSED"))


def test_the_spam_corpus_replay_reports_every_figure_on_a_short_run() -> None:
    from bench import spam_corpus

    videos = {title: rows[:60] for title, rows in list(spam_corpus.load().items())[:2]}
    section = spam_corpus.run(videos, curve=(25,))
    assert "| **all** | " in section
    assert "Target on the second halves" in section and ("MET" in section or "MISSED" in section)
    assert "| classifier |" in section
    assert "| 25 |" in section and "| all of the first half |" in section
    # Every submission was accepted (202): the filter never refuses on its own word.
    rows = [line for line in section.splitlines() if line.startswith("| **all** |")]
    assert rows and rows[0].rstrip("| ").endswith("| 0")


def test_each_choice_of_what_filed_spam_teaches_is_replayed_and_undone() -> None:
    import moderation.comments
    from bench import filed_spam_learning, spam_corpus
    from moderation import learning

    videos = {title: rows[:60] for title, rows in list(spam_corpus.load().items())[:2]}
    section = filed_spam_learning.run(videos)
    rows = [line for line in section.splitlines() if line.startswith("| ") and "%" in line]
    assert [row.split(" | ")[0] for row in rows] == [f"| {n}" for n in filed_spam_learning.CHOICES]
    assert vars(moderation.comments)["learning"] is learning  # the real one is back


def test_the_choice_swapped_in_decides_what_a_filed_comment_teaches(
    client: FlaskClient, session: Session
) -> None:
    from bench.filed_spam_learning import _none, learning_on_submission

    make_site(session)
    with learning_on_submission(_none):
        untaught = json_of(client.post(SUBMIT, json=comment_json(website="bot")))["id"]
    taught = json_of(client.post(SUBMIT, json=comment_json(website="bot", body="Again")))["id"]
    session.expire_all()
    learned = {
        row[0]: row[1] for row in session.execute(select(Comment.public_id, Comment.learned))
    }
    assert (learned[untaught], learned[taught]) == (None, "spam")
