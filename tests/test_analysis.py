"""Physics checks of qdphonon.analysis against analytic trajectories (docs/physics.md §1).

Expected numbers come from the physics, not from the code: a gap fluctuation
``A cos(w0 t)`` has ``Var = A^2/2``, ``lambda = A^2 / (4 k_B T_md)`` and
``S = A^2 / (4 hbar w0 k_B T_md)`` for that mode.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from qdphonon.analysis.inputs import read_band_edges
from qdphonon.analysis.spectrum import ResolutionWarning, analyze_gap, huang_rhys_spectrum, one_sided_power_meV2, quantum_linewidth_fwhm_meV, quantum_variance_meV2, region_modes, reorganization_energy, reorganization_energy_from_variance, thermal_linewidth_fwhm_meV
from qdphonon.analysis.summary import write_summary
from qdphonon.analysis.system import analyze_system
from qdphonon.analysis.uncertainty import standard_error
from qdphonon.analysis.vdos import atomic_masses_amu, vibrational_dos
from qdphonon.units import BOLTZMANN_meV_per_K, HBAR_meV_fs

T_MD_K = 10.0
SPECTRUM_COLUMNS = ["energy_meV", "S", "S_hw_meV", "S_window", "S_hw_smoothed_meV"]
T68 = {2: 1.8373, 3: 1.3213, 4: 1.1969}  # Student-t quantile t_{0.84135, n-1} (tables) for a 68.27 % interval
KT_MD_meV = BOLTZMANN_meV_per_K * T_MD_K
MODES = ((2.03, 5.0), (7.11, 8.0), (16.87, 10.0))  # (hbar w meV, amplitude meV), deliberately off-grid


def expected_S(hw_meV: float, amplitude_meV: float) -> float:
    return amplitude_meV**2 / (4.0 * hw_meV * KT_MD_meV)


def cosine_gap_meV(t_fs, modes=MODES):
    return sum(a * np.cos(hw / HBAR_meV_fs * t_fs + 0.7 * i + 0.2) for i, (hw, a) in enumerate(modes))


def write_csv(path, t_fs, vbm_eV, cbm_eV, comments=(), extra=None, sidecar=None):
    """A band-edge CSV as another code would write it; ``sidecar`` (a dict) becomes its .json."""
    df = pd.DataFrame({"time_fs": t_fs, "vbm_eV": vbm_eV, "cbm_eV": cbm_eV, **(extra or {})})
    with open(path, "w") as fh:
        for c in comments:
            fh.write(f"# {c}\n")
        df.to_csv(fh, index=False, float_format="%.12g")
    if sidecar is not None:
        Path(path).with_suffix(".json").write_text(json.dumps(sidecar))
    return path


def gap_csv(path, t_fs, gap_meV, comments=()):
    """VBM fixed at -4 eV, CBM carries the gap fluctuation around 2.5 eV."""
    vbm = np.full_like(t_fs, -4.0)
    return write_csv(path, t_fs, vbm, vbm + 2.5 + gap_meV / 1000.0, comments)


def region_by_energy(regions, hw_meV):
    return next(r for r in regions if r["lo_meV"] <= hw_meV < r["hi_meV"])


# ----------------------------------------------------------------------------- normalisation
def test_on_grid_cosine_amplitude_and_S_without_window():
    n, dt = 4000, 2.0
    k0 = 37
    hw0 = 2 * math.pi * HBAR_meV_fs * k0 / (n * dt)
    t = np.arange(n) * dt
    A = 6.0
    spec = huang_rhys_spectrum(A * np.cos(hw0 / HBAR_meV_fs * t), dt, T_MD_K, window="none")
    F = np.sqrt(2 * spec.S * 4 * spec.energy_meV * KT_MD_meV / 2)  # F_k^2 = 4 hbar w k_B T S_k
    assert spec.energy_meV[k0 - 1] == pytest.approx(hw0, rel=1e-12)
    assert F[k0 - 1] == pytest.approx(A, rel=1e-9)
    assert spec.S[k0 - 1] == pytest.approx(expected_S(hw0, A), rel=1e-9)
    assert np.delete(spec.S, k0 - 1).max() < 1e-12


def test_nyquist_bin_counts_once():
    x = 3.0 * (-1.0) ** np.arange(64)  # cosine at the Nyquist frequency, variance 9
    p = one_sided_power_meV2(x, window="none")
    assert p.sum() == pytest.approx(9.0, rel=1e-12)
    assert p[-1] == pytest.approx(9.0, rel=1e-12)


@pytest.mark.parametrize("window", ["hann", "none"])
@pytest.mark.parametrize("seed", range(8))
def test_parseval_on_random_input(seed, window):
    """lambda = sum S_k hbar w_k equals Var/(2 k_B T_md) for any series (odd and even N)."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(50, 3000))
    dt = float(rng.choice([0.5, 1.0, 2.0, 5.0]))
    x = np.cumsum(rng.normal(size=n)) + rng.normal(scale=3.0, size=n)  # red + white noise
    x = x - x.mean()
    spec = huang_rhys_spectrum(x, dt, T_MD_K, window=window)
    expected = np.var(x) / (2 * KT_MD_meV)
    assert reorganization_energy(spec.energy_meV, spec.S) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("seed", range(4))
