"""The harmonic route's math on a model with a known answer (pair springs, band edges linear in bond lengths):
displacements -> central differences -> modes -> S_k, against the analytic Hessian and gradient, and the
identity Var(dE) = 2 lambda k_B T against a Metropolis sample of the model's own Boltzmann ensemble."""

import numpy as np
import pytest

from harmonic_model import SpringModel
from qdphonon.harmonic.assemble import assemble, cartesian_displacements, displaced_positions, frontier_degeneracy
from qdphonon.harmonic.coupling import binned_spectrum, classical_variance_meV2, mode_coupling, quantum_variance_meV2
from qdphonon.harmonic.modes import HBAR_OMEGA_meV_PER_SQRT_EIGENVALUE, mass_weight, normal_modes, rigid_fraction
from qdphonon.units import BOLTZMANN_meV_per_K


def finite_difference_data(model, step_A=2e-3, positions=None):
    r0 = model.r0 if positions is None else positions
    results = {d: model.single_point(displaced_positions(r0, d)) for d in cartesian_displacements(len(model.m), step_A)}
    return assemble(model.single_point(r0), results)


def analytic_coupling(model):
    """S_k and hbar w_k straight from the analytic Hessian and gradient (no finite differences, no projector):
    the 3N - 6 largest eigenvalues of the mass-weighted Hessian (the rigid ones are exactly 0 here)."""
    w2, e = np.linalg.eigh(mass_weight(model.hessian_eV_A2(), model.m))
    w2, e = w2[6:], e[:, 6:]
    d = e.T @ (model.gap_gradient_eV_A() / np.sqrt(np.repeat(model.m, 3)))
    lam_meV = 1000 * d**2 / (2 * w2)
    energy = np.sqrt(w2) * HBAR_OMEGA_meV_PER_SQRT_EIGENVALUE
    return energy, lam_meV / energy


def test_assembly_recovers_the_analytic_hessian_and_gradient():
    model = SpringModel()
    data = finite_difference_data(model)
    h = model.hessian_eV_A2()
    assert np.max(np.abs(data.hessian_eV_A2 - h)) < 1e-4 * np.max(np.abs(h))
    assert np.allclose(data.gap_gradient_eV_A, model.gap_gradient_eV_A(), rtol=0, atol=1e-6)
    assert data.degeneracy.n_vbm == 2 and data.degeneracy.n_cbm == 1
    assert data.max_residual_force_eV_A < 1e-12


def test_modes_and_huang_rhys_factors_match_the_analytic_answer():
    model = SpringModel()
    data = finite_difference_data(model)
    modes = normal_modes(data.hessian_eV_A2, model.r0, model.m)
    assert modes.n_rigid == 6 and modes.omega2.size == 9
    c = mode_coupling(modes, data.gap_gradient_eV_A)
    energy, S = analytic_coupling(model)
    assert np.allclose(c.energy_meV, energy, rtol=1e-5)
    assert np.allclose(c.S, S, rtol=1e-4, atol=1e-9 * S.max())
    assert c.total_lambda_meV == pytest.approx(float(np.sum(S * energy)), rel=1e-5)
    assert c.n_imaginary == 0


def test_result_does_not_depend_on_orientation_or_position():
    model = SpringModel()
    ref = mode_coupling(normal_modes(finite_difference_data(model).hessian_eV_A2, model.r0, model.m),
                        model.gap_gradient_eV_A())
    a, b, g = 0.7, -1.1, 2.3
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    rx = np.array([[1, 0, 0], [0, np.cos(g), -np.sin(g)], [0, np.sin(g), np.cos(g)]])
    moved = SpringModel(positions_A=model.r0 @ (rz @ ry @ rx).T + np.array([10.0, -4.0, 7.5]))
    data = finite_difference_data(moved)
    c = mode_coupling(normal_modes(data.hessian_eV_A2, moved.r0, moved.m), data.gap_gradient_eV_A)
    assert np.allclose(c.energy_meV, ref.energy_meV, rtol=1e-5)
    assert c.total_lambda_meV == pytest.approx(ref.total_lambda_meV, rel=1e-4)


