"""Single points of the harmonic route as resumable CP2K work: one directory per displacement.

``workdir/ref`` is the relaxed structure, ``workdir/a0003yp`` atom 3 displaced by +step along y, and so
on (:func:`qdphonon.harmonic.assemble.cartesian_displacements`; with a point-group plan, the
``symmetry`` scheme, only phonopy's symmetry-reduced subset of them, displaced from the relaxed
structure symmetrised onto the cut's point group: :mod:`qdphonon.harmonic.symmetry`). A displacement is done when its
directory holds the same input (``sp.inp``, byte for byte) and its outputs parse completely
(:func:`qdphonon.parsers.single_point.read_single_point`); a job given several displacements runs the
ones not done, one after the other, so a kill loses at most the one in flight. Jobs given disjoint
sets of displacements may run at the same time. A single point runs with its directory's lock held
(:mod:`qdphonon.run.lock`), so a second job refuses it and ``qdphonon status`` sees it running.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from qdphonon.cp2k.inputs import SCFSettings, cp2k_input_tree, merge_overrides
from qdphonon.harmonic.plan import TIGHT_RELAX_OVERRIDES  # noqa: F401  (re-exported)
from qdphonon.harmonic.assemble import Displacement, SinglePoint, cartesian_displacements, displaced_positions
from qdphonon.parsers.single_point import SinglePointIncomplete, read_single_point
from qdphonon.run.lock import LOCK_FILE, lock_holder, lock_run_dir
from qdphonon.structures.io import read_structure

REFERENCE = "ref"
PROJECT = "sp"
INPUT = "sp.inp"
OUTPUT = "sp.out"
START_WFN = "start.wfn"
"""The wavefunction a single point's SCF starts from, copied into its directory (CP2K rewrites the file it
restarts from, so each single point gets its own copy)."""

DEFAULT_STEP_A = 0.01
"""Displacement step (Angstrom): the usual choice of phonopy and of molecular codes for Hessians."""

SINGLE_POINT_EPS_SCF = {"xtb": 1e-8, "pbe": 1e-7}


"""SCF thresholds of the single points: tighter than the MD's, since forces are differenced over 2 x step."""


class SinglePointFailed(RuntimeError):
    """CP2K ended a single point without a whole result (the message names the directory and why)."""


def displacement_names(n_atoms: int, step_A: float = DEFAULT_STEP_A, plan=None) -> list[str]:
    """The reference, then the displacements (all 6N, or ``plan``'s symmetry-reduced ones), in the order the
    route runs them."""
    ds = cartesian_displacements(n_atoms, step_A) if plan is None else plan.displacements
    return [REFERENCE] + [d.name for d in ds]


def cut_plan(cut_xyz: str | Path, structure_xyz: str | Path, step_A: float):
    """The point-group plan of the ideal cut ``cut_xyz`` (what the workflow planned its jobs with) for the
    relaxed ``structure_xyz`` (same atoms in the same order, else ValueError)."""
    from qdphonon.harmonic.symmetry import point_group_plan

    cut, dot = read_structure(cut_xyz), read_structure(structure_xyz)
    if list(cut.symbols) != list(dot.symbols) or abs(cut.box_A - dot.box_A) > 1e-6:
        raise ValueError(f"{structure_xyz}: atoms or box differ from the cut {cut_xyz}")
    return point_group_plan(cut.symbols, cut.positions_A, cut.box_A, step_A)


def reference_positions(structure_xyz: str | Path, plan=None) -> tuple[np.ndarray, float]:
    """The reference geometry (Angstrom) and how far it was moved: the relaxed structure itself, or with a
    plan, that structure symmetrised onto the plan's point group (largest shift, Angstrom)."""
    dot = read_structure(structure_xyz)
    if plan is None:
        return np.asarray(dot.positions_A, float), 0.0
    from qdphonon.harmonic.symmetry import SymmetryBroken, symmetrise

    try:
        return symmetrise(dot.positions_A, plan)
    except SymmetryBroken as exc:
        raise SymmetryBroken(f"{structure_xyz}: the relaxed structure has lost the cut's point group {plan.point_group} "
                             f"({exc}); run this system with harmonic.displacements: cartesian") from None  # fmt: skip


def batches(names: Sequence[str], per_job: int) -> list[list[str]]:
    """Consecutive groups of at most ``per_job`` names (the reference first, alone, when it is included:
    its result decides the degeneracy every other single point is read with)."""
    if per_job < 1:
        raise ValueError(f"displacements per job must be >= 1, got {per_job}")
    names = list(names)
    head = [[names.pop(0)]] if names and names[0] == REFERENCE else []
    return head + [names[i:i + per_job] for i in range(0, len(names), per_job)]


