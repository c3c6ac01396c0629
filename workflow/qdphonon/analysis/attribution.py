"""Where in the dot the gap coupling lives: a linear fit of the gap to the atomic displacements,
and the exact split of lambda (and of the Huang-Rhys spectrum) into the dot's regions.

Model (docs/physics.md, "Region attribution of lambda"): ``dE(t) = sum_i g_i . u_i(t) + r(t)``
with ``u_i`` the displacement of atom i from the mean structure after rigid motion is removed
(every frame translated to its centre of mass and rotated onto the mean structure by the
mass-weighted Kabsch fit; :func:`aligned_displacements`), ``g_i`` (meV/Angstrom) fitted by ridge
regression with the penalty chosen by blocked cross-validation (:func:`fit_coupling`).

Region shares, for any partition of the atoms into regions R:
``lambda_R = Cov(g_R . u_R, dE) / (2 k_B T)``. They sum exactly to ``Cov(dE_fit, dE) / (2 k_B T)``,
the explained part of lambda (T: the normalising temperature of the MD analysis, the internal
temperature when velocities allow it; analysis/temperature.py); the rest is ``lambda_unexplained``. Region spectra use the
cross-periodogram ``S_R,k = Re(X_k^* Y_R,k) ...`` with the normalisation of paper Eq. 1, so
``sum_R S_R + S_unexplained = S`` bin by bin and ``sum_k S_R,k hbar w_k = lambda_R``.
Energies in meV, lengths in Angstrom, times in fs, temperatures in K.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from qdphonon.units import BOLTZMANN_meV_per_K, HBAR_meV_fs

ALIGN_ITERATIONS = 3
"""Rounds of 'align every frame to the mean, recompute the mean' (the mean converges in 2-3)."""

CV_FOLDS = 5
"""Contiguous blocks per trajectory for cross-validation (random folds would leak: frames are correlated)."""

ALPHA_GRID = tuple(10.0 ** np.arange(-10.0, 1.01, 0.5))
"""Ridge penalties tried, relative to the largest squared singular value of the displacement matrix."""


def kabsch_align(frames_A: np.ndarray, reference_A: np.ndarray, masses_amu: np.ndarray) -> np.ndarray:
    """Every frame (frames, atoms, 3; centre of mass at the origin) rotated onto ``reference_A`` (same
    centring) by the proper rotation minimising ``sum_i m_i |R p_i - q_i|^2`` (Kabsch, batched over frames:
    one 3x3 SVD per frame in a single numpy call, where scipy's ``align_vectors`` takes one frame per call)."""
    H = np.einsum("a,fai,aj->fij", masses_amu, frames_A, reference_A)
    U, _, Vt = np.linalg.svd(H)
    d = np.sign(np.linalg.det(np.einsum("fji,fkj->fik", Vt, U)))
    D = np.ones((len(frames_A), 3))
    D[:, 2] = np.where(d == 0, 1.0, d)
    R = np.einsum("fji,fj,fkj->fik", Vt, D, U)
    return np.einsum("fij,faj->fai", R, frames_A)


def aligned_displacements(
    positions_A: Sequence[np.ndarray], masses_amu: np.ndarray, reference_A: np.ndarray | None = None
) -> tuple[list[np.ndarray], np.ndarray]:
    """Displacements from the mean structure with rigid motion removed, per trajectory.

    ``positions_A``: one array (frames, atoms, 3) per replica. Every frame is translated to its
    centre of mass and rotated (mass-weighted least squares, scipy's Kabsch) onto a common
    reference, the mean of all aligned frames, iterated :data:`ALIGN_ITERATIONS` times. Each
    replica's displacements are taken from its *own* mean aligned structure, so they average to
    zero per replica, as the gap fluctuation does. Returns (displacements per replica, reference).
    """
    m = np.asarray(masses_amu, dtype=float)
    centred = []
    for p in positions_A:
        p = np.asarray(p, dtype=float)
        if p.ndim != 3 or p.shape[2] != 3 or p.shape[1] != m.size:
            raise ValueError(f"positions of shape {p.shape} do not match {m.size} atoms")
        centred.append(p - np.einsum("fai,a->fi", p, m / m.sum())[:, None, :])
    ref = centred[0][0] if reference_A is None else np.asarray(reference_A, float) - m @ np.asarray(reference_A, float) / m.sum()
    aligned = centred
    for _ in range(ALIGN_ITERATIONS):
        aligned = [kabsch_align(c, ref, m) for c in centred]
        ref = np.concatenate(aligned).mean(axis=0)
    return [a - a.mean(axis=0) for a in aligned], ref


def rigid_vectors(reference_A: np.ndarray) -> np.ndarray:
    """The 6 rigid directions ``t_k`` (3N, 6) of a structure: unit translations and infinitesimal
    rotations ``e x (r_i - c)`` about its centroid (the choice of centre does not change their span)."""
    r = np.asarray(reference_A, dtype=float)
    r = r - r.mean(axis=0)
    cols = [np.tile(axis, (len(r), 1)).ravel() for axis in np.eye(3)]
    cols += [np.cross(axis, r).ravel() for axis in np.eye(3)]
    return np.array(cols).T


def zero_net_force_gauge(g: np.ndarray, reference_A: np.ndarray, masses_amu: np.ndarray) -> np.ndarray:
    """``g + M T c`` with ``c`` such that the result has no net force and no net torque (``T^T g = 0``).

    Displacements with rigid motion removed obey ``T^T M u = 0`` (Eckart conditions), so adding any
    ``M T c`` leaves every ``g . u`` unchanged: the data cannot fix that part of ``g``. A gap does not
    change when the whole dot moves rigidly, so its gradient exerts no net force or torque; this
    gauge picks that ``g``, and with it how the coupling is split between regions.
    """
    T = rigid_vectors(reference_A)
    MT = np.repeat(np.asarray(masses_amu, dtype=float), 3)[:, None] * T
    c = np.linalg.lstsq(T.T @ MT, -(T.T @ g), rcond=None)[0]
    return g + MT @ c


@dataclass(frozen=True)
class CouplingFit:
    """Ridge fit ``dE ~ U g``: ``g`` (meV/Angstrom, one per Cartesian coordinate, atom-major),
    the chosen penalty ``alpha`` (Angstrom^2, the unit of U^T U), the grid tried and its
    out-of-fold mean squared errors (meV^2), in-sample and cross-validated explained variance."""

    g: np.ndarray
    alpha: float
    alphas: np.ndarray
    cv_mse: np.ndarray
    r2: float
    r2_cv: float
    n_frames: int
    n_coordinates: int


def _ridge_predict(X_train, y_train, X_test, alphas) -> np.ndarray:
    """Predictions on ``X_test`` of the ridge fits of every penalty: shape (alphas, test frames)."""
    U, s, Vt = np.linalg.svd(X_train, full_matrices=False)
    uty = U.T @ y_train
    coef = (s / (s[None, :] ** 2 + np.asarray(alphas)[:, None])) * uty[None, :]
    return coef @ (X_test @ Vt.T).T if X_test.size else np.zeros((len(alphas), 0))


def fit_coupling(X: np.ndarray, y: np.ndarray, groups: np.ndarray, folds: int = CV_FOLDS,
                 alpha_grid: Sequence[float] = ALPHA_GRID) -> CouplingFit:  # fmt: skip
    """Ridge regression of ``y`` (frames) on ``X`` (frames, coordinates); both already centred per replica.

    ``groups``: replica index of every frame. Each replica is cut into ``folds`` contiguous
    blocks; fold j leaves out block j of every replica. The penalty (relative grid times the
    largest squared singular value of X) minimising the out-of-fold mean squared error is
    kept and the final fit uses all frames. The penalty ``alpha ||g||^2`` is invariant under a
    rotation of the coordinate frame (no per-column scaling), so the fit is too. ``r2_cv``: the
    explained variance of the out-of-fold predictions at the chosen penalty (what the fit
    predicts on frames it has not seen); ``r2``: in-sample.
    """
    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=float)
    groups = np.asarray(groups)
    if X.ndim != 2 or X.shape[0] != y.size or groups.size != y.size:
        raise ValueError(f"fit_coupling: X {X.shape}, y {y.shape} and groups {groups.shape} disagree")
    if y.size < 2 * folds:
        raise ValueError(f"fit_coupling: {y.size} frames are too few for {folds}-fold cross-validation")
    s_max = np.linalg.norm(X, 2) if X.size else 0.0
    alphas = np.asarray(alpha_grid, dtype=float) * max(s_max**2, 1e-300)
    fold = np.empty(y.size, dtype=int)
    for gval in np.unique(groups):
        idx = np.flatnonzero(groups == gval)
        fold[idx] = np.minimum(np.arange(idx.size) * folds // idx.size, folds - 1)
    pred = np.zeros((alphas.size, y.size))
    for j in range(folds):
        test = fold == j
        pred[:, test] = _ridge_predict(X[~test], y[~test], X[test], alphas)
    cv_mse = np.mean((pred - y[None, :]) ** 2, axis=1)
    best = int(np.argmin(cv_mse))
    U, s, Vt = np.linalg.svd(X, full_matrices=False)
    g = Vt.T @ ((s / (s**2 + alphas[best])) * (U.T @ y))
    sst = float(np.sum(y**2))
    r2 = 1.0 - float(np.sum((y - X @ g) ** 2)) / sst if sst > 0 else math.nan
    r2_cv = 1.0 - float(cv_mse[best]) * y.size / sst if sst > 0 else math.nan
    return CouplingFit(g, float(alphas[best]), alphas, cv_mse, r2, r2_cv, int(y.size), int(X.shape[1]))


def cross_huang_rhys(delta_E_meV: np.ndarray, part_meV: np.ndarray, dt_fs: float, md_temperature_K: float
                     ) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """(energy_meV, S_part) with ``S_part,k = 2 Re(X_k^* Y_k) / (N^2 2 hbar w_k k_B T)`` (Nyquist bin once):
    the share of paper Eq. 1's rectangular ``S_k`` carried by ``part`` (X, Y: FFTs of dE and of the part).
    Parts that add up to dE give spectra that add up to S; ``sum_k S_part,k hbar w_k = Cov(part, dE) / (2 k_B T)``.
    """
    x = np.asarray(delta_E_meV, dtype=float)
    y = np.asarray(part_meV, dtype=float)
    n = x.size
    X = np.fft.rfft(x - x.mean())[1:]
    Y = np.fft.rfft(y - y.mean())[1:]
    power = 2.0 * np.real(np.conj(X) * Y) / n**2
    if n % 2 == 0:
        power[-1] *= 0.5
    energy = 2.0 * math.pi * HBAR_meV_fs * np.arange(1, n // 2 + 1) / (n * dt_fs)
    return energy, power / (2.0 * energy * BOLTZMANN_meV_per_K * md_temperature_K)


@dataclass(frozen=True)
class Attribution:
    """lambda split by region (``lambda_meV``: region -> meV, including ``unexplained``; they sum to
    ``lambda_total_meV``), region spectra on ``energy_meV`` (same keys; they sum to the Eq. 1 S),
    the fit, and the frames used."""

    lambda_meV: dict[str, float]
    lambda_total_meV: float
    energy_meV: np.ndarray
    spectra: dict[str, np.ndarray]
    fit: CouplingFit
    coupling_norm_meV_per_A: dict[str, float]
    n_frames_per_replica: list[int]

    @property
    def lambda_explained_meV(self) -> float:
        return float(sum(v for k, v in self.lambda_meV.items() if k != "unexplained"))


def attribute_lambda(displacements_A: Sequence[np.ndarray], delta_E_meV: Sequence[np.ndarray], regions: Sequence[str],
                     dt_fs: float, temperature_K: float | Sequence[float], reference_A: np.ndarray | None = None,
                     masses_amu: np.ndarray | None = None, folds: int = CV_FOLDS) -> Attribution:  # fmt: skip
    """Fit the coupling on all replicas together and split lambda and S(w) into ``regions`` (one label per atom).

    ``displacements_A``: per replica (frames, atoms, 3), zero mean (from :func:`aligned_displacements`);
    ``delta_E_meV``: the gap on the same frames (its mean is removed here). lambda is the replica
    mean of ``Var(dE) / (2 k_B T)`` and each share the replica mean of its covariance, so the
    shares add up to lambda exactly. Spectra: replica means (replicas must share the frame count).
    ``temperature_K``: the normalising temperature, one for all replicas or one per replica (the
    internal temperature the MD analysis divides by, analysis/temperature.py), so the shares add up
    to the linewidth's lambda.
    """
    temps = np.broadcast_to(np.asarray(temperature_K, dtype=float), (len(delta_E_meV),))
    if not np.all(temps > 0):
        raise ValueError(f"temperature_K must be > 0, got {temperature_K}")
    labels = np.asarray(regions, dtype=str)
    if len(displacements_A) != len(delta_E_meV) or not displacements_A:
        raise ValueError("attribute_lambda: one gap series per displacement trajectory needed")
    ys = [np.asarray(e, float) - np.mean(e) for e in delta_E_meV]
    Xs = [np.asarray(u, float).reshape(len(u), -1) for u in displacements_A]
    for X, y in zip(Xs, ys):
        if X.shape[0] != y.size or X.shape[1] != 3 * labels.size:
            raise ValueError(f"attribute_lambda: {X.shape[0]} frames x {X.shape[1] // 3} atoms vs {y.size} gap values "
                             f"and {labels.size} region labels")  # fmt: skip
    groups = np.concatenate([np.full(y.size, i) for i, y in enumerate(ys)])
    fit = fit_coupling(np.concatenate(Xs), np.concatenate(ys), groups, folds)
    if reference_A is not None and masses_amu is not None:
        fit = dataclasses.replace(fit, g=zero_net_force_gauge(fit.g, reference_A, masses_amu))
    coord_labels = np.repeat(labels, 3)
    names = [r for r in dict.fromkeys(labels.tolist())]
    lam = {r: 0.0 for r in names + ["unexplained"]}
    spectra: dict[str, list[np.ndarray]] = {r: [] for r in lam}
    energy = None
    for X, y, T_K in zip(Xs, ys, temps):
        two_kT = 2.0 * BOLTZMANN_meV_per_K * T_K
        explained = np.zeros_like(y)
        for r in names:
            cols = coord_labels == r
            part = X[:, cols] @ fit.g[cols]
            explained += part
            lam[r] += float(np.mean(part * y)) / two_kT / len(ys)
            energy, S_r = cross_huang_rhys(y, part, dt_fs, T_K)
            spectra[r].append(S_r)
        lam["unexplained"] += float(np.mean((y - explained) * y)) / two_kT / len(ys)
        spectra["unexplained"].append(cross_huang_rhys(y, y - explained, dt_fs, T_K)[1])
    if len({s.size for s in spectra["unexplained"]}) > 1:
        raise ValueError("attribute_lambda: replicas of different lengths; region spectra need a common grid")
    total = float(np.mean([np.mean(y**2) / (2.0 * BOLTZMANN_meV_per_K * T_K) for y, T_K in zip(ys, temps)]))
    norms = {r: float(np.linalg.norm(fit.g[coord_labels == r])) for r in names}
    return Attribution(lam, total, energy, {r: np.mean(v, axis=0) for r, v in spectra.items()}, fit, norms,
                       [int(y.size) for y in ys])  # fmt: skip