def test_parseval_through_analyze_system(tmp_path, seed):
    rng = np.random.default_rng(100 + seed)
    n, dt = int(rng.integers(300, 5000)), 1.5
    t = np.arange(n) * dt
    vbm = -4 + 0.01 * np.cumsum(rng.normal(size=n)) / 10
    cbm = -1.5 + 0.01 * rng.normal(size=n) + 0.005 * np.sin(t / 50.0)
    path = write_csv(tmp_path / "r.csv", t, vbm, cbm)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResolutionWarning)
        res = analyze_system([path], T_MD_K, 300.0, outdir=tmp_path / "out")
    gap_meV = (cbm - vbm) * 1000
    var = np.var(gap_meV)
    assert res["lambda_meV"] == pytest.approx(var / (2 * KT_MD_meV), rel=0.01)
    sd = pd.read_csv(tmp_path / "out" / "spectral_density.csv")
    assert list(sd.columns) == SPECTRUM_COLUMNS
    assert sd["S_hw_meV"].sum() == pytest.approx(res["lambda_meV"], rel=1e-9)  # Eq. 1 per bin: Parseval exact
    assert (sd["S_window"] * sd["energy_meV"]).sum() == pytest.approx(res["lambda_meV"], rel=1e-9)
    assert res["gap_std_meV"] == pytest.approx(np.std(gap_meV), rel=1e-6)


# ----------------------------------------------------------------------------- regions, leakage
@pytest.mark.parametrize("dt_fs", [1.0, 2.0, 5.0])
def test_region_S_of_off_grid_cosines(tmp_path, dt_fs):
    t = np.arange(0.0, 16000.0, dt_fs)
    path = gap_csv(tmp_path / f"dt{dt_fs:g}.csv", t, cosine_gap_meV(t))
    res = analyze_system([path], T_MD_K, 300.0, outdir=tmp_path / "out")
    for hw, a in MODES:
        reg = region_by_energy(res["regions"], hw)
        assert reg["S"] == pytest.approx(expected_S(hw, a), rel=0.03), reg["name"]
        assert reg["hw_meV"] == pytest.approx(hw, rel=0.03)
        assert reg["lambda_meV"] == pytest.approx(a**2 / (4 * KT_MD_meV), rel=0.03)
        assert reg["resolved"] is True
    assert res["lambda_meV"] == pytest.approx(np.var(cosine_gap_meV(t)) / (2 * KT_MD_meV), rel=0.01)
    total_var = sum(a**2 / 2 for _, a in MODES)  # of infinitely long cosines
    assert res["lambda_meV"] == pytest.approx(total_var / (2 * KT_MD_meV), rel=0.03)


def test_sampling_interval_does_not_change_region_S():
    out = {}
    for dt in (1.0, 2.0, 5.0):
        t = np.arange(0.0, 12000.0, dt)
        r = analyze_gap(2.5 + cosine_gap_meV(t) / 1000, dt, T_MD_K, 300.0)
        out[dt] = np.array([reg["S"] for reg in r.regions])
    for dt in (2.0, 5.0):
        np.testing.assert_allclose(out[dt], out[1.0], rtol=0.03)


@pytest.mark.parametrize("duration_fs", [10000.0, 13333.0, 20000.0])
def test_weak_low_mode_next_to_strong_off_grid_LO_mode(duration_fs):
    """Leakage of a strong off-grid LO mode must not inflate S of a weak 2 meV mode."""
    modes = ((2.0, 1.0), (17.3, 20.0))
    t = np.arange(0.0, duration_fs, 1.0)
    r = analyze_gap(2.5 + cosine_gap_meV(t, modes) / 1000, 1.0, T_MD_K, 300.0)
    for hw, a in modes:
        assert region_by_energy(r.regions, hw)["S"] == pytest.approx(expected_S(hw, a), rel=0.03)