def _displacement(name: str, step_A: float) -> Displacement | None:
    if name == REFERENCE:
        return None
    if len(name) != 7 or name[0] != "a" or name[5] not in "xyz" or name[6] not in "pm" or not name[1:5].isdigit():
        raise ValueError(f"not a displacement name: {name!r} (expected 'ref' or like 'a0003yp')")
    return Displacement(int(name[1:5]), "xyz".index(name[5]), 1 if name[6] == "p" else -1, float(step_A))


def single_point_input(structure_xyz: str | Path, name: str, level: str, step_A: float = DEFAULT_STEP_A,
                       overrides: Mapping[str, Any] | None = None, xmlspec: str | Path | None = None,
                       restart: bool = False, reference_A: np.ndarray | None = None) -> str:  # fmt: skip
    """The CP2K input text of one single point (validated against ``xmlspec``, default the bundled one);
    ``restart``: its SCF starts from :data:`START_WFN` (``SCF_GUESS RESTART``); ``reference_A``: the
    undisplaced positions (default: the structure's)."""
    from qdphonon.cp2k.xmlspec import render_input

    dot = read_structure(structure_xyz)
    base = dot.positions_A if reference_A is None else reference_A
    d = _displacement(name, step_A)
    positions = base if d is None else displaced_positions(base, d)
    if restart:
        start = {"force_eval": {"dft": {"wfn_restart_file_name": START_WFN, "scf": {"scf_guess": "RESTART"}}}}
        overrides = merge_overrides(dict(overrides or {}), start)
    tree = cp2k_input_tree(dot.symbols, positions, dot.box_A, level=level, run_type="ENERGY_FORCE", project=PROJECT,
                           scf=SCFSettings(eps_scf=SINGLE_POINT_EPS_SCF[level]), overrides=overrides)  # fmt: skip
    where = "reference" if d is None else f"atom {d.atom} displaced by {d.sign * d.step_A:+g} A along {'xyz'[d.axis]}"
    return f"! qdphonon harmonic route single point {name} ({where}), level {level}\n" + render_input(tree, xmlspec)


def is_done(directory: Path, text: str) -> bool:
    """Same input and a whole, parseable result."""
    inp = directory / INPUT
    if not inp.is_file() or inp.read_text() != text:
        return False
    try:
        read_single_point(directory, PROJECT, OUTPUT)
    except SinglePointIncomplete:
        return False
    return True


def single_point_walls(workdir: str | Path) -> list[float | None]:
    """CP2K's total time (s; None where it printed none) of every single-point directory of ``workdir`` that
    holds a whole result: how many are done and what they cost (for ``qdphonon status``)."""
    workdir = Path(workdir)
    walls: list[float | None] = []
    for d in sorted(workdir.iterdir()) if workdir.is_dir() else []:
        try:
            walls.append(read_single_point(d, PROJECT, OUTPUT).wall_s)
        except (SinglePointIncomplete, OSError):
            continue
    return walls


