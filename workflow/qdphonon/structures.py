"""CsPbBr3 (and CsPbBr3/CsMBr3 core/shell) cuboid quantum-dot models (DESIGN §2).

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

import json
import operator
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SHELL_METALS = ("Ca", "Sr")
"""Divalent B-site metals allowed in the shell (wide-gap CsMBr3 perovskites)."""

FORMAL_CHARGES = {"Cs": 1, "Ca": 2, "Sr": 2, "Pb": 2, "Br": -1}
"""Formal ionic charges in e, used for neutrality and the Coulomb criterion."""

ELEMENT_ORDER = ("Cs", "Ca", "Sr", "Pb", "Br")
"""Order of elements in formulas and in the atom list of the files."""

REGIONS = ("core", "surface", "shell")
"""Region labels; every atom carries exactly one."""

COULOMB_eV_A = 14.3996454784
"""e^2 / (4 pi eps0) in eV*Angstrom."""

N_SEEDED_STARTS = 63
"""Pseudo-random starts of the Cs-removal search in addition to the greedy start."""

START_SEED = 0x5EED_C5B2
"""Fixed splitmix64 seed of those starts (never change it: it would change structures)."""

ENERGY_TIE_e2_per_a = 1e-9
"""Energies closer than this (units e^2/a) are ties, broken by the fixed candidate order."""

REMOVED_CS_RULE = (
    "remove nx+ny+nz+1 Cs among corner and edge A-sites minimising the point-charge Coulomb energy "
    f"of the remaining ions; greedy start + {N_SEEDED_STARTS} splitmix64-seeded starts, single then pair "
    "swaps to convergence; ties to the first set in (corners, edges, lexicographic) order"
)
"""Short description of the neutrality rule, recorded in the JSON sidecar."""

XYZ_PROPERTIES = "species:S:1:pos:R:3:region:S:1:layer:I:1"
"""Per-atom columns of the extended XYZ files written here."""


# --- spec and naming -------------------------------------------------------------------
@dataclass(frozen=True)
class QuantumDotSpec:
    """What to build: ``size`` in octahedra (nx, ny, nz), shell layers and metal, ``a`` and vacuum in Angstrom.

    ``2*shell_layers < min(size)`` is required so that at least one PbBr6 layer
    remains; n = 3 with k = 1 leaves a single Pb, allowed but not a meaningful
    core (use n >= 4 for k = 1). ``shell_metal`` is ignored when
    ``shell_layers == 0``.
    """

    size: tuple[int, int, int]
    shell_layers: int = 0
    shell_metal: str = "Ca"
    lattice_A: float = 5.87
    vacuum_A: float = 10.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "size", _validated_size(self.size))
        k = _validated_int("shell_layers", self.shell_layers)
        if k < 0:
            raise ValueError(f"shell_layers must be >= 0, got {k}")
        if 2 * k >= min(self.size):
            raise ValueError(
                f"shell_layers={k} leaves no core in a {'x'.join(map(str, self.size))} dot "
                f"(need 2*shell_layers < {min(self.size)})"
            )
        object.__setattr__(self, "shell_layers", k)
        if self.shell_metal not in SHELL_METALS:
            raise ValueError(f"shell_metal must be one of {', '.join(SHELL_METALS)}, got {self.shell_metal!r}")
        for name in ("lattice_A", "vacuum_A"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
                raise ValueError(f"{name} must be a number, got {value!r}")
            value = float(value)
            if not np.isfinite(value):
                raise ValueError(f"{name} must be finite, got {value}")
            object.__setattr__(self, name, value)
        if self.lattice_A <= 0:
            raise ValueError(f"lattice_A must be > 0, got {self.lattice_A}")
        if self.vacuum_A < 0:
            raise ValueError(f"vacuum_A must be >= 0, got {self.vacuum_A}")

    @property
    def edge_nm(self) -> tuple[float, float, float]:
        """Edge lengths n*a in nm along x, y, z (the octahedral cuboid, without the Cs layer)."""
        return tuple(n * self.lattice_A / 10.0 for n in self.size)

    @property
    def n_removed_cs(self) -> int:
        """Number of Cs removed from the raw cut for neutrality, nx+ny+nz+1."""
        return sum(self.size) + 1


def _validated_int(name: str, value: object) -> int:
    """``value`` as an int (no bools, no floats), else ValueError naming ``name``."""
    if isinstance(value, bool):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        raise ValueError(f"{name} must be an integer, got {value!r}") from None


def _validated_size(size: object) -> tuple[int, int, int]:
    """``size`` as a tuple of three ints >= 1, else ValueError naming ``size``."""
    try:
        entries = tuple(size)
    except TypeError:
        raise ValueError(f"size must be three integers (nx, ny, nz), got {size!r}") from None
    if len(entries) != 3:
        raise ValueError(f"size must be three integers (nx, ny, nz), got {size!r}")
    ints = tuple(_validated_int("size", n) for n in entries)
    if min(ints) < 1:
        raise ValueError(f"size entries must be >= 1, got {ints}")
    return ints


def system_name(spec: QuantumDotSpec) -> str:
    """Filesystem- and shell-safe name: ``cspbbr3_6x6x6``, ``cspbbr3_6x6x6_ca1``, ``cspbbr3_2x3x4``.

    The lattice constant and vacuum are not part of the name.
    """
    from qdphonon.config import system_name as _name

    return _name(spec.size, spec.shell_layers, spec.shell_metal)


# --- the labelled structure ------------------------------------------------------------
@dataclass
class QuantumDot:
    """A built (or read) dot: per-atom symbols, positions (Angstrom, centred in the box), regions, layers.

    ``box_A`` is the edge of the cubic, non-periodic box; the box spans
    ``[0, box_A]`` on every axis.
    """

    spec: QuantumDotSpec
    symbols: list[str]
    positions_A: np.ndarray
    regions: list[str]
    layers: list[int]
    box_A: float

    def __post_init__(self) -> None:
        self.positions_A = np.asarray(self.positions_A, dtype=float).reshape(-1, 3)
        n = len(self.symbols)
        if not (len(self.positions_A) == len(self.regions) == len(self.layers) == n):
            raise ValueError(
                f"inconsistent atom counts: {n} symbols, {len(self.positions_A)} positions, "
                f"{len(self.regions)} regions, {len(self.layers)} layers"
            )
        unknown = sorted(set(self.regions) - set(REGIONS))
        if unknown:
            raise ValueError(f"unknown region label(s) {unknown}; expected {REGIONS}")

    @property
    def name(self) -> str:
        """The system name of the spec (see :func:`system_name`)."""
        return system_name(self.spec)

    @property
    def n_atoms(self) -> int:
        """Number of atoms."""
        return len(self.symbols)

    @property
    def counts_by_element(self) -> dict[str, int]:
        """Atoms per element, in formula order."""
        return _ordered_counts(self.symbols)

    @property
    def counts_by_region(self) -> dict[str, int]:
        """Atoms per region, every label of :data:`REGIONS` present (0 if unused)."""
        return {r: self.regions.count(r) for r in REGIONS}

    @property
    def formula(self) -> str:
        """Formula ordered Cs, Ca/Sr, Pb, Br with counts of 1 omitted, e.g. ``Cs4PbBr6``."""
        return "".join(f"{el}{n if n != 1 else ''}" for el, n in self.counts_by_element.items())

    @property
    def charge(self) -> int:
        """Total formal charge in e (0 for every built dot)."""
        return sum(FORMAL_CHARGES[s] for s in self.symbols)

    @property
    def dipole_eA(self) -> np.ndarray:
        """Point-charge dipole of the formal charges in e*Angstrom (origin-independent when neutral)."""
        q = np.array([FORMAL_CHARGES[s] for s in self.symbols], dtype=float)
        centre = 0.5 * (self.positions_A.min(axis=0) + self.positions_A.max(axis=0))
        return q @ (self.positions_A - centre)

    def to_molecule(self):
        """A pymatgen ``Molecule`` with site properties ``region`` and ``layer`` and the formal charge."""
        from pymatgen.core import Molecule

        return Molecule(
            self.symbols,
            self.positions_A,
            charge=self.charge,
            site_properties={"region": list(self.regions), "layer": [int(x) for x in self.layers]},
        )


def _ordered_counts(symbols: list[str]) -> dict[str, int]:
    """Counts per element, ordered as :data:`ELEMENT_ORDER` then alphabetically."""
    present = set(symbols)
    order = [el for el in ELEMENT_ORDER if el in present] + sorted(present - set(ELEMENT_ORDER))
    return {el: symbols.count(el) for el in order}


# --- lattice sites (half-lattice grid, units of a/2) -----------------------------------
def _grid(ranges: list[range]) -> np.ndarray:
    """All integer points of a product of ranges, lexicographic order, shape (N, 3)."""
    axes = np.meshgrid(*[np.asarray(r, dtype=np.int64) for r in ranges], indexing="ij")
    return np.stack([a.ravel() for a in axes], axis=1)


def b_sites(size: tuple[int, int, int]) -> np.ndarray:
    """B-site (Pb) grid points 2*(i, j, k), 0 <= i < nx etc."""
    return _grid([range(0, 2 * n, 2) for n in size])


def x_sites(size: tuple[int, int, int]) -> np.ndarray:
    """Br grid points: odd along one axis (between two B-sites or outside one), even along the others."""
    parts = []
    for axis in range(3):
        ranges = [range(-1, 2 * n, 2) if a == axis else range(0, 2 * n, 2) for a, n in enumerate(size)]
        parts.append(_grid(ranges))
    return _lexsorted(np.concatenate(parts))


def a_sites(size: tuple[int, int, int]) -> np.ndarray:
    """A-site (Cs) grid points 2*(i+1/2, ...) with -1 <= i < nx etc."""
    return _grid([range(-1, 2 * n, 2) for n in size])


def _lexsorted(grid: np.ndarray) -> np.ndarray:
    """Rows sorted lexicographically by (x, y, z)."""
    return grid[np.lexsort(grid.T[::-1])]


def site_layers(grid: np.ndarray, size: tuple[int, int, int]) -> np.ndarray:
    """Octahedral layer index of grid points: max layer over the B-sites each point touches.

    Per axis, an even coordinate 2b touches B index b, an odd one the in-range
    indices of (floor, ceil); the layer of B index b along an axis of n octahedra
    is ``min(b, n-1-b)``. The max over touched B-sites of the min over axes is the
    min over axes of the per-axis max, since the choices are independent.
    """
    n = np.asarray(size, dtype=np.int64)
    lo = np.clip(np.floor_divide(grid, 2), 0, n - 1)
    hi = np.clip(-np.floor_divide(-grid, 2), 0, n - 1)
    depth = lambda b: np.minimum(b, n - 1 - b)  # noqa: E731
    return np.maximum(depth(lo), depth(hi)).min(axis=1)


def a_site_class(grid: np.ndarray, size: tuple[int, int, int]) -> np.ndarray:
    """Number of axes on which an A-site lies on the outer A-site plane: 3 corner, 2 edge, 1 face, 0 inner."""
    n = np.asarray(size, dtype=np.int64)
    return ((grid == -1) | (grid == 2 * n - 1)).sum(axis=1)


# --- neutrality: which Cs go -----------------------------------------------------------
def removal_candidates(size: tuple[int, int, int]) -> np.ndarray:
    """Corner then edge A-sites (grid points), each group lexicographic: the candidate order."""
    sites = a_sites(size)
    cls = a_site_class(sites, size)
    return np.concatenate([sites[cls == 3], sites[cls == 2]])


def _coulomb_terms(size: tuple[int, int, int], candidates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Potential phi at each candidate from all other ions of the raw cut, and 1/r among candidates.

    Units e/a and 1/a. Removing the set R of Cs+ changes the Coulomb energy of
    the ions by ``-sum_R phi + sum_{pairs in R} 1/r`` (units e^2/a).
    """
    ions = [(b_sites(size), FORMAL_CHARGES["Pb"]), (x_sites(size), FORMAL_CHARGES["Br"]), (a_sites(size), FORMAL_CHARGES["Cs"])]
    pos = np.concatenate([g for g, _ in ions]) * 0.5
    q = np.concatenate([np.full(len(g), float(c)) for g, c in ions])
    cpos = candidates * 0.5
    r = np.linalg.norm(cpos[:, None, :] - pos[None, :, :], axis=-1)
    inv = np.divide(1.0, r, out=np.zeros_like(r), where=r > 0)
    phi = inv @ q
    rc = np.linalg.norm(cpos[:, None, :] - cpos[None, :, :], axis=-1)
    pair = np.divide(1.0, rc, out=np.zeros_like(rc), where=rc > 0)
    return phi, pair


