"""Band edges along an existing trajectory: CP2K single points at a stride, with MO printing.

The frames (every ``stride_steps``-th MD step of the source, from ``first_step``) are written
once to ``WORKDIR/frames.xyz`` and evaluated by CP2K's ``RUN_TYPE MD`` with ``ENSEMBLE REFTRAJ``
(``EVAL_ENERGY_FORCES``), the level's recipe of :mod:`qdphonon.cp2k.inputs` with its MO print, run
by the CP2K engine (:func:`qdphonon.engines.cp2k.run_cp2k`: lock, kill and wall-time handling,
MPI). CP2K numbers the REFTRAJ steps by snapshot (snapshot ``s`` of ``frames.xyz`` is MD step ``s``,
from 1) and, measured with 2023.1, restarts a REFTRAJ continuation from ``FIRST_SNAPSHOT`` whatever
the restart file's step: so an interrupted pass is never continued by the engine. Each call runs at
most one *pass* (``WORKDIR/passNNN``, a fresh engine run from the first snapshot not yet evaluated,
its first SCF started from the previous pass's wavefunction); the snapshots a killed or
wall-time-stopped pass finished are kept, so a kill loses only the frame in flight and no frame is
evaluated into the table twice. When every snapshot is done the passes are parsed with
:func:`qdphonon.parsers.run_dir.parse_run_dir` and merged into one band-edge table whose ``step``
is the source's MD step and ``time_fs`` the source's time.

Physics of the stride and of "dynamics at one level, band edges at another": docs/physics.md.
"""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from qdphonon import settings
from qdphonon.parsers.source_trajectory import SourceTrajectory
from qdphonon.units import HBAR_meV_fs

PLANCK_meV_fs = 2.0 * math.pi * HBAR_meV_fs
"""h in meV*fs: a mode of energy E (meV) has frequency E / h (1/fs)."""

FRAMES_FILE = "frames.xyz"
STATE_FILE = "reevaluate.json"
PROJECT = "reeval"


def highest_analysed_meV() -> float:
    """Top of the analysed phonon band: the last edge of the schema's ``analysis.region_edges_meV``."""
    return float(settings.default("analysis.region_edges_meV")[-1])


def default_stride_steps(timestep_fs: float, highest_meV: float | None = None) -> int:
    """Largest stride whose sampling rate is at least twice the highest analysed frequency (Nyquist):
    ``stride * timestep_fs <= h / (2 E_max)``; at least 1. 30 meV and 2 fs give 34 (68 fs)."""
    e_max = highest_analysed_meV() if highest_meV is None else float(highest_meV)
    if not timestep_fs > 0 or not e_max > 0:
        raise ValueError(f"time step {timestep_fs} fs and highest frequency {e_max} meV must be positive")
    return max(1, int(math.floor(PLANCK_meV_fs / (2.0 * e_max * timestep_fs) + 1e-9)))


def nyquist_meV(effective_timestep_fs: float) -> float:
    """Highest energy (meV) a series sampled every ``effective_timestep_fs`` resolves: h / (2 dt)."""
    return PLANCK_meV_fs / (2.0 * effective_timestep_fs)


@dataclasses.dataclass(frozen=True)
class Plan:
    """What one re-evaluation does; stored in ``WORKDIR/reevaluate.json`` so a rerun continues it and a
    rerun with other settings is refused. ``source_steps``: the source MD step of each snapshot."""

    source_path: str
    source_sha256: str
    source_origin: str
    level: str
    dynamics_level: str | None
    stride_steps: int
    first_step: int
    source_steps: tuple[int, ...]
    source_timestep_fs: float
    md_temperature_K: float
    cell_A: tuple[float, float, float]
    eps_scf: float | None

    @property
    def effective_timestep_fs(self) -> float:
        return self.stride_steps * self.source_timestep_fs

    @property
    def n_snapshots(self) -> int:
        return len(self.source_steps)

    def record(self) -> dict[str, Any]:
        """The sidecar's ``reevaluation`` block."""
        d = dataclasses.asdict(self)
        d["source_steps"] = [self.source_steps[0], self.source_steps[-1]]
        d.update(effective_timestep_fs=self.effective_timestep_fs, n_snapshots=self.n_snapshots,
                 nyquist_meV=nyquist_meV(self.effective_timestep_fs))  # fmt: skip
        return d


def select_frames(source: SourceTrajectory, stride_steps: int, first_step: int | None = None) -> np.ndarray:
    """Indices of the source frames at MD steps ``first_step + k * stride_steps`` (k = 0, 1, ...),
    up to the last frame; a step of that series missing from the source is a ValueError."""
    if int(stride_steps) < 1:
        raise ValueError(f"stride must be a positive number of MD steps, got {stride_steps}")
    steps = source.step
    first = int(steps[0]) if first_step is None else int(first_step)
    wanted = np.arange(first, int(steps[-1]) + 1, int(stride_steps))
    index = np.searchsorted(steps, wanted)
    ok = (index < steps.size) & (steps[np.minimum(index, steps.size - 1)] == wanted)
    if wanted.size == 0 or not ok.all():
        missing = wanted[~ok][:5] if wanted.size else [first]
        every = np.unique(np.diff(steps))
        raise ValueError(f"{source.path}: no frame at MD step(s) {list(map(int, missing))} (the file holds steps "
                         f"{int(steps[0])}..{int(steps[-1])}, every {every.tolist()}); choose a stride that is a "
                         "multiple of the file's frame spacing")  # fmt: skip
    return index


