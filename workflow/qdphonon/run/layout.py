"""The run-directory contract: which files a CP2K MD directory holds, in what order, and in what state.

Engines write run directories and parsers read them through this module only.

Names
    CP2K's files are named from the input's ``GLOBAL/PROJECT_NAME`` (``{project}``) and the
    ``&MO`` print key's ``FILENAME``: ``{project}-pos-1.xyz`` (positions, Angstrom),
    ``{project}-vel-1.xyz`` (velocities, bohr per atomic time unit), ``{project}-1.ener``,
    ``{project}-{mo}-1.MOLog``, ``{project}-1.restart`` and ``{project}-RESTART.wfn`` (with
    ``.bak-N`` backups). All segments of a run share them; continuations append.
Segments (our engine)
    ``seg000.inp``/``seg000.out`` is the first CP2K run, ``seg001.*`` the first continuation
    (``&EXT_RESTART``), and so on. ``segments.json`` records the input's SHA-256, the project,
    and per segment its start and end step, process id, wall time, exit status and how it
    ended (:class:`SegmentEnd`). ``run.json`` (:mod:`qdphonon.metadata`) is written only when
    the last MD step equals ``STEPS``.
Any CP2K directory
    Without ``segments.json`` (a run made by hand), the main outputs are the files whose
    first bytes carry CP2K's banner (``PROGRAM STARTED AT`` and ``CP2K| version string``), in
    the order of their start time; the project comes from their ``GLOBAL| Project name``
    line and the MOLog is the one ``{project}-*.MOLog`` present.
    :func:`qdphonon.parsers.discover.discover` returns the same ``RunLayout`` for both kinds
    (reading CP2K's banners is the parsers' job, so it lives there).
Locking and recovery
    ``engine.lock`` (:mod:`qdphonon.run.lock`): one engine, so one CP2K, per directory;
    :func:`lock_holder` says who holds it. Before a continuation from the restart file of step
    k, :mod:`qdphonon.engines.recovery` trims the shared files back to what the continuation
    rewrites (energies and trajectories to step k, the MOLog to the blocks of steps < k) and
    moves what it took out to ``set_aside/``; each segment records ``molog_blocks``, the MD
    blocks it left in the MOLog, which ``discover`` hands to the parser. Where CP2K's records
    end and which step a restart file holds is CP2K's text, read by
    :mod:`qdphonon.parsers.record_bounds`; the cuts are :mod:`qdphonon.engines.file_cuts`.
"""

from __future__ import annotations

import enum
import re
from pathlib import Path
from typing import Mapping

from qdphonon.run.errors import RunDirMismatchError
from qdphonon.run.json_files import read_json, write_json_atomic  # noqa: F401  (part of the contract)
from qdphonon.run.files import (  # noqa: F401  (the names are files' own; re-exported as part of the contract)
    CP2K_DEFAULT_PROJECT, INITIAL_WFN_FILE, MD_PROJECT, MO_FILENAME, RECORD_FILE, SET_ASIDE_DIR, STATE_FILE, RunFiles,
    is_segment_file, molog_name, run_files, segment_files,
)
from qdphonon.run.lock import LOCK_FILE, lock_holder, lock_run_dir  # noqa: F401  (part of the contract)



class SegmentEnd(str, enum.Enum):
    """How one CP2K segment ended (recorded in ``segments.json`` and ``run.json``)."""

    RUNNING = "running"
    COMPLETED = "completed"
    WALLTIME = "walltime"
    EXTERNAL_EXIT = "external_exit"
    KILLED = "killed"
    FAILED = "failed"
    EMPTY = "empty"
    """Killed before CP2K wrote its first byte: set aside, it holds no step."""


def check_same_input(found_sha: str | None, sha: str, where: Path, input_path: Path) -> None:
    """RunDirMismatchError unless ``where`` records the same input (SHA-256) as ``input_path``."""
    if found_sha is not None and found_sha != sha:
        raise RunDirMismatchError(
            f"{where} belongs to a run of another input (sha256 {found_sha[:12]}...) than {input_path} "
            f"(sha256 {sha[:12]}...); refusing to mix runs. Remove the run directory to start this input afresh."
        )


def check_same_engine(found: str | None, engine: str, where: Path) -> None:
    """RunDirMismatchError when ``where`` records a run of another engine."""
    if found is not None and found != engine:
        raise RunDirMismatchError(f"{where} records a complete {found} run; refusing to treat it as a {engine} run "
                                  "(remove the run directory to run this engine)")  # fmt: skip


def _is_run_file(name: str, files: Mapping[str, str | None]) -> bool:
    base = re.sub(r"\.bak-\d+$", "", name)
    return base in {v for v in files.values() if v} or is_segment_file(name)


def foreign_files(run_dir: Path, files: Mapping[str, str | None]) -> list[str]:
    """Engine or CP2K files present in a run directory (what a fresh start must not overwrite)."""
    return sorted(p.name for p in run_dir.iterdir() if p.name == STATE_FILE or _is_run_file(p.name, files))


def wipe_run_files(run_dir: Path, files: Mapping[str, str | None]) -> None:
    """Remove CP2K's project files (and their backups) and segment files: a run that never got past step 0."""
    for p in run_dir.iterdir():
        if _is_run_file(p.name, files):
            p.unlink()
