"""The QD records: :class:`QuantumDotSpec` (what to build) and :class:`QuantumDot` (what was built)."""

from __future__ import annotations

import operator
from dataclasses import dataclass
import numpy as np
from qdphonon import elements, settings


REGIONS = ("core", "surface", "shell")
"""Region labels; every atom carries exactly one."""


XYZ_PROPERTIES = "species:S:1:pos:R:3:region:S:1:layer:I:1"
"""Per-atom columns of the extended XYZ files written here."""


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
    shell_metal: str = settings.default("systems[].shell_metal")
    lattice_A: float = 5.87
    vacuum_A: float = 5.0

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
        metals = elements.shell_metals()
        if self.shell_metal not in metals:
            raise ValueError(f"shell_metal must be one of {', '.join(metals)}, got {self.shell_metal!r}")
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
        """Formula in the element table's order (Cs, shell metal, Pb, Br), counts of 1 omitted: ``Cs4PbBr6``."""
        return "".join(f"{el}{n if n != 1 else ''}" for el, n in self.counts_by_element.items())

    @property
    def charge(self) -> int:
        """Total formal charge in e (0 for every built dot)."""
        return sum(elements.formal_charge_e(s) for s in self.symbols)

    @property
    def dipole_eA(self) -> np.ndarray:
        """Point-charge dipole of the formal charges in e*Angstrom (origin-independent when neutral)."""
        q = np.array([elements.formal_charge_e(s) for s in self.symbols], dtype=float)
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
    """Counts per element, in the element table's formula order then alphabetically."""
    present = set(symbols)
    known = elements.formula_order()
    order = [el for el in known if el in present] + sorted(present - set(known))
    return {el: symbols.count(el) for el in order}
