"""The symmetry scheme of the harmonic route (docs/physics.md §5.2) against the Cartesian one.

The Cartesian scheme assumes nothing (plain central differences over all 6N displacements, checked
against analytic Hessians elsewhere); the symmetry scheme runs phonopy's reduced subset and expands it by
the point group. On a model whose energy and band edges are invariant under the dot's point group, both
must give the same Hessian and gradients to round-off, also away from the minimum; the symmetrisation
must make a structure exactly symmetric and refuse one that lost the symmetry.
"""

from __future__ import annotations

import numpy as np
import pytest

from qdphonon.config import SystemConfig
from qdphonon.harmonic.assemble import SinglePoint, assemble, cartesian_displacements, displaced_positions
from qdphonon.harmonic.mock import SpringDot
from qdphonon.harmonic.plan import n_displacements
from qdphonon.harmonic.symmetry import (SymmetryBroken, assemble_symmetric, point_group_plan, symmetric_gradient,
                                        symmetrise)
from qdphonon.structures.build import build_quantum_dot
from qdphonon.structures.model import QuantumDotSpec

STEP_A = 0.01


def _cut(n: int):
    dot = build_quantum_dot(QuantumDotSpec(size=(n, n, n)))
    return dot, point_group_plan(dot.symbols, dot.positions_A, dot.box_A, STEP_A)


@pytest.mark.parametrize("n, group, n_ops, n_disp", [(1, "-43m", 24, 8), (2, "3m", 6, 80)])
def test_the_plan_of_the_ideal_cuts(n, group, n_ops, n_disp):
    dot, plan = _cut(n)
    assert (plan.point_group, plan.n_operations, len(plan.displacements)) == (group, n_ops, n_disp)
    names = {d.name for d in cartesian_displacements(len(dot.symbols), STEP_A)}
    assert {d.name for d in plan.displacements} <= names  # a subset: directories shared with the Cartesian scheme
    plus = {(d.atom, d.axis) for d in plan.displacements if d.sign > 0}
    assert plus == {(d.atom, d.axis) for d in plan.displacements if d.sign < 0}
    for perm in plan.permutations:
        assert sorted(perm) == list(range(len(dot.symbols)))
        assert all(dot.symbols[i] == dot.symbols[j] for i, j in enumerate(perm))


def test_parse_time_count_is_the_plan_count():
    config = {"harmonic": {"displacements": "symmetry", "step_A": STEP_A},
              "structure": {"lattice_A": 5.87, "vacuum_A": 5.0}}  # fmt: skip
    system = SystemConfig("cspbbr3_2x2x2", (2, 2, 2), 0, "Ca", {})
    assert n_displacements(config, system) == 80
    assert n_displacements({**config, "harmonic": {"displacements": "cartesian", "step_A": STEP_A}}, system) == 384


def test_symmetrise_makes_the_structure_exactly_symmetric_and_reports_the_shift():
    dot, plan = _cut(2)
    noisy = dot.positions_A + np.random.default_rng(3).normal(0.0, 2e-4, dot.positions_A.shape)
    sym, shift = symmetrise(noisy, plan)
    assert 1e-4 < shift < 2e-3
    again, shift2 = symmetrise(sym, plan)
    assert shift2 < 1e-10 and np.max(np.abs(again - sym)) < 1e-10
    assert np.max(np.abs(symmetrise(dot.positions_A, plan)[0] - dot.positions_A)) < 1e-10


def test_a_structure_that_lost_the_symmetry_is_refused_naming_the_atom():
    dot, plan = _cut(2)
    broken = dot.positions_A.copy()
    broken[5, 0] += 0.05
    with pytest.raises(SymmetryBroken, match=r"atom \d+ 0.05 A away from atom 5, .*tolerance"):
        symmetrise(broken, plan)


def _single_points(model: SpringDot, base: np.ndarray, displacements) -> tuple[SinglePoint, dict]:
    def sp(pos):
        f, e, occupied, unoccupied = model.evaluate(pos)
        return SinglePoint(f, occupied, unoccupied, e)

    return sp(base), {d: sp(displaced_positions(base, d)) for d in displacements}