def test_plain_periodogram_would_fail_the_leakage_test():
    """Contrast: without the window, leakage inflates the weak low-region S well beyond 3 %."""
    modes = ((2.0, 1.0), (17.3, 20.0))
    t = np.arange(0.0, 20000.0, 1.0)
    r = analyze_gap(2.5 + cosine_gap_meV(t, modes) / 1000, 1.0, T_MD_K, 300.0, window="none")
    low = region_by_energy(r.regions, 2.0)["S"]
    assert abs(low / expected_S(2.0, 1.0) - 1) > 0.05


def test_only_cbm_moves(tmp_path):
    t = np.arange(0.0, 15000.0, 2.0)
    A, hw = 9.0, 6.6
    cbm = 1.8 + A / 1000 * np.cos(hw / HBAR_meV_fs * t + 0.4)
    path = write_csv(tmp_path / "cbm.csv", t, np.full_like(t, -3.0), cbm)
    res = analyze_system([path], T_MD_K, 300.0)
    inter = region_by_energy(res["regions"], hw)
    assert inter["S"] == pytest.approx(expected_S(hw, A), rel=0.03)
    assert res["lambda_meV"] == pytest.approx(A**2 / (4 * KT_MD_meV), rel=0.01)
    assert res["gap_mean_eV"] == pytest.approx(4.8, abs=1e-3)
    others = [r["S"] for r in res["regions"] if r is not inter]
    assert max(others) < 0.01 * inter["S"]


def test_band_edges_moving_together_leave_the_gap_unbroadened(tmp_path):
    t = np.arange(0.0, 5000.0, 1.0)
    shift = 0.02 * np.cos(t / 100.0)
    path = write_csv(tmp_path / "rigid.csv", t, -4 + shift, -2 + shift)
    res = analyze_system([path], T_MD_K, 300.0)
    assert res["lambda_meV"] == pytest.approx(0.0, abs=1e-9)
    assert res["fwhm_meV"] == pytest.approx(0.0, abs=1e-6)


def test_custom_region_edges_and_names():
    t = np.arange(0.0, 20000.0, 1.0)
    r = analyze_gap(2.5 + cosine_gap_meV(t) / 1000, 1.0, T_MD_K, 300.0, region_edges_meV=[0, 10, 40])
    assert [x["name"] for x in r.regions] == ["R1", "R2"]
    (hw1, a1), (hw2, a2), (hw3, a3) = MODES
    assert r.regions[0]["S"] == pytest.approx(expected_S(hw1, a1) + expected_S(hw2, a2), rel=0.03)
    assert r.regions[1]["S"] == pytest.approx(expected_S(hw3, a3), rel=0.03)
    with pytest.raises(ValueError, match="increasing"):
        region_modes(np.ones(3), np.ones(3), [0, 5, 5])


# ----------------------------------------------------------------------------- linewidths
def test_eq2_linewidth_matches_seed_numbers():
    # docs/physics.md §1: 2.4 nm dot, lambda ~ 94 meV <-> 164 meV at 300 K; std 12.7 meV at 10 K <-> 164 meV
    assert thermal_linewidth_fwhm_meV(94.0, 300.0) == pytest.approx(164.0, rel=0.005)
    lam = reorganization_energy_from_variance(12.7**2, 10.0)
    assert thermal_linewidth_fwhm_meV(lam, 300.0) == pytest.approx(164.0, rel=0.005)
    assert thermal_linewidth_fwhm_meV(lam, 300.0) == pytest.approx(2.3548 * 12.7 * math.sqrt(30), rel=1e-4)


def test_fwhm_in_output_follows_eq2(tmp_path):
    t = np.arange(0.0, 12000.0, 1.0)
    g = cosine_gap_meV(t)
    path = gap_csv(tmp_path / "a.csv", t, g)
    res = analyze_system([path], T_MD_K, 250.0)
    assert res["fwhm_meV"] == pytest.approx(2.3548 * np.std(g) * math.sqrt(250.0 / T_MD_K), rel=1e-3)
    assert res["fwhm_meV"] == pytest.approx(2 * math.sqrt(2 * math.log(2)) * math.sqrt(2 * res["lambda_meV"] * BOLTZMANN_meV_per_K * 250), rel=1e-6)
    assert any("harmonic" in a.lower() for a in res["assumptions"])