def make_plan(source: SourceTrajectory, *, level: str, stride_steps: int | None = None, first_step: int | None = None,
              timestep_fs: float | None = None, md_temperature_K: float | None = None,
              eps_scf: float | None = None) -> tuple[Plan, np.ndarray]:  # fmt: skip
    """The plan and the selected frame indices. ``timestep_fs`` / ``md_temperature_K`` are needed where
    the source does not record them and must agree with it where it does (1e-6 relative)."""
    from qdphonon.cp2k.inputs import LEVELS

    if level not in LEVELS:
        raise ValueError(f"unknown level {level!r}; expected one of {', '.join(LEVELS)}")
    dt = _agreeing("time step", "timestep_fs", source.timestep_fs, timestep_fs, source.path)
    temp = _agreeing("MD temperature", "md_temperature_K", source.md_temperature_K, md_temperature_K, source.path)
    stride = default_stride_steps(dt) if stride_steps is None else int(stride_steps)
    index = select_frames(source, stride, first_step)
    plan = Plan(source_path=str(Path(source.path).resolve()), source_sha256=source.sha256, source_origin=source.origin,
                level=level, dynamics_level=source.level, stride_steps=stride, first_step=int(source.step[index[0]]),
                source_steps=tuple(int(s) for s in source.step[index]), source_timestep_fs=dt, md_temperature_K=temp,
                cell_A=tuple(float(x) for x in source.cell_A), eps_scf=eps_scf)  # fmt: skip
    return plan, index


def _agreeing(what: str, flag: str, recorded: float | None, given: float | None, where: str) -> float:
    if recorded is None and given is None:
        raise ValueError(f"{where}: the source does not record its {what}; give it (--{flag.replace('_', '-')})")
    if recorded is not None and given is not None and not math.isclose(recorded, given, rel_tol=1e-6):
        raise ValueError(f"{where}: the source records {what} {recorded:g}, but {given:g} was given")
    return float(recorded if recorded is not None else given)


def write_frames(path: Path, symbols: Sequence[str], positions_A: np.ndarray, steps: Sequence[int]) -> None:
    """The snapshots as CP2K XYZ (Angstrom, 10 decimals like CP2K's own trajectories), atomically."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="ascii", newline="\n") as fh:
        for j, (frame, step) in enumerate(zip(positions_A, steps)):
            fh.write(f"{len(symbols)}\n i = {j}, source_step = {int(step)}\n")
            fh.writelines(f"{s} {x:.10f} {y:.10f} {z:.10f}\n" for s, (x, y, z) in zip(symbols, frame))
    os.replace(tmp, path)


def reftraj_tree(plan: Plan, symbols: Sequence[str], first_positions_A: np.ndarray, first_snapshot: int) -> dict[str, Any]:
    """The CP2K input of one pass: the level's MD recipe (MO print every step) switched to
    ``ENSEMBLE REFTRAJ`` over snapshots ``first_snapshot..n`` of ``../frames.xyz``; no thermostat,
    no centring (the frames are used as they are), the source's cell, no velocity print.
    ``STEPS`` = n: CP2K stops at ``LAST_SNAPSHOT``, which is then the last MD step."""
    from qdphonon.cp2k.inputs import MDSettings, SCFSettings, cp2k_input_tree

    n = plan.n_snapshots
    md = MDSettings(steps=n, timestep_fs=plan.effective_timestep_fs, temperature_K=plan.md_temperature_K,
                    trajectory_every_steps=1, trajectory_format="xyz")  # fmt: skip
    scf = SCFSettings(eps_scf=plan.eps_scf)
    tree = cp2k_input_tree(symbols, first_positions_A, max(plan.cell_A), level=plan.level, project=PROJECT, md=md, scf=scf)
    section = tree["motion"]["md"]
    for key in ("thermostat", "angvel_zero", "angvel_tol", "comvel_tol"):
        section.pop(key, None)
    section["ensemble"] = "REFTRAJ"
    section["reftraj"] = {"traj_file_name": f"../{FRAMES_FILE}", "eval_energy_forces": True,
                          "first_snapshot": int(first_snapshot), "last_snapshot": n, "stride": 1}  # fmt: skip
    tree["force_eval"]["subsys"]["cell"]["abc"] = list(plan.cell_A)
    tree["force_eval"]["subsys"]["topology"]["center_coordinates"] = {"_": False}
    tree["motion"]["print"]["velocities"] = {"_": "OFF"}
    return tree


def plan_to_json(plan: Plan) -> dict[str, Any]:
    d = dataclasses.asdict(plan)
    d["source_steps"] = list(plan.source_steps)
    d["cell_A"] = list(plan.cell_A)
    return d


def check_same_plan(found: Mapping[str, Any], plan: Plan, where: Path) -> None:
    """A work directory continues only the re-evaluation it was made for."""
    mine = plan_to_json(plan)
    keys = ("source_sha256", "level", "stride_steps", "first_step", "source_steps", "eps_scf", "cell_A")
    differ = [k for k in keys if found.get(k) != mine[k]]
    if differ:
        raise ValueError(f"{where}: this work directory holds another re-evaluation (differs in {', '.join(differ)}); "
                         "use another --workdir or remove it")  # fmt: skip
