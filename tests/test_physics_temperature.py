"""lambda normalised by the temperature of the internal motion the run had (docs/physics.md §4.6).

Known answer: a 7-atom spring cluster (tests/test_physics_vdos.py) whose 3N - 6 normal modes carry
k_B T_int each, while a rigid rotation, heated separately, carries kinetic energy of its own (what a
global thermostat does to an isolated dot that nobody stops from rotating). The gap couples
linearly to the normal coordinates, dE = sum_m c_m q_m, so the reorganisation energy
lambda = sum_m c_m^2 / (2 w_m^2) is known and independent of temperature; Var(dE) / (2 k_B T) gives
it only with T = T_int, not with T_md.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from test_physics_vdos import SYMBOLS, cluster_modes, thermal_motion

from qdphonon.analysis.spectrum import thermal_linewidth_fwhm_meV
from qdphonon.analysis.system import analyze_system
from qdphonon.analysis.vdos import AMU_A2_per_fs2_in_eV
from qdphonon.units import BOLTZMANN_meV_per_K, HBAR_meV_fs

T_MD_K = 10.0
T_FS = np.arange(0.0, 8000.0, 2.0)
OMEGA_ROT = np.array([0.0, 0.3, 1.0]) * 1e-4  # rad/fs: about a third of the kinetic energy at 7 K


def coupled_gap(T_int, seed, lam_target=40.0):
    """(gap in eV, exact lambda in meV) of dE = sum c_m q_m with the phases ``thermal_motion(seed)`` uses."""
    _, _, e_meV, _ = cluster_modes()
    w = e_meV / HBAR_meV_fs
    amp = np.sqrt(2 * BOLTZMANN_meV_per_K * T_int * 1e-3 / AMU_A2_per_fs2_in_eV) / w
    ph = np.random.default_rng(seed).uniform(0, 2 * np.pi, w.size)
    q = np.cos(np.outer(T_FS, w) + ph) * amp  # mass-weighted normal coordinates, sqrt(amu) A
    c = np.linspace(1.0, 2.0, w.size) * w  # meV / (sqrt(amu) A)
    c *= math.sqrt(lam_target / (float(np.sum(c**2 / (2 * w**2))) * 1e-3 / AMU_A2_per_fs2_in_eV))
    lam_exact = float(np.sum(c**2 / (2 * w**2))) * 1e-3 / AMU_A2_per_fs2_in_eV  # Var / 2 k_B T for E_m = k_B T
    return 2.5 + (q @ c) / 1000.0, lam_exact


def replica(tmp_path, i, T_int, positions=True):
    gap_eV, lam = coupled_gap(T_int, seed=i)
    csv = tmp_path / f"r{i}.csv"
    pd.DataFrame({"time_fs": T_FS, "vbm_eV": -4.0 + 0 * T_FS, "cbm_eV": -4.0 + gap_eV}).to_csv(csv, index=False)
    pos, vel, ud = thermal_motion(T_FS, T_K=T_int, omega_rot=OMEGA_ROT, v_com=[2e-4, 0, 0], seed=i)
    arrays = {"velocities": vel, "time_fs": T_FS, "symbols": np.array(SYMBOLS)}
    if positions:
        arrays["positions"] = pos
    np.savez(tmp_path / f"r{i}.npz", **arrays)
    _, m, _, _ = cluster_modes()
    t_int = float(np.einsum("a,fak,fak->f", m, ud, ud).mean()) * AMU_A2_per_fs2_in_eV * 1e3 / (BOLTZMANN_meV_per_K * 15)
    rigid = 1 - float(np.einsum("a,fak,fak->", m, ud, ud)) / float(np.einsum("a,fak,fak->", m, vel, vel))
    return csv, tmp_path / f"r{i}.npz", lam, t_int, rigid


def variance_meV2(csv):
    g = pd.read_csv(csv).eval("cbm_eV - vbm_eV").to_numpy() * 1000
    return float(np.var(g))


def test_lambda_uses_the_internal_temperature_not_t_md(tmp_path):
    csv, npz, lam_exact, t_int, rigid = replica(tmp_path, 0, 7.3)
    assert 0.3 < rigid < 0.6 and abs(t_int / 7.3 - 1) < 0.05  # rigid motion holds a third to a half, as in the real runs
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = analyze_system([csv], T_MD_K, 300.0, velocities_npz=[npz], temperatures_K=[300.0])
    assert res["temperature_source"] == "velocities"
    assert res["normalisation_temperature_K"] == pytest.approx(t_int, rel=0.01)
    assert res["lambda_meV"] == pytest.approx(variance_meV2(csv) / (2 * BOLTZMANN_meV_per_K * res["normalisation_temperature_K"]), rel=1e-9)
    # the known answer, to the cross terms of modes closer than 1/duration that an 8 ps window leaves (< 10 %);
    # T_md would give 27 % less
    assert res["lambda_meV"] == pytest.approx(lam_exact, rel=0.1)
    assert res["lambda_meV_with_md_temperature"] == pytest.approx(res["lambda_meV"] * t_int / T_MD_K, rel=0.01)
    assert res["fwhm_meV"] == pytest.approx(thermal_linewidth_fwhm_meV(res["lambda_meV"], 300.0), rel=1e-12)
    assert res["rigid_kinetic_fraction"] == pytest.approx(rigid, abs=0.02)


def test_each_replica_keeps_its_own_internal_temperature(tmp_path):
    reps = [replica(tmp_path, i, T) for i, T in enumerate((6.0, 9.0))]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = analyze_system([r[0] for r in reps], T_MD_K, 300.0, velocities_npz=[r[1] for r in reps],
                             temperatures_K=[300.0])  # fmt: skip
    per = res["normalisation_temperature_K_per_replica"]
    assert per == pytest.approx([r[3] for r in reps], rel=0.01)
    expected = np.mean([variance_meV2(r[0]) / (2 * BOLTZMANN_meV_per_K * T) for r, T in zip(reps, per)])
    assert res["lambda_meV"] == pytest.approx(expected, rel=1e-9)
    assert res["lambda_meV"] == pytest.approx(np.mean([r[2] for r in reps]), rel=0.1)


def test_without_positions_t_md_is_used_and_says_so(tmp_path):
    csv, npz, lam_exact, t_int, _ = replica(tmp_path, 0, 7.3, positions=False)
    with pytest.warns(UserWarning, match="normalised by md_temperature_K = 10 K.*no positions"):
        res = analyze_system([csv], T_MD_K, 300.0, velocities_npz=[npz], temperatures_K=[300.0])
    assert res["temperature_source"] == "md_temperature" and res["normalisation_temperature_K"] == T_MD_K
    assert res["lambda_meV"] == pytest.approx(variance_meV2(csv) / (2 * BOLTZMANN_meV_per_K * T_MD_K), rel=1e-9)
    with pytest.warns(UserWarning, match="no velocities"):
        bare = analyze_system([csv], T_MD_K, 300.0, temperatures_K=[300.0])
    assert bare["temperature_source"] == "md_temperature" and bare["lambda_meV"] == pytest.approx(res["lambda_meV"])
