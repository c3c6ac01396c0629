"""CsPbBr3 (and CsPbBr3/CsMBr3 core/shell) cuboid quantum-dot models (docs/physics.md §2).

Geometry
    Cubic perovskite with lattice constant ``a`` (Angstrom). A cuboid of
    ``nx x ny x nz`` corner-sharing PbBr6 octahedra: Pb (B-sites) at
    ``a*(i, j, k)`` with ``0 <= i < nx`` etc.; Br at every ``Pb +- a/2`` along each
    axis, so every octahedron is complete; Cs at all ``(nx+1)(ny+1)(nz+1)``
    A-sites ``a*(i+1/2, j+1/2, k+1/2)`` with ``-1 <= i < nx`` etc. (the
    CsBr-terminated surface). Internally every site is an integer point of the
    half-lattice grid (coordinates in units of ``a/2``), which keeps the
    construction exact and the atom order reproducible.

Neutrality
    With Cs+, Pb2+ (Ca2+/Sr2+) and Br- the raw cut carries ``Q = nx+ny+nz+1``
    (``3n+1`` for a cube), so ``Q`` Cs are removed. Candidates are the A-sites on
    the corners and edges of the A-site cuboid (8 corners plus ``n-1`` interior
    sites per edge; always more than ``Q``); face and interior A-sites are never
    removed. The removed set minimises the point-charge Coulomb energy of the
    remaining ions (formal charges). The search is deterministic: a greedy start
    (remove, one at a time, the candidate whose removal lowers the energy most;
    candidate order corners first, then edges, each lexicographic in the grid
    coordinates, first candidate wins ties) plus ``N_SEEDED_STARTS`` pseudo-random
    starts from a fixed splitmix64 seed; each start is improved by single swaps
    (removed <-> kept, best improvement first, fixed scan order) and, once none
    helps, by pair swaps, until no swap lowers the energy. The lowest energy wins;
    among removal sets within ``ENERGY_TIE_e2_per_a`` of it, the lexicographically
    smallest list of candidate indices. Energies are computed in units of
    ``e^2/a``, so the choice does not depend on ``a``. The greedy start alone
    stalls in a local minimum (n = 5, and n = 1 before pair swaps); the seeded
    starts find the minimum that random-restart searches find for n = 1..7.

    Outcome for cubes: n = 1 keeps a regular tetrahedron of Cs (Td, zero dipole);
    n = 2 removes 7 of the 8 corners (C3v about the kept corner's body diagonal;
    Q = 7 is odd, no 7-site subset of the candidates has a zero dipole at
    comparable energy, so the ideal dot carries a point-charge dipole of
    ``sqrt(3)*a`` e*Angstrom); n >= 3 removes all 8 corners and spreads the
    ``3n-7`` remaining removals over the 12 edges (per-edge counts differ by at
    most one). n = 3, 4, 5, 7 have zero dipole; n = 6 (11 removals on 12 edges)
    keeps one edge full and has a dipole of ``3*sqrt(2)*a`` e*Angstrom. The
    dipole is recorded in the JSON sidecar.

Core/shell
    With ``shell_layers = k`` the Pb in the outermost ``k`` octahedral layers
    are replaced by ``shell_metal`` (Ca or Sr; same formal charge, so the Cs
    count does not change). ``n = 6, k = 1`` gives ``Cs324Ca152Pb64Br756``.

Layers
    Octahedral layer index, 0 = outermost, increasing inwards. A B-site
    (Pb/Ca/Sr) at ``(i, j, k)`` has layer ``min(i, nx-1-i, j, ny-1-j, k, nz-1-k)``.
    A Br or Cs inherits the layer of the innermost octahedron it belongs to: the
    maximum layer over the B-sites of the cut it touches (a Br its 1 or 2 bonded
    B-sites, a Cs the up to 8 B-sites of the cube it sits in). Terminal Br and
    the outer A-sites therefore have layer 0; the Br bridging layers 0 and 1 and
    the A-sites between layers 0 and 1 have layer 1.

Regions (every atom has exactly one)
    * without a shell: ``surface`` = layer 0 (outermost Pb, their terminal Br and
      the Br bridging two outermost Pb, the remaining outer A-site Cs);
      ``core`` = layer >= 1. ``core`` is then exactly the embedded
      ``(n-2)^3`` CsPbBr3 cuboid built by the same rule with all its A-sites
      (``Cs8PbBr6`` for n = 3); n = 1 and 2 are all surface.
    * with ``k`` shell layers: ``shell`` = layer < k (the shell metal, its Br
      that are not bonded to a core Pb, the outer Cs); ``core`` = layer >= k,
      again the embedded ``(n-2k)^3`` cuboid with complete PbBr6 octahedra and
      all its A-sites. ``surface`` is not used; ``layer == 0`` selects the outer
      face of the shell.
    The core-only dot and the core/shell dot of the same size thus split the
    same sites the same way (surface <-> shell for k = 1), so projected phonon
    DOS and band-edge localisation compare like with like.

Box
    Cubic, edge = largest extent of the dot (atom centres) + ``2*vacuum_A``, the
    bounding-box centre of the atoms at the box centre. Non-periodic.

Files
    ``write_structure`` writes extended XYZ (readable by ``ase.io.read``) and a
    JSON sidecar with sorted keys and fixed float formatting: the same spec gives
    byte-identical files. ``read_structure`` reads them back without pymatgen.

Nothing heavier than numpy is imported at module level: the Snakefile imports
``system_name`` and ``QuantumDotSpec`` when it is parsed.
"""

