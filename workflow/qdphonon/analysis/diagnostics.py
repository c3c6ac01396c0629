"""Checks of a trajectory that the spectrum itself cannot see: bridged holes, the kinetic temperature,
stationarity. Each returns a JSON-ready record and warns (or refuses) in plain words."""

from __future__ import annotations

import math
import os
import warnings
from typing import Sequence

import numpy as np

from qdphonon.analysis.spectrum import period_fs

HOLE_FRACTION_OF_PERIOD = 0.25
"""The longest bridged (linearly interpolated) hole may last at most this fraction of the shortest
period analysed: a quarter period is where a straight line stops following a cosine."""

KINETIC_TEMPERATURE_TOLERANCE = 0.05
"""A mean kinetic temperature further than this fraction from T_md warns (lambda scales with it)."""

STATIONARITY_RELATIVE_CHANGE = 0.5
"""Block variances whose linear trend changes them by more than this fraction of their mean ..."""

STATIONARITY_RANK_CORRELATION = 0.8
"""... and that rise or fall monotonically (Spearman rank correlation with time at least this) warn."""


class HoleError(ValueError):
    """A hole in the step grid too long to bridge by interpolation."""


def read_step_times(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray] | None:
    """(step, time_fs) as written in a band-edge CSV, before any hole is filled; None without a step column."""
    import pandas as pd

    df = pd.read_csv(path, comment="#", skipinitialspace=True)
    df.columns = [str(c).strip() for c in df.columns]
    if "step" not in df.columns or "time_fs" not in df.columns:
        return None
    return df["step"].to_numpy(dtype=float), df["time_fs"].to_numpy(dtype=float)


def find_holes(step: np.ndarray, time_fs: np.ndarray) -> list[dict]:
    """Runs of missing steps: ``after_step``, ``before_step``, ``n_missing``, ``start_fs`` (time of the
    first missing step), ``duration_fs`` (``n_missing`` times the step's time)."""
    step, t = np.asarray(step, dtype=float), np.asarray(time_fs, dtype=float)
    if step.size < 2:
        return []
    d = np.diff(step)
    stride = float(np.gcd.reduce(d.astype(np.int64))) if np.all(d > 0) else 1.0
    out = []
    for i in np.nonzero(d > stride)[0]:
        n_missing = int(round(d[i] / stride)) - 1
        dt_step = (t[i + 1] - t[i]) / (n_missing + 1)
        out.append({"after_step": int(step[i]), "before_step": int(step[i + 1]), "n_missing": n_missing,
                    "start_fs": float(t[i] + dt_step), "duration_fs": float(n_missing * dt_step)})  # fmt: skip
    return out


def check_holes(path: str | os.PathLike, shortest_period_fs: float, start_fs: float | None = None,
                fraction: float = HOLE_FRACTION_OF_PERIOD) -> dict:
    """Refuse a band-edge file whose longest bridged hole inside the analysed window (from ``start_fs``)
    lasts more than ``fraction`` of ``shortest_period_fs``; HoleError names the file and the hole.

    Returns ``{"n_holes", "longest_hole_fs", "max_hole_fs"}`` (counts inside the window).
    """
    cap = fraction * shortest_period_fs
    st = read_step_times(path)
    holes = find_holes(*st) if st is not None else []
    if start_fs is not None:
        holes = [h for h in holes if h["start_fs"] + h["duration_fs"] > start_fs]
    longest = max(holes, key=lambda h: h["duration_fs"]) if holes else None
    if longest is not None and longest["duration_fs"] > cap * (1 + 1e-9):
        raise HoleError(
            f"{path}: {longest['n_missing']} consecutive MD steps are missing between step {longest['after_step']} and "
            f"step {longest['before_step']} ({longest['duration_fs']:g} fs from t = {longest['start_fs']:g} fs); "
            f"holes longer than {cap:.1f} fs ({fraction:g} of the shortest period analysed, {shortest_period_fs:.0f} fs) "
            "cannot be bridged by interpolation without shaping the spectrum"
        )  # fmt: skip
    return {"n_holes": len(holes), "longest_hole_fs": longest["duration_fs"] if longest else 0.0, "max_hole_fs": cap}


