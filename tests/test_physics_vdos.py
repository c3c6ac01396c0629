"""VDOS with rigid translation and rotation removed, normalised to 3N - 6; kinetic temperature.

Independent evidence: a spring-network cluster whose 3N - 6 normal modes come from its Hessian
(numpy eigen-decomposition, not the code under test), thermally excited with k_B T per mode, and
carried by a rigid rotation and translation of known kinetic energy. Removing the rigid motion
must recover the vibrational DOS of the same cluster without rigid motion, and its kinetic
temperature.
"""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pandas as pd
import pytest

from qdphonon.analysis.system import analyze_system
from qdphonon.analysis.vdos import AMU_A2_per_fs2_in_eV, atomic_masses_amu, remove_rigid_motion, vibrational_dos
from qdphonon.units import BOLTZMANN_meV_per_K, HBAR_meV_fs

SYMBOLS = ["Pb", "Br", "Br", "Cs", "Br", "Cs", "Br"]


def cluster_modes(seed=0):
    """Positions (A), masses (amu), vibrational energies (meV) and mass-weighted eigenvectors of a
    7-atom spring network (all pairs, k = 6 eV/A^2 / distance; modes 2.7-24 meV)."""
    rng = np.random.default_rng(seed)
    r0 = rng.normal(0.0, 2.0, (len(SYMBOLS), 3))
    m = atomic_masses_amu(SYMBOLS)
    n = len(m)
    H = np.zeros((3 * n, 3 * n))
    for i in range(n):
        for j in range(i + 1, n):
            d = r0[j] - r0[i]
            L = np.linalg.norm(d)
            blk = (6.0 / L) * np.outer(d, d) / L**2
            for a, b, sign in ((i, i, 1), (j, j, 1), (i, j, -1), (j, i, -1)):
                H[3 * a:3 * a + 3, 3 * b:3 * b + 3] += sign * blk
    minv = 1.0 / np.sqrt(np.repeat(m, 3))
    w2, vec = np.linalg.eigh(minv[:, None] * H * minv[None, :] / AMU_A2_per_fs2_in_eV)  # omega^2 in fs^-2
    vib = w2 > 1e-10 * w2.max()
    assert vib.sum() == 3 * n - 6
    return r0 - np.average(r0, axis=0, weights=m), m, HBAR_meV_fs * np.sqrt(w2[vib]), vec[:, vib]


def thermal_motion(t_fs, T_K=10.0, omega_rot=None, v_com=None, seed=1):
    """(positions, velocities, body-frame vibrational velocities) of the cluster: every normal mode with
    energy k_B T, then rotated rigidly at angular velocity ``omega_rot`` (rad/fs) and translated."""
    r0, m, e_meV, vec = cluster_modes()
    rng = np.random.default_rng(seed)
    w = e_meV / HBAR_meV_fs
    E_eV = BOLTZMANN_meV_per_K * T_K * 1e-3
    amp = np.sqrt(2 * E_eV / AMU_A2_per_fs2_in_eV) / w  # mass-weighted amplitude: E = omega^2 A^2 / 2
    ph = rng.uniform(0, 2 * np.pi, w.size)
    minv = 1.0 / np.sqrt(np.repeat(m, 3))
    q = np.cos(np.outer(t_fs, w) + ph) * amp
    qd = -np.sin(np.outer(t_fs, w) + ph) * amp * w
    u = (q @ vec.T * minv).reshape(len(t_fs), -1, 3)
    ud = (qd @ vec.T * minv).reshape(len(t_fs), -1, 3)
    body = r0[None] + u
    if omega_rot is None:
        return body, ud, ud
    axis = np.asarray(omega_rot, dtype=float)
    Om = np.linalg.norm(axis)
    k = axis / Om
    K = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    pos, vel = np.empty_like(body), np.empty_like(ud)
    for f, t in enumerate(t_fs):
        R = np.eye(3) + math.sin(Om * t) * K + (1 - math.cos(Om * t)) * K @ K  # Rodrigues
        pos[f] = body[f] @ R.T + np.asarray(v_com) * t
        vel[f] = np.cross(axis, body[f] @ R.T) + ud[f] @ R.T + np.asarray(v_com)
    return pos, vel, ud


