"""Monte-Carlo coverage of the single-trajectory interval (docs/physics.md §4.7).

Independent evidence: one trajectory per trial of harmonic modes with classical thermal amplitudes
(mode energy ~ Exp(k_B T), fixed by the initial velocities, as under a global thermostat at 10 K)
and random phases, at random energies (on and off the FFT grid). The ensemble
``lambda = sum_j S_j hbar w_j`` and ``sigma_q^2 = sum_j S_j (hbar w_j)^2 coth`` are known by
construction. A nominal 68.27 % interval must contain them in 55-80 % of the trials, for a single
mode, a few modes and many modes. Seeded; about a second per case.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from test_physics_uncertainty import thermal_replicas

from qdphonon.analysis.spectral_interval import chi2_interval, effective_dof, spectral_errors
from qdphonon.analysis.spectrum import analyze_gap, coth_factor, thermal_linewidth_fwhm_meV
from qdphonon.analysis.system import analyze_system
from qdphonon.analysis.uncertainty import CONFIDENCE_LEVEL
from qdphonon.units import FWHM_PER_SIGMA

T_MD_K, DT_FS, N = 10.0, 5.0, 600
EDGES = (0.0, 4.5, 12.0, 30.0)


def random_modes(rng, n_modes, lam=100.0):
    """Energies uniform in 1-28 meV and exponential weights summing to ``lam`` meV (S = weight / hbar w)."""
    e = rng.uniform(1.0, 28.0, n_modes)
    w = rng.exponential(1.0, n_modes)
    return e, lam * w / w.sum() / e


@pytest.mark.parametrize("n_modes, trials", [(1, 300), (3, 300), (30, 250), (100, 200)])
def test_one_trajectory_interval_covers_the_ensemble_truth(n_modes, trials):
    rng = np.random.default_rng(100 + n_modes)
    t = np.arange(N) * DT_FS
    hits = {"lambda": 0, "fwhm": 0, "fwhm_q": 0}
    dof = []
    for _ in range(trials):
        e, S = random_modes(rng, n_modes)
        (g,) = thermal_replicas(rng, e, S, 1, t)
        full = analyze_gap(2.5 + g / 1000, DT_FS, T_MD_K, 300.0, EDGES)
        err, info = spectral_errors(full, 300.0, CONFIDENCE_LEVEL)
        lam_true = float(np.sum(S * e))
        lo, hi = err["lambda_meV_interval"]
        hits["lambda"] += lo <= lam_true <= hi
        flo, fhi = err["fwhm_meV_interval"]
        hits["fwhm"] += flo <= thermal_linewidth_fwhm_meV(lam_true, 300.0) <= fhi
        qlo, qhi = err["fwhm_quantum_meV_interval"]
        hits["fwhm_q"] += qlo <= FWHM_PER_SIGMA * math.sqrt(float(np.sum(S * e * e * coth_factor(e, 300.0)))) <= qhi
        dof.append(info["dof_lambda"])
    for name, h in hits.items():
        assert 0.55 <= h / trials <= 0.80, (name, h / trials)
    assert hits["fwhm"] == hits["lambda"]  # Gamma's interval is lambda's through Eq. 2
    if n_modes == 1:
        assert np.median(dof) < 4  # one mode: about 2 degrees of freedom, a wide interval


def test_effective_dof_and_chi2_quantiles():
    assert effective_dof(np.array([0.0, 0.0, 5.0, 0.0])) == 2.0  # one bin: chi^2_2
    flat_pairs, flat_bins = 4 * 200**2 / (100 * 2**2) - 2, 4 * 200**2 / 200 - 2  # 100 pairs of 2; 200 bins
    assert effective_dof(np.ones(200)) == pytest.approx(0.5 * (flat_pairs + flat_bins))  # a continuum
    assert effective_dof(np.array([0, 0, 0.5, 0.5, 0, 0, 0.0])) == 2.0  # one mode split over two bins
    lo, hi = chi2_interval(1.0, 2.0, 0.6827)  # chi^2_2 / 2 is Exp(1): quantiles -ln(1 - p)
    assert lo == pytest.approx(1.0 / -math.log(1 - (0.5 + 0.6827 / 2)), rel=1e-9)
    assert hi == pytest.approx(1.0 / -math.log(1 - (0.5 - 0.6827 / 2)), rel=1e-9)


def test_linewidth_json_states_the_method_and_its_dof(tmp_path):
    rng = np.random.default_rng(3)
    e, S = random_modes(rng, 3)
    t = np.arange(N) * DT_FS
    (g,) = thermal_replicas(rng, e, S, 1, t)
    path = tmp_path / "one.csv"
    pd.DataFrame({"time_fs": t, "vbm_eV": -4.0 + 0 * t, "cbm_eV": -1.5 + g / 1000}).to_csv(path, index=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = analyze_system([path], T_MD_K, 300.0, temperatures_K=[300.0])
    assert res["error_method"] == "spectrum" and "chi^2" in res["error_note"]
    info = res["spectral_interval"]
    assert info["method"] == "chi2_effective_dof" and info["dof_lambda"] >= 2
    lo, hi = res["lambda_meV_interval"]
    assert lo < res["lambda_meV"] < hi and res["lambda_meV_err"] == pytest.approx((hi - lo) / 2)
    assert chi2_interval(res["lambda_meV"], info["dof_lambda"], 0.6827) == pytest.approx((lo, hi))