@pytest.mark.parametrize("hw_meV, excess", [(2.0, 0.0005), (7.0, 0.006), (17.0, 0.036)])
def test_quantum_correction_of_single_modes_at_300K(hw_meV, excess):
    S = 0.7
    var_cl = 2 * S * hw_meV * BOLTZMANN_meV_per_K * 300.0
    var_q = quantum_variance_meV2([hw_meV], [S], 300.0)
    assert var_q / var_cl - 1 == pytest.approx(excess, rel=0.05)
    g_q = quantum_linewidth_fwhm_meV([hw_meV], [S], 300.0)
    g_cl = thermal_linewidth_fwhm_meV(S * hw_meV, 300.0)
    assert (g_q / g_cl) ** 2 - 1 == pytest.approx(excess, rel=0.05)


def test_quantum_limits():
    e, S = np.array([5.0, 17.0]), np.array([1.0, 0.5])
    assert quantum_variance_meV2(e, S, 0.0) == pytest.approx(np.sum(S * e * e))
    hot = quantum_variance_meV2(e, S, 1e5)
    assert hot == pytest.approx(2 * np.sum(S * e) * BOLTZMANN_meV_per_K * 1e5, rel=1e-6)


def test_quantum_and_temperature_curve_in_output(tmp_path):
    t = np.arange(0.0, 12000.0, 1.0)
    path = gap_csv(tmp_path / "lo.csv", t, 10.0 * np.cos(17.0 / HBAR_meV_fs * t))
    res = analyze_system([path], T_MD_K, 300.0, temperatures_K=[0.0, 100.0, 300.0])
    ratio2 = (res["fwhm_quantum_meV"] / res["fwhm_meV"]) ** 2
    assert ratio2 - 1 == pytest.approx(0.036, rel=0.05)
    curve = res["fwhm_vs_temperature"]
    assert [c["report_temperature_K"] for c in curve] == [0.0, 100.0, 300.0]
    assert curve[0]["fwhm_classical_meV"] == 0.0 and curve[0]["fwhm_quantum_meV"] > 0  # zero-point width
    assert curve[2]["fwhm_classical_meV"] == pytest.approx(res["fwhm_meV"], rel=1e-9)
    assert curve[2]["fwhm_quantum_meV"] == pytest.approx(res["fwhm_quantum_meV"], rel=1e-9)


# ----------------------------------------------------------------------------- error bars
def test_replica_mean_and_standard_error(tmp_path):
    amps = [8.0, 10.0, 13.0]
    t = np.arange(0.0, 15000.0, 2.0)
    paths = [gap_csv(tmp_path / f"r{i}.csv", t, a * np.cos(16.9 / HBAR_meV_fs * t + i)) for i, a in enumerate(amps)]
    res = analyze_system(paths, T_MD_K, 300.0, outdir=tmp_path / "out")
    lams = np.array([a**2 / (4 * KT_MD_meV) for a in amps])
    fwhms = np.array([thermal_linewidth_fwhm_meV(x, 300.0) for x in lams])
    S = np.array([expected_S(16.9, a) for a in amps])
    hw = lambda v: T68[len(v)] * np.std(v, ddof=1) / math.sqrt(len(v))  # noqa: E731  Student-t half-width
    assert res["error_method"] == "replicas" and res["n_replicas"] == 3
    assert res["confidence_level"] == pytest.approx(0.6827)
    assert res["lambda_meV"] == pytest.approx(lams.mean(), rel=0.01)
    assert res["lambda_meV_err"] == pytest.approx(hw(lams), rel=0.02)
    lam_lo, lam_hi = lams.mean() - hw(lams), lams.mean() + hw(lams)  # Gamma's interval is lambda's through Eq. 2
    fw_hw = (thermal_linewidth_fwhm_meV(lam_hi, 300.0) - thermal_linewidth_fwhm_meV(lam_lo, 300.0)) / 2
    assert res["fwhm_meV_err"] == pytest.approx(fw_hw, rel=0.02)
    assert res["fwhm_meV_err"] == pytest.approx(hw(fwhms), rel=0.1)  # ~ the spread of the per-replica widths
    lo = region_by_energy(res["regions"], 16.9)
    assert lo["S"] == pytest.approx(S.mean(), rel=0.03)
    assert lo["S_err"] == pytest.approx(hw(S), rel=0.03)
    sd = pd.read_csv(tmp_path / "out" / "spectral_density.csv", comment="#")
    assert sd["S_hw_meV"].sum() == pytest.approx(lams.mean(), rel=0.01)  # mean spectrum


