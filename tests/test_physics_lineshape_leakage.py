"""The line from a spectrum whose leakage cannot reach the zero-phonon line (docs/physics.md §4.3).

Independent evidence: the exact emission line of one displaced harmonic mode (linear coupling),
a Bessel comb ``w_n = exp(-S coth x) I_n(S / sinh x) e^{n x}`` (``x = hbar w / 2 k_B T``) at
``E_0 - n hbar w``, each broadened by the same Lorentzian; at T -> 0 a Poisson progression. Its
zero-phonon weight is ``exp(-S coth x)`` (the Debye-Waller factor). The gap trajectory is the mode
itself, on and off the FFT grid at several phases, for small and large S at 4 K and 300 K.
"""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.special import ive

from qdphonon.analysis.lineshape import cumulant_lineshape, fwhm_of_line
from qdphonon.analysis.spectrum import analyze_gap
from qdphonon.analysis.summary import write_summary
from qdphonon.analysis.system import analyze_system
from qdphonon.units import BOLTZMANN_meV_per_K, HBAR_meV_fs

T_MD_K, N, DT_FS = 10.0, 400, 5.0
BIN_meV = 2 * math.pi * HBAR_meV_fs / (N * DT_FS)  # 2.07 meV
EDGES = (0.0, 4.5, 12.0, 30.0)


def exact_emission(offset_meV, hw, S, T, gamma):
    """(line per meV, weight of the n = 0 term) of one displaced mode: Bessel comb (Poisson at T = 0) * Lorentzian.
    The n = 0 term holds the zero-phonon line ``exp(-S coth x)`` plus processes that emit and absorb as many
    phonons of this one mode (``I_0``); the Debye-Waller factor is the former."""
    n = np.arange(-40, 120)
    x = hw / (2 * BOLTZMANN_meV_per_K * T) if T > 0 else math.inf
    if x > 30:
        w = np.array([math.exp(-S) * S**k / math.factorial(k) if k >= 0 else 0.0 for k in n])
    else:
        z = S / math.sinh(x)
        w = math.exp(-S * math.tanh(x / 2)) * ive(n, z) * np.exp(n * x)  # I_n(z) = ive(n, z) e^z
    g = gamma / 2
    y = sum(wi * (g / math.pi) / ((offset_meV + ni * hw) ** 2 + g * g) for wi, ni in zip(w, n) if wi > 1e-14)
    return y, float(w[n == 0][0])


def one_mode_gap_eV(hw, S, phase):
    t = np.arange(N) * DT_FS
    return 2.5 + math.sqrt(4 * S * hw * BOLTZMANN_meV_per_K * T_MD_K) * np.cos(hw / HBAR_meV_fs * t + phase) / 1000


def lines(hw, S, T, phase, gamma=None):
    """(windowed line, rectangular line, exact line on the same axis, exact zero-phonon weight)."""
    sp = analyze_gap(one_mode_gap_eV(hw, S, phase), DT_FS, T_MD_K, T, EDGES, band_cutoff_meV=30.0).spectrum
    out = [cumulant_lineshape(sp.energy_meV, s, T, 30.0, resolution_meV=BIN_meV, homogeneous_fwhm_meV=gamma)
           for s in (sp.S_window, sp.S)]  # fmt: skip
    y, w0 = exact_emission(out[0].offset_meV, hw, S, T, out[0].homogeneous_fwhm_meV)
    return out[0], out[1], y / (np.sum(y) * (out[0].offset_meV[1] - out[0].offset_meV[0])), w0


# k = 10 sits on the grid; 10.25 and 10.5 do not; 6.5 is a slower mode half a bin off
SHAPE_TOL = {10.0: 0.06, 10.25: 0.06, 10.5: 0.06, 6.5: 0.11}


