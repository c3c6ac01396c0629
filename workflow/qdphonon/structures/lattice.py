"""Perovskite sites of a cuboid on the integer half-lattice grid, and octahedral layer indices."""

from __future__ import annotations

import numpy as np



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