def test_block_error_of_a_single_trajectory(tmp_path):
    amps = [8.0, 12.0, 9.0, 11.0]
    block_fs, dt = 6000.0, 1.0
    t = np.arange(0.0, 4 * block_fs, dt)
    g = np.concatenate([a * np.cos(17.0 / HBAR_meV_fs * np.arange(0, block_fs, dt)) for a in amps])
    res = analyze_system([gap_csv(tmp_path / "one.csv", t, g)], T_MD_K, 300.0, n_blocks=4)
    lams = np.array([a**2 / (4 * KT_MD_meV) for a in amps])
    # the reported interval of one trajectory is its spectrum's; the block estimate is kept under "blocks"
    assert res["error_method"] == "spectrum" and res["n_blocks"] == 4
    assert res["lambda_meV"] == pytest.approx(lams.mean(), rel=0.01)
    assert res["blocks"]["errors"]["lambda_meV_err"] == pytest.approx(T68[4] * np.std(lams, ddof=1) / 2, rel=0.03)


def test_blocks_too_short_for_lowest_region_warn(tmp_path):
    t = np.arange(0.0, 3000.0, 1.0)  # 750 fs blocks: resolution 5.5 meV > 4.5 meV
    path = gap_csv(tmp_path / "short_blocks.csv", t, 5 * np.cos(17 / HBAR_meV_fs * t))
    with pytest.warns(ResolutionWarning, match="blocks"):
        analyze_system([path], T_MD_K, 300.0, n_blocks=4)


def test_standard_error_helper():
    assert standard_error([1.0, 2.0, 3.0]) == pytest.approx(1.0 / math.sqrt(3))
    assert math.isnan(standard_error([1.0]))


# ----------------------------------------------------------------------------- short, discard, flags
@pytest.mark.filterwarnings("ignore:.*blocks of:qdphonon.analysis.spectrum.ResolutionWarning")
def test_too_short_trajectory_is_unresolved_but_gives_lambda(tmp_path):
    t = np.arange(0.0, 500.0, 1.0)  # resolution 8.3 meV: lowest region (4.5 meV) unresolved
    g = 6.0 * np.cos(17.0 / HBAR_meV_fs * t) + 3.0 * np.cos(40.0 / HBAR_meV_fs * t)
    path = gap_csv(tmp_path / "short.csv", t, g)
    with pytest.warns(ResolutionWarning, match="unresolved"):
        res = analyze_system([path], T_MD_K, 300.0, outdir=tmp_path / "out")
    data = json.loads((tmp_path / "out" / "linewidth.json").read_text())
    low = data["regions"][0]
    assert low["resolved"] is False and low["S_err"] is None and low["S"] is None  # no bin below 4.5 meV
    # the Hann main lobe (4 bins = 33 meV) is wider than the 18 meV LO region: not resolved either
    assert data["regions"][2]["resolved"] is False and data["regions"][2]["S_err"] is None
    assert data["lambda_meV"] == pytest.approx(np.var(g) / (2 * KT_MD_meV), rel=0.01)
    assert data["fwhm_meV"] == pytest.approx(2.3548 * np.std(g) * math.sqrt(30), rel=0.01)
    assert res["frequency_resolution_meV"] == pytest.approx(2 * math.pi * HBAR_meV_fs / 500.0, rel=1e-9)


def test_discard_equilibration(tmp_path):
    t = np.arange(0.0, 14000.0, 1.0)
    g = 6.0 * np.cos(7.0 / HBAR_meV_fs * t)
    g[t < 2000] += 300.0 * (1 - t[t < 2000] / 2000)  # hot start relaxing
    path = gap_csv(tmp_path / "eq.csv", t, g)
    res = analyze_system([path], T_MD_K, 300.0, discard_fs=2000.0)
    assert res["lambda_meV"] == pytest.approx(36.0 / (4 * KT_MD_meV), rel=0.01)
    assert res["n_samples"] == 12000
    with pytest.raises(ValueError, match="eq.csv.*after discarding"):
        analyze_system([path], T_MD_K, 300.0, discard_fs=20000.0)


def test_synthetic_level_and_scf_flags(tmp_path):
    t = np.arange(0.0, 2000.0, 1.0)
    g = np.cos(t / 30)
    path = write_csv(
        tmp_path / "mock.csv", t, np.full_like(t, -4.0), -2 + g / 1000,
        sidecar={"synthetic": True, "level": "mock"},
        extra={"step": np.arange(t.size), "scf_converged": np.where(np.arange(t.size) % 500 == 3, "False", "True")},
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResolutionWarning)
        res = analyze_system([path], T_MD_K, 300.0, outdir=tmp_path / "o")
    assert res["synthetic"] is True and res["level"] == "mock"
    assert res["n_scf_unconverged_rows"] == 4
    spectrum = tmp_path / "o" / "spectral_density.csv"
    assert list(pd.read_csv(spectrum).columns) == SPECTRUM_COLUMNS
    sidecar = json.loads(spectrum.with_suffix(".json").read_text())
    assert sidecar["synthetic"] is True and sidecar["level"] == "mock" and "synthetic" in sidecar["note"]
    plain = gap_csv(tmp_path / "plain.csv", t, g)
    assert read_band_edges(plain).synthetic is False


