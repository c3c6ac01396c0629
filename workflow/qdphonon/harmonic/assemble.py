"""From single points at +-step Cartesian displacements to the Hessian and the band-edge gradients.

Every coordinate i (atom i // 3, axis i % 3) is displaced by +step and -step (6N single points) plus
the undisplaced reference: central differences for the Hessian (forces) and for the gradients of the
band edges (eigenvalues). Degenerate band edges (symmetric dots) have no gradient; the centroid of the
degenerate manifold (its trace / its size) is a smooth, symmetric function of the geometry, so its
gradient is what is used (docs/physics.md §5.3). The manifold is found at the reference geometry
(levels within ``degeneracy_tol_meV`` of the edge) and the same number of levels is averaged at
every displaced geometry, where small displacements split it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

from qdphonon.harmonic.modes import central_difference_gradient, central_difference_hessian, hessian_asymmetry

DEGENERACY_TOL_meV = 5.0
"""Levels within this of the band edge at the reference geometry belong to its degenerate manifold."""

AXES = "xyz"


@dataclass(frozen=True)
class Displacement:
    """Coordinate ``atom, axis`` displaced by ``sign * step_A`` (Angstrom); ``name`` labels its directory."""

    atom: int
    axis: int
    sign: int
    step_A: float

    @property
    def name(self) -> str:
        return f"a{self.atom:04d}{AXES[self.axis]}{'p' if self.sign > 0 else 'm'}"

    @property
    def coordinate(self) -> int:
        return 3 * self.atom + self.axis


def cartesian_displacements(n_atoms: int, step_A: float) -> list[Displacement]:
    """All 6N displacements, coordinate by coordinate, + before -."""
    if step_A <= 0:
        raise ValueError(f"displacement step must be > 0 Angstrom, got {step_A}")
    return [Displacement(a, x, s, float(step_A)) for a in range(n_atoms) for x in range(3) for s in (1, -1)]


def displaced_positions(positions_A: np.ndarray, d: Displacement) -> np.ndarray:
    out = np.array(positions_A, dtype=float, copy=True)
    out[d.atom, d.axis] += d.sign * d.step_A
    return out


@dataclass(frozen=True)
class SinglePoint:
    """What one single point gives: forces (N x 3, eV/A), occupied levels (eV, highest first) and
    unoccupied levels (eV, lowest first) near the gap; ``energy_eV`` the total energy."""

    forces_eV_A: np.ndarray
    occupied_eV: np.ndarray
    unoccupied_eV: np.ndarray
    energy_eV: float | None = None


@dataclass(frozen=True)
class FrontierDegeneracy:
    """How many levels make the VBM (HOMO) and CBM (LUMO) manifolds at the reference geometry."""

    n_vbm: int
    n_cbm: int
    tol_meV: float

    def vbm_eV(self, sp: SinglePoint) -> float:
        return _centroid(sp.occupied_eV, self.n_vbm, "occupied")

    def cbm_eV(self, sp: SinglePoint) -> float:
        return _centroid(sp.unoccupied_eV, self.n_cbm, "unoccupied")


def _centroid(levels: np.ndarray, n: int, what: str) -> float:
    lv = np.asarray(levels, float)
    if lv.size < n:
        raise ValueError(f"{lv.size} {what} levels printed, the degenerate manifold needs {n}: print more levels")
    return float(lv[:n].mean())


def manifold_size(levels_from_edge_eV: np.ndarray, tol_meV: float) -> int:
    """Number of levels within ``tol_meV`` of the first one (levels ordered away from the gap).

    All printed levels within the tolerance: then the printed window may cut the manifold, so a
    manifold as large as the window is refused."""
    lv = np.asarray(levels_from_edge_eV, float)
    if lv.size == 0:
        raise ValueError("no levels printed")
    n = int(np.sum(np.abs(lv - lv[0]) * 1000.0 <= tol_meV))
    if n == lv.size and lv.size > 1:
        raise ValueError(f"all {lv.size} printed levels lie within {tol_meV} meV of the band edge: print more levels")
    return n


def frontier_degeneracy(reference: SinglePoint, tol_meV: float = DEGENERACY_TOL_meV) -> FrontierDegeneracy:
    return FrontierDegeneracy(manifold_size(reference.occupied_eV, tol_meV),
                              manifold_size(reference.unoccupied_eV, tol_meV), float(tol_meV))  # fmt: skip


@dataclass(frozen=True)
class HarmonicData:
    """The assembled inputs of the harmonic route: Hessian (eV/A^2), gradients of VBM, CBM and gap (eV/A),
    the reference's residual forces (eV/A), the degeneracy used and the Hessian's relative asymmetry."""

    hessian_eV_A2: np.ndarray
    vbm_gradient_eV_A: np.ndarray
    cbm_gradient_eV_A: np.ndarray
    residual_forces_eV_A: np.ndarray
    degeneracy: FrontierDegeneracy
    hessian_asymmetry: float
    step_A: float
    gap_eV: float

    @property
    def gap_gradient_eV_A(self) -> np.ndarray:
        return self.cbm_gradient_eV_A - self.vbm_gradient_eV_A

    @property
    def max_residual_force_eV_A(self) -> float:
        return float(np.max(np.linalg.norm(self.residual_forces_eV_A, axis=1)))


def assemble(reference: SinglePoint, results: Mapping[Displacement, SinglePoint],
             degeneracy_tol_meV: float = DEGENERACY_TOL_meV) -> HarmonicData:
    """Central differences over all 6N displacements (ValueError naming the first missing one)."""
    forces0 = np.asarray(reference.forces_eV_A, float)
    n_atoms = forces0.shape[0]
    steps = {d.step_A for d in results}
    if len(steps) != 1:
        raise ValueError(f"displacements of several step sizes {sorted(steps)}: use one")
    step = steps.pop()
    deg = frontier_degeneracy(reference, degeneracy_tol_meV)
    by_coord = {(d.coordinate, d.sign): sp for d, sp in results.items()}
    n = 3 * n_atoms
    fp, fm = np.zeros((n, n)), np.zeros((n, n))
    vp, vm, cp, cm = (np.zeros(n) for _ in range(4))
    for d in cartesian_displacements(n_atoms, step):
        sp = by_coord.get((d.coordinate, d.sign))
        if sp is None:
            raise ValueError(f"displacement {d.name} has no single point")
        f = np.asarray(sp.forces_eV_A, float)
        if f.shape != (n_atoms, 3):
            raise ValueError(f"displacement {d.name}: forces of shape {f.shape}, expected ({n_atoms}, 3)")
        (fp if d.sign > 0 else fm)[d.coordinate] = f.ravel()
        (vp if d.sign > 0 else vm)[d.coordinate] = deg.vbm_eV(sp)
        (cp if d.sign > 0 else cm)[d.coordinate] = deg.cbm_eV(sp)
    return HarmonicData(
        hessian_eV_A2=central_difference_hessian(fp, fm, step),
        vbm_gradient_eV_A=central_difference_gradient(vp, vm, step),
        cbm_gradient_eV_A=central_difference_gradient(cp, cm, step),
        residual_forces_eV_A=forces0, degeneracy=deg, hessian_asymmetry=hessian_asymmetry(fp, fm, step),
        step_A=step, gap_eV=deg.cbm_eV(reference) - deg.vbm_eV(reference),
    )  # fmt: skip


def single_points_needed(n_atoms: int) -> int:
    """6N displaced single points plus the reference."""
    return 6 * int(n_atoms) + 1