def shortest_period_analysed_fs(region_edges_meV: Sequence[float]) -> float:
    """Period (fs) of a mode at the top of the analysed band (the last region edge)."""
    return period_fs(float(region_edges_meV[-1]))


def kinetic_temperature_report(per_replica_K: Sequence[np.ndarray], md_temperature_K: float,
                               sources: Sequence[str], tolerance: float = KINETIC_TEMPERATURE_TOLERANCE) -> dict:
    """Mean kinetic temperature of the production window (per replica and overall, K); warns when the
    overall mean differs from ``md_temperature_K`` by more than ``tolerance`` (a thermostat that
    also heats rigid rotation, a short or unequilibrated run). Which temperature normalises lambda
    is decided in :mod:`qdphonon.analysis.temperature`."""
    means = [float(np.mean(t)) for t in per_replica_K]
    overall = float(np.mean(means)) if means else math.nan
    deviation = overall / md_temperature_K - 1.0 if means else math.nan
    if means and abs(deviation) > tolerance:
        warnings.warn(
            f"{', '.join(sources)}: mean kinetic temperature {overall:.2f} K differs from md_temperature_K = "
            f"{md_temperature_K:g} K by {100 * deviation:+.1f} % (more than {100 * tolerance:g} %); see "
            "temperature_source for the temperature that normalises lambda",
            stacklevel=2,
        )  # fmt: skip
    return {
        "kinetic_temperature_K": overall if means else None,
        "kinetic_temperature_K_per_replica": means,
        "kinetic_temperature_deviation": deviation if means else None,
    }


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    rx, ry = np.argsort(np.argsort(x)), np.argsort(np.argsort(y))
    if np.std(rx) == 0 or np.std(ry) == 0:
        return 0.0
    return float(np.corrcoef(rx, ry)[0, 1])


def stationarity_check(block_variances_meV2: Sequence[float], source: str,
                       relative_change: float = STATIONARITY_RELATIVE_CHANGE,
                       rank_correlation: float = STATIONARITY_RANK_CORRELATION) -> dict:
    """Trend of the gap variance over consecutive blocks of one trajectory.

    ``trend_relative_change``: the linear fit's change from the first to the last block over the
    mean variance. Warns (``stationary`` false) when it exceeds ``relative_change`` and the
    variances move monotonically (Spearman >= ``rank_correlation``): a drifting temperature or an
    unfinished equilibration, not the beating of nearby modes. Measured on stationary harmonic
    7 ps runs with 8 blocks it raises a false alarm ~5 % of the time; it catches only strong drifts
    (a few slow modes make block variances noisy), so passing it does not prove stationarity.
    """
    v = np.asarray([x for x in block_variances_meV2 if x is not None], dtype=float)
    if v.size < 3 or v.mean() <= 0:
        return {"block_variances_meV2": v.tolist(), "trend_relative_change": None, "stationary": None}
    x = np.arange(v.size, dtype=float)
    slope = float(np.polyfit(x, v, 1)[0])
    change = slope * (v.size - 1) / float(v.mean())
    rho = _spearman(x, v) * np.sign(slope)
    stationary = not (abs(change) > relative_change and rho >= rank_correlation - 1e-9)
    if not stationary:
        warnings.warn(f"{source}: the gap variance drifts over the run (block variances "
                      f"{', '.join(f'{b:.3g}' for b in v)} meV^2, trend {100 * change:+.0f} %); stationarity is not "
                      "demonstrated (equilibration too short, or drifting temperature)", stacklevel=2)  # fmt: skip
    return {"block_variances_meV2": v.tolist(), "trend_relative_change": change, "rank_correlation": rho,
            "stationary": bool(stationary)}  # fmt: skip

