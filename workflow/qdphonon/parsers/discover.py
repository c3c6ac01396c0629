"""Finding the files of any CP2K MD run directory (:func:`discover`): ours (``segments.json`` names the
segments' outputs, the project and the MOLog) or one made by hand or by another tool (main outputs found by
CP2K's banner, in the order they started; the project from their ``GLOBAL| Project name`` line; the MOLog
the one ``{project}-*.MOLog`` present). The names themselves are :mod:`qdphonon.run.files`'.
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import Any, Mapping, Sequence

from qdphonon.parsers.output_header import project_line, read_output_header
from qdphonon.parsers.verdicts import RunType
from qdphonon.run.files import (
    CP2K_DEFAULT_PROJECT, MO_FILENAME, RECORD_FILE, SET_ASIDE_DIR, STATE_FILE, is_segment_file, molog_name, run_files,
)  # fmt: skip
from qdphonon.run.json_files import read_json
from qdphonon.run.state_records import RunState, read_state


_DATA_SUFFIXES = (".xyz", ".ener", ".MOLog", ".restart", ".wfn", ".inp", ".json", ".npz", ".dcd", ".cube")


def find_main_outputs(run_dir: str | os.PathLike) -> list[Path]:
    """CP2K main outputs in a directory (any name), oldest start first; MD runs only when the header says."""
    run_dir = Path(run_dir)
    headers = []
    for p in sorted(run_dir.iterdir()):
        if not p.is_file() or re.search(r"\.bak-\d+$", p.name) or p.name.endswith(_DATA_SUFFIXES):
            continue
        h = read_output_header(p)
        if h is not None and (h.run_type in (None, RunType.MD)):
            headers.append(h)
    headers.sort(key=lambda h: (h.started_at or "", h.path.name))
    return [h.path for h in headers]


@dataclasses.dataclass(frozen=True)
class RunLayout:
    """The files of one MD run directory, as :func:`discover` found them.

    ``outputs`` are the main outputs in run order (empty ones set aside, listed in
    ``set_aside``); ``files`` maps ``positions``, ``velocities``, ``energies``, ``molog``
    (None when there is no MOLog), ``restart`` and ``wfn`` to file names in ``run_dir``;
    ``ours`` is True when our engine made it (``segments.json``). ``molog_blocks``: the MD
    blocks each output's segment left in the MOLog, as ``segments.json`` records them (None for
    the last segment when it has no count yet); None when some earlier segment has no count.
    """

    run_dir: Path
    project: str
    files: dict[str, str | None]
    outputs: list[Path]
    ours: bool
    set_aside: list[Path]
    molog_blocks: tuple[int | None, ...] | None = None

    def path(self, key: str) -> Path | None:
        """Path of one of ``files`` (None when that file is not part of the run)."""
        name = self.files.get(key)
        return None if name is None else self.run_dir / name


def _molog_in(run_dir: Path, project: str) -> str | None:
    found = sorted(p.name for p in run_dir.glob(f"{glob_escape(project)}*.MOLog"))
    if len(found) > 1:
        raise ValueError(f"{run_dir}: several MOLog files of project {project!r}: {', '.join(found)}; "
                         "name the one to use (--molog)")  # fmt: skip
    return found[0] if found else None


def _project_from_files(run_dir: Path) -> str:
    """The project whose energy file is the only one in the directory, else CP2K's default name."""
    found = {p.name[: -len("-1.ener")] for p in run_dir.glob("*-1.ener")}
    return found.pop() if len(found) == 1 else CP2K_DEFAULT_PROJECT


def glob_escape(text: str) -> str:
    """``text`` with glob metacharacters escaped."""
    return re.sub(r"([*?\[])", r"[\1]", text)


def _segment_outputs(run_dir: Path) -> list[Path]:
    """Our segment outputs ``seg000.out``, ``seg001.out``, ... in order (for outputs without a banner)."""
    segs = [p for p in run_dir.glob("seg*.out") if is_segment_file(p.name)]
    return sorted(segs, key=lambda p: int(p.stem[3:]))


