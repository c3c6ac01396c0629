"""The engines' live state files as typed records, the only spelling of their keys: ``segments.json``
(:class:`RunState`, an MD run by CP2K or the mock) and ``relax-state.json`` (:class:`RelaxState`, a
geometry optimisation), each a list of segments (one launch each).

:func:`qdphonon.engines.segment.run_segments` checks a state against its record every time it writes
it, so an engine that misspells a key fails at once instead of writing a file no reader understands;
:func:`read_state` is how readers take one, refusing an unknown or mistyped key with the file named.
Keys written by older qdphonon versions are all still here; most are optional, because a run started
by an older version (or killed before a segment finished) lacks them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from qdphonon.run.json_files import read_json
from qdphonon.typed_records import TypedRecord, described


def _opt(description: str, unit: str | None = None) -> Any:
    return described(description, unit, optional=True)


# fmt: off
@dataclass(frozen=True)
class RunSegment(TypedRecord):
    """One segment of an MD run as ``segments.json`` records it (``run.json`` keeps a subset)."""

    RECORD_NAME = "segments.json segment"

    index: int = described("segment number, 0 for the first launch")
    input: str = _opt("the segment's CP2K input (seg000.inp, ...)")
    output: str = described("the segment's CP2K main output (seg000.out, ...)")
    start_step: int | None = _opt("MD step the segment started from")
    end_step: int | None = _opt("last MD step the segment completed (from the restart file)")
    restart_file: str | None = _opt("CP2K restart file the segment continued from (null: the first)")
    wfn_file: str | None = _opt("wavefunction its first SCF started from (null: the input's guess)")
    command: str = _opt("the launch line (MPI launcher, CP2K binary, input, output)")
    started_at: str = _opt("start time, UTC, ISO 8601")
    started_epoch: float | None = _opt("start time, Unix seconds", "s")
    threads: int = _opt("OpenMP threads per rank")
    tasks: int = _opt("MPI ranks")
    engine_pid: int = _opt("pid of the engine process that launched it")
    pid: int | None = _opt("pid of the launched process (the MPI launcher or CP2K)")
    walltime_s: float | None = _opt("CP2K's GLOBAL/WALLTIME of the segment (null: none)", "s")
    allocation_end_epoch: float | None = _opt("end of the SLURM allocation, Unix seconds (null: not in one)", "s")
    molog_start: int = _opt("size of the MOLog when the segment started", "bytes")
    molog_blocks: int = _opt("MD blocks the segment left in the MOLog")
    wall_s: float | None = _opt("wall time of the segment", "s")
    exit_status: int | None = _opt("exit status of the launched process")
    signal: int | str | None = _opt("signal that ended the process, by name (null: none)")
    escalated: str = _opt("that SIGTERM was not enough and SIGKILL followed, in words")
    stop_reason: str | None = _opt("why the engine stopped it (qdphonon.engines.process.StopReason; null: it "
                                   "ended by itself)")
    ended: str = described("how it ended (qdphonon.run.layout.SegmentEnd)")
    note: str | None = _opt("why it ended so, in words")
    set_aside: list = _opt("files recovery moved to set_aside/ after a kill (paths in the run directory)")


@dataclass(frozen=True)
class Recovery(TypedRecord):
    """One recovery after a kill, in words."""

    RECORD_NAME = "segments.json recovery"

    at: str = described("when, UTC, ISO 8601")
    note: str = described("what was found and done")


@dataclass(frozen=True)
class RunState(TypedRecord):
    """``segments.json``: an MD run directory's live state (the engine's; ``run.json`` records the end)."""

    RECORD_NAME = "segments.json"

    engine: str = _opt("engine that owns the directory: cp2k or mock (always written; hand-made states may lack it)")
    input: str = _opt("path of the MD input")
    input_sha256: str = _opt("SHA-256 of the MD input (a run directory belongs to one input)")
    steps: int = _opt("MD steps the input asks for")
    project: str = _opt("CP2K project name (prefix of its files)")
    molog: str | None = _opt("the MOLog file's name (null: the input prints none)")
    segments: list = described("the segments, in order (RunSegment)")
    discarded_segments: list = _opt("segments dropped because no step of theirs could be continued (RunSegment)")
    on_scf_failure: str = _opt("SCF policy the engine ran with; the parser applies it (schema scf.on_failure)")
    recoveries: list = _opt("recoveries after kills (Recovery)")
    complete: bool = _opt("true once run.json is written")


@dataclass(frozen=True)
class RelaxSegment(TypedRecord):
    """One segment of a geometry optimisation (``relax.inp``, then ``relax_c1.inp``, ...)."""

    RECORD_NAME = "relax-state.json segment"

    index: int = described("segment number, 0 for the first launch")
    project: str = described("its CP2K project name (its own files)")
    input: str = described("its CP2K input")
    output: str = described("its CP2K main output")
    start: str = described("where it started: the structure, or a trajectory's last whole frame")
    wfn_file: str | None = _opt("wavefunction its first SCF started from (null: the input's guess)")
    iterations_before: int = _opt("optimisation iterations done before it")
    iterations: int = _opt("optimisation iterations it wrote (whole trajectory frames)")
    max_iter: int = _opt("iterations it was allowed")
    command: str = _opt("the launch line")
    started_at: str = _opt("start time, UTC, ISO 8601")
    started_epoch: float = _opt("start time, Unix seconds", "s")
    pid: int = _opt("pid of the launched process")
    wall_s: float = _opt("wall time", "s")
    exit_status: int = _opt("exit status of the launched process")
    signal: str | None = _opt("signal that ended the process (null: none)")
    escalated: str = _opt("that SIGTERM was not enough and SIGKILL followed, in words")
    ended: str = described("how it ended (qdphonon.run.layout.SegmentEnd)")
    note: str | None = _opt("why it ended so, in words")


@dataclass(frozen=True)
class RelaxState(TypedRecord):
    """``relax-state.json``: a geometry optimisation's live state (``relax.json`` records the end)."""

    RECORD_NAME = "relax-state.json"

    input_sha256: str = described("SHA-256 of the first GEO_OPT input (another input starts afresh)")
    structure: str = described("the structure it started from")
    level: str = described("electronic-structure level")
    max_iter: int = described("optimisation iterations allowed in all")
    project: str = described("CP2K project name of the first segment")
    segments: list = described("the segments, in order (RelaxSegment)")
    complete: bool = _opt("true once the relaxed structure and relax.json are written")
# fmt: on

SEGMENT_RECORD = {RunState: RunSegment, RelaxState: RelaxSegment}


def check_state(record: type[TypedRecord], state: dict[str, Any], source: str | os.PathLike) -> None:
    """ValueError naming ``source`` and the key when ``state`` (or one of its segments or recoveries) is not
    a valid ``record``."""
    record.from_json(state, str(source))
    segment = SEGMENT_RECORD[record]
    for key in ("segments", "discarded_segments"):
        for i, seg in enumerate(state.get(key) or []):
            segment.from_json(seg, f"{source}: {key}[{i}]")
    for i, rec in enumerate(state.get("recoveries") or []):
        Recovery.from_json(rec, f"{source}: recoveries[{i}]")


def read_state(record: type[TypedRecord], path: str | os.PathLike) -> dict[str, Any] | None:
    """The state file at ``path`` checked against ``record`` (None when there is none); ValueError naming
    the file and the first unknown, missing or mistyped key."""
    state = read_json(path)
    if state is not None:
        check_state(record, state, path)
    return state
