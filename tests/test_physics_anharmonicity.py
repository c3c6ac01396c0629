"""Anharmonicity check (qdphonon.analysis.anharmonicity) against a quartic oscillator with an exact answer.

Model: ``V(x) = k x^2 / 2 + a x^4 / 4`` and a gap linear in x, ``dE = c x``. Its exact classical
``Var(dE)(T) = c^2 <x^2>_T`` comes from quadrature of the Boltzmann weight (scipy.integrate.quad,
not the code under test). The gap samples are the exact canonical distribution at evenly spaced
quantiles (inverse CDF on a fine grid), shuffled per replica: deterministic, so the test cannot be
lucky. Harmonic (a = 0): lambda is the same at every T_md (ratio 1); quartic: lambda(T) / lambda(T_0)
follows the exact ratio, and extrapolating Gamma(300 K) from 10 K overestimates it.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate

from qdphonon.analysis.anharmonicity import anharmonicity_table, band_centroid_meV
from qdphonon.units import BOLTZMANN_meV_per_K

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
