"""Holes, stationarity and convergence with trajectory length.

Independent evidence: interpolation done here with numpy on a hole-free trajectory (what a bridged
hole does to the spectrum); the issue's block variances of the xTB fixture; an ergodic Gaussian
process whose time-average noise falls as 1/sqrt(L); the Student-t quantile for replicas needed.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest

from qdphonon.analysis.convergence import length_needed, running_convergence
from qdphonon.analysis.diagnostics import HOLE_FRACTION_OF_PERIOD, HoleError, find_holes, stationarity_check
from qdphonon.analysis.spectrum import analyze_gap
from qdphonon.analysis.system import analyze_system
from qdphonon.units import HBAR_meV_fs
from test_physics_uncertainty import harmonic_modes, stochastic_gap_meV, thermal_replicas

EDGES = (0.0, 4.5, 12.0, 30.0)
CAP_fs = HOLE_FRACTION_OF_PERIOD * 2 * math.pi * HBAR_meV_fs / 30.0  # a quarter of the 30 meV period: 34.5 fs


def steps_csv(path, t, gap_meV, missing=()):
    keep = np.ones(t.size, bool)
    keep[list(missing)] = False
    pd.DataFrame({"step": np.arange(t.size)[keep], "time_fs": t[keep], "vbm_eV": -4.0,
                  "cbm_eV": -1.5 + gap_meV[keep] / 1000}).to_csv(path, index=False)  # fmt: skip
    return path


def test_cap_is_a_quarter_of_the_shortest_period():
    assert CAP_fs == pytest.approx(34.46, abs=0.01)


def test_find_holes_reports_runs_of_missing_steps():
    step = np.array([0, 1, 2, 6, 7, 9])
    holes = find_holes(step, step * 2.0)
    assert [(h["after_step"], h["before_step"], h["n_missing"], h["duration_fs"]) for h in holes] == [
        (2, 6, 3, 6.0), (7, 9, 1, 2.0)]


def test_long_hole_is_refused_naming_it_and_a_short_one_is_bridged(tmp_path):
    t = np.arange(6000) * 2.0
    energies, S = harmonic_modes()
    (g,) = thermal_replicas(np.random.default_rng(3), energies, S, 1, t)
    ref = analyze_gap(2.5 + g / 1000, 2.0, 10.0, 300.0, EDGES)
    # independent evidence: bridge the holes here with numpy and compare region S with the hole-free series
    def bridged(missing):
        keep = np.ones(t.size, bool)
        keep[list(missing)] = False
        return analyze_gap(2.5 + np.interp(t, t[keep], g[keep]) / 1000, 2.0, 10.0, 300.0, EDGES)

    long_hole, short_hole = range(2000, 2174), range(2000, 2017)  # 348 fs (the issue's case), 34 fs
    moved_long = max(abs(b["S"] / a["S"] - 1) for a, b in zip(ref.regions, bridged(long_hole).regions))
    moved_short = max(abs(b["S"] / a["S"] - 1) for a, b in zip(ref.regions, bridged(short_hole).regions))
    assert moved_long > 0.05 and moved_short < 0.005

    bad = steps_csv(tmp_path / "long_hole.csv", t, g, long_hole)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(HoleError, match=r"long_hole.csv: 174 consecutive MD steps are missing between step 1999 "
                                            r"and step 2174 \(348 fs from t = 4000 fs\).*34.5 fs"):  # fmt: skip
            analyze_system([bad], 10.0, 300.0)
        ok = analyze_system([steps_csv(tmp_path / "short.csv", t, g, short_hole)], 10.0, 300.0)
        # a long hole inside the discarded equilibration does not matter
        early = analyze_system([steps_csv(tmp_path / "early.csv", t, g, range(100, 274))], 10.0, 300.0, discard_fs=1000.0)
    assert ok["holes"][0]["longest_hole_fs"] == pytest.approx(34.0) and ok["holes"][0]["max_hole_fs"] == pytest.approx(CAP_fs)
    assert ok["n_interpolated_steps"] == 17
    assert early["holes"][0]["n_holes"] == 0
    assert issubclass(HoleError, ValueError)


def test_stationarity_flags_the_issue_fixture_and_passes_a_stationary_run(tmp_path):
    with pytest.warns(UserWarning, match="drifts over the run"):
        flagged = stationarity_check([15.6, 15.0, 21.9, 35.0], "fixture")
    assert flagged["stationary"] is False and flagged["trend_relative_change"] == pytest.approx(0.892, abs=0.01)
    steady = stationarity_check([15.6, 35.0, 15.0, 21.9], "shuffled")  # same values, no trend
    assert steady["stationary"] is True
    # broad (short-lived) lines: block variances scatter little. With ~1 meV lines and 2.5 ps blocks they
    # scatter by factors of ~3 and the check is blind to even this drift (it catches strong drifts only).
    g, _, _ = stochastic_gap_meV(np.random.default_rng(4), 10000, 2.0, ((7.0, 33.0, 2.5), (17.0, 19.0, 3.0)))
    ramp = np.linspace(0.5, 1.5, g.size)  # amplitude x3, variance x9 over 20 ps: an unfinished equilibration
    t = np.arange(g.size) * 2.0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res_ok = analyze_system([steps_csv(tmp_path / "ok.csv", t, g)], 10.0, 300.0)
        res_bad = analyze_system([steps_csv(tmp_path / "ramp.csv", t, g * ramp)], 10.0, 300.0)
    assert res_ok["stationarity"][0]["stationary"] is True
    assert res_bad["stationarity"][0]["stationary"] is False
    assert len(res_bad["stationarity"][0]["block_variances_meV2"]) == 8
    assert any("ramp.csv" in str(w.message) and "drifts" in str(w.message) for w in caught)
    assert not any("ok.csv" in str(w.message) and "drifts" in str(w.message) for w in caught)


def test_running_values_and_length_needed_for_an_ergodic_trajectory():
    g, _, _ = stochastic_gap_meV(np.random.default_rng(1), 20000, 2.0, ((7.0, 33.0, 1.0), (17.0, 19.0, 1.5)))
    run = running_convergence([2.5 + g / 1000], [2.0], 10.0, 300.0, EDGES, 30.0)
    full = analyze_gap(2.5 + g / 1000, 2.0, 10.0, 300.0, EDGES)
    assert [p["length_fs"] for p in run] == sorted(p["length_fs"] for p in run) and run[-1]["length_fs"] == 40000.0
    assert run[-1]["lambda_meV"] == pytest.approx(full.lambda_meV, rel=1e-12)
    assert run[-1]["fwhm_meV"] == pytest.approx(full.fwhm_meV, rel=1e-12)
    assert run[-1]["S_LO"] == pytest.approx(full.regions[2]["S"], rel=1e-12)
    need = length_needed(run, [full.lambda_meV])
    assert need["length_exponent"] == pytest.approx(-0.5, abs=0.15)  # time-average noise ~ 1/sqrt(L)
    r = run[-1]["fwhm_rel_half_width"]
    assert need["production_length_needed_fs"] == pytest.approx(40000.0 * (r / 0.05) ** 2, rel=0.35)


def test_replicas_needed_with_a_global_thermostat(tmp_path):
    energies, S = harmonic_modes()
    t = np.arange(3500) * 2.0
    reps = thermal_replicas(np.random.default_rng(3), energies, S, 4, t)
    paths = [steps_csv(tmp_path / f"r{i}.csv", t, g) for i, g in enumerate(reps)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = analyze_system(paths, 10.0, 300.0)
    conv = res["convergence"]
    lams = np.array([analyze_gap(2.5 + g / 1000, 2.0, 10.0, 300.0, EDGES).lambda_meV for g in reps])
    from scipy.stats import t as student_t

    rel_sd = lams.std(ddof=1) / lams.mean()
    n = next(n for n in range(2, 500) if student_t.ppf(0.84135, n - 1) * rel_sd / math.sqrt(n) <= 0.10)
    assert conv["replicas_needed"] == n
    assert len(conv["running"]) == 7 and conv["running"][-1]["lambda_meV"] == pytest.approx(res["lambda_meV"], rel=1e-9)
    assert conv["fwhm_rel_half_width"] == pytest.approx(res["fwhm_meV_err"] / res["fwhm_meV"], rel=0.02)
    assert "replicas" in conv["note"]
