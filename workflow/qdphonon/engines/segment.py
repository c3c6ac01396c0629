"""One CP2K segment under the run directory's lock: the one launcher both engines (MD and relaxation) use,
and what both MD engines (CP2K and the mock) do first with an MD input (:func:`open_md_run`).

A segment is recorded as running in the run's state file before CP2K starts, gets CP2K's pid as soon as
it runs, and its wall time, exit status and signal when it ends; :func:`process_end` says how it ended as
far as the process alone tells (a stop, a signal, a non-zero exit), as a :class:`~qdphonon.run.layout.SegmentEnd`.
What a clean exit means (all steps done, a wall-time stop, a converged optimisation) is each job's own
reading of CP2K's files (:mod:`qdphonon.parsers.verdicts`).
"""

from __future__ import annotations

import hashlib
import signal
from pathlib import Path
from typing import Any, Callable, Sequence

from qdphonon.cp2k.readback import read_md_input
from qdphonon.engines.process import ProcessResult, StopReason, cp2k_environment, run_process
from qdphonon.parsers.verdicts import abort_message
from qdphonon.run.layout import (
    RECORD_FILE, SegmentEnd, check_same_engine, check_same_input, read_json, write_json_atomic,
)  # fmt: skip


def run_segment(state: dict[str, Any], state_path: Path, seg: dict[str, Any], cmd: Sequence[str], directory: Path,
                lock, *, threads: int, mpi: str | None, tasks: int, grace_s: float,
                watch: Callable | None = None, poll_s: float | None = None) -> ProcessResult:  # fmt: skip
    """Append ``seg`` to ``state["segments"]`` as running (written before CP2K starts), run ``cmd`` in
    ``directory`` holding ``lock`` (CP2K inherits it; its pid recorded in the segment and the lock), and
    record wall seconds, exit status, signal and whether SIGTERM had to be escalated."""
    seg["ended"] = SegmentEnd.RUNNING.value
    state["segments"].append(seg)
    write_json_atomic(state_path, state)

    def started(pid: int) -> None:
        seg["pid"] = pid
        write_json_atomic(state_path, state)
        lock.update(cp2k_pid=pid)

    extra = {} if poll_s is None else {"poll_s": poll_s}
    result = run_process(list(cmd), directory, cp2k_environment(threads, mpi, run_dir=directory), watch=watch,
                         on_start=started, grace_s=grace_s, pass_fds=(lock.fd,),
                         death_signal=signal.SIGTERM if int(tasks) > 1 else signal.SIGKILL, **extra)  # fmt: skip
    lock.update(cp2k_pid=None)
    seg.update(wall_s=round(result.wall_s, 3), exit_status=result.exit_status, signal=result.signal)
    if result.escalated:
        seg["escalated"] = f"CP2K ignored SIGTERM for {grace_s:g} s: SIGKILL"
    return result


def process_end(result: ProcessResult, output: Path) -> tuple[SegmentEnd, str | None] | None:
    """How the segment ended as far as the process tells, with a note for people: FAILED when the SCF
    watch stopped it, KILLED when the engine stopped it or a signal ended it, FAILED on a non-zero exit
    (CP2K's ABORT message); None when CP2K exited 0 (the job reads its files to decide)."""
    if result.stop_reason is StopReason.SCF_NOT_CONVERGED:
        return SegmentEnd.FAILED, result.stop.note
    if result.stop_reason is not None or result.signal_number is not None:
        return SegmentEnd.KILLED, result.stop.note if result.stop is not None else f"CP2K killed by {result.signal}"
    if result.exit_status != 0:
        return SegmentEnd.FAILED, abort_message(output)
    return None


def killed_status(result: ProcessResult) -> int:
    """The exit status an engine stopped by a signal reports: 128 + the signal it received, else CP2K's."""
    return 128 + result.received_signal if result.received_signal is not None else result.exit_status


def open_md_run(input_path, run_dir, record_path, engine: str):
    """Paths, input SHA-256, the completion record (if this input already ran to the end with
    this engine; another input or engine is refused) and the MD settings read from the input."""
    input_path, run_dir = Path(input_path), Path(run_dir)
    record_path = Path(record_path) if record_path else run_dir / RECORD_FILE
    sha = hashlib.sha256(input_path.read_bytes()).hexdigest()
    record = read_json(record_path)
    if record is not None:
        check_same_input(record.get("input_sha256"), sha, record_path, input_path)
        check_same_engine(record.get("engine"), engine, record_path)
        return input_path, run_dir, record_path, sha, record, None
    md = read_md_input(input_path)
    if md.run_type != "MD":
        raise ValueError(f"{input_path}: RUN_TYPE {md.run_type}, expected MD")
    return input_path, run_dir, record_path, sha, None, md
