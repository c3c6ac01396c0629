"""Progress of a running CP2K segment: a line every few minutes (MD step, seconds per step, time left),
read from the tail of CP2K's energy file, so a log shows where a three-day run stands."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable, TextIO

from qdphonon.parsers.energies import last_line_step

if TYPE_CHECKING:
    from qdphonon.engines.process import Stop

PROGRESS_EVERY_S = 300.0
"""Seconds between progress lines."""


def progress_line(step: int, start_step: int, total_steps: int, elapsed_s: float) -> str:
    """``run-aimd: MD step 1200 of 4000, 1.84 s/step, about 1.4 h left`` (rate over this segment)."""
    done = step - start_step
    if done <= 0:
        return f"run-aimd: MD step {step} of {total_steps}, no step finished yet in this segment ({elapsed_s:.0f} s)"
    rate = elapsed_s / done
    left = rate * max(0, total_steps - step)
    when = f"{left / 3600:.1f} h" if left >= 3600 else f"{left / 60:.1f} min"
    return f"run-aimd: MD step {step} of {total_steps}, {rate:.3g} s/step, about {when} left"


class ProgressReporter:
    """A watch for :func:`qdphonon.engines.process.run_process` that prints :func:`progress_line` every
    ``every_s`` seconds; it never asks to stop CP2K (returns None)."""

    def __init__(self, energies: Path, start_step: int, total_steps: int, every_s: float = PROGRESS_EVERY_S,
                 clock: Callable[[], float] = time.monotonic, out: TextIO | None = None):
        self.energies, self.start_step, self.total_steps = Path(energies), int(start_step), int(total_steps)
        self.every_s, self.clock, self.out = float(every_s), clock, out
        self.t0 = self.last = clock()

    def __call__(self) -> None:
        now = self.clock()
        if now - self.last < self.every_s:
            return None
        self.last = now
        step = last_line_step(self.energies)
        if step is not None:
            print(progress_line(step, self.start_step, self.total_steps, now - self.t0), file=self.out or sys.stderr,
                  flush=True)
        return None


def combine_watches(*watches: Callable[[], Stop | None] | None) -> Callable[[], Stop | None] | None:
    """One watch calling each given watch in turn; the first :class:`~qdphonon.engines.process.Stop` wins."""
    active = [w for w in watches if w is not None]
    if not active:
        return None

    def watch() -> Stop | None:
        reasons = [w() for w in active]
        return next((r for r in reasons if r is not None), None)

    return watch
