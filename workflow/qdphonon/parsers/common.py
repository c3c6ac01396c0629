"""What every parser shares: warnings, the synthetic label, file checks that name the file."""

from __future__ import annotations

import warnings
from pathlib import Path



SYNTHETIC_LABEL = "# synthetic (mock engine)"
"""First line of every file written by the mock engine."""


class ParseWarning(UserWarning):
    """Something in CP2K output was dropped or looks suspect, but parsing went on."""


def _warn(message: str, sink: list[str] | None = None) -> None:
    warnings.warn(message, ParseWarning, stacklevel=3)
    if sink is not None:
        sink.append(message)


def _require_file(path: Path, what: str) -> None:
    """FileNotFoundError / ValueError naming ``path`` when it is missing or empty."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: {what} not found")
    if path.stat().st_size == 0:
        raise ValueError(f"{path}: {what} is empty")


def _is_synthetic_line(line: bytes | str) -> bool:
    """True for the mock engine's label line (a ``#`` line mentioning ``synthetic``)."""
    text = line.decode("utf-8", "replace") if isinstance(line, bytes) else line
    return text.lstrip().startswith("#") and "synthetic" in text.lower()


def _text_lines(path: Path, what: str) -> tuple[list[str], bool]:
    """Lines of a text file (without newlines) and whether its last line is complete."""
    _require_file(path, what)
    text = path.read_bytes().decode("utf-8", "replace")
    complete = text.endswith("\n")
    lines = text.split("\n")
    if complete:
        lines.pop()
    return lines, complete
