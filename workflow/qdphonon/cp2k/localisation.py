"""The CP2K print of band-edge localisation: ``&PDOS`` with one ``&LDOS`` atom list per region of the
dot (core, surface, shell, in that order, empty regions left out), every K MD steps, appended.

CP2K 2023.1 supports it with GFN1-xTB (diagonalisation) and with OT (``NLUMO`` unoccupied orbitals
are then computed for the print); it writes ``{project}-loc-list{k}-1.pdos`` (one block per print,
``APPEND``) plus per-kind files. Measured cost: docs/physics.md §6.2.
"""

from __future__ import annotations

from typing import Any, Sequence

from qdphonon.structures.model import REGIONS

LOCALISATION_FILENAME = "loc"
"""``FILENAME`` of the print: files ``{project}-loc-list{k}-1.pdos``."""


def localisation_lists(regions: Sequence[str]) -> list[tuple[str, list[int]]]:
    """(region, 1-based atom indices) of every non-empty region, in :data:`REGIONS` order: what the
    generated input asks for. The rendered text may hold the ``&LDOS`` sections in another order
    (cp2k-input-tools writes repeated sections reversed, and a re-rendered segment input reverses
    them back), so readers map CP2K's list k to a region by its atoms: :func:`list_regions`."""
    unknown = sorted(set(regions) - set(REGIONS))
    if unknown:
        raise ValueError(f"unknown region label(s) {unknown}; expected {REGIONS}")
    return [(r, [i + 1 for i, x in enumerate(regions) if x == r]) for r in REGIONS if r in regions]


def localisation_print(regions: Sequence[str], every_steps: int, nlumo: int = 1) -> dict[str, Any]:
    """The ``&PDOS`` print section (cp2k-input-tools dict) for these per-atom region labels."""
    if int(every_steps) < 1:
        raise ValueError(f"md.localisation_every_steps must be >= 1, got {every_steps}")
    return {
        "_": "ON",
        "nlumo": int(nlumo),
        "components": False,
        "append": True,
        "filename": LOCALISATION_FILENAME,
        "each": {"md": int(every_steps)},
        "ldos": [{"list": atoms} for _, atoms in localisation_lists(regions)],
    }


def list_regions(lists: Sequence[Sequence[int]], regions: Sequence[str], source: str = "input") -> list[str]:
    """The region of each atom list (1-based indices into ``regions``). ValueError when a list holds
    atoms of several regions or an index outside the structure, or the lists do not cover every atom once."""
    names = []
    for k, atoms in enumerate(lists, 1):
        bad = [i for i in atoms if not 1 <= i <= len(regions)]
        if bad:
            raise ValueError(f"{source}: &LDOS list {k} names atom(s) {bad[:5]} outside the structure's {len(regions)}")
        found = sorted({regions[i - 1] for i in atoms})
        if len(found) != 1:
            raise ValueError(f"{source}: &LDOS list {k} mixes regions {found}; one list per region is needed")
        names.append(found[0])
    covered = sorted(i for atoms in lists for i in atoms)
    if covered != list(range(1, len(regions) + 1)):
        raise ValueError(f"{source}: the &LDOS lists do not cover each of the {len(regions)} atoms exactly once")
    if len(set(names)) != len(names):
        raise ValueError(f"{source}: two &LDOS lists of one region: {names}")
    return names