# ----------------------------------------------------------------------------- bad input
def _good_frame(n=10):
    t = np.arange(n) * 1.0
    return pd.DataFrame({"time_fs": t, "vbm_eV": -4 + 0 * t, "cbm_eV": -2 + 0.001 * np.sin(t)})


BAD_CASES = {
    "missing": (lambda df: df.drop(columns="cbm_eV"), "missing.*cbm_eV"),
    "nonuniform": (lambda df: df.assign(time_fs=df.time_fs.where(df.index != 5, 5.5)), "not uniform"),
    "decreasing": (lambda df: df.assign(time_fs=df.time_fs[::-1].to_numpy()), "not strictly increasing"),
    "repeated": (lambda df: df.assign(time_fs=df.time_fs.where(df.index != 5, 4.0)), "not strictly increasing"),
    "nan": (lambda df: df.assign(vbm_eV=df.vbm_eV.where(df.index != 3, np.nan)), "vbm_eV.*NaN"),
    "onerow": (lambda df: df.iloc[:1], "1 data row"),
    "header_only": (lambda df: df.iloc[:0], "0 data row"),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_input_is_refused_with_file_and_problem(tmp_path, case):
    mutate, pattern = BAD_CASES[case]
    path = tmp_path / f"bad_{case}.csv"
    mutate(_good_frame()).to_csv(path, index=False)
    with pytest.raises(ValueError, match=f"bad_{case}.csv.*{pattern}"):
        analyze_system([path], T_MD_K, 300.0)


def test_empty_file_is_refused(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("")
    with pytest.raises(ValueError, match="empty.csv.*empty"):
        read_band_edges(path)
    path.write_text("# synthetic (mock engine)\n")
    with pytest.raises(ValueError, match="empty.csv.*empty"):
        read_band_edges(path)


# ----------------------------------------------------------------------------- VDOS
def test_vdos_peaks_normalisation_and_projections():
    dt, n = 2.0, 4000
    t = np.arange(n) * dt
    symbols = ["Cs", "Pb", "Br", "Br", "Cs", "Br"]
    regions = ["core", "core", "core", "surface", "surface", "surface"]
    masses = atomic_masses_amu(symbols)
    hw = {"core": 14.0, "surface": 4.0}
    rng = np.random.default_rng(1)
    v = np.zeros((n, len(symbols), 3))
    for i, r in enumerate(regions):
        for ax in range(3):  # equipartition: m <v^2> equal for every degree of freedom
            v[:, i, ax] = np.cos(hw[r] / HBAR_meV_fs * t + rng.uniform(0, 6.3)) / math.sqrt(masses[i])
    dos = vibrational_dos(v, masses, dt, regions=regions, symbols=symbols)
    de = dos.d_energy_meV
    assert np.sum(dos.total) * de == pytest.approx(3 * len(symbols), rel=1e-9)
    for r, e0 in hw.items():
        g = dos.projections[f"region_{r}"]
        assert dos.energy_meV[np.argmax(g)] == pytest.approx(e0, abs=de)
        assert np.sum(g) * de == pytest.approx(3 * regions.count(r), rel=0.02)
    np.testing.assert_allclose(dos.projections["region_core"] + dos.projections["region_surface"], dos.total, rtol=1e-10)
    np.testing.assert_allclose(
        sum(dos.projections[f"element_{s}"] for s in ("Br", "Cs", "Pb")), dos.total, rtol=1e-10, atol=1e-14
    )
    assert np.sum(dos.projections["element_Br"]) * de == pytest.approx(9.0, rel=0.02)
    assert list(dos.projections)[:2] == ["region_core", "region_surface"]


@pytest.mark.filterwarnings("ignore::qdphonon.analysis.spectrum.ResolutionWarning")
def test_vdos_in_analyze_system(tmp_path):
    dt, n = 1.0, 3000
    t = np.arange(n) * dt
    symbols = np.array(["Cs", "Pb", "Br", "Ca"])
    regions = np.array(["surface", "core", "surface", "shell"])
    v = np.stack([np.cos((3 + 4 * i) / HBAR_meV_fs * t)[:, None] * np.ones(3) for i in range(4)], axis=1)
    npz = tmp_path / "r0.npz"
    np.savez(npz, velocities=v.astype(np.float32), time_fs=t, symbols=symbols, regions=regions)
    csv = gap_csv(tmp_path / "r0.csv", t, 3 * np.cos(17 / HBAR_meV_fs * t), )
    csv.with_suffix(".json").write_text(json.dumps({"synthetic": True, "level": "mock"}))
    analyze_system([csv], T_MD_K, 300.0, outdir=tmp_path / "with", velocities_npz=[npz])
    d = pd.read_csv(tmp_path / "with" / "vdos.csv")
    assert list(d.columns[:2]) == ["energy_meV", "total"]
    assert {"region_core", "region_surface", "region_shell", "element_Cs", "element_Ca"} <= set(d.columns)
    de = d.energy_meV[1] - d.energy_meV[0]
    assert d.total.sum() * de == pytest.approx(12.0, rel=1e-6)
    np.testing.assert_allclose(d[[c for c in d if c.startswith("region_")]].sum(axis=1), d.total, rtol=1e-6, atol=1e-9)
    analyze_system([csv], T_MD_K, 300.0, outdir=tmp_path / "without")
    assert not (tmp_path / "without" / "vdos.csv").exists()


def test_vdos_is_the_cosine_transform_of_the_velocity_autocorrelation():
    """Wiener-Khinchin by a second route: the mass-weighted linear velocity autocorrelation summed
    lag by lag, then cosine-transformed on the same frequency grid, gives the same DOS (also when the
    atoms are transformed in chunks of one). Speed is not asserted here (no timed tests); the FFT
    route is O(N log N) by construction."""
    from scipy.fft import next_fast_len

    rng = np.random.default_rng(0)
    n, atoms = 97, 4
    v = rng.normal(size=(n, atoms, 3))
    m = np.array([1.0, 2.0, 3.5, 207.2])
    dos = vibrational_dos(v, m, 1.0)
    lags = np.array([np.einsum("a,tak,tak->", m, v[: n - tau], v[tau:]) for tau in range(n)])
    n_fft = next_fast_len(2 * n)
    k = np.arange(n_fft // 2 + 1)
    power = lags[0] + 2.0 * (lags[1:, None] * np.cos(2 * np.pi * np.outer(np.arange(1, n), k) / n_fft)).sum(axis=0)
    weight = np.where((k == 0) | ((n_fft % 2 == 0) & (k == n_fft // 2)), 1.0, 2.0)
    expected = power * weight * dos.n_dof / ((power * weight).sum() * dos.d_energy_meV)
    np.testing.assert_allclose(dos.total, expected, rtol=1e-9, atol=1e-12 * expected.max())
    chunked = vibrational_dos(v, m, 1.0, chunk_bytes=1)
    np.testing.assert_allclose(chunked.total, dos.total, rtol=1e-12)


# ----------------------------------------------------------------------------- summary
def test_summary_rows(tmp_path):
    t = np.arange(0.0, 12000.0, 1.0)
    dirs = {}
    for name, amp, size, shell, edge in (("cube4", 10.0, [4, 4, 4], 0, 2.35), ("cube4_cs", 6.0, [4, 4, 4], 1, 2.35)):
        path = gap_csv(tmp_path / f"{name}_edges.csv", t, amp * np.cos(17 / HBAR_meV_fs * t))
        path.with_suffix(".json").write_text(json.dumps({"synthetic": False, "level": "pbe"}))
        st = tmp_path / f"{name}.json"
        st.write_text(json.dumps({"system": name, "formula": "X", "n_atoms": 416, "size_octahedra": size,
                                  "edge_nm": edge, "shell_layers": shell, "shell_metal": "Ca",
                                  "counts_by_region": {"core": 100, "surface": 316}}))
        out = tmp_path / "analysis" / name
        analyze_system([path], T_MD_K, 300.0, outdir=out, structure_json=st)
        dirs[name] = (out / "linewidth.json", st)
    summary = write_summary([d[0] for d in dirs.values()], [d[1] for d in dirs.values()], tmp_path / "summary.csv")
    df = pd.read_csv(summary)
    assert list(df.system) == ["cube4", "cube4_cs"]
    for col in ("nx", "edge_nm", "formula", "shell_layers", "n_atoms", "gap_mean_eV", "lambda_meV", "fwhm_meV",
                "fwhm_meV_err", "fwhm_quantum_meV", "S_low", "hw_low_meV", "S_LO", "hw_LO_meV", "synthetic", "level"):
        assert col in df.columns, col
    assert df.loc[0, "lambda_meV"] == pytest.approx(100 / (4 * KT_MD_meV), rel=0.01)
    assert df.loc[0, "lambda_lo_meV"] < df.loc[0, "lambda_meV"] < df.loc[0, "lambda_hi_meV"]  # one trajectory: chi^2
    assert df.loc[0, "temperature_source"] == "md_temperature" and df.loc[0, "normalisation_temperature_K"] == T_MD_K
    assert df.loc[1, "shell_layers"] == 1 and df.loc[0, "level"] == "pbe"
    assert df.loc[0, "edge_x_nm"] == df.loc[0, "edge_nm"] == 2.35 and df["edge_nm"].dtype == float
    assert df.loc[0, "hw_LO_meV"] == pytest.approx(17.0, rel=0.02)


def test_replicas_of_different_length_share_a_mean_spectrum(tmp_path):
    amps, durations = (8.0, 10.0), (12000.0, 16000.0)
    paths = []
    for i, (a, d) in enumerate(zip(amps, durations)):
        t = np.arange(0.0, d, 2.0)
        paths.append(gap_csv(tmp_path / f"r{i}.csv", t, a * np.cos(16.9 / HBAR_meV_fs * t)))
    res = analyze_system(paths, T_MD_K, 300.0, outdir=tmp_path / "out")
    sd = pd.read_csv(tmp_path / "out" / "spectral_density.csv", comment="#")
    lam = np.mean([a**2 / (4 * KT_MD_meV) for a in amps])
    assert sd["energy_meV"].iloc[0] == pytest.approx(2 * math.pi * HBAR_meV_fs / 12000.0)  # coarsest grid
    assert sd["S"].sum() == pytest.approx(np.mean([expected_S(16.9, a) for a in amps]), rel=0.03)
    assert sd["S_hw_meV"].sum() == pytest.approx(lam, rel=0.02)
    assert res["lambda_meV"] == pytest.approx(lam, rel=0.01)


def test_weight_above_the_regions_is_reported(tmp_path):
    t = np.arange(0.0, 8000.0, 1.0)
    g = 5.0 * np.cos(17.0 / HBAR_meV_fs * t) + 3.0 * np.cos(80.0 / HBAR_meV_fs * t)
    res = analyze_system([gap_csv(tmp_path / "above.csv", t, g)], T_MD_K, 300.0)
    assert res["lambda_above_regions_meV"] == pytest.approx(9.0 / (4 * KT_MD_meV), rel=0.03)


def test_dropped_scf_steps_are_bridged_and_counted(tmp_path):
    """drop_step leaves holes in the step grid: a few are interpolated (and reported),
    the cosine's region S survives; too many are refused naming the file."""
    import warnings as _w

    from qdphonon.analysis.system import analyze_system

    dt, n, T = 2.0, 6000, 10.0
    t = np.arange(n) * dt
    hw = 7.0
    amp = 5.0
    w = hw / HBAR_meV_fs
    gap = 2.5 + amp * 1e-3 * np.cos(w * t)
    keep = np.ones(n, bool)
    keep[[100, 1001, 2500, 4999]] = False
    path = tmp_path / "holes.csv"
    rows = ["step,time_fs,vbm_eV,cbm_eV"] + [f"{i},{t[i]},0.0,{gap[i]}" for i in range(n) if keep[i]]
    path.write_text("\n".join(rows) + "\n")
    with _w.catch_warnings(record=True) as caught:
        _w.simplefilter("always")
        out = analyze_system([path], md_temperature_K=T, temperature_K=300.0, outdir=tmp_path / "o")
    assert out["n_interpolated_steps"] == 4
    assert any("4 missing MD step" in str(c.message) for c in caught)
    expected_S = amp**2 / (4 * hw * BOLTZMANN_meV_per_K * T)
    mid = [r for r in out["regions"] if r["lo_meV"] <= hw < r["hi_meV"]][0]
    assert mid["S"] == pytest.approx(expected_S, rel=0.03)
    bad = tmp_path / "many_holes.csv"
    rows = ["step,time_fs,vbm_eV,cbm_eV"] + [f"{i},{t[i]},0.0,{gap[i]}" for i in range(0, n, 1) if i % 3]
    bad.write_text("\n".join(rows) + "\n")
    with pytest.raises(ValueError, match="many_holes.csv.*missing"):
        analyze_system([bad], md_temperature_K=T, temperature_K=300.0, outdir=tmp_path / "o2")