def run_single_points(structure_xyz: str | Path, workdir: str | Path, names: Sequence[str], level: str, *,
                      step_A: float = DEFAULT_STEP_A, cp2k_command: str = "cp2k.psmp", mpi: str | None = None,
                      tasks: int = 1, threads: int = 1, overrides: Mapping[str, Any] | None = None,
                      engine: str = "cp2k", initial_wfn: str | Path | None = None, plan=None) -> dict[str, str]:
    """Run the single points ``names`` not yet done in ``workdir/<name>``; returns name -> ``done`` | ``ran``.

    ``initial_wfn`` (cp2k): every SCF starts from this wavefunction (the tight relaxation's), copied into
    each directory: a displacement of 0.01 A then converges in a few iterations instead of the ~50
    an atomic guess needs at PBE (the converged result does not depend on the guess, to EPS_SCF).

    ``plan``: the point-group plan of the ``symmetry`` scheme; the displacements start from the structure
    symmetrised onto it (:func:`reference_positions`).

    ``engine="mock"`` writes synthetic single points (:mod:`qdphonon.harmonic.mock`) instead of running CP2K.
    SinglePointFailed when CP2K ends one without a whole result (the ones before it stay done)."""
    from qdphonon.cp2k.xmlspec import installed_xmlspec

    if engine not in ("cp2k", "mock"):
        raise ValueError(f"unknown engine {engine!r}; expected cp2k or mock")
    spec = installed_xmlspec(cp2k_command)[0] if engine == "cp2k" else None
    mock = None
    base = reference_positions(structure_xyz, plan)[0]
    if engine == "mock":
        from qdphonon.harmonic.mock import SpringDot, write_single_point

        mock = SpringDot(read_structure(structure_xyz).symbols, base)
    status = {}
    restart = engine == "cp2k" and initial_wfn is not None
    if restart and not Path(initial_wfn).is_file():
        raise FileNotFoundError(f"{initial_wfn}: the wavefunction the single points should start from is missing")
    for name in names:
        text = single_point_input(structure_xyz, name, level, step_A, overrides, spec, restart=restart, reference_A=base)
        d = Path(workdir) / name
        if is_done(d, text):
            status[name] = "done"
            continue
        d.mkdir(parents=True, exist_ok=True)
        with lock_run_dir(d, f"harmonic single point {name}"):
            _clear(d)
            (d / INPUT).write_text(text)
            if restart:
                shutil.copyfile(initial_wfn, d / START_WFN)
            if mock is not None:
                disp = _displacement(name, step_A)
                write_single_point(d, mock, base if disp is None else displaced_positions(base, disp), PROJECT, OUTPUT)
                exit_status = 0
            else:
                exit_status = _run_cp2k(d, cp2k_command, mpi, tasks, threads)
        try:
            read_single_point(d, PROJECT, OUTPUT)
        except SinglePointIncomplete as exc:
            raise SinglePointFailed(f"{d}: CP2K exit status {exit_status}, no whole result: {exc}") from exc
        status[name] = "ran"
    return status


def _clear(directory: Path) -> None:
    """Remove what an earlier attempt left in a single point's directory (all but the held lock file)."""
    for p in directory.iterdir():
        if p.name != LOCK_FILE:
            shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()


def single_points_running(workdir: str | Path) -> list[str]:
    """The single points of ``workdir`` whose directory's lock a live engine holds (a holder on another
    host counts as running: it cannot be checked from here)."""
    workdir = Path(workdir)
    running = []
    for d in sorted(workdir.iterdir()) if workdir.is_dir() else []:
        holder = lock_holder(d)
        if holder is not None and holder["engine_alive"] is not False:
            running.append(d.name)
    return running


def _run_cp2k(directory: Path, cp2k_command: str, mpi: str | None, tasks: int, threads: int) -> int:
    """The one place the route starts CP2K (through :mod:`qdphonon.engines.process`); returns its exit status."""
    from qdphonon.engines import process

    exe = process.find_cp2k(cp2k_command)
    cmd = process.cp2k_command_line(exe, INPUT, OUTPUT, mpi=mpi, tasks=tasks)
    return process.run_process(cmd, directory, process.cp2k_environment(threads, mpi)).exit_status


def collect(structure_xyz: str | Path, workdir: str | Path, step_A: float = DEFAULT_STEP_A, plan=None
            ) -> tuple[SinglePoint, dict[Displacement, SinglePoint], dict]:
    """The reference and every displacement's single point (all 6N, or ``plan``'s), read from ``workdir``;
    ValueError naming the first one missing or incomplete. Also returns facts for the report (SCF
    failures, electron count)."""
    dot = read_structure(structure_xyz)
    n_atoms = len(dot.symbols)
    outs = {}
    for name in displacement_names(n_atoms, step_A, plan):
        try:
            outs[name] = read_single_point(Path(workdir) / name, PROJECT, OUTPUT)
        except SinglePointIncomplete as exc:
            raise ValueError(f"single point {name} not done: {exc}") from exc
        if outs[name].symbols != list(dot.symbols):
            raise ValueError(f"{Path(workdir) / name}: atoms differ from {structure_xyz}")
    as_sp = {k: SinglePoint(o.forces_eV_A, o.occupied_eV, o.unoccupied_eV, o.energy_eV) for k, o in outs.items()}
    reference = as_sp.pop(REFERENCE)
    results = {_displacement(k, step_A): v for k, v in as_sp.items()}
    facts = {"n_single_points": len(outs), "n_scf_unconverged": sum(not o.scf_converged for o in outs.values()),
             "unconverged": sorted(k for k, o in outs.items() if not o.scf_converged),
             "n_electrons": outs[REFERENCE].n_electrons,
             "synthetic": any(o.synthetic for o in outs.values())}  # fmt: skip
    return reference, results, facts
