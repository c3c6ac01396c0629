"""Running a re-evaluation pass by pass and merging the passes into one band-edge table
(the plan and the CP2K input: :mod:`qdphonon.reevaluate`)."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import numpy as np

from qdphonon.parsers.band_edges import BandEdges
from qdphonon.parsers.run_dir import SCF_POLICIES, RunResult
from qdphonon.parsers.source_trajectory import SourceTrajectory
from qdphonon.reevaluate import FRAMES_FILE, PROJECT, STATE_FILE, Plan, check_same_plan, plan_to_json, reftraj_tree, write_frames

_EDGE_ARRAYS = ("step", "time_fs", "vbm_eV", "cbm_eV", "gap_eV", "scf_converged", "homo_occupation", "lumo_occupation")


@dataclasses.dataclass
class PassResult:
    """The snapshots one pass evaluated (CP2K's step = snapshot number), parsed with every SCF kept."""

    name: str
    first_snapshot: int
    result: RunResult | None

    @property
    def last_snapshot(self) -> int:
        """Last snapshot evaluated, ``first_snapshot - 1`` when none was."""
        if self.result is None or self.result.band_edges.step.size == 0:
            return self.first_snapshot - 1
        return int(self.result.band_edges.step.max())


def _parse_pass(run_dir: Path, first: int) -> PassResult:
    from qdphonon.parsers.run_dir import parse_run_dir

    if not any(run_dir.glob("seg*.out")):
        return PassResult(run_dir.name, first, None)
    try:
        result = parse_run_dir(run_dir, on_scf_failure="keep_flagged")
    except ValueError:  # an unfinished pass killed before its first MO block
        if (run_dir / "run.json").is_file():
            raise
        return PassResult(run_dir.name, first, None)
    return PassResult(run_dir.name, first, result)


def _wavefunction_of(run_dir: Path) -> Path | None:
    """The pass's last whole wavefunction file (a kill can cut the newest one short)."""
    from qdphonon.parsers.record_bounds import fortran_file_whole

    for name in (f"{PROJECT}-RESTART.wfn", f"{PROJECT}-RESTART.wfn.bak-1"):
        if fortran_file_whole(run_dir / name):
            return run_dir / name
    return None


def read_state(workdir: Path, plan: Plan) -> dict[str, Any]:
    from qdphonon.run.layout import read_json

    state = read_json(workdir / STATE_FILE)
    if state is None:
        return {"plan": plan_to_json(plan), "passes": []}
    check_same_plan(state.get("plan", {}), plan, workdir / STATE_FILE)
    return state


def run_passes(source: SourceTrajectory, plan: Plan, index: np.ndarray, workdir: str | os.PathLike,
               **engine: Any) -> list[PassResult]:  # fmt: skip
    """Evaluate the snapshots not yet done in one new pass (at most one engine run per call) and return
    every pass parsed. The work directory's lock is held throughout. Engine errors (a kill, a wall-time
    stop) propagate after the pass is recorded; the next call starts a new pass where it ended."""
    from qdphonon.cp2k.readback import render_tree
    from qdphonon.cp2k.xmlspec import installed_xmlspec
    from qdphonon.engines.cp2k import run_cp2k
    from qdphonon.run.layout import write_json_atomic
    from qdphonon.run.lock import lock_run_dir

    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    with lock_run_dir(workdir, "reevaluate", wait_s=float(engine.pop("lock_wait_s", 0.0))):
        state = read_state(workdir, plan)
        write_json_atomic(workdir / STATE_FILE, state)
        if not (workdir / FRAMES_FILE).is_file():
            write_frames(workdir / FRAMES_FILE, source.symbols, source.positions_A[index], plan.source_steps)
        passes = [_parse_pass(workdir / p["dir"], int(p["first_snapshot"])) for p in state["passes"]]
        done = passes[-1].last_snapshot if passes else 0
        if done < plan.n_snapshots:
            name = f"pass{len(passes):03d}"
            wfn = _wavefunction_of(workdir / passes[-1].name) if passes else None
            tree = reftraj_tree(plan, source.symbols, source.positions_A[index[done]], done + 1)
            spec, spec_desc = installed_xmlspec(engine.get("cp2k_command", "cp2k.psmp"))
            inp = workdir / f"{name}.inp"
            header = (f"! qdphonon reevaluate: snapshots {done + 1}..{plan.n_snapshots} of {FRAMES_FILE} "
                      f"(source {Path(plan.source_path).name}, sha256 {plan.source_sha256[:16]}), level {plan.level}\n")  # fmt: skip
            inp.write_text(render_tree(tree, spec, header))
            state["passes"].append({"dir": name, "first_snapshot": done + 1, "initial_wfn": wfn and str(wfn.name)})
            write_json_atomic(workdir / STATE_FILE, state)
            try:
                run_cp2k(inp, workdir / name, initial_wfn=wfn, **engine)
            finally:
                passes.append(_parse_pass(workdir / name, done + 1))
    return passes


def merge_passes(passes: list[PassResult], plan: Plan, on_scf_failure: str) -> RunResult:
    """One RunResult over all snapshots: ``step`` the source's MD step, ``time_fs`` = step * source time
    step, the SCF policy applied to the merged table. Missing or repeated snapshots are an error."""
    if on_scf_failure not in SCF_POLICIES:
        raise ValueError(f"on_scf_failure must be one of {', '.join(SCF_POLICIES)}, got {on_scf_failure!r}")
    parts, warnings = [], []
    for i, p in enumerate(passes):
        if p.result is None:
            continue
        edges = p.result.band_edges
        end = passes[i + 1].first_snapshot if i + 1 < len(passes) else plan.n_snapshots + 1
        parts.append(edges.select((edges.step >= p.first_snapshot) & (edges.step < end)))
        warnings += [f"{p.name}: {w}" for w in p.result.warnings]
    if not parts:
        raise ValueError("no snapshot was evaluated yet")
    merged = {k: np.concatenate([getattr(e, k) for e in parts]) for k in _EDGE_ARRAYS}
    snapshots = merged["step"]
    if not np.array_equal(snapshots, np.arange(1, plan.n_snapshots + 1)):
        missing = sorted(set(range(1, plan.n_snapshots + 1)) - set(snapshots.tolist()))
        raise ValueError(f"re-evaluation incomplete or inconsistent: {snapshots.size} snapshots for {plan.n_snapshots}"
                         f" (missing {missing[:10]}); run again to continue")  # fmt: skip
    source_step = np.asarray(plan.source_steps, dtype=int)[snapshots - 1]
    merged["step"] = source_step
    merged["time_fs"] = source_step * plan.source_timestep_fs
    edges = BandEdges(**merged, homo_index=parts[0].homo_index, source=parts[0].source)
    bad = ~edges.scf_converged
    dropped: list[int] = []
    if bad.any():
        listed = ", ".join(str(s) for s in edges.step[bad][:20])
        if on_scf_failure == "fail":
            raise ValueError(f"SCF not converged at {int(bad.sum())} re-evaluated step(s): {listed}")
        if on_scf_failure == "drop_step":
            dropped = [int(s) for s in edges.step[bad]]
            edges = edges.select(~bad)
            warnings.append(f"SCF not converged at {len(dropped)} step(s) ({listed}): dropped from the band edges")
    last = next(p.result for p in reversed(passes) if p.result is not None)
    return dataclasses.replace(last, band_edges=edges, positions=None, velocities=None, energies=None,
                               md_temperature_K=plan.md_temperature_K, timestep_fs=plan.effective_timestep_fs,
                               scf_policy=on_scf_failure, n_scf_unconverged=int(bad.sum()), dropped_steps=dropped,
                               warnings=warnings)  # fmt: skip


def write_reevaluated_csv(result: RunResult, plan: Plan, passes: list[PassResult], workdir: str | os.PathLike,
                          out: str | os.PathLike) -> list[Path]:  # fmt: skip
    """The band-edge CSV with ``parse-cp2k``'s columns and sidecar, plus a ``reevaluation`` block (stride,
    level, source trajectory and its SHA-256, effective time step); ``timestep_fs`` is the effective one."""
    import pandas as pd

    from qdphonon.metadata import write_table
    from qdphonon.parsers.writers import band_edges_metadata

    meta = band_edges_metadata(result)
    meta.update(run_dir=str(Path(workdir)), main_outputs=[f"{p.name}/{o}" for p in passes if p.result
                                                          for o in p.result.segments])  # fmt: skip
    meta["reevaluation"] = plan.record()
    e = result.band_edges
    df = pd.DataFrame({"step": e.step, "time_fs": e.time_fs, "vbm_eV": e.vbm_eV, "cbm_eV": e.cbm_eV,
                       "gap_eV": e.gap_eV, "scf_converged": e.scf_converged.astype(bool)})  # fmt: skip
    return write_table(df, out, meta)


def reevaluate(source: SourceTrajectory, workdir: str | os.PathLike, out: str | os.PathLike, *, level: str,
               stride_steps: int | None = None, first_step: int | None = None, timestep_fs: float | None = None,
               md_temperature_K: float | None = None, eps_scf: float | None = None,
               on_scf_failure: str = "drop_step", **engine: Any) -> tuple[RunResult, Plan]:  # fmt: skip
    """Plan, run what is left (one pass), merge and write ``out`` (+ sidecar). Returns the merged result."""
    from qdphonon.reevaluate import make_plan

    plan, index = make_plan(source, level=level, stride_steps=stride_steps, first_step=first_step,
                            timestep_fs=timestep_fs, md_temperature_K=md_temperature_K, eps_scf=eps_scf)  # fmt: skip
    passes = run_passes(source, plan, index, workdir, on_scf_failure=on_scf_failure, **engine)
    result = merge_passes(passes, plan, on_scf_failure)
    write_reevaluated_csv(result, plan, passes, workdir, out)
    return result, plan
