"""One CP2K MD run directory, ours or any, parsed into band edges, trajectories and energies.

The files are found by :func:`qdphonon.parsers.discover.discover` (any project name, any main-output
name, continuations made by hand); band edges come from the MOLog when it holds the LUMO,
else from the main outputs (OT); steps are aligned across segments so every MD step
appears once. The SCF policy decides what happens to steps whose SCF did not converge.
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import Sequence

from qdphonon.parsers.band_edges import BandEdges, NoBandEdgesError, band_edges_from_outputs
from qdphonon.parsers.common import _warn
from qdphonon.parsers.energies import Energies, read_energies
from qdphonon.parsers.main_output import MainOutput, read_main_output
from qdphonon.parsers.dcd_steps import read_dcd_run
from qdphonon.parsers.xyz import Trajectory, read_positions, read_velocities
from qdphonon import settings
from qdphonon.parsers.discover import RunLayout, discover, recorded_scf_policy
from qdphonon.parsers.output_header import read_output_header
from qdphonon.parsers.verdicts import RunType
from qdphonon.units import BOLTZMANN_meV_per_K

SCF_POLICIES = tuple(settings.choices("scf.on_failure"))
"""Values of the ``scf.on_failure`` setting (the schema's)."""

SMEARING_GAP_FACTOR = 10.0
"""Warn when a smeared gap is below this many k_B T_el (occupations of the edges no longer ~2/0)."""


@dataclasses.dataclass
class RunResult:
    """Everything parsed from one run directory.

    band_edges: after the SCF policy. positions (A) / velocities (A/fs) / energies: every
    step once, None when the run did not write them. level: ``xtb``/``pbe`` from the main
    output (None when it does not say). md_temperature_K and timestep_fs: from the main
    output (``MD_PAR|``). n_scf_unconverged: steps whose SCF did not converge (before the
    policy); dropped_steps: steps removed by the policy. warnings: every ParseWarning raised.
    """

    layout: RunLayout
    band_edges: BandEdges
    positions: Trajectory | None
    velocities: Trajectory | None
    energies: Energies | None
    level: str | None
    cp2k_version: str | None
    md_temperature_K: float | None
    timestep_fs: float | None
    smearing_K: float | None
    synthetic: bool
    scf_policy: str
    n_scf_unconverged: int
    dropped_steps: list[int]
    warnings: list[str]

    @property
    def run_dir(self) -> str:
        return str(self.layout.run_dir)

    @property
    def segments(self) -> list[str]:
        return [p.name for p in self.layout.outputs]


def _optional(reader, path: Path | None, sink: list[str]):
    if path is None or not path.is_file():
        return None
    return reader(path, sink)


def parse_run_dir(run_dir: str | os.PathLike, on_scf_failure: str | None = None,
                  outputs: Sequence[str | os.PathLike] | None = None, molog: str | None = None) -> RunResult:
    """Parse an MD run directory into one result.

    on_scf_failure: what to do with band edges of steps whose SCF did not converge:
    ``drop_step`` (remove them, warn), ``keep_flagged`` (keep, ``scf_converged`` False)
    or ``fail`` (ValueError listing them). Trajectories and energies are not affected. None: the
    policy the run recorded (:func:`qdphonon.parsers.discover.recorded_scf_policy`), else the schema's default.
    outputs / molog: the main outputs in run order and the MOLog, when the directory
    does not say (see :func:`qdphonon.parsers.discover.discover`).
    """
    if on_scf_failure is None:
        on_scf_failure = recorded_scf_policy(run_dir) or settings.default("scf.on_failure")
    if on_scf_failure not in SCF_POLICIES:
        raise ValueError(f"on_scf_failure must be one of {', '.join(SCF_POLICIES)}, got {on_scf_failure!r}")
    sink: list[str] = []
    try:
        layout = discover(run_dir, outputs, molog)
    except FileNotFoundError:
        if outputs is None and Path(run_dir).is_dir():
            _refuse_other_run_types([p for p in sorted(Path(run_dir).iterdir()) if p.is_file()])
        raise
    run_dir = layout.run_dir
    for p in layout.set_aside:
        _warn(f"{p}: empty main output (CP2K killed before it wrote anything): set aside", sink)
    segs = layout.outputs
    mains = [read_main_output(p) for p in segs]
    _refuse_other_run_types(segs, mains)
    for mo in mains[:-1]:
        if mo.evaluations and mo.evaluations[-1].kind == "trailing":
            ev = mo.evaluations[-1]
            by = " by CP2K's WALLTIME" if ev.walltime_stopped else " by an EXIT file" if ev.external_stopped else ""
            _warn(f"{mo.path}: line {ev.line_no}: segment was cut short{by} during step {_next_step(mo)}; "
                  "its partial step is dropped", sink)
    last = mains[-1]
    if last.evaluations and last.evaluations[-1].kind == "trailing":
        ev = last.evaluations[-1]
        why = " after an unconverged SCF (CP2K >= 2024.1 aborts there)" if ev.scf_converged is False else ""
        if ev.scf_stopped:
            by = "CP2K's WALLTIME" if ev.walltime_stopped else "an EXIT file"
            why = f" ({by} stopped its SCF; a continuation re-evaluates it)"
        _warn(f"{last.path}: line {ev.line_no}: run ended during step {_next_step(last)}{why}; that step is dropped", sink)


    try:
        edges = band_edges_from_outputs(mains, layout.path("molog"), sink, layout.molog_blocks)
    except NoBandEdgesError as exc:
        level = next((mo.level for mo in mains if mo.level), None) or level_from_inputs(run_dir)
        raise NoBandEdgesError(f"{exc}; compute them along its trajectory with: {reevaluate_command(run_dir, level)}") from None
    if str(layout.files.get("positions", "")).endswith(".dcd"):
        positions = read_dcd_run(run_dir, "positions", project=layout.project, warn_sink=sink)
        velocities = read_dcd_run(run_dir, "velocities", project=layout.project, warn_sink=sink)
    else:
        positions = _optional(read_positions, layout.path("positions"), sink)
        velocities = _optional(read_velocities, layout.path("velocities"), sink)
    energies = _optional(read_energies, layout.path("energies"), sink)
    smearing = next((mo.smearing_K for mo in mains if mo.smearing_K is not None), None)
    if smearing is not None:
        threshold_eV = SMEARING_GAP_FACTOR * BOLTZMANN_meV_per_K * smearing * 1e-3
        small = edges.gap_eV < threshold_eV
        if small.any():
            _warn(
                f"{run_dir}: gap below {SMEARING_GAP_FACTOR:g} k_B T_el = {threshold_eV:.3f} eV (T_el = {smearing:g} K) "
                f"at {int(small.sum())} of {small.size} steps (min {edges.gap_eV.min():.4f} eV): the smearing "
                "changes the frontier occupations (recorded)",
                sink,
            )
    bad = ~edges.scf_converged
    n_bad = int(bad.sum())
    dropped: list[int] = []
    if n_bad:
        listed = ", ".join(str(s) for s in edges.step[bad][:20]) + (" ..." if n_bad > 20 else "")
        if on_scf_failure == "fail":
            raise ValueError(f"{run_dir}: SCF not converged at {n_bad} step(s): {listed}")
        if on_scf_failure == "drop_step":
            dropped = [int(s) for s in edges.step[bad]]
            edges = edges.select(~bad)
            _warn(f"{run_dir}: SCF not converged at {n_bad} step(s) ({listed}): dropped from the band edges", sink)
        else:
            _warn(f"{run_dir}: SCF not converged at {n_bad} step(s) ({listed}): kept, flagged", sink)
    synthetic = edges.synthetic or any(x is not None and x.synthetic for x in (positions, velocities, energies))
    return RunResult(
        layout=layout,
        band_edges=edges,
        positions=positions,
        velocities=velocities,
        energies=energies,
        level=next((mo.level for mo in mains if mo.level), None) or level_from_inputs(run_dir),
        cp2k_version=next((mo.cp2k_version for mo in mains if mo.cp2k_version), None),
        md_temperature_K=next((mo.md_temperature_K for mo in mains if mo.md_temperature_K is not None), None),
        timestep_fs=next((mo.timestep_fs for mo in mains if mo.timestep_fs is not None), None),
        smearing_K=smearing,
        synthetic=synthetic,
        scf_policy=on_scf_failure,
        n_scf_unconverged=n_bad,
        dropped_steps=dropped,
        warnings=sink,
    )


def reevaluate_command(run_dir: str | os.PathLike, level: str | None) -> str:
    """The command that computes band edges along the trajectory of a run that printed none."""
    lv = level if level in ("xtb", "pbe") else "LEVEL"
    return f"qdphonon reevaluate --run-dir {run_dir} --level {lv}" + ("" if lv != "LEVEL" else " (xtb or pbe)")


def _refuse_other_run_types(paths: Sequence[Path], mains: Sequence[MainOutput] | None = None) -> None:
    """ValueError naming the file, line and run type of the first CP2K main output that is not an MD run."""
    for i, p in enumerate(paths):
        if mains is None:
            h = read_output_header(p)
            if h is None or h.run_type is None or h.run_type is RunType.MD:
                continue
        mo = mains[i] if mains is not None else read_main_output(p)
        if mo.run_type is not None and mo.run_type != "MD":
            raise ValueError(
                f"{p}: line {mo.run_type_line}: CP2K run type {mo.run_type} ('GLOBAL| Run type'), not MD: "
                "parse-cp2k reads the steps of an MD run (RUN_TYPE MD)"
            )


def level_from_inputs(run_dir: Path) -> str | None:
    """``xtb`` or ``pbe`` from a CP2K input in the directory (``METHOD XTB`` / ``XC_FUNCTIONAL PBE``), or None."""
    for inp in sorted(run_dir.glob("*.inp")):
        text = inp.read_text(errors="replace").upper()
        if re.search(r"^\s*METHOD\s+XTB\b", text, re.MULTILINE):
            return "xtb"
        if re.search(r"XC_FUNCTIONAL\s+PBE\b", text):
            return "pbe"
    return None


def _next_step(mo: MainOutput) -> int | str:
    dated = [ev.step for ev in mo.evaluations if ev.kind != "trailing" and ev.step is not None]
    return dated[-1] + 1 if dated else "?"
