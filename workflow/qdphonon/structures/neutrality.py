"""Neutrality: the removed Cs are the set that minimises the point-charge Coulomb energy (deterministic search)."""

from __future__ import annotations

import numpy as np
from qdphonon.structures.lattice import _lexsorted, a_site_class, a_sites, b_sites, x_sites
from qdphonon.elements import HOST, formal_charge_e


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
    ions = [(b_sites(size), formal_charge_e(HOST.b_site)), (x_sites(size), formal_charge_e(HOST.halide)),
            (a_sites(size), formal_charge_e(HOST.a_site))]
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