def removal_energy(phi: np.ndarray, pair: np.ndarray, removed: np.ndarray) -> float:
    """Coulomb energy change (e^2/a) of removing the candidates flagged in the boolean mask ``removed``."""
    idx = np.flatnonzero(removed)
    return float(-phi[idx].sum() + 0.5 * pair[np.ix_(idx, idx)].sum())


def _first_min(values: np.ndarray) -> int:
    """Index of the first entry within the tie tolerance of the minimum."""
    return int(np.flatnonzero(values <= values.min() + ENERGY_TIE_e2_per_a)[0])


def _greedy_start(phi: np.ndarray, pair: np.ndarray, n_remove: int) -> np.ndarray:
    """Remove, one at a time, the candidate that lowers the energy most (first in order on ties)."""
    removed = np.zeros(len(phi), dtype=bool)
    gain = -phi.copy()
    for _ in range(n_remove):
        best = _first_min(np.where(removed, np.inf, gain))
        removed[best] = True
        gain += pair[best]
    return removed


def _splitmix64(state: int) -> tuple[int, int]:
    """One splitmix64 step: (new state, output), platform-independent integers."""
    mask = 0xFFFFFFFFFFFFFFFF
    state = (state + 0x9E3779B97F4A7C15) & mask
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
    return state, z ^ (z >> 31)


