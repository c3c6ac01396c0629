"""Emission maximum, FWHM and Stokes shift read from the line (docs/physics.md §4.3).

Independent evidence: the same band of modes on a grid 8 times finer (its recurrences 8 times
later, its ripple gone) is the reference line; the Stokes shift 2 lambda is checked as the shift of
the first moments, computed from the line by numerical integration, not taken from the code.
"""

from __future__ import annotations

import numpy as np
import pytest

from qdphonon.analysis.lineshape import cumulant_lineshape


def band(de, lam=215.0, centre=13.0, width=1.2, n_bins=60):
    """A Gaussian band of S on the FFT grid of spacing ``de`` holding ``lam`` meV (the PBE run's bins: 4.1 meV)."""
    e = np.arange(1, n_bins) * de
    S = np.exp(-0.5 * ((e - centre) / width) ** 2)
    return e, S * lam / np.sum(S * e)


def first_moment(line, y):
    return float(np.sum(line.offset_meV * y) / np.sum(y))


def test_emission_maximum_and_fwhm_carry_no_bin_ripple():
    e, S = band(4.1)
    ef, Sf = band(4.1 / 8, n_bins=480)
    ref = cumulant_lineshape(ef, Sf, 300.0, 30.0, homogeneous_fwhm_meV=8.2, bin_meV=0.0)
    comb = cumulant_lineshape(e, S, 300.0, 30.0, homogeneous_fwhm_meV=8.2, bin_meV=0.0)
    line = cumulant_lineshape(e, S, 300.0, 30.0, homogeneous_fwhm_meV=8.2)  # bins read as a histogram
    assert line.bin_meV == pytest.approx(4.1)
    assert abs(comb.emission_peak_offset_meV - ref.emission_peak_offset_meV) > 2.0  # the ripple the comb leaves
    assert line.emission_peak_offset_meV == pytest.approx(ref.emission_peak_offset_meV, abs=0.5)
    assert line.fwhm_meV == pytest.approx(ref.fwhm_meV, rel=0.01)
    assert line.zpl_weight_log10 == pytest.approx(comb.zpl_weight_log10, rel=1e-12)  # sum S coth is kept
    assert first_moment(line, line.emission) == pytest.approx(-line.lambda_band_meV, rel=0.01)


def test_stokes_shift_is_the_first_moment_shift_not_the_peak_separation():
    e, S = np.array([5.0, 10.0, 17.0]), np.array([1.6, 0.8, 0.4])  # lambda 22.8 meV, a skewed line at low T
    for T in (4.0, 50.0, 300.0):
        line = cumulant_lineshape(e, S, T, homogeneous_fwhm_meV=1.0)
        shift = first_moment(line, line.absorption) - first_moment(line, line.emission)
        assert line.stokes_shift_meV == pytest.approx(2 * float(np.sum(S * e)), rel=1e-12)
        assert shift == pytest.approx(line.stokes_shift_meV, rel=0.01)
        peaks = line.offset_meV[np.argmax(line.absorption)] - line.offset_meV[np.argmax(line.emission)]
        assert line.stokes_shift_peak_to_peak_meV == pytest.approx(peaks, abs=2 * (line.offset_meV[1] - line.offset_meV[0]))
        assert line.stokes_shift_peak_to_peak_meV < 0.8 * line.stokes_shift_meV  # the peaks are closer than 2 lambda
