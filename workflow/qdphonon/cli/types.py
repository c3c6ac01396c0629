"""argparse value types shared by the sub-command modules."""

from __future__ import annotations

import argparse
import json


def floats(text) -> list[float]:
    """``0,4.5,12,30`` -> ``[0.0, 4.5, 12.0, 30.0]``; a list (from ``--settings-json``) passes through as floats."""
    if isinstance(text, list):
        return [float(x) for x in text]
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from exc


def json_object(text: str | dict) -> dict:
    """A JSON object given on the command line (or already decoded from ``--settings-json``)."""
    if isinstance(text, dict):
        return text
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object")
    return value