def _seeded_starts(n_candidates: int, n_remove: int, n_starts: int, seed: int = START_SEED) -> list[np.ndarray]:
    """``n_starts`` removal masks, each the ``n_remove`` candidates with the smallest splitmix64 keys."""
    starts, state = [], seed
    for _ in range(n_starts):
        keys = []
        for _ in range(n_candidates):
            state, key = _splitmix64(state)
            keys.append(key)
        chosen = sorted(range(n_candidates), key=lambda i: (keys[i], i))[:n_remove]
        mask = np.zeros(n_candidates, dtype=bool)
        mask[chosen] = True
        starts.append(mask)
    return starts


def _descend(phi: np.ndarray, pair: np.ndarray, removed: np.ndarray) -> np.ndarray:
    """Apply the best single swap (removed <-> kept) until none lowers the energy, then the best pair swap; repeat.

    With ``g_x = -phi_x + sum_{s in R, s != x} 1/r_xs``, swapping r out and c in
    changes the energy by ``g_c - g_r - 1/r_rc``; a pair swap (r1, r2 -> c1, c2) by
    ``g_c1 + g_c2 - g_r1 - g_r2 + 1/r_c1c2 + 1/r_r1r2 - sum_{r, c} 1/r_rc``.
    Scan order: removed index, then kept index (row-major); first wins ties.
    """
    removed = removed.copy()
    g = -phi + pair[:, removed].sum(axis=1)
    tol = ENERGY_TIE_e2_per_a
    while True:
        R, C = np.flatnonzero(removed), np.flatnonzero(~removed)
        if len(R) == 0 or len(C) == 0:
            return removed
        cross = pair[np.ix_(R, C)]
        delta = g[C][None, :] - g[R][:, None] - cross
        if delta.min() < -tol:
            flat = _first_min(delta.ravel())
            out, into = [R[flat // len(C)]], [C[flat % len(C)]]
        elif len(R) >= 2 and len(C) >= 2:
            r1, r2 = np.triu_indices(len(R), 1)
            c1, c2 = np.triu_indices(len(C), 1)
            drop = -(g[R][r1] + g[R][r2]) + pair[R[r1], R[r2]]
            add = g[C][c1] + g[C][c2] + pair[C[c1], C[c2]]
            both = cross[r1] + cross[r2]
            delta2 = drop[:, None] + add[None, :] - (both[:, c1] + both[:, c2])
            if delta2.min() >= -tol:
                return removed
            flat = _first_min(delta2.ravel())
            p, q = divmod(flat, len(c1))
            out, into = [R[r1[p]], R[r2[p]]], [C[c1[q]], C[c2[q]]]
        else:
            return removed
        for r in out:
            removed[r] = False
            g -= pair[r]
        for c in into:
            removed[c] = True
            g += pair[c]


def select_removed_cs(size: tuple[int, int, int], n_starts: int = N_SEEDED_STARTS) -> np.ndarray:
    """Grid points of the ``nx+ny+nz+1`` Cs to remove (lexicographic), by the rule in the module docstring."""
    candidates = removal_candidates(size)
    n_remove = sum(size) + 1
    phi, pair = _coulomb_terms(size, candidates)
    results = []
    for start in [_greedy_start(phi, pair, n_remove)] + _seeded_starts(len(candidates), n_remove, n_starts):
        mask = _descend(phi, pair, start)
        results.append((removal_energy(phi, pair, mask), tuple(np.flatnonzero(mask).tolist())))
    e_min = min(e for e, _ in results)
    chosen = min(idx for e, idx in results if e <= e_min + ENERGY_TIE_e2_per_a)
    return _lexsorted(candidates[list(chosen)])


# --- building --------------------------------------------------------------------------
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


def build_quantum_dot(spec: QuantumDotSpec) -> QuantumDot:
    """Build the neutral, labelled dot of ``spec`` (DESIGN §2); see the module docstring for every rule.

    Atom order: Cs, shell metal, Pb, Br; within an element lexicographic in (x, y, z).
    """
    size, k = spec.size, spec.shell_layers
    cs = _without(a_sites(size), select_removed_cs(size))
    b = b_sites(size)
    b_layer = site_layers(b, size)
    groups = [
        ("Cs", cs),
        (spec.shell_metal, b[b_layer < k]),
        ("Pb", b[b_layer >= k]),
        ("Br", x_sites(size)),
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


# --- files -----------------------------------------------------------------------------
def _f8(x: float) -> str:
    """Fixed float format of the files (8 decimals, no negative zero)."""
    return f"{float(x) + 0.0:.8f}".replace("-0.00000000", "0.00000000")


def _xyz_header(dot: QuantumDot) -> str:
    """Second line of the extended XYZ file."""
    L = _f8(dot.box_A)
    z = _f8(0.0)
    spec = dot.spec
    return (
        f'Lattice="{L} {z} {z} {z} {L} {z} {z} {z} {L}" Properties={XYZ_PROPERTIES} pbc="F F F" '
        f"system={system_name(spec)} charge={dot.charge} formula={dot.formula} "
        f'size="{spec.size[0]} {spec.size[1]} {spec.size[2]}" shell_layers={spec.shell_layers} '
        f"shell_metal={spec.shell_metal} lattice_A={_f8(spec.lattice_A)} vacuum_A={_f8(spec.vacuum_A)}"
    )


def _xyz_text(dot: QuantumDot) -> str:
    """Whole extended XYZ file."""
    lines = [str(dot.n_atoms), _xyz_header(dot)]
    for sym, (x, y, z), region, layer in zip(dot.symbols, dot.positions_A.tolist(), dot.regions, dot.layers):
        lines.append(f"{sym:<2s} {_f8(x):>16s} {_f8(y):>16s} {_f8(z):>16s} {region:<7s} {int(layer):d}")
    return "\n".join(lines) + "\n"


def structure_metadata(dot: QuantumDot) -> dict:
    """Content of the JSON sidecar (floats rounded so the text is reproducible)."""
    from qdphonon import __version__

    spec = dot.spec
    return {
        "system": system_name(spec),
        "formula": dot.formula,
        "counts_by_element": dot.counts_by_element,
        "counts_by_region": dot.counts_by_region,
        "n_atoms": dot.n_atoms,
        "size_octahedra": list(spec.size),
        "edge_nm": [round(x, 6) for x in spec.edge_nm],
        "shell_layers": spec.shell_layers,
        "shell_metal": spec.shell_metal if spec.shell_layers else None,
        "lattice_A": round(spec.lattice_A, 8),
        "vacuum_A": round(spec.vacuum_A, 8),
        "box_A": round(dot.box_A, 8),
        "charge": dot.charge,
        "n_removed_cs": spec.n_removed_cs,
        "removed_cs_rule": REMOVED_CS_RULE,
        "point_charge_dipole_eA": [round(float(x), 6) + 0.0 for x in dot.dipole_eA],
        "qdphonon_version": __version__,
    }


def sidecar_path(path_xyz: str | os.PathLike) -> Path:
    """The JSON sidecar next to an XYZ file: same path with a ``.json`` suffix."""
    return Path(path_xyz).with_suffix(".json")


def write_structure(dot: QuantumDot, path_xyz: str | os.PathLike) -> None:
    """Write ``path_xyz`` (extended XYZ) and its ``.json`` sidecar; identical dots give identical bytes."""
    path = Path(path_xyz)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        fh.write(_xyz_text(dot))
    text = json.dumps(structure_metadata(dot), sort_keys=True, indent=2) + "\n"
    with open(sidecar_path(path), "w", encoding="utf-8", newline="\n") as fh:
        fh.write(text)


_HEADER_TOKEN = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_]*)=(?:"([^"]*)"|(\S+))')
_HEADER_KEYS = (
    "Lattice", "Properties", "pbc", "system", "charge", "formula",
    "size", "shell_layers", "shell_metal", "lattice_A", "vacuum_A",
)  # fmt: skip


