"""phonopy, a peer code, on the same displacements: its force constants equal our central-difference Hessian,
and it finds the point group of a symmetric dot."""

import numpy as np

from harmonic_model import SpringModel
from qdphonon.harmonic.assemble import cartesian_displacements, displaced_positions
from qdphonon.harmonic.modes import central_difference_hessian
from qdphonon.harmonic.symmetry import phonopy_force_constants, symmetry_report
from qdphonon.structures.build import build_quantum_dot
from qdphonon.structures.model import QuantumDotSpec


def test_phonopy_force_constants_equal_our_central_differences():
    model = SpringModel()
    box = 20.0
    r0 = model.r0 + box / 2
    step = 0.01
    forces = {}
    n = 3 * len(model.m)
    fp, fm = np.zeros((n, n)), np.zeros((n, n))
    for d in cartesian_displacements(len(model.m), step):
        f = model.forces_eV_A(displaced_positions(r0, d))
        forces[(d.atom, d.axis, d.sign)] = f
        (fp if d.sign > 0 else fm)[d.coordinate] = f.ravel()
    symbols = ["Pb", "Br", "Cs", "Br", "Br"]
    fc = phonopy_force_constants(symbols, r0, box, forces, step)
    ours = central_difference_hessian(fp, fm, step)
    assert np.max(np.abs(fc - ours)) < 1e-3 * np.max(np.abs(ours))
    assert np.max(np.abs(ours - model.hessian_eV_A2())) < 1e-2 * np.max(np.abs(ours))


def test_symmetry_of_the_ideal_cs4pbbr6_cut():
    dot = build_quantum_dot(QuantumDotSpec(size=(1, 1, 1)))
    rep = symmetry_report(dot.symbols, dot.positions_A, dot.box_A)
    assert rep["n_cartesian_displacements"] == 66
    assert rep["n_symmetry_operations"] > 1
    assert rep["n_symmetry_reduced_displacements"] < 66
