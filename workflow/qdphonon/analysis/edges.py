"""Spectral lines cut by a region edge (docs/physics.md §1.4).

A mode occupies the main lobe of the window (Hann: +-2 bins). When a region edge falls inside
that lobe, part of the line's lambda is counted in the neighbouring region: on the real PBE
Cs4PbBr6 run (bins of 4.1 meV) a line 0.86 meV above the 12 meV edge put ~23 meV of lambda into
the "intermediate" region. :func:`lines_across_edges` finds such lines in the windowed spectrum
and says how much lambda crosses each edge; :func:`flag_regions` marks a region unresolved when
what crosses its edges exceeds :data:`EDGE_SPILL_FRACTION` of its own lambda.
Energies in meV.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

LINE_MIN_FRACTION = 0.02
"""A local maximum of ``S hbar w`` counts as a line when its main lobe holds this fraction of lambda."""

EDGE_SPILL_FRACTION = 0.1
"""A region is not resolved when lambda crossing its edges (in or out) exceeds this fraction of its lambda."""


def _region_index(e: np.ndarray, edges: Sequence[float]) -> np.ndarray:
    """Region of each bin (``[lo, hi)``), -1 outside every region."""
    idx = np.searchsorted(np.asarray(edges, dtype=float), e, side="right") - 1
    return np.where((idx >= 0) & (idx < len(edges) - 1), idx, -1)


def lines_across_edges(energy_meV: np.ndarray, S_window: np.ndarray, edges_meV: Sequence[float],
                       main_lobe_bins: int = 4, min_fraction: float = LINE_MIN_FRACTION) -> tuple[list[dict], np.ndarray]:
    """(crossings, spill per region): lines whose main lobe straddles a region edge.

    A line: a local maximum ``p`` of ``S_window hbar w`` whose lobe (bins ``p - h .. p + h``,
    ``h = main_lobe_bins // 2``) holds at least ``min_fraction`` of the total. Each crossing:
    ``line_meV`` (the peak bin), ``lambda_line_meV`` (its lobe), ``edge_meV`` and
    ``lambda_across_meV``, the lobe's weight on the side of the edge opposite to the peak bin
    (bins belong to ``[lo, hi)``). Spill per region (meV): lobe weight a line puts into a region
    other than its own, plus, for the line's own region, what it loses to the others.
    """
    e = np.asarray(energy_meV, dtype=float)
    lam = np.clip(np.asarray(S_window, dtype=float), 0.0, None) * e
    edges = [float(x) for x in edges_meV]
    spill = np.zeros(len(edges) - 1)
    total = float(lam.sum())
    if e.size < 3 or total <= 0:
        return [], spill
    h = max(int(main_lobe_bins) // 2, 1)
    region = _region_index(e, edges)
    padded = np.concatenate([[-np.inf], lam, [-np.inf]])
    peaks = np.nonzero((lam >= padded[:-2]) & (lam > padded[2:]))[0]
    crossings = []
    for p in peaks:
        lobe = np.arange(max(p - h, 0), min(p + h, e.size - 1) + 1)
        lobe_lam = float(lam[lobe].sum())
        if lobe_lam < min_fraction * total:
            continue
        for E in edges[1:]:
            below = e[lobe] < E
            if below.all() or not below.any():
                continue
            far = ~below if e[p] < E else below
            across = float(lam[lobe][far].sum())
            if across > 0:
                crossings.append({"line_meV": float(e[p]), "lambda_line_meV": lobe_lam, "edge_meV": E,
                                  "lambda_across_meV": across})  # fmt: skip
        for j in lobe:
            if region[j] != region[p] and lam[j] > 0:
                if region[j] >= 0:
                    spill[region[j]] += lam[j]
                if region[p] >= 0:
                    spill[region[p]] += lam[j]
    return crossings, spill


def flag_regions(regions: list[dict], spill_meV: np.ndarray, spill_fraction: float = EDGE_SPILL_FRACTION) -> list[str]:
    """Add ``lambda_across_edges_meV`` (the region's spill, :func:`lines_across_edges`) to each region and
    set ``resolved`` false where it exceeds ``spill_fraction`` of the region's lambda. Returns the names
    of the regions newly marked unresolved."""
    newly = []
    for reg, across in zip(regions, spill_meV):
        reg["lambda_across_edges_meV"] = float(across)
        lam_R = reg.get("lambda_meV")
        if reg["resolved"] and across > 0 and lam_R is not None and across > spill_fraction * max(lam_R, 0.0):
            reg["resolved"] = False
            newly.append(reg["name"])
    return newly