def _parse_header(line: str, where: str) -> dict[str, str]:
    """key=value pairs of the second XYZ line; ValueError (naming ``where``) on anything unexpected."""
    fields, pos = {}, 0
    text = line.rstrip()
    while pos < len(text):
        m = _HEADER_TOKEN.match(text, pos)
        if m is None:
            raise ValueError(f"{where}: cannot parse header near {text[pos:pos + 30]!r}")
        fields[m.group(1)] = m.group(2) if m.group(2) is not None else m.group(3)
        pos = m.end()
    missing = [k for k in _HEADER_KEYS if k not in fields]
    if missing:
        raise ValueError(f"{where}: header lacks {', '.join(missing)}")
    if fields["Properties"] != XYZ_PROPERTIES:
        raise ValueError(f"{where}: Properties={fields['Properties']} is not {XYZ_PROPERTIES}")
    return fields


def _parse_box(lattice: str, where: str) -> float:
    """Edge of the cubic box from a ``Lattice`` value; ValueError unless it is cubic and diagonal."""
    try:
        m = np.array([float(x) for x in lattice.split()]).reshape(3, 3)
    except ValueError:
        raise ValueError(f"{where}: Lattice must hold 9 numbers, got {lattice!r}") from None
    box = m[0, 0]
    if not np.allclose(m, box * np.eye(3), rtol=0, atol=1e-8) or box <= 0:
        raise ValueError(f"{where}: Lattice is not a cubic diagonal box: {lattice!r}")
    return float(box)


