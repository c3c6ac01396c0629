"""The banner of a CP2K main output: start time, version, project and run type (first 64 KiB).

:mod:`qdphonon.run.layout` finds main outputs of any name by it; the run type is a
:class:`~qdphonon.parsers.verdicts.RunType`.
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path

from qdphonon.parsers.verdicts import RunType

_HEADER_BYTES = 65536


@dataclasses.dataclass(frozen=True)
class OutputHeader:
    """What the banner of a CP2K main output says (first 64 KiB)."""

    path: Path
    started_at: str | None
    cp2k_version: str | None
    project: str | None
    run_type: RunType | None
    mpi_ranks: int | None = None
    threads_per_rank: int | None = None


_RE_STARTED = re.compile(rb"PROGRAM STARTED AT\s+(\S+ \S+)")
_RE_VERSION = re.compile(rb"CP2K\|\s+version string:\s+CP2K version\s+(\S+)")
_RE_PROJECT = re.compile(rb"^\s*GLOBAL\|\s+Project name\s+(\S+)\s*$", re.M)
_RE_RUN_TYPE = re.compile(rb"^\s*GLOBAL\|\s+Run type\s+(\S+)\s*$", re.M)
_RE_RANKS = re.compile(rb"^\s*GLOBAL\|\s+Total number of message passing processes\s+(\d+)\s*$", re.M)
_RE_THREADS = re.compile(rb"^\s*GLOBAL\|\s+Number of threads for this process\s+(\d+)\s*$", re.M)


def project_line(path: Path) -> int | None:
    """Line number of the ``GLOBAL| Project name`` line of a main output (None without one)."""
    with open(path, "rb") as fh:
        head = fh.read(_HEADER_BYTES)
    m = _RE_PROJECT.search(head)
    return head[: m.start()].count(b"\n") + 1 if m else None


def read_output_header(path: str | os.PathLike) -> OutputHeader | None:
    """The banner of a CP2K main output, or None when the file is not one (or is empty)."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            head = fh.read(_HEADER_BYTES)
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        return None
    started = _RE_STARTED.search(head)
    version = _RE_VERSION.search(head)
    if started is None or version is None:
        return None

    def text(m):
        return m.group(1).decode("ascii", "replace") if m else None

    def number(m):
        return int(m.group(1)) if m else None

    return OutputHeader(path, text(started), text(version), text(_RE_PROJECT.search(head)),
                        RunType.of(text(_RE_RUN_TYPE.search(head))), number(_RE_RANKS.search(head)),
                        number(_RE_THREADS.search(head)))  # fmt: skip
