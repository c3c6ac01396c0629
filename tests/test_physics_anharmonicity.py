"""Anharmonicity check (qdphonon.analysis.anharmonicity) against a quartic oscillator with an exact answer.

Model: ``V(x) = k x^2 / 2 + a x^4 / 4`` and a gap linear in x, ``dE = c x``. Its exact classical
``Var(dE)(T) = c^2 <x^2>_T`` comes from quadrature of the Boltzmann weight (scipy.integrate.quad,
not the code under test). The gap samples are the exact canonical distribution at evenly spaced
quantiles (inverse CDF on a fine grid), shuffled per replica: deterministic, so the test cannot be
lucky. Harmonic (a = 0): lambda is the same at every T_md (ratio 1); quartic: lambda(T) / lambda(T_0)
follows the exact ratio, and extrapolating Gamma(300 K) from 10 K overestimates it.

Second model: a harmonic coordinate (Gaussian x, <x^2> = k_B T / K) and a gap that is not linear in
it, ``dE = c x + b x^2``: ``Var(dE) = c^2 <x^2> + 2 b^2 <x^2>^2`` exactly, so
``lambda(T) = c^2 / 2K + b^2 k_B T / K^2`` grows linearly with T (the deviation is known in closed form).
Third: one mode whose frequency hardens with T (on the FFT grid): the band-centre shift is the
frequency change. Fourth: the F interval of a ratio of two chi^2 estimates covers the truth at its
nominal level (fixed seed, 4000 pairs: a deterministic check, not a lucky one).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate

from scipy import stats

from qdphonon.analysis.anharmonicity import anharmonicity_table, band_centroid_meV, headline, ratio_interval
from qdphonon.analysis.uncertainty import CONFIDENCE_LEVEL
from qdphonon.units import BOLTZMANN_meV_per_K, HBAR_meV_fs

K = 2000.0  # meV / A^2
A = 4.0e5  # meV / A^4: hardening visible above ~50 K
C = 600.0  # meV / A
TEMPS = (10.0, 100.0, 300.0)


def exact_var_x(T, a=A):
    kT = BOLTZMANN_meV_per_K * T
    w = lambda x: np.exp(-(0.5 * K * x**2 + 0.25 * a * x**4) / kT)  # noqa: E731
    lim = 12 * np.sqrt(kT / K)
    return integrate.quad(lambda x: x**2 * w(x), -lim, lim)[0] / integrate.quad(w, -lim, lim)[0]


def canonical_samples(T, n, seed, a=A):
    kT = BOLTZMANN_meV_per_K * T
    x = np.linspace(-12 * np.sqrt(kT / K), 12 * np.sqrt(kT / K), 200001)
    cdf = np.cumsum(np.exp(-(0.5 * K * x**2 + 0.25 * a * x**4) / kT))
    cdf /= cdf[-1]
    q = np.interp((np.arange(n) + 0.5) / n, cdf, x)
    return np.random.default_rng(seed).permutation(q)


def gaps(a):
    return {T: [2.0 + 1e-3 * C * canonical_samples(T, 4000, s, a) for s in range(3)] for T in TEMPS}


def test_harmonic_oscillator_keeps_lambda_at_every_temperature():
    table = anharmonicity_table(gaps(0.0), 5.0, [0.0, 4.5, 12.0, 30.0])
    exact = C**2 * (BOLTZMANN_meV_per_K / K) / (2 * BOLTZMANN_meV_per_K)  # c^2 kT/K / 2kT
    np.testing.assert_allclose(table["lambda_meV"], exact, rtol=2e-3)
    np.testing.assert_allclose(table["lambda_ratio"], 1.0, atol=3e-3)


def test_quartic_oscillator_follows_the_exact_variance():
    table = anharmonicity_table(gaps(A), 5.0, [0.0, 4.5, 12.0, 30.0])
    exact = [C**2 * exact_var_x(T) / (2 * BOLTZMANN_meV_per_K * T) for T in TEMPS]
    np.testing.assert_allclose(table["lambda_meV"], exact, rtol=3e-3)
    np.testing.assert_allclose(table["lambda_ratio"], np.array(exact) / exact[0], rtol=5e-3)
    assert table["lambda_ratio"].iloc[-1] < 0.9  # hardening: a 10 K run overestimates Gamma(300 K)
    assert table["fwhm_report_meV"].iloc[0] > table["fwhm_report_meV"].iloc[-1]
    assert table["lambda_meV_err"].notna().all() and table["lambda_ratio_err"].notna().all()


def test_band_centre_is_the_lambda_weighted_mean():
    e = np.array([1.0, 2.0, 3.0, 8.0])
    S = np.array([1.0, 1.0, 0.0, 5.0])
    assert band_centroid_meV(e, S, 0.0, 4.5) == pytest.approx((1 * 1 + 2 * 2) / 3.0)
    assert band_centroid_meV(e, S, 20.0, 30.0) is None


def test_one_temperature_is_refused():
    with pytest.raises(ValueError, match="two MD temperatures"):
        anharmonicity_table({10.0: [np.zeros(10)]}, 5.0, [0.0, 30.0])


def gaussian_quantiles(n, seed):
    return np.random.default_rng(seed).permutation(stats.norm.ppf((np.arange(n) + 0.5) / n))


B = 3.0e4  # meV / A^2: quadratic gap coupling


def test_gap_quadratic_in_a_harmonic_coordinate_gives_the_closed_form_deviation():
    gaps = {}
    for T in TEMPS:
        sigma = np.sqrt(BOLTZMANN_meV_per_K * T / K)
        gaps[T] = [2.0 + 1e-3 * (C * sigma * z + B * sigma**2 * z**2)
                   for z in (gaussian_quantiles(20000, s) for s in range(3))]  # fmt: skip
    table = anharmonicity_table(gaps, 5.0, [0.0, 4.5, 12.0, 30.0], reference_K=10.0)
    exact = np.array([C**2 / (2 * K) + B**2 * BOLTZMANN_meV_per_K * T / K**2 for T in TEMPS])
    np.testing.assert_allclose(table["lambda_meV"], exact, rtol=2e-3)
    np.testing.assert_allclose(table["lambda_ratio"], exact / exact[0], rtol=3e-3)
    np.testing.assert_allclose(table["fwhm_deviation"], np.sqrt(exact / exact[0]) - 1, rtol=5e-3)
    shift_eV = 1e-3 * B * BOLTZMANN_meV_per_K * (np.array(TEMPS) - TEMPS[0]) / K  # <b x^2> = b k_B T / K
    np.testing.assert_allclose(table["gap_mean_eV"] - table["gap_mean_eV"].iloc[0], shift_eV, rtol=2e-3, atol=1e-9)
    assert table["lambda_ratio"].iloc[-1] > 1.5  # softening-like: a 10 K run underestimates Gamma(300 K)
    head = headline(table, 300.0, 10.0)
    assert head["anharmonic_md_temperature_K"] == 300.0 and head["anharmonic_reference_K"] == 10.0
    assert head["anharmonic_lambda_ratio_lo"] <= head["anharmonic_lambda_ratio"] <= head["anharmonic_lambda_ratio_hi"]


def test_a_hardening_mode_shifts_its_band_centre_by_its_frequency_change():
    dt, n = 4.0, 4096
    bin_meV = 2 * np.pi * HBAR_meV_fs / (n * dt)
    t = np.arange(n) * dt
    k_by_T = {10.0: 60, 300.0: 64}  # on-grid frequencies: one bin each, no leakage
    gaps = {T: [2.0 + 1e-3 * np.sqrt(T) * np.cos(k * bin_meV / HBAR_meV_fs * t)] for T, k in k_by_T.items()}
    table = anharmonicity_table(gaps, dt, [0.0, 30.0])
    assert table["error_method"].tolist() == ["spectrum", "spectrum"]
    assert table["shift_R1_meV"].iloc[1] == pytest.approx(4 * bin_meV, rel=1e-6)
    assert table["shift_R1_meV_err"].isna().all() or table["shift_R1_meV_err"].iloc[0] == 0
    assert table["lambda_ratio"].iloc[1] == pytest.approx(1.0, rel=1e-3)  # amplitude^2 ~ T: harmonic in lambda


def test_ratio_interval_of_two_chi2_estimates_covers_at_its_level():
    rng = np.random.default_rng(2022)
    nu_x, nu_y, true_ratio = 6.0, 10.0, 1.7
    x = true_ratio * rng.chisquare(nu_x, 4000) / nu_x
    y = rng.chisquare(nu_y, 4000) / nu_y
    covered = [lo <= true_ratio <= hi for lo, hi in (ratio_interval(a, None, nu_x, b, None, nu_y) for a, b in zip(x, y))]
    assert abs(np.mean(covered) - CONFIDENCE_LEVEL) < 0.025


def test_reference_must_be_one_of_the_temperatures():
    with pytest.raises(ValueError, match="reference temperature 50 K"):
        anharmonicity_table(gaps(0.0), 5.0, [0.0, 30.0], reference_K=50.0)
