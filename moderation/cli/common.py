"""What the commands share: the app they work on, its sessions, and who the audit names."""

from __future__ import annotations

import sys

import click
from flask import Flask
from sqlalchemy.orm import Session, sessionmaker

from moderation.config import ConfigError
from moderation.events import Actor

# Who the audit log names for changes made at the command line.
CLI = Actor("command line")


def load_app() -> Flask:
    """The app built from the environment's settings; bad settings are a message, not a trace."""
    from moderation.app import create_app

    try:
        return create_app()
    except ConfigError as error:
        raise click.ClickException(str(error)) from None


def sessions(app: Flask) -> sessionmaker[Session]:
    factory: sessionmaker[Session] = app.extensions["moderation.sessionmaker"]
    return factory


def read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    password: str = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    return password
