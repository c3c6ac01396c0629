"""What CP2K costs: measured seconds per MD step, a power law fitted to them, the SLURM job sizes
derived from it, and the cost of a whole campaign (``qdphonon cost``).

The measurements live in ``data/cp2k_step_costs.csv`` (plain CSV, one row per measured point;
``bench/bench_cp2k.py`` appends rows with :func:`append_measurements`). Per level, the steady-state
cost on the reference layout (2 MPI ranks x 1 thread) is fitted as ``s_per_step = c * n_atoms**p``;
other layouts assume ideal scaling in cores (ranks x threads). The model sizes jobs and plans
campaigns; it is not physics. Light: stdlib only, as the Snakefile imports it at parse time.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

from qdphonon.jobs import job_retries, segments_needed

DATA_PATH = Path(__file__).resolve().parent / "data" / "cp2k_step_costs.csv"  # the packaged measurements
COLUMNS = ("level", "n_atoms", "box_A", "ranks", "threads", "s_per_step", "first_step_s", "inputs",
           "cp2k_version", "source")  # column order of the file
KEY_COLUMNS = ("level", "n_atoms", "ranks", "threads", "inputs")  # a new row replaces an old one with these equal
REF_RANKS, REF_THREADS = 2, 1  # the layout (MPI ranks x OpenMP threads) the power law is fitted on
EXPONENT_BOUNDS = (1.0, 3.0)
"""Physical range of the size exponent: at least linear (grid points grow with the box, the box with
the dot), at most cubic (orthogonalisation/diagonalisation). A fit outside it (two points measured in
different boxes, say) is clipped, and the prefactor refitted with the clipped exponent."""
MAX_RUNTIME_MIN = 48 * 60  # longest job requested; longer runs continue from the restart file in the next job


def _row(raw: Mapping[str, Any]) -> dict[str, Any]:
    """One measurement with typed values (blank optional fields -> None); ValueError if unusable."""
    unknown = sorted(str(k) for k in raw if k not in COLUMNS)
    if unknown:
        raise ValueError(f"cost measurement {dict(raw)}: unknown column(s) {', '.join(unknown)}")
    opt = lambda k: None if raw.get(k) in (None, "") or raw[k] != raw[k] else float(raw[k])  # noqa: E731 (NaN: blank)
    row = {k: raw.get(k, "") for k in COLUMNS}
    row.update(n_atoms=int(raw["n_atoms"]), ranks=int(raw["ranks"]), threads=int(raw["threads"]),
               s_per_step=float(raw["s_per_step"]), box_A=opt("box_A"), first_step_s=opt("first_step_s"))
    if row["level"] not in ("xtb", "pbe") or row["inputs"] not in ("current", "previous"):
        raise ValueError(f"cost measurement {dict(raw)}: level must be xtb|pbe and inputs current|previous")
    if row["n_atoms"] < 1 or row["ranks"] < 1 or row["threads"] < 1 or not row["s_per_step"] > 0:
        raise ValueError(f"cost measurement {dict(raw)}: n_atoms, ranks, threads and s_per_step must be > 0")
    return row


def read_measurements(path: str | Path = DATA_PATH) -> list[dict[str, Any]]:
    """The rows of a measurements CSV, typed (``n_atoms``, ``ranks``, ``threads`` int; seconds float)."""
    with open(path, newline="", encoding="utf-8") as fh:
        return [_row(r) for r in csv.DictReader(fh)]


def append_measurements(rows: Iterable[Mapping[str, Any]], path: str | Path = DATA_PATH) -> None:
    """Add measured rows (mappings with the :data:`COLUMNS` keys; ``box_A``, ``first_step_s``,
    ``cp2k_version``, ``source`` may be left out) to the measurements file, replacing any row with
    the same level, n_atoms, ranks, threads and inputs. Keeps the column order; atomic rewrite."""
    new = [_row(r) for r in rows]
    keys = {tuple(r[k] for k in KEY_COLUMNS) for r in new}
    old = read_measurements(path) if Path(path).exists() else []
    kept = [r for r in old if tuple(r[k] for k in KEY_COLUMNS) not in keys]
    tmp = Path(f"{path}.tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, COLUMNS, lineterminator="\n")
        writer.writeheader()
        for r in kept + new:
            writer.writerow({k: "" if r[k] is None else repr(r[k]) if isinstance(r[k], float) else r[k]
                             for k in COLUMNS})
    os.replace(tmp, path)


class FitPoint(NamedTuple):
    """One measurement of a fit and how far the fitted line is from it (log10(measured/fitted))."""

    n_atoms: int
    s_per_step: float
    inputs: str
    residual_log10: float

    @property
    def ratio(self) -> float:
        """Measured over fitted seconds per step."""
        return 10.0**self.residual_log10


@dataclasses.dataclass(frozen=True)
class StepCostFit:
    """``s_per_step = prefactor_s * n_atoms**exponent`` on :data:`REF_RANKS` x :data:`REF_THREADS`.

    ``basis``: ``current`` (least squares on >= 2 sizes of the current inputs), ``previous-exponent``
    (fallback: exponent of the previous inputs, prefactor through the current point(s)) or
    ``previous`` (fallback: no current rows). ``points``: the rows used, with residuals.
    ``current_points``: every current measurement of the level, ``(n_atoms, ranks, threads) -> s``.
    """

    level: str
    prefactor_s: float
    exponent: float
    basis: str
    points: tuple[FitPoint, ...]
    current_points: tuple[tuple[tuple[int, int, int], float], ...] = ()
    exponent_clipped: bool = False

    @property
    def measured(self) -> bool:
        """True when fitted on current inputs alone (not a fallback)."""
        return self.basis == "current"

    @property
    def n_atoms_range(self) -> tuple[int, int]:
        """Smallest and largest atom count of the points used."""
        return min(p.n_atoms for p in self.points), max(p.n_atoms for p in self.points)

    def s_per_step(self, n_atoms: float) -> float:
        """Fitted seconds per MD step at the reference layout."""
        return self.prefactor_s * float(n_atoms) ** self.exponent


def _least_squares(points: list[tuple[int, float]]) -> tuple[float, float]:
    """(log c, p) of log s = log c + p log n; ValueError unless >= 2 distinct sizes."""
    xs, ys = [math.log(n) for n, _ in points], [math.log(s) for _, s in points]
    x0, y0 = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - x0) ** 2 for x in xs)
    if sxx == 0:
        raise ValueError("a size exponent needs measurements at two sizes at least")
    p = sum((x - x0) * (y - y0) for x, y in zip(xs, ys)) / sxx
    return y0 - p * x0, p


def _bounded_least_squares(points: list[tuple[int, float]]) -> tuple[float, float, bool]:
    """:func:`_least_squares` with the exponent held in :data:`EXPONENT_BOUNDS`; True when clipped."""
    log_c, p = _least_squares(points)
    lo, hi = EXPONENT_BOUNDS
    if lo <= p <= hi:
        return log_c, p, False
    p = min(hi, max(lo, p))
    return sum(math.log(s) - p * math.log(n) for n, s in points) / len(points), p, True


def fit_step_cost(rows: Iterable[Mapping[str, Any]], level: str) -> StepCostFit:
    """Fit the steady-state seconds per MD step of ``level`` against the atom count (module doc).

    Rows on the reference layout only. Current inputs at >= 2 sizes: least squares in log-log.
    Fewer: the exponent fitted on the previous inputs, the prefactor through the current point(s)
    (geometric mean), or the previous fit as it is when no current row exists.
    """
    rows = [_row(r) for r in rows]
    ref = [r for r in rows if r["level"] == level and (r["ranks"], r["threads"]) == (REF_RANKS, REF_THREADS)]
    cur = [(r["n_atoms"], r["s_per_step"]) for r in ref if r["inputs"] == "current"]
    prev = [(r["n_atoms"], r["s_per_step"]) for r in ref if r["inputs"] == "previous"]
    if len({n for n, _ in cur}) >= 2:
        (log_c, p, clipped), basis, used = _bounded_least_squares(cur), "current", [(n, s, "current") for n, s in cur]
    elif prev:
        log_c, p, clipped = _bounded_least_squares(prev)
        basis, used = "previous", [(n, s, "previous") for n, s in prev]
        if cur:
            log_c = sum(math.log(s) - p * math.log(n) for n, s in cur) / len(cur)
            basis, used = "previous-exponent", used + [(n, s, "current") for n, s in cur]
    else:
        raise ValueError(f"no {level} cost measurements on {REF_RANKS} ranks x {REF_THREADS} thread in {DATA_PATH}")
    points = tuple(FitPoint(n, s, inp, math.log10(s) - (log_c + p * math.log(n)) / math.log(10))
                   for n, s, inp in used)
    exact: dict[tuple[int, int, int], list[float]] = {}
    for r in rows:
        if r["level"] == level and r["inputs"] == "current":
            exact.setdefault((r["n_atoms"], r["ranks"], r["threads"]), []).append(r["s_per_step"])
    geo_mean = lambda v: v[0] if len(v) == 1 else math.exp(sum(map(math.log, v)) / len(v))  # noqa: E731
    current = tuple((k, geo_mean(v)) for k, v in sorted(exact.items()))
    return StepCostFit(level, math.exp(log_c), p, basis, points, current, clipped)


@functools.lru_cache(maxsize=8)
def _packaged_fit(level: str, path: str, mtime_ns: int) -> StepCostFit:
    return fit_step_cost(read_measurements(path), level)


def default_fit(level: str, path: str | Path = DATA_PATH) -> StepCostFit:
    """:func:`fit_step_cost` of the measurements file (cached until the file changes)."""
    return _packaged_fit(level, str(path), os.stat(path).st_mtime_ns)


class StepCost(NamedTuple):
    """Seconds per MD step on one layout and what they rest on: ``measured`` (a current measurement of
    this size and layout), ``interpolated`` / ``extrapolated`` (inside / outside the sizes fitted)."""

    s_per_step: float
    status: str


def seconds_per_md_step(level: str, n_atoms: int, ranks: int = REF_RANKS, threads: int = REF_THREADS,
                        rows: Iterable[Mapping[str, Any]] | None = None) -> StepCost:
    """Steady-state seconds per MD step of ``n_atoms`` at ``level`` on ``ranks`` x ``threads``.

    A current measurement of exactly this size and layout is returned as it is. Otherwise the fit
    (:func:`fit_step_cost`; ``rows`` default to the packaged file), scaled from the reference layout
    by the number of cores: ideal parallel scaling is assumed, not measured (real efficiency at
    hundreds of ranks is lower, so large jobs are underestimated).
    """
    fit = default_fit(level) if rows is None else fit_step_cost(rows, level)
    exact = dict(fit.current_points).get((int(n_atoms), int(ranks), int(threads)))
    if exact is not None:
        return StepCost(exact, "measured")
    lo, hi = fit.n_atoms_range
    status = "interpolated" if lo <= n_atoms <= hi else "extrapolated"
    return StepCost(fit.s_per_step(n_atoms) * REF_RANKS * REF_THREADS / (ranks * threads), status)


# --- job sizes (the Snakefile's resources, through workflow/rules/common.smk) -------------------
def aimd_tasks(config: Mapping[str, Any], system) -> int:
    """MPI ranks of one CP2K job: about 10 atoms a rank at PBE and 100 at xTB, 2 to 256; 1 for the
    mock. Profiles cap it (workstation: global ``tasks``)."""
    if config["engine"] == "mock":
        return 1
    return max(2, min(256, system.n_atoms // (10 if config["level"] == "pbe" else 100)))


def run_hours(config: Mapping[str, Any], system, steps: int) -> float:
    """Estimated wall time in hours of ``steps`` MD steps (+ step 0) on the job's ranks."""
    tasks = aimd_tasks({**config, "engine": "cp2k"}, system)
    return seconds_per_md_step(config["level"], system.n_atoms, tasks).s_per_step * (steps + 1) / 3600.0


