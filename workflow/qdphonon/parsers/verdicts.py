"""Verdicts about CP2K's text, as values: how a main output ended, what an input's run type is,
whether a geometry optimisation converged, whether new output reports an SCF failure.

Every decision an engine or the recovery takes on CP2K's words goes through one function here,
returning an enum, so supporting another CP2K version's wording is a change to this module
only; engines branch on the enums (never on message text). The phrases are CP2K 2023.1's
(``src/motion/md_run.F``, ``src/start/cp2k_runs.F``, ``src/motion/geo_opt.F``; the same
through 2026.1 in the outputs under ``tests/data``).
"""

from __future__ import annotations

import enum
import os
import re
from pathlib import Path

_TAIL_BYTES = 200_000
"""How much of an output's end the stop messages are looked for in (they come after the last
step's block, before the timing report of a few kB; the ABORT box is at the very end)."""

ENDED = b"PROGRAM ENDED AT"
WALLTIME_STOP = b"run terminated - exceeded requested execution time"
EXIT_FILE_STOP = b"terminated by external request"
ABORT = re.compile(rb"\[ABORT\]")
SCF_FAILURE_PHRASES = (b"SCF run NOT converged", b"outer SCF loop FAILED")
GEO_OPT_CONVERGED = b"GEOMETRY OPTIMIZATION COMPLETED"


class OutputEnd(enum.Enum):
    """How a CP2K main output ended (from its text alone)."""

    MISSING = "missing"
    """No such file."""
    NOT_ENDED = "not_ended"
    """No ``PROGRAM ENDED AT`` line and no ABORT box: killed, or still running."""
    COMPLETED = "completed"
    """``PROGRAM ENDED AT`` with no stop message: CP2K ran what it was asked to."""
    WALLTIME = "walltime"
    """Ended on ``GLOBAL/WALLTIME`` ("... run terminated - exceeded requested execution time")."""
    EXIT_FILE = "exit_file"
    """Ended on an ``EXIT`` file ("... terminated by external request")."""
    ABORT = "abort"
    """CP2K's ``[ABORT]`` box: an error CP2K detected (it exits non-zero)."""

    @property
    def ended(self) -> bool:
        """CP2K finished writing this output (``PROGRAM ENDED AT``, a clean stop included)."""
        return self in (OutputEnd.COMPLETED, OutputEnd.WALLTIME, OutputEnd.EXIT_FILE)


class RunType(enum.Enum):
    """``GLOBAL| Run type`` of a CP2K main output (or ``GLOBAL/RUN_TYPE`` of an input)."""

    MD = "MD"
    GEO_OPT = "GEO_OPT"
    ENERGY = "ENERGY"
    ENERGY_FORCE = "ENERGY_FORCE"
    OTHER = "OTHER"

    @classmethod
    def of(cls, text: str | None) -> "RunType | None":
        """The run type spelled ``text`` (any case); None for None, ``OTHER`` for a kind qdphonon does not run."""
        if text is None:
            return None
        try:
            return cls(text.strip().upper())
        except ValueError:
            return cls.OTHER


class GeoOptEnd(enum.Enum):
    """How a CP2K geometry optimisation ended."""

    CONVERGED = "converged"
    """"GEOMETRY OPTIMIZATION COMPLETED": every criterion met."""
    NOT_CONVERGED = "not_converged"
    """No such line: the iteration limit was reached, or the run was stopped."""


def _tail(path: Path, n: int = _TAIL_BYTES) -> bytes | None:
    try:
        with open(path, "rb") as fh:
            fh.seek(max(0, os.fstat(fh.fileno()).st_size - n))
            return fh.read()
    except (FileNotFoundError, IsADirectoryError):
        return None


def output_end(output: str | os.PathLike) -> OutputEnd:
    """How the CP2K main output ``output`` ended (:class:`OutputEnd`)."""
    tail = _tail(Path(output))
    if tail is None:
        return OutputEnd.MISSING
    if ABORT.search(tail):
        return OutputEnd.ABORT
    if ENDED not in tail[-4096:]:
        return OutputEnd.NOT_ENDED
    if WALLTIME_STOP in tail:
        return OutputEnd.WALLTIME
    if EXIT_FILE_STOP in tail:
        return OutputEnd.EXIT_FILE
    return OutputEnd.COMPLETED


def abort_message(output: str | os.PathLike, limit: int = 500) -> str:
    """CP2K's ABORT box of an output on one line (or its last five lines), for people's error
    messages only: no decision is taken on it."""
    output = Path(output)
    try:
        text = output.read_text(errors="replace")
    except FileNotFoundError:
        return f"{output} was not written"
    m = re.search(r"\[ABORT\].*?(?=\n\s*\*{10,}\s*\n|\Z)", text, re.DOTALL)
    if m:
        out = " ".join(line.strip(" *") for line in m.group(0).splitlines() if line.strip(" *"))
    else:
        out = " | ".join(line.strip() for line in text.strip().splitlines()[-5:])
    return out[:limit]


def reports_scf_failure(chunk: bytes) -> bool:
    """Whether new bytes of a main output carry one of CP2K's SCF-failure warnings (a cheap
    filter before :func:`qdphonon.parsers.main_output.read_main_output` dates the failure)."""
    return any(phrase in chunk for phrase in SCF_FAILURE_PHRASES)


def geo_opt_end(output: str | os.PathLike) -> GeoOptEnd:
    """Whether the geometry optimisation of ``output`` converged (the whole file is read: CP2K
    re-evaluates the energy at the minimum after the line, which can print many MO blocks)."""
    try:
        text = Path(output).read_bytes()
    except FileNotFoundError:
        return GeoOptEnd.NOT_CONVERGED
    return GeoOptEnd.CONVERGED if GEO_OPT_CONVERGED in text else GeoOptEnd.NOT_CONVERGED
