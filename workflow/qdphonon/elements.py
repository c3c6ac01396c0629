"""The element table: every per-element fact the package uses, one entry per element.

Structures (formal charges, formula order, which metals may form a shell), CP2K inputs
(valence electrons per level, GTH pseudopotential and basis of the pbe level), the mock engine
(its synthetic per-element parameters) and the analysis (atomic masses) all read
:data:`ELEMENTS`; none keeps a table of its own. Supporting another shell metal is one entry
here (role :attr:`Role.SHELL_METAL`) plus the value in the config schema's ``shell_metal`` enum,
which stays the owner of what a config may say (a test checks that both agree).

Sources:

* Masses: ASE's ``ase.data.atomic_masses`` (IUPAC 2016 standard atomic weights, amu), not
  copied here (:func:`mass_amu`).
* ``valence_xtb``: electrons of the neutral atom in the GFN1-xTB minimal valence basis
  (Grimme, Bannwarth, Shushkov, J. Chem. Theory Comput. 13, 1989 (2017)); CP2K prints their sum
  as ``Number of electrons`` of a GFN1-xTB run (checked against real CP2K in tests).
* ``gth_pbe_q``: the valence charge q of the Goedecker-Teter-Hutter PBE pseudopotential
  (``GTH-PBE-q<q>`` in CP2K's ``GTH_POTENTIALS``); the pbe level's valence electrons.
* ``pbe_basis``: the MOLOPT basis (VandeVondele and Hutter, J. Chem. Phys. 127, 114105 (2007))
  in CP2K's ``BASIS_MOLOPT``. Tests check that the potential and basis exist in the installed
  CP2K's data files and that the potential's electron count equals q.
* Formal charges: the ionic picture of the ABX3 perovskite (A+, B2+, X-), docs/physics.md §2.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Mapping


class Role(enum.Enum):
    """Where an element sits in a CsPbBr3-type (ABX3) dot."""

    A_SITE = "A-site"
    B_SITE = "B-site"
    SHELL_METAL = "shell metal"
    HALIDE = "halide"


FORMULA_ROLE_ORDER = (Role.A_SITE, Role.SHELL_METAL, Role.B_SITE, Role.HALIDE)
"""Order of the roles in formulas and in the atom lists of the files (Cs, Ca/Sr, Pb, Br)."""


@dataclasses.dataclass(frozen=True)
class Element:
    """One element of the dot.

    symbol: chemical symbol (``Sr``).
    role: its site in the perovskite (:class:`Role`).
    formal_charge_e: formal ionic charge in e (neutrality and the Coulomb criterion of the builder).
    valence_xtb: valence electrons of the neutral atom at the GFN1-xTB level.
    gth_pbe_q: valence charge q of the GTH-PBE pseudopotential = valence electrons at the pbe level.
    pbe_basis: basis-set name at the pbe level (in CP2K's ``BASIS_MOLOPT``).
    mock_region_weights: synthetic (mock engine only): probabilities that an atom oscillator of
        this element has an energy from the low, intermediate or LO region (config ``mock:
        atom_region_weights`` overrides).
    mock_potential_Ha: synthetic (mock engine only): constant part of the mock potential energy
        per atom, in Hartree (config ``mock: potential_Ha_per_atom`` overrides).
    """

    symbol: str
    role: Role
    formal_charge_e: int
    valence_xtb: int
    gth_pbe_q: int
    mock_region_weights: tuple[float, float, float]
    mock_potential_Ha: float
    pbe_basis: str = "DZVP-MOLOPT-SR-GTH"

    @property
    def gth_potential(self) -> str:
        """The GTH pseudopotential of the pbe level, e.g. ``GTH-PBE-q10``."""
        return f"GTH-PBE-q{self.gth_pbe_q}"

    @property
    def valence_electrons(self) -> Mapping[str, int]:
        """Valence electrons of the neutral atom per level of theory (``xtb``, ``pbe``)."""
        return {"xtb": self.valence_xtb, "pbe": self.gth_pbe_q}

    @property
    def mass_amu(self) -> float:
        """Standard atomic mass in amu (ASE's table, :func:`mass_amu`)."""
        return mass_amu(self.symbol)


ELEMENTS: dict[str, Element] = {
    e.symbol: e
    for e in (
        Element("Cs", Role.A_SITE, +1, valence_xtb=1, gth_pbe_q=9,
                mock_region_weights=(0.60, 0.35, 0.05), mock_potential_Ha=-0.75),
        Element("Pb", Role.B_SITE, +2, valence_xtb=4, gth_pbe_q=4,
                mock_region_weights=(0.30, 0.50, 0.20), mock_potential_Ha=-3.5),
        Element("Br", Role.HALIDE, -1, valence_xtb=7, gth_pbe_q=7,
                mock_region_weights=(0.15, 0.45, 0.40), mock_potential_Ha=-3.6),
        Element("Ca", Role.SHELL_METAL, +2, valence_xtb=2, gth_pbe_q=10,
                mock_region_weights=(0.20, 0.40, 0.40), mock_potential_Ha=-1.5),
        Element("Sr", Role.SHELL_METAL, +2, valence_xtb=2, gth_pbe_q=10,
                mock_region_weights=(0.30, 0.45, 0.25), mock_potential_Ha=-1.4),
    )
}  # fmt: skip
"""Every element a dot may contain, keyed by symbol. Read at call time (never copied), so a new
entry reaches every module."""


@dataclasses.dataclass(frozen=True)
class Perovskite:
    """The host ABX3 perovskite of the dots: A-site, B-site and halide symbols."""

    a_site: str
    b_site: str
    halide: str

    @property
    def formula(self) -> str:
        """The formula unit, e.g. ``CsPbBr3``."""
        return f"{self.a_site}{self.b_site}{self.halide}3"


HOST = Perovskite(a_site="Cs", b_site="Pb", halide="Br")
"""The perovskite every dot is cut from (its core); shells replace its B-site."""


def element(symbol: str) -> Element:
    """The table entry of ``symbol``; ValueError naming the symbol and the known ones."""
    try:
        return ELEMENTS[symbol]
    except (KeyError, TypeError):
        raise ValueError(f"element {symbol!r} is not in the element table (known: {', '.join(ELEMENTS)})") from None


def with_role(role: Role) -> tuple[str, ...]:
    """Symbols of the table entries with this role, in table order."""
    return tuple(s for s, e in ELEMENTS.items() if e.role is role)


def shell_metals() -> tuple[str, ...]:
    """The metals that may replace the host's B-site in a shell (same formal charge, so the dot
    stays neutral without changing its Cs count)."""
    b_charge = element(HOST.b_site).formal_charge_e
    metals = with_role(Role.SHELL_METAL)
    wrong = [m for m in metals if ELEMENTS[m].formal_charge_e != b_charge]
    if wrong:
        raise ValueError(f"shell metal(s) {wrong} must carry the B-site charge {b_charge:+d} e of {HOST.b_site}")
    return metals


def formula_order() -> tuple[str, ...]:
    """All table symbols in formula order (:data:`FORMULA_ROLE_ORDER`, table order within a role)."""
    return tuple(s for role in FORMULA_ROLE_ORDER for s in with_role(role))


def formal_charge_e(symbol: str) -> int:
    """Formal ionic charge of ``symbol`` in e."""
    return element(symbol).formal_charge_e


def valence_electrons(symbol: str, level: str) -> int:
    """Valence electrons of a neutral ``symbol`` atom at a level of theory (``xtb`` or ``pbe``)."""
    return element(symbol).valence_electrons[level]


def mass_amu(symbol: str) -> float:
    """Standard atomic mass of any chemical symbol in amu, from ASE (``ase.data.atomic_masses``,
    IUPAC 2016); the analysis also reads trajectories of elements outside the table."""
    from ase.data import atomic_masses, atomic_numbers

    try:
        return float(atomic_masses[atomic_numbers[str(symbol)]])
    except KeyError:
        raise ValueError(f"{symbol!r} is not a chemical symbol (no atomic mass)") from None


def system_prefix() -> str:
    """The system-name prefix of every dot: the host formula in lower case (``cspbbr3``)."""
    return HOST.formula.lower()