from __future__ import annotations

import numpy as np
from qdphonon.elements import HOST
from qdphonon.structures.lattice import a_sites, b_sites, site_layers, x_sites
from qdphonon.structures.model import QuantumDot, QuantumDotSpec
from qdphonon.structures.neutrality import select_removed_cs


def _without(grid: np.ndarray, remove: np.ndarray) -> np.ndarray:
    """Rows of ``grid`` not present in ``remove`` (order kept)."""
    drop = {tuple(row) for row in remove.tolist()}
    keep = [i for i, row in enumerate(grid.tolist()) if tuple(row) not in drop]
    return grid[keep]


def _region_labels(layers: np.ndarray, shell_layers: int) -> list[str]:
    """Region per atom from its layer: shell (layer < k) / core, or surface (layer 0) / core without a shell."""
    if shell_layers > 0:
        return ["shell" if int(x) < shell_layers else "core" for x in layers]
    return ["surface" if int(x) == 0 else "core" for x in layers]


def _centred_positions(grid: np.ndarray, lattice_A: float, vacuum_A: float) -> tuple[np.ndarray, float]:
    """Cartesian positions (Angstrom) with the bounding-box centre at the centre of a cubic box; and its edge."""
    pos = grid.astype(float) * (0.5 * lattice_A)
    lo, hi = pos.min(axis=0), pos.max(axis=0)
    box = float((hi - lo).max() + 2.0 * vacuum_A)
    pos = pos + (0.5 * box - 0.5 * (lo + hi))
    return np.round(pos, 10) + 0.0, box


def recentre(positions_A: np.ndarray, box_A: float) -> np.ndarray:
    """Positions shifted so their bounding-box centre sits at the box centre (the structures' convention
    and what CP2K's ``CENTER_COORDINATES`` does)."""
    lo, hi = positions_A.min(axis=0), positions_A.max(axis=0)
    return positions_A + (0.5 * box_A - 0.5 * (lo + hi))


def build_quantum_dot(spec: QuantumDotSpec) -> QuantumDot:
    """Build the neutral, labelled dot of ``spec`` (docs/physics.md §2); see the module docstring for every rule.

    Atom order: Cs, shell metal, Pb, Br; within an element lexicographic in (x, y, z).
    """
    size, k = spec.size, spec.shell_layers
    cs = _without(a_sites(size), select_removed_cs(size))
    b = b_sites(size)
    b_layer = site_layers(b, size)
    groups = [
        (HOST.a_site, cs),
        (spec.shell_metal, b[b_layer < k]),
        (HOST.b_site, b[b_layer >= k]),
        (HOST.halide, x_sites(size)),
    ]
    symbols = [el for el, g in groups for _ in range(len(g))]
    grid = np.concatenate([g for _, g in groups])
    layers = site_layers(grid, size)
    positions, box = _centred_positions(grid, spec.lattice_A, spec.vacuum_A)
    return QuantumDot(
        spec=spec,
        symbols=symbols,
        positions_A=positions,
        regions=_region_labels(layers, k),
        layers=[int(x) for x in layers],
        box_A=box,
    )
