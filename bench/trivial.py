"""The baseline: a trivial Flask app returning a small constant body.

Served as ``gunicorn bench.trivial:app``.
"""

from __future__ import annotations

from flask import Flask

app = Flask("trivial")


@app.get("/")
def index() -> str:
    return "ok"
