"""Geometry optimisation at the MD's level before every MD (the ideal cut is far from a minimum).

A relaxation killed part-way continues from its last geometry and wavefunction: the work
directory's ``relax-state.json`` records the segments (``relax.inp``/``relax.out``, then
``relax_c1.inp``/``relax_c1.out`` with project ``relax_c1``, ...), each with its own CP2K files
so a continuation never overwrites what the one before it left. The next call takes the last
whole frame of the newest trajectory, the newest whole wavefunction (``SCF_GUESS RESTART``) and
the iterations still allowed. The work directory is locked for the engine's life, like an MD run
directory (:mod:`qdphonon.run.lock`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import sys
from pathlib import Path
from typing import Any, Mapping
import numpy as np
from qdphonon import settings
from qdphonon.cp2k.inputs import SCFSettings, cp2k_input_tree, merge_overrides
from qdphonon.cp2k.xmlspec import cp2k_version, installed_xmlspec, render_input
from qdphonon.run.errors import EngineError, RunInterrupted
from qdphonon.engines.process import GRACE_S, ProcessResult, find_cp2k
from qdphonon.run.state_records import RelaxState, read_state
from qdphonon.engines.segment import CP2KLauncher, SegmentPlan, killed_status, process_end, run_segments, save_state
from qdphonon.parsers.verdicts import GeoOptEnd, geo_opt_end, output_end
from qdphonon.run.layout import LOCK_FILE, SegmentEnd, write_json_atomic
from qdphonon.run.files import (
    RELAX_PROJECT, RELAX_STATE_FILE, RELAX_SUMMARY_FILE, relax_segment_files, relax_trajectory, relax_wavefunctions,
)  # fmt: skip
from qdphonon.parsers.record_bounds import fortran_file_whole, xyz_frames
from qdphonon.engines.recovery import remove_stale_temp_files
from qdphonon.structures.build import recentre
from qdphonon.structures.io import _xyz_text, read_structure



def write_labelled_structure(dot, path: str | os.PathLike, relaxed: str, extra: Mapping[str, str] | None = None) -> None:
    """Write ``dot`` as qdphonon's extended XYZ (labels preserved) with ``relaxed=<how>`` in the comment line.

    Values with spaces are quoted. Only the XYZ is written (no JSON sidecar).
    """

    lines = _xyz_text(dot).split("\n")
    tokens = {"relaxed": relaxed, **(extra or {})}
    lines[1] += "".join(f' {k}="{v}"' if re.search(r"\s", v) else f" {k}={v}" for k, v in tokens.items())
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("\n".join(lines), encoding="utf-8", newline="\n")
    os.replace(tmp, path)


def last_xyz_frame(path: str | os.PathLike) -> tuple[list[str], np.ndarray, str]:
    """(symbols, positions [Angstrom], comment) of the last whole frame of a plain XYZ trajectory
    (CP2K's GEO_OPT ``relax-pos-1.xyz``, whose comment lines carry no time); a frame a kill cut
    short is ignored. ValueError naming the file when there is no whole frame."""
    data = Path(path).read_bytes()
    frames = xyz_frames(data)
    if not frames:
        raise ValueError(f"{path}: no complete XYZ frame")
    lines = data[frames[-1].start : frames[-1].end].decode(errors="replace").splitlines()
    n = int(lines[0])
    rows = [line.split() for line in lines[2 : 2 + n]]
    try:
        return [r[0] for r in rows], np.array([[float(x) for x in r[1:4]] for r in rows]), lines[1]
    except (IndexError, ValueError):
        raise ValueError(f"{path}: malformed atom line in its last frame") from None


def _resume_point(workdir: Path, state: dict[str, Any]) -> dict[str, Any]:
    """Where the relaxation stands: last whole frame over the segments, newest whole wavefunction,
    optimisation iterations done; updates each segment's ``iterations``."""
    point: dict[str, Any] = {"positions": None, "wfn": None, "iterations": 0, "from": "structure", "comment": None}
    for seg in state["segments"]:
        pos = workdir / relax_trajectory(seg["project"])
        n = len(xyz_frames(pos.read_bytes())) if pos.is_file() else 0
        seg["iterations"] = n
        point["iterations"] += n
        if n:
            _, positions, comment = last_xyz_frame(pos)
            point.update(positions=positions, comment=comment, **{"from": f"{pos.name} frame {n}"})
        for name in relax_wavefunctions(seg["project"]):
            if fortran_file_whole(workdir / name):
                point["wfn"] = name
                break
    return point


def _wipe(workdir: Path, base: str) -> None:
    for p in workdir.iterdir():
        if p.is_file() and p.name != LOCK_FILE and (p.name.startswith(base) or p.name.startswith(RELAX_PROJECT)):
            p.unlink()


def relax(
    structure_xyz: str | os.PathLike,
    workdir: str | os.PathLike,
    out_xyz: str | os.PathLike,
    level: str,
    *,
    engine: str = "cp2k",
    cp2k_command: str = "cp2k.psmp",
    mpi: str | None = None,
    tasks: int = 1,
    threads: int = 1,
    max_iter: int = 200,
    smearing_K: float | None = None,
    eps_scf: float | None = None,
    max_scf: int = 200,
    overrides: Mapping[str, Any] | None = None,
    lock_wait_s: float = 0.0,
    grace_s: float = GRACE_S,
    wfn_out: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Geometry optimisation at the MD's level (docs/physics.md §3: the ideal cut is far from a minimum).

    ``cp2k``: a GEO_OPT input built by :func:`qdphonon.cp2k.inputs.cp2k_input_tree` (same level,
    SCF settings and overrides as the MD), run in ``workdir`` (``relax.inp``/``relax.out``);
    the final frame is written to ``out_xyz`` with the region/layer labels of the input
    structure and ``relaxed=cp2k-<level>`` (plus ``relax_converged=T|F``). A relaxation of the
    same input killed part-way is continued (module docstring); a finished one is not run again
    (its outputs are written anew from its files); another input starts afresh. ``mock``: the ideal structure is passed through, labelled
    ``relaxed="none (mock engine)"``. Returns a summary (also written to ``workdir/relax.json``
    for cp2k).
    
    ``wfn_out``: where to copy the wavefunction of the last SCF (CP2K's ``*-RESTART.wfn``), from
    which the MD's first SCF starts (:func:`qdphonon.engines.cp2k.run_cp2k` ``initial_wfn``).
    """

    engines = settings.choices("engine")
    if engine not in engines:
        raise ValueError(f"unknown engine {engine!r}; expected one of {', '.join(engines)}")
    dot = read_structure(structure_xyz)
    if engine == "mock":
        write_labelled_structure(dot, out_xyz, "none (mock engine)")
        return {"engine": "mock", "relaxed": False, "synthetic": True, "structure": str(structure_xyz)}
    find_cp2k(cp2k_command)
    spec, spec_desc = installed_xmlspec(cp2k_command)
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    job = RelaxJob(directory=workdir, structure_xyz=Path(structure_xyz), dot=dot, out_xyz=Path(out_xyz), level=level,
                   max_iter=int(max_iter), scf=SCFSettings(eps_scf=eps_scf, max_scf=max_scf, smearing_K=smearing_K),
                   overrides=overrides, spec=spec, spec_desc=spec_desc, cp2k_command=cp2k_command,
                   wfn_out=None if wfn_out is None else Path(wfn_out))  # fmt: skip
    summary = run_segments(job, CP2KLauncher(cp2k_command, mpi, int(tasks), int(threads), grace_s), lock_wait_s=lock_wait_s)
    if not summary["converged"]:
        print(f"relax: warning: geometry optimisation not converged in {max_iter} steps; "
              f"{out_xyz} holds the last geometry (relax_converged=F)", file=sys.stderr)  # fmt: skip
    return summary


@dataclasses.dataclass
class RelaxJob:
    """A GEO_OPT at the MD's level as a :class:`~qdphonon.engines.segment.SegmentJob`: ``relax-state.json``
    its state, the first input or a continuation from the last whole frame and wavefunction its next
    segment, the labelled relaxed structure and ``relax.json`` its record."""

    directory: Path
    structure_xyz: Path
    dot: Any
    out_xyz: Path
    level: str
    max_iter: int
    scf: SCFSettings
    overrides: Mapping[str, Any] | None
    spec: Any
    spec_desc: str
    cp2k_command: str
    wfn_out: Path | None = None
    purpose: str = "relax"
    point: dict[str, Any] = dataclasses.field(default_factory=dict)

    state_record = RelaxState

    @property
    def state_path(self) -> Path:
        return self.directory / RELAX_STATE_FILE

    def tree(self, positions, iterations: int) -> dict[str, Any]:
        return cp2k_input_tree(self.dot.symbols, positions, self.dot.box_A, level=self.level, run_type="GEO_OPT",
                               scf=self.scf, geo_opt_max_iter=iterations, overrides=self.overrides)  # fmt: skip

    def first_input(self) -> str:
        header = f"! qdphonon GEO_OPT input, level {self.level}; validated against {self.spec_desc}\n"
        return header + render_input(self.tree(self.dot.positions_A, self.max_iter), self.spec)

    def open(self, lock) -> dict[str, Any]:
        """The state of this input (another input's files wiped), its running segments reconciled (CP2K
        finished, or killed with its job), and where the optimisation stands."""
        remove_stale_temp_files(self.directory)
        sha = hashlib.sha256(self.first_input().encode()).hexdigest()
        base = self.tree(self.dot.positions_A, self.max_iter)["global"]["project_name"]
        state = read_state(RelaxState, self.state_path)
        if state is None or state.get("input_sha256") != sha:
            _wipe(self.directory, base)
            state = {"input_sha256": sha, "structure": str(self.structure_xyz), "level": self.level,
                     "max_iter": self.max_iter, "project": base, "segments": []}  # fmt: skip
        for seg in state["segments"]:
            if seg.get("ended") == SegmentEnd.RUNNING.value:
                if output_end(self.directory / seg["output"]).ended:
                    seg["ended"], seg["note"] = SegmentEnd.COMPLETED.value, "engine process gone after CP2K finished"
                else:
                    seg["ended"] = SegmentEnd.KILLED.value
                    seg["note"] = "engine process gone while CP2K ran (killed with its job)"
        self.point = _resume_point(self.directory, state)
        save_state(self, state)
        return state

    def plan(self, state: dict[str, Any]) -> SegmentPlan | None:
        """The first GEO_OPT, or a continuation from the last whole frame with the iterations still allowed;
        None once a segment completed or no iteration is left."""
        segments = state["segments"]
        remaining = self.max_iter - self.point["iterations"]
        if (segments and segments[-1].get("ended") == SegmentEnd.COMPLETED.value) or remaining <= 0:
            return None
        index = len(segments)
        project, inp, out_name = relax_segment_files(index, state["project"])
        if index == 0:
            text = self.first_input()
        else:
            point = self.point
            positions = self.dot.positions_A if point["positions"] is None else point["positions"]
            cont: dict[str, Any] = {"global": {"project_name": project}}
            if point["wfn"] is not None:
                cont["force_eval"] = {"dft": {"wfn_restart_file_name": point["wfn"], "scf": {"scf_guess": "RESTART"}}}
            text = (f"! qdphonon GEO_OPT continuation {index} (from {point['from']}, wavefunction "
                    f"{point['wfn'] or 'none'}), level {self.level}; validated against {self.spec_desc}\n"
                    + render_input(merge_overrides(self.tree(positions, remaining), cont), self.spec))  # fmt: skip
        fields = {"project": project, "start": self.point["from"], "wfn_file": self.point["wfn"] if index else None,
                  "iterations_before": self.point["iterations"], "max_iter": remaining}  # fmt: skip
        return SegmentPlan(inp, out_name, text, fields)

    def close(self, seg: dict[str, Any], result: ProcessResult) -> None:
        by_process = process_end(result, self.directory / seg["output"])
        if by_process is not None:
            seg["ended"], seg["note"] = by_process[0].value, by_process[1]
        else:
            seg["ended"] = SegmentEnd.COMPLETED.value

    def check(self, seg: dict[str, Any], result: ProcessResult) -> None:
        if seg["ended"] == SegmentEnd.KILLED.value:
            raise RunInterrupted(f"CP2K geometry optimisation stopped ({seg['note']}); run again to continue",
                                 killed_status(result))  # fmt: skip
        if seg["ended"] != SegmentEnd.COMPLETED.value:
            raise EngineError(f"CP2K geometry optimisation failed (exit status {result.exit_status}): {seg['note']}")

    def finish(self, state: dict[str, Any]) -> dict[str, Any]:
        """The relaxed structure (labels kept, ``relaxed=cp2k-<level>``, ``relax_converged``), the last
        wavefunction (``wfn_out``) and ``relax.json``; written anew when called again."""
        workdir, dot = self.directory, self.dot
        if not state["segments"]:
            raise EngineError(f"{workdir}: no geometry optimisation was run (max_iter {self.max_iter})")
        point = self.point = _resume_point(workdir, state)
        converged = geo_opt_end(workdir / state["segments"][-1]["output"]) is GeoOptEnd.CONVERGED
        if point["positions"] is None:
            raise EngineError(f"{workdir}: the geometry optimisation wrote no whole frame")
        last_pos = workdir / relax_trajectory(state["segments"][-1]["project"])
        symbols = last_xyz_frame(last_pos)[0] if last_pos.is_file() and xyz_frames(last_pos.read_bytes()) else list(dot.symbols)
        if symbols != list(dot.symbols):
            raise EngineError(f"{last_pos}: atoms differ from {self.structure_xyz}")
        relaxed = dataclasses.replace(dot, positions_A=recentre(point["positions"], dot.box_A))
        write_labelled_structure(relaxed, self.out_xyz, f"cp2k-{self.level}", {"relax_converged": "T" if converged else "F"})
        energy = re.search(r"E\s*=\s*(" + r"[-+0-9.Ee]+" + r")", point["comment"] or "")
        summary = {
            "engine": "cp2k", "level": self.level, "relaxed": True, "converged": converged,
            "cp2k_version": cp2k_version(self.cp2k_command), "command": state["segments"][-1]["command"],
            "wall_s": round(sum(s.get("wall_s") or 0.0 for s in state["segments"]), 3),
            "final_energy_Ha": float(energy.group(1)) if energy else None,
            "max_displacement_A": float(np.abs(relaxed.positions_A - dot.positions_A).max()),
            "structure": str(self.structure_xyz), "out": str(self.out_xyz), "synthetic": False,
            "segments": len(state["segments"]), "iterations": point["iterations"],
        }  # fmt: skip
        if self.wfn_out is not None:
            if point["wfn"] is None:
                raise EngineError(f"{workdir}: the geometry optimisation left no whole wavefunction file")
            tmp = self.wfn_out.with_name(f".{self.wfn_out.name}.tmp")
            tmp.write_bytes((workdir / point["wfn"]).read_bytes())
            os.replace(tmp, self.wfn_out)
            summary["wfn"] = str(self.wfn_out)
        write_json_atomic(workdir / RELAX_SUMMARY_FILE, summary)
        state["complete"] = True
        save_state(self, state)
        return summary