def _runtime_min(hours: float, margin_min: float) -> int:
    return int(min(MAX_RUNTIME_MIN, max(15, 1.5 * hours * 60 + margin_min)))


def aimd_runtime_min(config: Mapping[str, Any], system) -> int:
    """Wall time of one AIMD job in minutes: 1.5 x the estimate + the WALLTIME margin, 15 min to
    48 h (longer trajectories continue in the next job); 10 for the mock."""
    if config["engine"] == "mock":
        return 10
    return _runtime_min(run_hours(config, system, system.md["steps"]), config["cp2k"]["walltime_margin_min"])


def relax_runtime_min(config: Mapping[str, Any], system) -> int:
    """Wall time of one relaxation in minutes: relax.max_iter optimisation steps priced as MD steps
    (each is one SCF from a good guess), x1.5, 15 min to 48 h; 10 for the mock."""
    if config["engine"] == "mock":
        return 10
    return _runtime_min(run_hours(config, system, config["relax"]["max_iter"]), 0)


def aimd_mem_mb(config: Mapping[str, Any], system) -> int:
    """Memory of one CP2K job in MB: 2000 + 40 per atom at PBE, 4 at xTB; 2000 for the mock."""
    if config["engine"] == "mock":
        return 2000
    return int(2000 + (40 if config["level"] == "pbe" else 4) * system.n_atoms)


