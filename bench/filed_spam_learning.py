"""Should comments the filter files as spam teach the learned model? The YouTube replay of
spam_corpus.py, once for each choice (issue 17: "a choice to review").

- every filed comment is learned as spam until a moderator rescues it (the service's choice);
- only comments another check filed (honeypot, time trap, blocklist, duplicate): SpamAssassin's
  rule that the Bayes classifier is never trained on its own verdict;
- no filed comment is learned: the model learns only from moderators' decisions.

The alternatives are made by swapping the learning step of the submission path
(``moderation.comments.learning``) for the run; moderators' decisions teach as always. Not in
``make bench`` (about five minutes); run: python -m bench bench.filed_spam_learning
"""

from __future__ import annotations

import contextlib
import tempfile
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

import moderation.comments
from bench import spam_corpus
from moderation import learning
from moderation.models import Comment

Learn = Callable[..., None]


def _every(session: Session, comment: Comment, **options: Any) -> None:
    learning.follow_decision(session, comment, **options)


def _filed_by_another_check(session: Session, comment: Comment, **options: Any) -> None:
    if any(
        isinstance(s, dict) and s.get("verdict") == "spam" and s.get("check") != "classifier"
        for s in comment.signals
    ):
        learning.follow_decision(session, comment, **options)


def _none(session: Session, comment: Comment, **options: Any) -> None:
    return None


CHOICES: dict[str, Learn] = {
    "every filed comment (the service's choice)": _every,
    "only what another check filed (SpamAssassin's rule)": _filed_by_another_check,
    "none (moderators' decisions only)": _none,
}


@contextlib.contextmanager
def learning_on_submission(learn: Learn) -> Iterator[None]:
    """Swap what the submission path calls to learn a filed comment, for one replay."""
    real = vars(moderation.comments)["learning"]
    setattr(moderation.comments, "learning", types.SimpleNamespace(follow_decision=learn))  # noqa: B010
    try:
        yield
    finally:
        setattr(moderation.comments, "learning", real)  # noqa: B010


def _share(part: int, whole: int) -> str:
    return f"{part / whole:.1%}" if whole else "-"


def run(videos: dict[str, list[spam_corpus.Row]] | None = None) -> str:
    videos = videos or spam_corpus.load()
    lines = [
        "## Filed spam as a lesson: the YouTube replay with each choice",
        "",
        "The replay of spam_corpus.py (moderators decide each video's first half; spam the filter "
        "filed is left in the spam folder), with each choice of what filed spam teaches. Second "
        "halves: 350 spam, 628 legitimate comments.",
        "",
        "| filed spam learned | spam filed as spam | legitimate filed as spam | spam held "
        "| legitimate held |",
        "|---|---|---|---|---|",
    ]
    for name, learn in CHOICES.items():
        with learning_on_submission(learn), tempfile.TemporaryDirectory() as tmp:
            overall = spam_corpus.total(spam_corpus.replay(Path(tmp), videos, None))
        lines.append(
            f"| {name} | {_share(overall.spam_filed, overall.spam)} "
            f"| {_share(overall.legitimate_filed, overall.legitimate)} "
            f"({overall.legitimate_filed}) | {_share(overall.spam_held, overall.spam)} "
            f"| {_share(overall.legitimate_held, overall.legitimate)} |"
        )
    return "\n".join(lines)
