"""A self-hosted comment moderation service.

Production serving: ``gunicorn "moderation:create_app()"``.
"""

from __future__ import annotations

from moderation.app import create_app

__all__ = ["create_app"]
