"""Cost of removing the gap patterns from the mock's oscillator motion (engines.mock_model.oscillator_motion).

The mock takes the motion along each region's gap pattern d_r (unit vector over atoms x 3) out of the
free oscillators: x - sum_r (x . d_r) d_r. Written as one three-operand einsum ("fai,rai,rbj->fbj"),
numpy loops over every index at once (frames x atoms^2 x 9 x regions); contracting the projection first
("fai,rai->fr", then "fr,rbj->fbj") costs frames x atoms x 3 x regions twice. Both are timed here on
the shapes of the default campaign's 6x6x6 dot (1296 atoms, 3 regions, a chunk of 64 frames), and
their results compared.

    python bench/bench_mock_projection.py
"""

from __future__ import annotations

import time

import numpy as np


def one_einsum(x: np.ndarray, d: np.ndarray) -> np.ndarray:
    return x - np.einsum("fai,rai,rbj->fbj", x, d, d)


def projection_first(x: np.ndarray, d: np.ndarray) -> np.ndarray:
    return x - np.einsum("fr,rbj->fbj", np.einsum("fai,rai->fr", x, d), d)


def best_of(fn, *args, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn(*args)
        times.append(time.perf_counter() - t0)
    return min(times)


def main(n_atoms: int = 1296, n_regions: int = 3, frames: int = 64) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(frames, n_atoms, 3))
    d = rng.normal(size=(n_regions, n_atoms, 3))
    d /= np.linalg.norm(d.reshape(n_regions, -1), axis=1)[:, None, None]
    diff = np.abs(one_einsum(x, d) - projection_first(x, d)).max()
    t_one, t_first = best_of(one_einsum, x, d), best_of(projection_first, x, d)
    print(f"atoms {n_atoms}, regions {n_regions}, frames {frames}: one einsum {t_one:.3f} s, "
          f"projection first {t_first:.5f} s, ratio {t_one / t_first:.0f}x, max |difference| {diff:.1e}")


if __name__ == "__main__":
    main()
