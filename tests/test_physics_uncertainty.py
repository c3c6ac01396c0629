"""Monte-Carlo coverage of the reported intervals (issue 11: error bars that mean what they say).

Independent evidence: trajectories drawn from ensembles whose lambda, S_R and Gamma are known by
construction, not from the code under test:

* harmonic modes with classical thermal amplitudes (mode energy ~ Exp(k_B T) per replica, random
  phase): the ensemble of a global thermostat at 10 K, where each replica's mode energies are
  fixed by its initial velocities. Ensemble ``lambda = sum_j S_j hbar w_j``, ``S_R = sum_{j in R} S_j``.
* a stationary Gaussian process with finite-lifetime lines (spectral synthesis): an ergodic
  trajectory whose long-time average is the ensemble value; ``lambda = Var / (2 k_B T_md)`` of its PSD.

A nominal 68.27 % interval must contain the truth in 55-80 % of the trials.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from qdphonon.analysis.spectrum import ResolutionWarning, analyze_gap, coth_factor, thermal_linewidth_fwhm_meV
from qdphonon.analysis.system import analyze_system
from qdphonon.analysis.uncertainty import CONFIDENCE_LEVEL, block_errors, mean_region_modes, replica_errors, t_factor
from qdphonon.units import BOLTZMANN_meV_per_K, FWHM_PER_SIGMA, HBAR_meV_fs

T_MD_K = 10.0
KT = BOLTZMANN_meV_per_K * T_MD_K
EDGES = (0.0, 4.5, 12.0, 30.0)


def harmonic_modes(seed=7, per_region=12):
    """Mode energies (meV) and ensemble Huang-Rhys factors of a mock-like dot (lambda = 94 meV: 42/33/19)."""
    rng = np.random.default_rng(seed)
    energies, S = [], []
    for centre, width, lam in ((2.0, 0.5, 42.0), (7.0, 1.2, 33.0), (17.0, 1.5, 19.0)):
        e = np.clip(rng.normal(centre, width, per_region), centre - 2 * width, centre + 2 * width)
        w = rng.exponential(1.0, per_region)
        energies.append(e)
        S.append(lam * w / w.sum() / e)
    return np.concatenate(energies), np.concatenate(S)


def thermal_replicas(rng, energies, S, n_replicas, t_fs):
    """Gap fluctuations (meV) of replicas: a_j^2 = 4 S_j hbar w_j k_B T_md Exp(1), uniform phases."""
    amp = np.sqrt(4.0 * S * energies * KT * rng.exponential(1.0, (n_replicas, energies.size)))
    phase = rng.uniform(0.0, 2 * np.pi, (n_replicas, energies.size))
    return [np.cos(np.outer(t_fs, energies / HBAR_meV_fs) + phase[r]) @ amp[r] for r in range(n_replicas)]


def _covered(value, half_width, truth):
    return abs(value - truth) <= half_width


def test_student_t_factor_matches_tables():
    assert CONFIDENCE_LEVEL == pytest.approx(0.6827)
    for n, t in ((2, 1.8373), (3, 1.3213), (4, 1.1969), (5, 1.1417), (31, 1.0171)):
        assert t_factor(n) == pytest.approx(t, abs=2e-4)


@pytest.mark.parametrize("n_replicas, trials", [(4, 300), (2, 300)])
def test_replica_intervals_cover_the_ensemble_truth(n_replicas, trials):
    """lambda, Gamma (Eq. 2), Gamma_q (band-limited) and every S_R: 55-80 % coverage at nominal 68 %."""
    energies, S = harmonic_modes()
    lam_true = float(np.sum(S * energies))
    S_true = [float(S[(energies >= a) & (energies < b)].sum()) for a, b in zip(EDGES[:-1], EDGES[1:])]
    fq_true = FWHM_PER_SIGMA * math.sqrt(float(np.sum(S * energies**2 * coth_factor(energies, 300.0))))
    t = np.arange(3500) * 2.0  # 7 ps at 2 fs: the default campaign's production window
    rng = np.random.default_rng(11)
    hits = {k: 0 for k in ("lambda", "fwhm", "fwhm_q", "S_low", "S_intermediate", "S_LO")}
    naive_hits = 0
    for _ in range(trials):
        an = [analyze_gap(2.5 + g / 1000, 2.0, T_MD_K, 300.0, EDGES) for g in thermal_replicas(rng, energies, S, n_replicas, t)]
        err = replica_errors(an, 300.0)
        lam = float(np.mean([a.lambda_meV for a in an]))
        fq = FWHM_PER_SIGMA * math.sqrt(float(np.mean([a.variance_quantum_meV2 for a in an])))
        hits["lambda"] += _covered(lam, err["lambda_meV_err"], lam_true)
        hits["fwhm"] += _covered(thermal_linewidth_fwhm_meV(lam, 300.0), err["fwhm_meV_err"],
                                 thermal_linewidth_fwhm_meV(lam_true, 300.0))  # fmt: skip
        hits["fwhm_q"] += _covered(fq, err["fwhm_quantum_meV_err"], fq_true)
        for reg, reg_err, truth in zip(mean_region_modes(an), err["regions"], S_true):
            hits[f"S_{reg['name']}"] += _covered(reg["S"], reg_err["S_err"], truth)
        naive = np.std([a.lambda_meV for a in an], ddof=1) / math.sqrt(n_replicas)  # plain +-SE, no t factor
        naive_hits += _covered(lam, naive, lam_true)
    coverage = {k: v / trials for k, v in hits.items()}
    assert all(0.55 <= c <= 0.80 for c in coverage.values()), coverage
    if n_replicas == 2:  # the issue's finding: two replicas' +-SE covers about half the time
        assert naive_hits / trials < 0.55


def stochastic_gap_meV(rng, n, dt_fs, lines, n_fft=1 << 16):
    """A stationary Gaussian process (spectral synthesis) with Gaussian lines (centre meV, lambda meV,
    width meV); returns the series and the exact ensemble PSD on the synthesis grid (meV^2 per meV)."""
    e = 2 * np.pi * HBAR_meV_fs * np.fft.rfftfreq(n_fft, dt_fs)
    psd = sum(2 * lam * KT * np.exp(-0.5 * ((e - c) / w) ** 2) / (w * math.sqrt(2 * math.pi)) for c, lam, w in lines)
    de = e[1]
    z = (rng.normal(size=e.size) + 1j * rng.normal(size=e.size)) * np.sqrt(psd * de / 4)
    z[0] = 0
    return (np.fft.irfft(z, n_fft) * n_fft)[:n], e, psd


def test_block_intervals_cover_the_time_average_of_an_ergodic_trajectory():
    """Blocks long enough (>= 2 periods of the slowest mode) and an ergodic process: 55-80 % coverage."""
    lines = ((7.0, 33.0, 1.0), (17.0, 19.0, 1.5))
    rng = np.random.default_rng(3)
    hits, trials = {"lambda": 0, "S_intermediate": 0, "S_LO": 0}, 250
    _, e, psd = stochastic_gap_meV(rng, 10, 2.0, lines)
    de = e[1]
    lam_true = float(np.sum(psd) * de / (2 * KT))
    S_true = {name: float(np.sum(psd[(e >= lo) & (e < hi)] / (2 * e[(e >= lo) & (e < hi)] * KT)) * de)
              for name, lo, hi in (("S_intermediate", 4.5, 12.0), ("S_LO", 12.0, 30.0))}  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(trials):
            g, _, _ = stochastic_gap_meV(rng, 10000, 2.0, lines)  # 20 ps, four 5 ps blocks
            full = analyze_gap(2.5 + g / 1000, 2.0, T_MD_K, 300.0, EDGES)
            err, info = block_errors(2.5 + g / 1000, 2.0, T_MD_K, 300.0, full, 4)
            assert "lambda and Gamma" not in info["refused"]
            hits["lambda"] += _covered(full.lambda_meV, err["lambda_meV_err"], lam_true)
            hits["S_intermediate"] += _covered(full.regions[1]["S"], err["regions"][1]["S_err"], S_true["S_intermediate"])
            hits["S_LO"] += _covered(full.regions[2]["S"], err["regions"][2]["S_err"], S_true["S_LO"])
    coverage = {k: v / trials for k, v in hits.items()}
    assert all(0.55 <= c <= 0.80 for c in coverage.values()), coverage


def test_blocks_do_not_see_the_ensemble_spread_of_a_global_thermostat():
    """Undamped modes with energies fixed per trajectory: blocks measure the time average's noise only,
    so they rarely cover the ensemble lambda -- the reason the docs ask for replicas."""
    energies, S = harmonic_modes()
    fast = energies > 4.5  # blocks long enough for the 7 and 17 meV modes
    e, s = energies[fast], S[fast]
    lam_true = float(np.sum(s * e))
    t = np.arange(10000) * 2.0
    rng = np.random.default_rng(5)
    hits, trials = 0, 150
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(trials):
            (g,) = thermal_replicas(rng, e, s, 1, t)
            full = analyze_gap(2.5 + g / 1000, 2.0, T_MD_K, 300.0, EDGES)
            err, _ = block_errors(2.5 + g / 1000, 2.0, T_MD_K, 300.0, full, 4)
            hits += err["lambda_meV_err"] is not None and _covered(full.lambda_meV, err["lambda_meV_err"], lam_true)
    assert hits / trials < 0.45


def test_short_blocks_give_null_not_zero(tmp_path):
    """5 ps with four blocks (the issue's case): 1.25 ps blocks cannot hold two periods of the ~2 meV
    modes, so lambda, Gamma and S_low get None (and a warning), never 0.0; faster regions keep theirs."""
    energies, S = harmonic_modes()
    t = np.arange(2500) * 2.0
    (g,) = thermal_replicas(np.random.default_rng(1), energies, S, 1, t)
    path = tmp_path / "one.csv"
    path.write_text("time_fs,vbm_eV,cbm_eV\n" + "".join(f"{ti},-4.0,{-1.5 + gi / 1000}\n" for ti, gi in zip(t, g)))
    with pytest.warns(ResolutionWarning, match="shorter than 2 periods"):
        res = analyze_system([path], T_MD_K, 300.0, n_blocks=4)
    # one trajectory's interval comes from its spectrum; the block estimates stay under "blocks"
    assert res["error_method"] == "spectrum" and res["confidence_level"] == pytest.approx(0.6827)
    assert res["lambda_meV_err"] > 0 and res["spectral_interval"]["dof_lambda"] >= 2
    block = res["blocks"]["errors"]
    assert block["lambda_meV_err"] is None and block["fwhm_meV_err"] is None
    low, inter, lo = block["regions"]
    assert low["S_err"] is None and low["lambda_meV_err"] is None
    assert lo["S_err"] is not None and lo["S_err"] > 0
    assert "lambda and Gamma" in res["blocks"]["refused"] and "region low" in res["blocks"]["refused"]
    assert res["blocks"]["required_block_length_fs"]["region LO"] <= res["blocks"]["block_length_fs"]
    assert "time average" in res["blocks"]["note"]