def test_rigid_motion_removed_vdos_is_the_vibrational_one():
    t = np.arange(0.0, 6000.0, 2.0)
    r0, m, e_meV, _ = cluster_modes()
    omega = np.array([0.3, -0.5, 0.8]) * 2.2e-4  # rigid rotation: ~0.15 meV, slower than the 1 meV bins
    pos, vel, ud = thermal_motion(t, omega_rot=omega, v_com=[2e-4, -1e-4, 3e-4])
    ke_total = np.einsum("a,fak,fak->", m, vel, vel)
    ke_vib = np.einsum("a,fak,fak->", m, ud, ud)
    assert 0.2 < 1 - ke_vib / ke_total < 0.8  # a strong rigid share, as in the xTB fixture (13.7 %)

    v_free = remove_rigid_motion(vel, pos, m)
    rel = pos - np.einsum("a,fak->fk", m, pos)[:, None] / m.sum()
    L = np.einsum("a,fak->fk", m, np.cross(rel, v_free))
    P = np.einsum("a,fak->fk", m, v_free)
    assert np.abs(L).max() < 1e-9 * np.abs(np.einsum("a,fak->fk", m, np.cross(rel, vel))).max()
    assert np.abs(P).max() < 1e-12

    dos = vibrational_dos(vel, m, 2.0, symbols=SYMBOLS, positions=pos)
    ref = vibrational_dos(ud, m, 2.0, symbols=SYMBOLS, positions=r0[None] + 0 * ud)  # no rigid motion at all
    raw = vibrational_dos(vel, m, 2.0, symbols=SYMBOLS)  # nothing removed (no positions)
    de = dos.d_energy_meV
    n_vib = 3 * len(m) - 6
    assert dos.n_dof == n_vib and dos.rigid_motion_removed and raw.n_dof == 3 * len(m)
    assert np.sum(dos.total) * de == pytest.approx(n_vib, rel=1e-9)
    assert dos.rigid_kinetic_fraction == pytest.approx(1 - ke_vib / ke_total, abs=0.01)
    low = dos.energy_meV < 0.5 * e_meV.min()
    assert np.sum(dos.total[low]) * de < 0.01 * n_vib  # nothing left near zero frequency
    assert np.sum(raw.total[low]) * de > 0.15 * raw.n_dof  # what rigid motion did to the old VDOS
    cdf = lambda d: np.cumsum(d.total) * de  # noqa: E731
    assert np.max(np.abs(cdf(dos) - cdf(ref))) < 0.03 * n_vib
    np.testing.assert_allclose(sum(dos.projections[f"element_{s}"] for s in ("Br", "Cs", "Pb")), dos.total, rtol=1e-10)


def test_kinetic_temperature_and_vdos_in_analyze_system(tmp_path):
    t = np.arange(0.0, 6000.0, 2.0)
    r0, m, e_meV, _ = cluster_modes()
    gap = 2.5 + 0.005 * np.cos(17.0 / HBAR_meV_fs * t)
    pd.DataFrame({"time_fs": t, "vbm_eV": -4.0 + 0 * t, "cbm_eV": -4.0 + gap}).to_csv(tmp_path / "r0.csv", index=False)
    npzs = []
    for i, T in enumerate((10.0, 11.0)):
        pos, vel, ud = thermal_motion(t, T_K=T, omega_rot=np.array([0.0, 0.2, 1.0]) * 2e-4, v_com=[1e-4, 0, 0], seed=i)
        npzs.append(tmp_path / f"r{i}.npz")
        np.savez(npzs[-1], velocities=vel.astype(np.float32), positions=pos.astype(np.float32), time_fs=t,
                 symbols=np.array(SYMBOLS), regions=np.array(["core"] + ["surface"] * 6))  # fmt: skip
    t_vib = [np.einsum("a,fak,fak->f", m, u, u).mean() * AMU_A2_per_fs2_in_eV * 1e3 / (BOLTZMANN_meV_per_K * 15)
             for u in (thermal_motion(t, T_K=T, seed=i)[2] for i, T in enumerate((10.0, 11.0)))]  # fmt: skip
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = analyze_system([tmp_path / "r0.csv"], 10.0, 300.0, outdir=tmp_path / "o", velocities_npz=[npzs[0]])
    assert not any("kinetic temperature" in str(w.message) for w in caught)
    assert res["kinetic_temperature_K"] == pytest.approx(t_vib[0], rel=0.01)
    assert res["vdos_n_dof"] == 15 and res["rigid_motion_removed"] is True
    d = pd.read_csv(tmp_path / "o" / "vdos.csv")
    assert d.total.sum() * (d.energy_meV[1] - d.energy_meV[0]) == pytest.approx(15.0, rel=1e-6)
    np.testing.assert_allclose(d.region_core + d.region_surface, d.total, rtol=1e-9, atol=1e-12)
    assert json.loads((tmp_path / "o" / "vdos.json").read_text())["n_dof"] == 15
    with pytest.warns(UserWarning, match="mean kinetic temperature .* differs from md_temperature_K"):
        hot = analyze_system([tmp_path / "r0.csv"], 10.0, 300.0, velocities_npz=[npzs[1]])
    assert hot["kinetic_temperature_K"] == pytest.approx(t_vib[1], rel=0.01)
    # lambda is normalised by the internal temperature the run had, not by T_md
    assert hot["temperature_source"] == "velocities" and hot["normalisation_temperature_K"] == hot["kinetic_temperature_K"]
    assert hot["lambda_meV"] == pytest.approx(25.0 / (4 * BOLTZMANN_meV_per_K * t_vib[1]), rel=0.01)
    assert hot["lambda_meV_with_md_temperature"] == pytest.approx(25.0 / (4 * BOLTZMANN_meV_per_K * 10.0), rel=0.01)
