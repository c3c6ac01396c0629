"""Killing CP2K at a chosen point of its run without racing it: CP2K starts stopped and runs in slices.

A test that watches CP2K's files and kills it "once the 4th block is written" races CP2K: on a
loaded machine the watcher may wake only after CP2K has finished. Here CP2K is held before it
starts (``held_cp2k``: a wrapper that stops itself, then execs ``cp2k.psmp``) and the test lets its
process group run ``SLICE_S`` at a time, checking its condition while CP2K is stopped, so CP2K can
run ahead of the check by at most one slice, far less than the CPU time of the steps the kill must
land before (a loaded machine only gives CP2K less)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Callable

SLICE_S = 0.005

HELD_CP2K = """#!/bin/sh
# CP2K held before it starts (SIGSTOP to itself); the test lets it run in slices
case " $* " in *" -i "*) kill -STOP $$;; esac
exec cp2k.psmp "$@"
"""


def held_cp2k(directory: Path) -> Path:
    """The wrapper (``directory/cp2k-held``): CP2K's queries (``--version``, ``--xml``) run at once."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "cp2k-held"
    path.write_text(HELD_CP2K)
    path.chmod(0o755)
    return path


def run_in_slices_until(pgid: int, done: Callable[[], bool], proc: subprocess.Popen | None = None,
                        hang_guard_s: float = 900.0) -> None:
    """Let the stopped process group ``pgid`` run SLICE_S at a time (SIGCONT, then SIGSTOP) until
    ``done()``, checked while the group is stopped; it is left stopped. AssertionError when ``proc``
    (the engine, or CP2K itself) ends first, or after ``hang_guard_s``."""
    t0 = time.monotonic()
    while not done():
        if proc is not None:
            assert proc.poll() is None, f"ended before the condition ({proc.returncode})"
        assert time.monotonic() - t0 < hang_guard_s, "hang guard"
        os.killpg(pgid, signal.SIGCONT)
        time.sleep(SLICE_S)
        os.killpg(pgid, signal.SIGSTOP)
        time.sleep(0.001)