def _parse_atom(line: str, where: str) -> tuple[str, list[float], str, int]:
    """(symbol, [x, y, z], region, layer) of one atom line; ValueError naming ``where``."""
    parts = line.split()
    if len(parts) != 6:
        raise ValueError(f"{where}: expected 6 columns (species x y z region layer), got {len(parts)}")
    sym, region = parts[0], parts[4]
    if sym not in FORMAL_CHARGES:
        raise ValueError(f"{where}: unknown species {sym!r}")
    if region not in REGIONS:
        raise ValueError(f"{where}: unknown region {region!r}")
    try:
        xyz = [float(v) for v in parts[1:4]]
        layer = int(parts[5])
    except ValueError:
        raise ValueError(f"{where}: bad number in {line.strip()!r}") from None
    if not all(np.isfinite(xyz)) or layer < 0:
        raise ValueError(f"{where}: bad position or layer in {line.strip()!r}")
    return sym, xyz, region, layer


def read_structure(path_xyz: str | os.PathLike) -> QuantumDot:
    """Read an XYZ file written by :func:`write_structure` (no pymatgen, no ase).

    Only that format is accepted; anything else raises ValueError naming the
    file and the line. The header must agree with the atoms (system name,
    formula, charge).
    """
    path = Path(path_xyz)
    lines = path.read_text(encoding="utf-8").splitlines()
    if not lines:
        raise ValueError(f"{path}: line 1: empty file")
    try:
        n_atoms = int(lines[0].strip())
    except ValueError:
        raise ValueError(f"{path}: line 1: expected the atom count, got {lines[0].strip()!r}") from None
    if n_atoms < 1:
        raise ValueError(f"{path}: line 1: atom count must be >= 1, got {n_atoms}")
    if len(lines) < 2:
        raise ValueError(f"{path}: line 2: missing header")
    header = _parse_header(lines[1], f"{path}: line 2")
    box = _parse_box(header["Lattice"], f"{path}: line 2")
    try:
        spec = QuantumDotSpec(
            size=tuple(int(x) for x in header["size"].split()),
            shell_layers=int(header["shell_layers"]),
            shell_metal=header["shell_metal"],
            lattice_A=float(header["lattice_A"]),
            vacuum_A=float(header["vacuum_A"]),
        )
    except ValueError as exc:
        raise ValueError(f"{path}: line 2: bad spec in header ({exc})") from None
    body = lines[2 : 2 + n_atoms]
    if len(body) < n_atoms:
        raise ValueError(f"{path}: line {len(lines) + 1}: expected {n_atoms} atom lines, file ends after {len(body)}")
    extra = [i for i, text in enumerate(lines[2 + n_atoms :], start=3 + n_atoms) if text.strip()]
    if extra:
        raise ValueError(f"{path}: line {extra[0]}: unexpected content after {n_atoms} atoms")
    atoms = [_parse_atom(text, f"{path}: line {i}") for i, text in enumerate(body, start=3)]
    dot = QuantumDot(
        spec=spec,
        symbols=[a[0] for a in atoms],
        positions_A=np.array([a[1] for a in atoms], dtype=float),
        regions=[a[2] for a in atoms],
        layers=[a[3] for a in atoms],
        box_A=box,
    )
    for key, value in (("system", dot.name), ("formula", dot.formula), ("charge", str(dot.charge))):
        if header[key] != value:
            raise ValueError(f"{path}: line 2: header {key}={header[key]} but the atoms give {value}")
    return dot
