"""What the harmonic route costs (docs/physics.md §5): its single points, their jobs and core-hours; per
single point CP2K's own time measured on the shipped real campaigns (``data/cp2k_single_point_costs.csv``,
made by ``validation/single_point_costs.py``), and the estimate at other sizes.

A single point starts its SCF from the tight relaxation's wavefunction and converges it tighter than an
MD step does (harmonic route: EPS_SCF 1e-7 PBE, 1e-8 xTB), and pays CP2K's start-up, whose share falls
with size; so the cost per single point is measured per size rather than priced in MD steps. Between
measured sizes the estimate is a power law through the two neighbours; beyond them, the nearest
measurement scaled by the MD-step model's size dependence (:func:`qdphonon.cost.seconds_per_md_step`).
A level without measurements is priced as :data:`SINGLE_POINT_IN_MD_STEPS` MD steps. Other layouts
assume ideal scaling in cores, as the MD-step model does. Light: stdlib and :mod:`qdphonon.cost` only (the
Snakefile imports it).
"""

from __future__ import annotations

import csv
import functools
import math
from pathlib import Path
from typing import Any, Iterable, Mapping, NamedTuple

from qdphonon.cost import aimd_tasks, default_fit, seconds_per_md_step

DATA_PATH = Path(__file__).resolve().parents[1] / "data" / "cp2k_single_point_costs.csv"
COLUMNS = ("level", "n_atoms", "ranks", "threads", "s_per_single_point", "n_single_points", "min_s", "max_s",
           "cp2k_version", "source")  # fmt: skip
SINGLE_POINT_IN_MD_STEPS = {"xtb": 8.0, "pbe": 4.8}
"""Fallback for a level without single-point measurements: one single point in MD steps of the same dot,
measured on Cs4PbBr6 (11 atoms) against MD steps on the same loaded machine (xtb: 67 single points against
0.28 s MD steps; pbe: validation/pbe_n1_harmonic's median 47.8 s against validation/pbe_n1's 10.0 s)."""


class SinglePointCost(NamedTuple):
    """Seconds per single point and what they rest on: ``measured`` (this size and layout), ``interpolated``
    (between measured sizes), ``scaled`` (beyond them, by the MD-step model), ``md-steps`` (no measurement
    at this level)."""

    s_per_single_point: float
    status: str


def read_rows(path: str | Path = DATA_PATH) -> list[dict[str, Any]]:
    """The measurements, typed; ValueError naming the file, line and column when one is unusable."""
    rows = []
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        if tuple(reader.fieldnames or ()) != COLUMNS:
            raise ValueError(f"{path}: columns {reader.fieldnames}, expected {list(COLUMNS)}")
        for line, raw in enumerate(reader, start=2):
            try:
                rows.append({**raw, "n_atoms": int(raw["n_atoms"]), "ranks": int(raw["ranks"]),
                             "threads": int(raw["threads"]), "s_per_single_point": float(raw["s_per_single_point"]),
                             "n_single_points": int(raw["n_single_points"])})  # fmt: skip
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{path}: line {line}: {exc}") from None
    return rows


@functools.cache
def _default_rows() -> tuple[dict[str, Any], ...]:
    return tuple(read_rows())


def seconds_per_single_point(level: str, n_atoms: int, ranks: int = 2, threads: int = 1,
                             rows: Iterable[Mapping[str, Any]] | None = None) -> SinglePointCost:  # fmt: skip
    """CP2K seconds of one single point of ``n_atoms`` at ``level`` on ``ranks`` x ``threads`` (module docstring)."""
    cores = int(ranks) * int(threads)
    points = sorted((int(r["n_atoms"]), float(r["s_per_single_point"]) * int(r["ranks"]) * int(r["threads"]))
                    for r in (_default_rows() if rows is None else rows) if r["level"] == level)  # fmt: skip
    if not points:
        md = seconds_per_md_step(level, n_atoms, ranks, threads).s_per_step
        return SinglePointCost(SINGLE_POINT_IN_MD_STEPS[level] * md, "md-steps")
    exact = [core_s for n, core_s in points if n == int(n_atoms)]
    if exact:
        return SinglePointCost(exact[0] / cores, "measured")
    below = [p for p in points if p[0] < n_atoms]
    above = [p for p in points if p[0] > n_atoms]
    if below and above:
        (n0, s0), (n1, s1) = below[-1], above[0]
        p = math.log(s1 / s0) / math.log(n1 / n0)
        return SinglePointCost(s0 * (n_atoms / n0) ** p / cores, "interpolated")
    n_ref, s_ref = below[-1] if below else above[0]
    fit = default_fit(level)
    ratio = fit.s_per_step(n_atoms) / fit.s_per_step(n_ref)
    return SinglePointCost(s_ref * ratio / cores, "scaled")


def harmonic_single_points(config: Mapping[str, Any], system) -> int:
    """The displaced single points (``harmonic.displacements``: 6N, or the symmetry-reduced set) plus the reference."""
    from qdphonon.harmonic.plan import n_displacements

    return n_displacements(config, system) + 1


def harmonic_sp_seconds(config: Mapping[str, Any], system) -> float:
    """Estimated seconds of one single point on the job's ranks (:func:`seconds_per_single_point`)."""
    tasks = aimd_tasks({**config, "engine": "cp2k"}, system)
    return seconds_per_single_point(config["level"], system.n_atoms, tasks).s_per_single_point


def harmonic_displacements_per_job(config: Mapping[str, Any], system) -> int:
    """Single points per job: as many as fit in ``harmonic.job_minutes`` by the cost model (at least 1)."""
    if config["engine"] == "mock":
        return harmonic_single_points(config, system)
    return max(1, int(config["harmonic"]["job_minutes"] * 60.0 // harmonic_sp_seconds(config, system)))


HARMONIC_JOB_RETRIES = 2
"""Resubmissions of a single-point job that ended early (SLURM's time limit, a node failure): each one
continues with the single points not yet done (a killed job loses at most the one in flight)."""


def harmonic_job_retries(config: Mapping[str, Any]) -> int:
    """Snakemake ``retries`` of the single-point rule: :data:`HARMONIC_JOB_RETRIES` with real CP2K, 0 for the mock."""
    return 0 if config["engine"] == "mock" else HARMONIC_JOB_RETRIES


def harmonic_cost(config: Mapping[str, Any], system) -> dict[str, Any]:
    """Single points, jobs and core-hours of the harmonic route of ``system`` (relaxation not included)."""
    cp2k = {**config, "engine": "cp2k"}
    n_sp, tasks = harmonic_single_points(cp2k, system), aimd_tasks(cp2k, system)
    sp_s = harmonic_sp_seconds(cp2k, system)
    per_job = harmonic_displacements_per_job(cp2k, system)
    return {"single_points": n_sp, "sp_s": sp_s, "per_job": per_job, "jobs": 1 + math.ceil((n_sp - 1) / per_job),
            "wall_h_serial": n_sp * sp_s / 3600.0, "core_h": n_sp * sp_s * tasks / 3600.0, "tasks": tasks}
