"""argparse value types shared by the sub-command modules."""

from __future__ import annotations

import argparse


def floats(text) -> list[float]:
    """``0,4.5,12,30`` -> ``[0.0, 4.5, 12.0, 30.0]``; a list (from ``--settings-json``) passes through as floats."""
    if isinstance(text, list):
        return [float(x) for x in text]
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from exc