def test_rigid_motions_are_projected_out_of_modes_and_gradient():
    model = SpringModel()
    data = finite_difference_data(model)
    modes = normal_modes(data.hessian_eV_A2, model.r0, model.m)
    assert rigid_fraction(data.gap_gradient_eV_A, model.r0, model.m) < 1e-10
    translation = np.tile([0.3, -0.2, 0.5], len(model.m)) * np.repeat(model.m, 3)  # a force-like uniform push
    with_rigid = mode_coupling(modes, data.gap_gradient_eV_A + translation)
    assert np.allclose(with_rigid.d, mode_coupling(modes, data.gap_gradient_eV_A).d)


def test_centroid_of_a_degenerate_edge_is_what_is_differentiated():
    """The highest single level has a kink (|s.u|) at the reference: its 'central difference' is 0 along
    directions where the centroid's is not; the centroid's is the exact gradient of the linear part."""
    model = SpringModel()
    data = finite_difference_data(model)
    exact = -model.bond_jacobian().T @ model.c
    assert np.allclose(data.vbm_gradient_eV_A, exact, atol=1e-8)
    assert frontier_degeneracy(model.single_point(model.r0), tol_meV=1.0).n_vbm == 2


def test_binned_spectrum_keeps_lambda():
    model = SpringModel()
    data = finite_difference_data(model)
    c = mode_coupling(normal_modes(data.hessian_eV_A2, model.r0, model.m), data.gap_gradient_eV_A)
    grid, S = binned_spectrum(c, 0.5)
    assert np.sum(S * grid) == pytest.approx(c.total_lambda_meV, rel=1e-12)
    assert np.all(np.abs(grid[np.argmax(S * grid)] - c.energy_meV[np.argmax(c.lambda_meV)]) <= 0.25 + 1e-12)


def test_quantum_variance_limits():
    model = SpringModel()
    data = finite_difference_data(model)
    c = mode_coupling(normal_modes(data.hessian_eV_A2, model.r0, model.m), data.gap_gradient_eV_A)
    assert quantum_variance_meV2(c, 0.0) == pytest.approx(float(np.sum(c.S * c.energy_meV**2)))
    T_hot = 1e5
    assert quantum_variance_meV2(c, T_hot) == pytest.approx(classical_variance_meV2(c, T_hot), rel=1e-4)
    assert quantum_variance_meV2(c, 300.0) > classical_variance_meV2(c, 300.0)


def test_classical_variance_identity_against_a_boltzmann_sample_of_the_model():
    """Metropolis on the model's own potential (not its Hessian) at k_B T = 1 meV: the gap variance is
    2 lambda k_B T within sampling error: 2000 walkers, 12 snapshots; each snapshot alone (independent walkers)
    has a 3.2 % standard error, the pooled estimate about 1.2 % (seeds 2026, 1, 2 gave 0.997, 1.001, 0.991)."""
    model = SpringModel()
    data = finite_difference_data(model)
    c = mode_coupling(normal_modes(data.hessian_eV_A2, model.r0, model.m), data.gap_gradient_eV_A)
    kT_eV = 1e-3
    rng = np.random.default_rng(2026)
    walkers, step = 2000, 0.008
    r = np.broadcast_to(model.r0, (walkers,) + model.r0.shape).copy()
    e = model.energy_eV(r)
    samples = []
    for it in range(2000):
        trial = r + rng.normal(0.0, step, r.shape) / np.sqrt(model.m / model.m.min())[:, None]
        et = model.energy_eV(trial)
        accept = rng.random(walkers) < np.exp(-(et - e) / kT_eV)
        r[accept], e[accept] = trial[accept], et[accept]
        if it >= 800 and it % 100 == 0:
            samples.append(model.gap_eV(r) * 1000.0)
    var = float(np.var(np.concatenate(samples)))
    expected = classical_variance_meV2(c, kT_eV * 1000.0 / BOLTZMANN_meV_per_K)
    assert var == pytest.approx(expected, rel=0.05)
