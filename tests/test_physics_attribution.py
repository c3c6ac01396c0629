"""Region attribution of lambda (qdphonon.analysis.attribution) against a harmonic model with a known answer.

Independent evidence: an 11-atom spring-network cluster whose 3N - 6 normal modes come from its
Hessian (numpy eigen-decomposition), excited with k_B T per mode (equipartition amplitudes,
random phases), and a gap that is a known linear function ``g . u`` of the displacements (plus,
where said, white noise the displacements cannot explain). The exact classical answer is
``lambda_R = g_R . (C g)_R / (2 k_B T)`` with ``C = k_B T H^+`` the thermal covariance of the
displacements; the fit must recover it to a few per cent from the trajectory alone.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from qdphonon.analysis.attribution import aligned_displacements, kabsch_align, attribute_lambda, cross_huang_rhys, fit_coupling
from qdphonon.analysis.spectrum import huang_rhys_spectrum
from qdphonon.analysis.vdos import AMU_A2_per_fs2_in_eV, atomic_masses_amu
from qdphonon.units import BOLTZMANN_meV_per_K, HBAR_meV_fs

SYMBOLS = ["Pb", "Br", "Br", "Br", "Br", "Br", "Br", "Cs", "Cs", "Cs", "Cs"]
REGIONS = ["core", "core", "core", "surface", "surface", "surface", "surface", "surface", "shell", "shell", "shell"]
T_K = 10.0
DT_FS = 5.0
N_PHASES = 59
"""Replicas of the phase design: a prime above 2 x 27 internal modes (see :func:`thermal_trajectory`)."""


def spring_cluster(seed=1):
    """Positions (A), masses (amu), Hessian (eV/A^2) of a random all-pairs spring network."""
    rng = np.random.default_rng(seed)
    r0 = rng.normal(0.0, 2.5, (len(SYMBOLS), 3))
    n = len(SYMBOLS)
    H = np.zeros((3 * n, 3 * n))
    for i in range(n):
        for j in range(i + 1, n):
            d = r0[j] - r0[i]
            L = np.linalg.norm(d)
            blk = (4.0 / L) * np.outer(d, d) / L**2
            for a, b, sign in ((i, i, 1), (j, j, 1), (i, j, -1), (j, i, -1)):
                H[3 * a : 3 * a + 3, 3 * b : 3 * b + 3] += sign * blk
    return r0, atomic_masses_amu(SYMBOLS), H


def zero_force_gauge(g, r0, m):
    """``g`` shifted along ``M t`` (t: rigid translations/rotations about r0) until it exerts no net
    force and no net torque: for internal displacements (``t^T M u = 0``) no ``g . u`` changes, and a
    gap invariant under rigid motion has such a gradient (the attribution's gauge)."""
    n = len(m)
    c = r0 - r0.mean(axis=0)
    T = np.array([np.tile(a, n) for a in np.eye(3)] + [np.cross(a, c).ravel() for a in np.eye(3)]).T
    MT = np.repeat(m, 3)[:, None] * T
    coef = np.linalg.solve(T.T @ MT, -T.T @ g)
    shifted = g + MT @ coef
    assert np.allclose(T.T @ shifted, 0.0, atol=1e-9 * np.abs(g).max())
    return shifted


def thermal_trajectory(r0, m, H, frames, seed, replica=0, n_replicas=1):
    """Positions (frames, atoms, 3) with every internal mode at k_B T (equipartition amplitudes) and
    phases ``phi_k + 2 pi replica k / n_replicas``: over ``n_replicas`` (a prime above twice the mode
    count) every cross term ``cos((w_k +- w_l) t + ...)`` and every ``cos(2 w_k t + ...)`` sums to zero
    at every t, so the replica-averaged covariance is the ensemble's exactly (no luck involved)."""
    rng = np.random.default_rng(seed)
    Minv = 1.0 / np.sqrt(np.repeat(m, 3))
    w2, vecs = np.linalg.eigh(Minv[:, None] * H * Minv[None, :])
    keep = w2 > 1e-6 * w2.max()
    omega = np.sqrt(w2[keep] / AMU_A2_per_fs2_in_eV)
    kT_eV = BOLTZMANN_meV_per_K * T_K * 1e-3
    amp = np.sqrt(2.0 * kT_eV / (AMU_A2_per_fs2_in_eV * omega**2))
    t = np.arange(frames) * DT_FS
    phase = rng.uniform(0, 2 * np.pi, omega.size) + 2 * np.pi * replica * np.arange(omega.size) / n_replicas
    q = np.cos(np.outer(t, omega) + phase) * amp
    u = (q @ vecs[:, keep].T) * Minv
    return r0[None] + u.reshape(frames, -1, 3), omega * HBAR_meV_fs


def exact_lambdas(g, H, m, labels):
    """Classical ensemble lambda_R (meV) for the gap g . u: g_R . (C g)_R / (2 k_B T), with
    C = k_B T M^-1/2 D^+ M^-1/2 (A^2; D = M^-1/2 H M^-1/2) the covariance of the displacements in
    the Eckart frame (no centre-of-mass motion, no rotation: what mass-weighted alignment leaves)."""
    kT_meV = BOLTZMANN_meV_per_K * T_K
    Minv = 1.0 / np.sqrt(np.repeat(m, 3))
    C = kT_meV * 1e-3 * Minv[:, None] * np.linalg.pinv(Minv[:, None] * H * Minv[None, :], rcond=1e-8) * Minv[None, :]
    Cg = C @ g
    cols = np.repeat(np.asarray(labels), 3)
    return {r: float(g[cols == r] @ Cg[cols == r]) / (2 * kT_meV) for r in dict.fromkeys(labels)}


@pytest.fixture(scope="module")
def model():
    r0, m, H = spring_cluster()
    rng = np.random.default_rng(7)
    scale = {"core": 5.0, "surface": 40.0, "shell": 15.0}
    g = np.concatenate([rng.normal(0.0, scale[r], 3) for r in REGIONS])
    g = zero_force_gauge(g, r0, m)
    trajs = [thermal_trajectory(r0, m, H, 1000, 11, r, N_PHASES)[0] for r in range(N_PHASES)]
    return r0, m, H, g, trajs


def gaps(trajs, r0, g, noise_meV=0.0, seed=5):
    rng = np.random.default_rng(seed)
    return [2500.0 + (t - r0[None]).reshape(len(t), -1) @ g + rng.normal(0.0, noise_meV, len(t)) for t in trajs]


def test_recovers_known_region_lambdas(model):
    r0, m, H, g, trajs = model
    u, ref = aligned_displacements(trajs, m)
    att = attribute_lambda(u, gaps(trajs, r0, g), REGIONS, DT_FS, T_K, ref, m)
    exact = exact_lambdas(g, H, m, REGIONS)
    total = sum(exact.values())
    assert att.fit.r2 > 0.995 and att.fit.r2_cv > 0.99
    for r, lam in exact.items():
        assert att.lambda_meV[r] == pytest.approx(lam, rel=0.02), r
    assert att.lambda_total_meV == pytest.approx(total, rel=0.02)
    assert abs(att.lambda_meV["unexplained"]) < 0.01 * total


def test_noise_lands_in_unexplained_and_shares_sum(model):
    r0, m, H, g, trajs = model
    u, ref = aligned_displacements(trajs, m)
    clean_var = np.mean([np.var(e) for e in gaps(trajs, r0, g)])
    noise = np.sqrt(0.25 * clean_var)
    att = attribute_lambda(u, gaps(trajs, r0, g, noise), REGIONS, DT_FS, T_K, ref, m)
    lam_noise = noise**2 / (2 * BOLTZMANN_meV_per_K * T_K)
    assert att.lambda_meV["unexplained"] == pytest.approx(lam_noise, rel=0.1)
    assert sum(att.lambda_meV.values()) == pytest.approx(att.lambda_total_meV, rel=1e-12)
    assert 0.75 < att.fit.r2_cv < 0.85
    exact = exact_lambdas(g, H, m, REGIONS)
    for r, lam in exact.items():
        assert att.lambda_meV[r] == pytest.approx(lam, abs=0.04 * sum(exact.values())), r


def test_region_spectra_sum_to_eq1_spectrum_bin_by_bin(model):
    r0, m, H, g, trajs = model
    u, _ = aligned_displacements(trajs[:1], m)
    dE = gaps(trajs[:1], r0, g, 2.0)
    att = attribute_lambda(u, dE, REGIONS, DT_FS, T_K)
    ref = huang_rhys_spectrum(dE[0] - dE[0].mean(), DT_FS, T_K, window="none")
    total = sum(att.spectra.values())
    np.testing.assert_allclose(att.energy_meV, ref.energy_meV)
    np.testing.assert_allclose(total, ref.S, rtol=1e-9, atol=1e-12 * ref.S.max())
    for r, S_r in att.spectra.items():
        assert np.sum(S_r * att.energy_meV) == pytest.approx(att.lambda_meV[r], rel=1e-9, abs=1e-12)


def test_cross_spectrum_of_a_series_with_itself_is_eq1():
    rng = np.random.default_rng(0)
    x = rng.normal(size=501)
    e, S = cross_huang_rhys(x, x, 2.0, 300.0)
    ref = huang_rhys_spectrum(x - x.mean(), 2.0, 300.0, window="none")
    np.testing.assert_allclose(S, ref.S, rtol=1e-12)


def test_invariant_under_rigid_motion_and_atom_order(model):
    r0, m, H, g, trajs = model
    traj = trajs[0]
    dE = gaps([traj], r0, g, 1.0)
    def run(positions, masses, gap, labels):
        u, ref = aligned_displacements([positions], masses)
        return attribute_lambda(u, gap, labels, DT_FS, T_K, ref, masses)

    base = run(traj, m, dE, REGIONS)
    t = np.arange(len(traj))[:, None] * DT_FS
    rot = Rotation.from_rotvec(np.hstack([0.8 * np.sin(t / 900.0), 0.3 * t / 1000.0, 0.1 * np.cos(t / 400.0)]))
    moved = np.stack([rot[i].apply(f) for i, f in enumerate(traj)]) + np.array([3.0, -1.0, 0.5]) + 0.01 * t[:, :, None]
    rigid = run(moved, m, dE, REGIONS)
    perm = np.random.default_rng(3).permutation(len(SYMBOLS))
    permuted = run(traj[:, perm], m[perm], [e + 100.0 for e in dE], [REGIONS[i] for i in perm])
    for other in (rigid, permuted):
        for r in base.lambda_meV:
            assert other.lambda_meV[r] == pytest.approx(base.lambda_meV[r], rel=1e-6, abs=1e-9)
        assert other.fit.r2_cv == pytest.approx(base.fit.r2_cv, rel=1e-6)


def test_cross_validation_regularises_collective_motion_and_reports_overfitting():
    """Many coordinates moved by a few collective modes (plus tiny independent jitter), as atoms of a
    dot are: unregularised, the fit chases the jitter; CV must choose a real penalty and predict
    unseen frames well. With independent coordinates and more of them than frames, in-sample
    explained variance is ~1 whatever the truth; the cross-validated one must say so."""
    rng = np.random.default_rng(4)
    frames, coords = 200, 600
    Z = rng.normal(size=(frames, 5))
    X = Z @ rng.normal(size=(5, coords)) + 0.01 * rng.normal(size=(frames, coords))
    X -= X.mean(axis=0)
    y = Z @ np.array([3.0, -2.0, 1.0, 2.5, -1.5]) + rng.normal(0.0, 0.5, frames)
    y -= y.mean()
    fit = fit_coupling(X, y, np.zeros(frames, dtype=int))
    assert fit.alpha > 100 * fit.alphas[0]
    assert fit.cv_mse.min() < 0.85 * fit.cv_mse[0]
    assert fit.r2_cv > 0.9

    X = rng.normal(size=(frames, coords))
    X -= X.mean(axis=0)
    y = X[:, :5] @ np.array([3.0, -2.0, 1.0, 2.5, -1.5]) + rng.normal(0.0, 1.0, frames)
    fit = fit_coupling(X, y - y.mean(), np.zeros(frames, dtype=int))
    assert fit.r2 > 0.99 and fit.r2_cv < 0.5


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="frames"):
        attribute_lambda([np.zeros((10, 2, 3))], [np.zeros(9)], ["core", "surface"], 1.0, 10.0)
    with pytest.raises(ValueError, match="temperature_K must be > 0"):
        attribute_lambda([np.zeros((10, 2, 3))], [np.zeros(10)], ["core", "surface"], 1.0, 0.0)


def test_batched_kabsch_agrees_with_scipy():
    rng = np.random.default_rng(9)
    m = rng.uniform(30, 210, 9)
    ref = rng.normal(0, 3, (9, 3))
    ref -= m @ ref / m.sum()
    rots = Rotation.random(20, random_state=1)
    frames = np.stack([r.apply(ref + rng.normal(0, 0.2, ref.shape)) for r in rots])
    frames -= np.einsum("fai,a->fi", frames, m / m.sum())[:, None]
    ours = kabsch_align(frames, ref, m)
    theirs = np.stack([Rotation.align_vectors(ref, f, weights=m)[0].apply(f) for f in frames])
    np.testing.assert_allclose(ours, theirs, atol=1e-9)
