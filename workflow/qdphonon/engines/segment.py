"""The one segment loop of every engine (:func:`run_segments`): the MD with CP2K, the geometry optimisation
and the mock are each a :class:`SegmentJob`, a description of what to run next and what its end means.

A segment is one launch: CP2K from its input to where it stops (all steps done, a wall-time stop, a
kill), or the mock's in-process writer. The loop holds the directory's lock throughout, records each
segment as running in the job's state file before it starts, its pid as soon as it runs, and its wall
time, exit status and signal when it ends; the job then says how it ended (a
:class:`~qdphonon.run.layout.SegmentEnd`) and raises for anything but a completed segment, so a stop
leaves a state the next call continues from. :func:`process_end` says how a segment ended as far as
the process alone tells; what a clean exit means is each job's reading of CP2K's files
(:mod:`qdphonon.parsers.verdicts`). :func:`open_md_run` is what both MD engines do first with an input.
"""

from __future__ import annotations

import dataclasses
import hashlib
import shlex
import signal
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol

from qdphonon.cp2k.readback import read_md_input
from qdphonon.engines.process import ProcessResult, Stop, StopReason, cp2k_command_line, cp2k_environment, find_cp2k, run_process
from qdphonon.metadata import now_iso
from qdphonon.parsers.verdicts import abort_message
from qdphonon.run.layout import (
    RECORD_FILE, SegmentEnd, check_same_engine, check_same_input, lock_run_dir, read_json, write_json_atomic,
)  # fmt: skip
from qdphonon.run.lock import RunDirLock
from qdphonon.run.state_records import check_state
from qdphonon.typed_records import TypedRecord


@dataclasses.dataclass(frozen=True)
class SegmentPlan:
    """The next segment a job asks for: its input (written to ``input_name`` before the launch), its main
    output, the job's own keys of the segment record, and a watch polled while it runs (None: none)."""

    input_name: str
    output_name: str
    input_text: str
    fields: Mapping[str, Any]
    watch: Callable[[], Stop | None] | None = None


class Launcher(Protocol):
    """Runs one segment's process: the launch line recorded for people, and the process itself."""

    escalation_note: str

    def command(self, plan: SegmentPlan) -> str: ...

    def run(self, plan: SegmentPlan, directory: Path, lock: RunDirLock,
            on_start: Callable[[int], None]) -> ProcessResult: ...  # fmt: skip


class SegmentJob(Protocol):
    """What an engine tells :func:`run_segments`: where it runs, how to open (and recover) its state, what
    to run next, how a segment ended, and what a finished job returns."""

    directory: Path
    state_path: Path
    state_record: type[TypedRecord]
    purpose: str

    def open(self, lock: RunDirLock) -> dict[str, Any]:
        """The job's state (``segments`` a list), recovered from whatever a kill left; written."""

    def plan(self, state: dict[str, Any]) -> SegmentPlan | None:
        """The next segment, or None when the job has nothing left to run."""

    def close(self, seg: dict[str, Any], result: ProcessResult) -> None:
        """Record in ``seg`` how it ended (``ended``, ``note`` and the job's own keys)."""

    def check(self, seg: dict[str, Any], result: ProcessResult) -> None:
        """Raise for a segment that did not complete (the state is written first)."""

    def finish(self, state: dict[str, Any]) -> dict[str, Any]:
        """The finished job's record (written by the job)."""