def cp2k_job_retries(config: Mapping[str, Any], systems: Iterable, job: str = "aimd") -> int:
    """Snakemake ``retries`` of the AIMD (``job="aimd"``) or relax rule: :func:`qdphonon.jobs.job_retries`
    of the system needing most wall-time segments (one number for the campaign); 0 for the mock."""
    if config["engine"] == "mock":
        return 0
    worst = 0
    for s in systems:
        steps, runtime = ((s.md["steps"], aimd_runtime_min(config, s)) if job == "aimd"
                          else (config["relax"]["max_iter"], relax_runtime_min(config, s)))
        worst = max(worst, job_retries(run_hours(config, s, steps), runtime, config["cp2k"]["walltime_margin_min"]))
    return worst


# --- campaign cost ------------------------------------------------------------
def campaign_cost(config: Mapping[str, Any]) -> dict[str, Any]:
    """CP2K cost of a validated campaign config, per system and in total.

    Per system: atoms, level, seconds per MD step on the reference layout and its status, MD steps
    per replica (md.steps after step 0, equilibration included), replicas (at every MD temperature), core-hours (ranks x
    threads x s/step x (steps + 1) / 3600) per replica and in total (relaxation included, priced at
    relax.max_iter steps: an upper bound), the relax and AIMD job resources and the wall-time
    segments per replica. With ``engine: mock`` the figures are what ``engine: cp2k`` would cost
    (``mock_engine`` says so); the mock itself costs seconds.
    """
    from qdphonon.config import campaign_from_config

    cp2k = {**config, "engine": "cp2k"}
    systems = campaign_from_config(config)
    level, margin_min = config["level"], config["cp2k"]["walltime_margin_min"]
    out = []
    for s in systems.values():
        steps, reps = int(s.md["steps"]), len(s.all_replicas)
        ref = seconds_per_md_step(level, s.n_atoms)
        aimd, relax = ({"tasks": aimd_tasks(cp2k, s), "cpus_per_task": 1, "runtime_min": f(cp2k, s),
                        "mem_mb": aimd_mem_mb(cp2k, s)} for f in (aimd_runtime_min, relax_runtime_min))
        wall_h = run_hours(cp2k, s, steps)
        core_h = wall_h * aimd["tasks"] * aimd["cpus_per_task"]
        relax_core_h = run_hours(cp2k, s, config["relax"]["max_iter"]) * relax["tasks"] * relax["cpus_per_task"]
        equil = min(steps, round(s.md["equilibration_fs"] / s.md["timestep_fs"]))
        out.append({
            "system": s.name, "n_atoms": s.n_atoms, "level": level, "s_per_step_ref": ref.s_per_step,
            "status": ref.status, "md_steps": steps, "equilibration_steps": equil, "production_steps": steps - equil,
            "replicas": reps, "wall_h_per_replica": wall_h, "core_h_per_replica": core_h,
            "relax_core_h": relax_core_h, "core_h": reps * core_h + relax_core_h,
            "aimd_job": aimd, "relax_job": relax,
            "segments_per_replica": segments_needed(wall_h, aimd["runtime_min"], margin_min),
        })
    totals = {k: sum(r[k] for r in out) for k in ("replicas", "relax_core_h", "core_h")}
    totals["aimd_core_h"] = totals["core_h"] - totals["relax_core_h"]
    return {"level": level, "engine": config["engine"], "mock_engine": config["engine"] == "mock",
            "ref_layout": (REF_RANKS, REF_THREADS), "fit": default_fit(level), "systems": out, "totals": totals,
            "retries": {j: cp2k_job_retries(cp2k, systems.values(), j) for j in ("aimd", "relax")}}