def discover(run_dir: str | os.PathLike, outputs: Sequence[str | os.PathLike] | None = None,
             molog: str | None = None) -> RunLayout:
    """The layout of an MD run directory, ours (``segments.json``) or any CP2K run.

    ``outputs`` names the main outputs in run order (relative to ``run_dir`` or absolute);
    without it they are taken from ``segments.json`` or found by their banner. ``molog``
    names the MOLog file. Raises FileNotFoundError naming the directory when no main
    output is found, ValueError when the outputs disagree on the project name.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"{run_dir}: run directory not found")
    state = read_state(RunState, run_dir / STATE_FILE)
    if outputs is not None:
        paths = [Path(o) if Path(o).is_absolute() else run_dir / o for o in outputs]
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            raise FileNotFoundError(f"{', '.join(missing)}: CP2K main output not found")
    elif state is not None:
        paths = [run_dir / s["output"] for s in state.get("segments", []) if (run_dir / s["output"]).is_file()]
        set_aside_before = [run_dir / SET_ASIDE_DIR / Path(s["output"]).stem / s["output"]
                            for s in state.get("segments", []) if s.get("ended") == "empty"]  # fmt: skip
    else:
        paths = find_main_outputs(run_dir) or _segment_outputs(run_dir)
    set_aside = [p for p in paths if p.stat().st_size == 0]
    if outputs is None and state is not None:
        set_aside += [p for p in set_aside_before if p.is_file()]
    paths = [p for p in paths if p.stat().st_size > 0]
    if not paths:
        raise FileNotFoundError(
            f"{run_dir}: no CP2K main output found (looked for files whose first bytes carry "
            "'PROGRAM STARTED AT' and 'CP2K| version string', and for seg000.out, ...; name them with --output)"
        )
    if state is not None and state.get("project"):
        project = str(state["project"])
        mo = state.get("molog") or molog_name(project, state.get("mo_filename", MO_FILENAME))
    else:
        headers = [h for h in map(read_output_header, paths) if h is not None and h.project]
        projects = {h.project for h in headers}
        if len(projects) > 1:
            odd = next(h for h in headers if h.project != headers[0].project)
            raise ValueError(f"{odd.path}: line {project_line(odd.path)}: project {odd.project!r}, but "
                             f"{headers[0].path.name} has {headers[0].project!r}: main outputs of different projects "
                             f"{sorted(projects)}: " + ", ".join(p.name for p in paths))  # fmt: skip
        project = projects.pop() if projects else _project_from_files(run_dir)
        mo = None
    if molog is not None:
        mo = molog
    elif mo is None or not (run_dir / mo).is_file():
        mo = _molog_in(run_dir, project)
    fmt = "dcd" if (run_dir / run_files(project, trajectory_format="dcd")["positions"]).is_file() else "xyz"
    files = run_files(project, None if mo is None else MO_FILENAME, molog=mo, trajectory_format=fmt)
    counts = _molog_counts(state, run_dir, paths) if outputs is None and state is not None else None
    return RunLayout(run_dir, project, files, paths, state is not None, set_aside, counts)


def _molog_counts(state: Mapping[str, Any], run_dir: Path, paths: list[Path]) -> tuple[int | None, ...] | None:
    """``molog_blocks`` of the segments of ``paths`` (the last may lack one), else None."""
    by_output = {run_dir / s["output"]: s.get("molog_blocks") for s in state.get("segments", [])}
    counts = [by_output.get(p) for p in paths]
    if not counts or any(not isinstance(c, int) for c in counts[:-1]):
        return None
    return tuple(counts)


def recorded_scf_policy(run_dir: str | os.PathLike) -> str | None:
    """The ``scf.on_failure`` policy the engine ran with (``segments.json``, else ``run.json``), or
    None when the directory records none (a run made by hand, the mock)."""
    for name in (STATE_FILE, RECORD_FILE):
        try:
            record = read_json(Path(run_dir) / name)
        except ValueError:
            continue
        if record is not None and record.get("on_scf_failure"):
            return str(record["on_scf_failure"])
    return None
