"""Shared by the dispatch app's commands: ISO 8601 arguments and problem -> CommandError."""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from decimal import Decimal, InvalidOperation

from django.core.management.base import CommandError

from vtn.errors import Problem


def iso_datetime(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 date-time") from exc
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} needs a time zone (e.g. Z or +00:00)")
    return value


def decimal(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from exc
    if not value.is_finite():
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def problem_error(exc: Problem) -> CommandError:
    lines = [str(exc.detail), *(f"  - {e}" for e in getattr(exc, "errors", []))]
    return CommandError("\n".join(lines))


def dumps(value: object) -> str:
    return json.dumps(value, indent=2, default=str)