@pytest.mark.parametrize("n", [1, 2])
@pytest.mark.parametrize("scale", [1.0, 1.01])
def test_symmetry_scheme_equals_the_cartesian_scheme_on_an_invariant_model(n, scale):
    """Springs between all near pairs and a gap linear in the Pb-Br bond lengths: invariant under the point
    group. At the minimum (scale 1) the VBM is a threefold manifold (centroid); 1 % expanded, the forces do
    not vanish and the VBM splits, so only the CBM (a single level) is compared there."""
    dot, plan = _cut(n)
    centre = dot.positions_A.mean(axis=0)
    base = centre + scale * (dot.positions_A - centre)
    model = SpringDot(dot.symbols, dot.positions_A)
    ref, every = _single_points(model, base, cartesian_displacements(len(dot.symbols), STEP_A))
    full = assemble(ref, every)
    reduced = {d: every[d] for d in plan.displacements}
    data, residuals = assemble_symmetric(ref, reduced, plan, dot.symbols, base)
    h = np.max(np.abs(full.hessian_eV_A2))
    assert np.max(np.abs(data.hessian_eV_A2 - full.hessian_eV_A2)) < 1e-9 * h
    assert np.max(np.abs(data.cbm_gradient_eV_A - full.cbm_gradient_eV_A)) < 1e-9
    assert residuals["cbm_gradient_symmetry_residual_eV_A"] < 1e-9
    if scale == 1.0:
        assert data.degeneracy.n_vbm == 3
        assert np.max(np.abs(data.gap_gradient_eV_A - full.gap_gradient_eV_A)) < 1e-9
    assert np.max(np.abs(data.residual_forces_eV_A)) == pytest.approx(np.max(np.abs(full.residual_forces_eV_A)))


def test_a_function_that_breaks_the_symmetry_shows_in_the_residual():
    """A linear function with a random gradient is not invariant under Td; where an atom's images
    over-determine its gradient (Cs4PbBr6), the least-squares residual says so."""
    dot, plan = _cut(1)
    g = np.random.default_rng(5).normal(size=(len(dot.symbols), 3))
    derivatives = {(d.atom, d.axis): g[d.atom, d.axis] for d in plan.displacements if d.sign > 0}
    _, residual = symmetric_gradient(plan, derivatives, len(dot.symbols))
    assert residual > 0.1


def test_too_few_displacements_cannot_determine_the_gradient():
    dot, plan = _cut(2)
    first = next(d for d in plan.displacements if d.sign > 0)
    with pytest.raises(ValueError, match="span .* of 3 directions"):
        symmetric_gradient(plan, {(first.atom, first.axis): 1.0}, len(dot.symbols))


def test_a_missing_minus_partner_is_refused():
    dot, plan = _cut(1)
    model = SpringDot(dot.symbols, dot.positions_A)
    ref, results = _single_points(model, dot.positions_A, plan.displacements)
    minus = next(d for d in plan.displacements if d.sign < 0)
    with pytest.raises(ValueError, match=f"displacement {minus.name} has no single point"):
        assemble_symmetric(ref, {d: v for d, v in results.items() if d != minus}, plan, dot.symbols, dot.positions_A)


def test_a_relaxed_structure_that_lost_the_symmetry_names_the_file_and_the_setting(tmp_path):
    from qdphonon.harmonic.runner import cut_plan, reference_positions
    from qdphonon.structures.io import write_structure

    dot = build_quantum_dot(QuantumDotSpec(size=(1, 1, 1)))
    write_structure(dot, tmp_path / "cut.xyz")
    moved = dot.positions_A.copy()
    moved[5, 0] += 0.05
    import dataclasses

    write_structure(dataclasses.replace(dot, positions_A=moved), tmp_path / "relaxed.xyz")
    plan = cut_plan(tmp_path / "cut.xyz", tmp_path / "relaxed.xyz", STEP_A)
    with pytest.raises(SymmetryBroken, match=r"relaxed.xyz: .*lost the cut's point group -43m.*harmonic.displacements: cartesian"):
        reference_positions(tmp_path / "relaxed.xyz", plan)