@pytest.mark.parametrize("k", [10.0, 10.25, 10.5, 6.5])
@pytest.mark.parametrize("phase", [0.0, 1.3, 2.6])
@pytest.mark.parametrize("S, T", [(0.3, 300.0), (0.3, 4.0), (3.0, 4.0), (3.0, 300.0)])
def test_zero_phonon_weight_and_near_zpl_shape_match_the_exact_line(k, phase, S, T):
    hw = k * BIN_meV
    gamma = hw if (S, T) == (3.0, 300.0) else None  # large S at 300 K: replicas merged into one band
    win, _, exact, w0 = lines(hw, S, T, phase, gamma)
    S_T = S / math.tanh(hw / (2 * BOLTZMANN_meV_per_K * T))
    assert win.huang_rhys_thermal == pytest.approx(S_T, rel=0.03)  # -ln(Debye-Waller factor)
    assert win.zpl_weight == pytest.approx(math.exp(-S_T), rel=0.03 * S_T)
    assert w0 >= math.exp(-S_T) * (1 - 1e-12)
    near = np.abs(win.offset_meV) <= hw / 2
    assert np.max(np.abs(win.emission - exact)[near]) <= SHAPE_TOL[k] * exact.max()
    fwhm_exact = fwhm_of_line(win.offset_meV, exact)
    if S < 1 or T > 100:  # a zero-phonon line, or one band: the FWHM is defined by the line
        assert win.fwhm_meV == pytest.approx(fwhm_exact, rel=0.06 if k >= 10 else 0.15)
    else:  # resolved replicas: each carries n times the estimate's smearing; the line says it is not Gaussian
        assert not win.gaussian_valid


def test_rectangular_leakage_would_reach_the_zero_phonon_line():
    """The issue's case: 20 meV-ish mode half a bin off the grid, S = 0.4, 300 K. Eq. 1's rectangular
    spectrum leaks into the lowest bins and sum S coth amplifies it; the windowed one does not."""
    hw = 10.5 * BIN_meV
    win, rect, exact, w0 = lines(hw, 0.4, 300.0, 1.3)
    dw = math.exp(-0.4 / math.tanh(hw / (2 * BOLTZMANN_meV_per_K * 300.0)))  # exact Debye-Waller factor
    assert abs(rect.zpl_weight / dw - 1) > 0.3 and abs(win.zpl_weight / dw - 1) < 0.02
    assert abs(rect.fwhm_meV / fwhm_of_line(win.offset_meV, exact) - 1) > 0.2


def test_analyze_system_reads_the_line_from_the_windowed_spectrum(tmp_path):
    hw = 10.5 * BIN_meV
    t = np.arange(N) * DT_FS
    path = tmp_path / "r0.csv"
    pd.DataFrame({"time_fs": t, "vbm_eV": -4.0 + 0 * t, "cbm_eV": -1.5 + one_mode_gap_eV(hw, 0.4, 1.3)}).to_csv(
        path, index=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = analyze_system([path], T_MD_K, 300.0, outdir=tmp_path / "o", temperatures_K=[300.0])
    w0 = math.exp(-0.4 / math.tanh(hw / (2 * BOLTZMANN_meV_per_K * 300.0)))
    assert res["lineshape"]["zpl_weight"] == pytest.approx(w0, rel=0.02)
    assert res["fwhm_vs_temperature"][0]["zpl_weight"] == pytest.approx(w0, rel=0.02)


def test_vanishing_zero_phonon_weight_is_written_as_zero_not_a_denormal(tmp_path):
    hw = 6 * BIN_meV
    t = np.arange(N) * DT_FS
    path = tmp_path / "strong.csv"
    pd.DataFrame({"time_fs": t, "vbm_eV": -4.0 + 0 * t, "cbm_eV": -1.5 + one_mode_gap_eV(hw, 400.0, 0.0)}).to_csv(
        path, index=False)  # S coth ~ 1700 at 300 K: exp(-S coth) underflows
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = analyze_system([path], T_MD_K, 300.0, outdir=tmp_path / "sys", temperatures_K=[300.0])
    assert res["lineshape"]["zpl_weight"] == 0.0 and res["lineshape"]["zpl_weight_log10"] < -300
    write_summary([tmp_path / "sys" / "linewidth.json"], None, tmp_path / "summary.csv")
    row = pd.read_csv(tmp_path / "summary.csv").iloc[0]
    assert row["zpl_weight"] == 0.0
    text = (tmp_path / "summary.csv").read_text() + (tmp_path / "sys" / "linewidth.json").read_text()
    assert "e-3" not in text  # no denormal (e-308 .. e-324) anywhere
    assert json.loads((tmp_path / "sys" / "linewidth.json").read_text())["lineshape"]["zpl_weight"] == 0.0