@dataclasses.dataclass(frozen=True)
class CP2KLauncher:
    """CP2K (``cp2k_command``, looked for on PATH at the first launch, so under the lock) under MPI
    (``{mpi} -n {tasks}``, ``threads`` OpenMP threads per rank), holding the directory's lock (CP2K
    inherits it; its pid goes into the lock), dying with the engine; a SIGTERM it ignores becomes SIGKILL
    after ``grace_s``."""

    cp2k_command: str
    mpi: str | None
    tasks: int
    threads: int
    grace_s: float
    poll_s: float | None = None

    @property
    def escalation_note(self) -> str:
        return f"CP2K ignored SIGTERM for {self.grace_s:g} s: SIGKILL"

    def argv(self, plan: SegmentPlan) -> list[str]:
        return cp2k_command_line(find_cp2k(self.cp2k_command), plan.input_name, plan.output_name, mpi=self.mpi, tasks=self.tasks)

    def command(self, plan: SegmentPlan) -> str:
        return shlex.join(self.argv(plan))

    def run(self, plan: SegmentPlan, directory: Path, lock: RunDirLock,
            on_start: Callable[[int], None]) -> ProcessResult:  # fmt: skip
        def started(pid: int) -> None:
            on_start(pid)
            lock.update(cp2k_pid=pid)

        extra = {} if self.poll_s is None else {"poll_s": self.poll_s}
        try:
            return run_process(self.argv(plan), directory, cp2k_environment(self.threads, self.mpi, run_dir=directory),
                               watch=plan.watch, on_start=started, grace_s=self.grace_s, pass_fds=(lock.fd,),
                               death_signal=signal.SIGTERM if int(self.tasks) > 1 else signal.SIGKILL, **extra)  # fmt: skip
        finally:
            lock.update(cp2k_pid=None)


@dataclasses.dataclass(frozen=True)
class InProcessLauncher:
    """A segment that is a Python call in the engine's own process (the mock's writer), not CP2K;
    ``description`` is what the segment records as its launch line."""

    write: Callable[[], None]
    description: str
    escalation_note: str = ""

    def command(self, plan: SegmentPlan) -> str:
        return self.description

    def run(self, plan: SegmentPlan, directory: Path, lock: RunDirLock,
            on_start: Callable[[int], None]) -> ProcessResult:  # fmt: skip
        t0 = time.monotonic()
        self.write()
        return ProcessResult(exit_status=0, signal_number=None, wall_s=time.monotonic() - t0)


def run_segments(job: SegmentJob, launcher: Launcher, *, lock_wait_s: float = 0.0) -> dict[str, Any]:
    """Run ``job``'s segments with ``launcher`` under the directory's lock until it plans no more, and return
    its record. Each segment is recorded as running before it starts; a segment that does not complete
    ends the call with the job's exception, its state written, so the next call continues from it."""
    with lock_run_dir(job.directory, job.purpose, wait_s=lock_wait_s) as lock:
        state = job.open(lock)
        while (plan := job.plan(state)) is not None:
            (job.directory / plan.input_name).write_text(plan.input_text)
            seg = {"index": len(state["segments"]), "input": plan.input_name, "output": plan.output_name,
                   **plan.fields, "command": launcher.command(plan), "started_at": now_iso(),
                   "started_epoch": time.time(), "ended": SegmentEnd.RUNNING.value}  # fmt: skip
            state["segments"].append(seg)
            save_state(job, state)

            def started(pid: int) -> None:
                seg["pid"] = pid
                save_state(job, state)

            result = launcher.run(plan, job.directory, lock, started)
            seg.update(wall_s=round(result.wall_s, 3), exit_status=result.exit_status, signal=result.signal)
            if result.escalated:
                seg["escalated"] = launcher.escalation_note
            job.close(seg, result)
            save_state(job, state)
            job.check(seg, result)
        return job.finish(state)


def save_state(job: SegmentJob, state: dict[str, Any]) -> None:
    """Write ``job``'s state file atomically after checking it against the job's state record (a misspelt
    or mistyped key is a ValueError naming it, before anything is written)."""
    check_state(job.state_record, state, job.state_path)
    write_json_atomic(job.state_path, state)


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


def finished_record(record_path: Path, sha: str, input_path: Path, engine: str) -> dict[str, Any] | None:
    """The completion record another engine wrote while this one waited for the lock (same input and
    engine checked), or None."""
    record = read_json(record_path)
    if record is not None:
        check_same_input(record.get("input_sha256"), sha, record_path, input_path)
        check_same_engine(record.get("engine"), engine, record_path)
    return record

