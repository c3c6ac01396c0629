"""The real-CP2K engine: one MD segment per call, continuing from CP2K's restart file.

A fresh run starts ``seg000``; after a kill, a wall-time stop or a crash the next call
continues from ``{project}-1.restart`` (its backup when the kill cut it short) with
``&EXT_RESTART`` and the saved wavefunction, after :mod:`qdphonon.engines.recovery` has
recorded and set aside whatever the kill left and trimmed the shared files back to the restart
step. The engine holds the run directory's lock for its whole life (:mod:`qdphonon.run.lock`,
CP2K inherits it) and CP2K dies with the engine (:mod:`qdphonon.engines.process`). The
run-directory layout is :mod:`qdphonon.run.layout`'s.

CP2K facts this relies on (2023.1, measured): with ``EXT_RESTART`` and restored counters,
``STEPS`` counts from the restart step (so a continuation asks for the remaining steps;
``MAX_STEPS`` stops one step short), and ``CENTER_COORDINATES`` would re-centre the restored
positions (so continuations switch it off); ``GLOBAL/WALLTIME`` ends a run cleanly (exit 0,
"MD run terminated - exceeded requested execution time", restart file of the last finished
step; the interrupted SCF prints its energy line but no MO block); trajectory, energy and
restart files are written step by step in that order, so a SIGKILL leaves at most one
partial record per file.
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from typing import Any, Mapping
from qdphonon import settings
from qdphonon.cp2k.continuation import continuation_tree, with_initial_wfn, with_restart_backup, with_walltime
from qdphonon.cp2k.readback import MDInput, render_tree
from qdphonon.cp2k.xmlspec import cp2k_version, installed_xmlspec
from qdphonon.engines.allocation import allocation_end_epoch, cp2k_walltime_s
from qdphonon.run.errors import EXIT_WALLTIME, EngineError, RunDirMismatchError, RunInterrupted, SCFConvergenceError, WalltimeReached
from qdphonon.engines.progress import ProgressReporter, combine_watches
from qdphonon.engines.process import GRACE_S, ProcessResult, Stop, StopReason
from qdphonon.run.state_records import RunState, read_state
from qdphonon.engines.segment import (
    CP2KLauncher, save_state, SegmentPlan, finished_record, killed_status, open_md_run, process_end, run_segments,
)  # fmt: skip
from qdphonon.parsers.main_output import read_main_output, scf_unconverged_steps
from qdphonon.parsers.verdicts import OutputEnd, output_end, reports_scf_failure
from qdphonon.metadata import run_record
from qdphonon.parsers.energies import last_energy_step
from qdphonon.run.layout import (
    INITIAL_WFN_FILE, STATE_FILE, SegmentEnd, check_same_input,
    foreign_files, read_json, segment_files, wipe_run_files, write_json_atomic,
)
from qdphonon.engines.file_cuts import restart_source
from qdphonon.parsers.record_bounds import count_md_blocks, fortran_file_whole
from qdphonon.engines.recovery import prepare_continuation, prepare_run_dir


SCF_FAILURE_POLICIES = tuple(settings.choices("scf.on_failure"))


class _SCFWatch:
    """Stops a segment at the first MD step whose SCF did not converge (policy ``fail``).

    Scans the new bytes of the output for CP2K's warnings and lets
    :func:`qdphonon.parsers.main_output.read_main_output` confirm that a finished step is affected (an
    SCF cut by the WALLTIME or an EXIT file, even the first SCF of a continuation that CP2K still
    dates with ``MD_INI``, or an inner loop that an outer SCF loop later converges, is not).
    """

    def __init__(self, output: Path, start_step: int = 0):
        self.output = output
        self.start_step = start_step
        self.offset = 0
        self.suspect = False

    def __call__(self) -> Stop | None:
        try:
            with open(self.output, "rb") as fh:
                fh.seek(self.offset)
                chunk = fh.read()
        except FileNotFoundError:
            return None
        self.offset += len(chunk)
        if reports_scf_failure(chunk):
            self.suspect = True
        if not self.suspect:
            return None
        evals = read_main_output(self.output).evaluations
        bad = [self.start_step if ev.step is None else ev.step
               for ev in evals if ev.kind != "trailing" and ev.scf_converged is False and not ev.scf_stopped]  # fmt: skip
        if bad:
            return Stop(StopReason.SCF_NOT_CONVERGED, f"SCF not converged at MD step {bad[0]} (policy fail)")
        self.suspect = bool(evals) and evals[-1].kind == "trailing" and evals[-1].scf_converged is False
        return None


def _segment_header(
    index: int, md: MDInput, input_path: Path, start: int | None, restart: str | None, spec_desc: str
) -> str:
    origin = "fresh start" if start is None else f"continues from MD step {start} ({restart})"
    return (
        f"! qdphonon segment {index:03d} of {input_path.name} (sha256 {md.sha256[:16]}), level {md.level}: {origin}; "
        f"validated against {spec_desc}\n"
    )


def run_cp2k(
    input_path: str | os.PathLike,
    run_dir: str | os.PathLike,
    *,
    cp2k_command: str = "cp2k.psmp",
    mpi: str | None = None,
    tasks: int = 1,
    threads: int = 1,
    runtime_min: float | None = None,
    walltime_margin_min: float = 10.0,
    on_scf_failure: str | None = None,
    record_path: str | os.PathLike | None = None,
    poll_s: float = 2.0,
    lock_wait_s: float = 0.0,
    grace_s: float = GRACE_S,
    initial_wfn: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Run (or continue) the NVT AIMD of ``input_path`` with real CP2K in ``run_dir``; return the run record.

    One call runs at most one segment: a fresh start (``seg000``), or a continuation from
    CP2K's restart file when the directory holds a partial run (killed, wall-time stop);
    a complete run (``run.json`` present for the same input) is returned untouched; a
    directory of another input is refused (:class:`RunDirMismatchError`). With
    ``runtime_min`` (the job's wall time, minutes), or inside a SLURM allocation, CP2K's own
    WALLTIME is set to the time left (the smaller of ``runtime_min`` since this call and the
    allocation's end, :mod:`qdphonon.engines.allocation`) minus ``walltime_margin_min``, so the
    job ends cleanly with a restart file, also when the attempt is a retry inside the allocation;
    a segment that stops there raises :class:`WalltimeReached` (exit status
    :data:`EXIT_WALLTIME`). ``on_scf_failure`` (None: the schema's default) ``'fail'`` stops CP2K at the first MD step whose
    SCF did not converge and raises :class:`SCFConvergenceError`; ``drop_step`` and
    ``keep_flagged`` only count such steps (the parser applies them). An SCF stopped by the
    WALLTIME or an EXIT file is never an SCF failure.

    The run directory's lock is held throughout; a directory locked by a live engine is
    refused after ``lock_wait_s`` seconds (:class:`~qdphonon.run.errors.RunDirLocked`,
    naming its PID). A forwarded SIGTERM that CP2K ignores becomes SIGKILL after ``grace_s``.

    MPI: ``{mpi} -n {tasks} cp2k ...`` when ``tasks > 1``, else one rank; ``threads`` OpenMP
    threads per rank. The record is written atomically to ``record_path`` (default
    ``run_dir/run.json``) only when the last MD step equals ``STEPS``.

    ``initial_wfn``: a converged wavefunction of the same dot at the same level (the
    relaxation's ``*-RESTART.wfn``); a fresh start copies it to ``INITIAL_WFN_FILE`` and begins
    its first SCF from it (``SCF_GUESS RESTART``) instead of the input's guess. Continuations
    use CP2K's own wavefunction restart as always.
    """
    t_called = time.monotonic()

    if on_scf_failure is None:
        on_scf_failure = settings.default("scf.on_failure")
    if on_scf_failure not in SCF_FAILURE_POLICIES:
        raise ValueError(f"on_scf_failure must be one of {', '.join(SCF_FAILURE_POLICIES)}, got {on_scf_failure!r}")
    input_path, run_dir, record_path, sha, record, md = open_md_run(input_path, run_dir, record_path, "cp2k")
    if record is not None:
        return record
    if read_json(run_dir / STATE_FILE) is None and run_dir.is_dir():
        _refuse_foreign(run_dir, md.files)
    run_dir.mkdir(parents=True, exist_ok=True)
    job = MDJob(input_path=input_path, directory=run_dir, record_path=record_path, sha=sha, md=md,
                cp2k_command=cp2k_command, threads=threads, tasks=tasks, runtime_min=runtime_min,
                walltime_margin_min=walltime_margin_min, on_scf_failure=on_scf_failure, t_called=t_called,
                initial_wfn=initial_wfn)  # fmt: skip
    launcher = CP2KLauncher(cp2k_command, mpi, int(tasks), int(threads), grace_s, poll_s)
    return run_segments(job, launcher, lock_wait_s=lock_wait_s)


def stage_initial_wfn(run_dir: Path, initial_wfn: str | os.PathLike | None) -> str | None:
    """Copy ``initial_wfn`` into ``run_dir`` as ``INITIAL_WFN_FILE`` (atomically) and return that name;
    None when there is none. A file that is not a whole Fortran record sequence is refused."""
    if initial_wfn is None:
        return None
    src = Path(initial_wfn)
    if not fortran_file_whole(src):
        raise EngineError(f"{src}: not a whole CP2K wavefunction file (missing, empty or cut short)")
    tmp = run_dir / f".{INITIAL_WFN_FILE}.tmp"
    tmp.write_bytes(src.read_bytes())
    os.replace(tmp, run_dir / INITIAL_WFN_FILE)
    return INITIAL_WFN_FILE


def _refuse_foreign(run_dir: Path, files: Mapping[str, str | None]) -> None:
    foreign = foreign_files(run_dir, files)
    if foreign:
        raise RunDirMismatchError(
            f"{run_dir} holds {', '.join(foreign[:6])} but no {STATE_FILE}: not a run of this engine; "
            "refusing to overwrite it (remove the directory to start afresh)"
        )


@dataclasses.dataclass
class MDJob:
    """The NVT AIMD of one input as a :class:`~qdphonon.engines.segment.SegmentJob`: ``segments.json`` its
    state, a fresh start or a continuation from CP2K's restart file its next segment, ``run.json`` its
    record once the last MD step equals STEPS."""

    input_path: Path
    directory: Path
    record_path: Path
    sha: str
    md: MDInput
    cp2k_command: str
    threads: int
    tasks: int
    runtime_min: float | None
    walltime_margin_min: float
    on_scf_failure: str
    t_called: float
    initial_wfn: str | os.PathLike | None = None
    purpose: str = "run-aimd"
    record: dict[str, Any] | None = None
    resume: tuple[str | None, int | None, str | None] = (None, None, None)
    spec: Any = None
    spec_desc: str = ""

    state_record = RunState

    @property
    def state_path(self) -> Path:
        return self.directory / STATE_FILE

    def open(self, lock) -> dict[str, Any]:
        """``segments.json`` (new, or checked to be this input's), recovered from what a kill left, with the
        shared files trimmed back to the restart step a continuation starts from."""
        run_dir, files, md = self.directory, self.md.files, self.md
        self.record = finished_record(self.record_path, self.sha, self.input_path, "cp2k")
        if self.record is not None:  # another engine finished while we waited for the lock
            return {"segments": []}
        state = read_state(RunState, self.state_path)
        if state is None:
            _refuse_foreign(run_dir, files)
            state = {"engine": "cp2k", "input": str(self.input_path), "input_sha256": self.sha, "steps": md.steps,
                     "project": md.project, "molog": files["molog"], "segments": [], "discarded_segments": []}  # fmt: skip
        check_same_input(state.get("input_sha256"), self.sha, self.state_path, self.input_path)
        state["on_scf_failure"] = self.on_scf_failure  # the parser applies the policy the run recorded
        if state.get("engine") != "cp2k":
            raise RunDirMismatchError(f"{run_dir} holds a {state.get('engine')} run; refusing to continue it with CP2K")
        self.spec, self.spec_desc = installed_xmlspec(self.cp2k_command)
        prepare_run_dir(run_dir, state, files, md.project, lock.killed)
        restart_name, k, wfn = restart_source(run_dir, files)
        if k is None and state["segments"]:
            written = last_energy_step(run_dir, files)
            if written is not None and written > 1:
                save_state(self, state)
                raise EngineError(
                    f"{run_dir}: MD steps up to {written} were written but no readable restart file "
                    f"({files['restart']} or its .bak-1) is left; cannot continue (remove the directory to start afresh)"
                )
            state["discarded_segments"].extend(state["segments"])
            state["segments"] = []
            wipe_run_files(run_dir, files)
        elif k is not None and k < md.steps:
            restart_name, wfn = prepare_continuation(run_dir, state, files, k, restart_name, wfn,
                                                     molog_every_step=md.mo_every == 1)  # fmt: skip
        self.resume = (restart_name, k, wfn)
        save_state(self, state)
        return state

    def plan(self, state: dict[str, Any]) -> SegmentPlan | None:
        """The next segment: a fresh start (from the initial wavefunction, if any), or a continuation of the
        remaining steps; CP2K's WALLTIME set from the time this job has left. None when all steps are done."""
        if self.record is not None:
            return None
        md, run_dir = self.md, self.directory
        restart_name, k, wfn = self.resume
        if k is not None and k >= md.steps:
            return None
        index = len(state["segments"])
        guess = None
        if k is None:
            guess = stage_initial_wfn(run_dir, self.initial_wfn)
            tree: dict[str, Any] = with_initial_wfn(md.tree, guess)
        else:
            tree = continuation_tree(md.tree, restart_file=restart_name, wfn_file=wfn, remaining_steps=md.steps - k)
        tree = with_restart_backup(tree)
        allocation_end = allocation_end_epoch()
        walltime_s = cp2k_walltime_s(self.runtime_min, self.walltime_margin_min,
                                     elapsed_s=time.monotonic() - self.t_called, allocation_end=allocation_end,
                                     now_epoch=time.time())  # fmt: skip
        if walltime_s is not None:
            if walltime_s < 1:
                left = f"runtime {self.runtime_min} min" if self.runtime_min is not None else "the SLURM allocation"
                if allocation_end is not None and self.runtime_min is not None:
                    left = f"runtime {self.runtime_min} min (or the SLURM allocation's time left)"
                raise ValueError(f"{left} minus the margin {self.walltime_margin_min} min leaves no time for CP2K")
            tree = with_walltime(tree, walltime_s)
        inp_name, out_name = segment_files(index)
        header = _segment_header(index, md, self.input_path, k, restart_name, self.spec_desc)
        start = 0 if k is None else k
        fields = {"start_step": start, "restart_file": restart_name, "wfn_file": wfn if k is not None else guess,
                  "threads": int(self.threads), "tasks": int(self.tasks), "engine_pid": os.getpid(),
                  "walltime_s": None if walltime_s is None else round(walltime_s, 3),
                  "allocation_end_epoch": allocation_end}  # fmt: skip
        molog = self._molog()
        if molog is not None and md.mo_every == 1:
            fields["molog_start"] = molog.stat().st_size if molog.is_file() else 0
        watch = combine_watches(
            _SCFWatch(run_dir / out_name, start) if self.on_scf_failure == "fail" else None,
            ProgressReporter(run_dir / md.files["energies"], start, md.steps))
        return SegmentPlan(inp_name, out_name, render_tree(tree, self.spec, header), fields, watch)

    def _molog(self) -> Path | None:
        return self.directory / self.md.files["molog"] if self.md.files.get("molog") else None

    def close(self, seg: dict[str, Any], result: ProcessResult) -> None:
        """The step it reached (from the restart file), the MOLog blocks it left, and how it ended."""
        end = restart_source(self.directory, self.md.files)[1]
        seg["end_step"] = end
        if "molog_start" in seg:
            seg["molog_blocks"] = count_md_blocks(self._molog(), seg["molog_start"])
        _classify_segment(seg, result, self.directory / seg["output"], end, self.md.steps)
        self.resume = (None, end, None) if end is not None and end >= self.md.steps else self.resume

    def check(self, seg: dict[str, Any], result: ProcessResult) -> None:
        _raise_for_segment(seg, result, self.directory / seg["output"], self.md.steps)

    def finish(self, state: dict[str, Any]) -> dict[str, Any]:
        """``run.json`` once every step is written and consistent (policy ``fail``: every SCF converged)."""
        if self.record is not None:
            return self.record
        run_dir, md = self.directory, self.md
        last = last_energy_step(run_dir, md.files)
        if last != md.steps:
            raise EngineError(
                f"{run_dir / md.files['energies']}: last MD step {last}, expected {md.steps}; the run is inconsistent"
            )
        unconverged = scf_unconverged_steps([run_dir / seg["output"] for seg in state["segments"]])
        if unconverged and self.on_scf_failure == "fail":
            raise SCFConvergenceError(f"{run_dir}: SCF not converged at MD step(s) {unconverged[:20]} (policy fail)")
        record = run_record(
            engine="cp2k", md=md, input_path=self.input_path, run_dir=run_dir, segments=state["segments"],
            cp2k_version=cp2k_version(self.cp2k_command) or "unknown", synthetic=False,
            extra={"scf_unconverged_steps": unconverged, "on_scf_failure": self.on_scf_failure,
                   "discarded_segments": len(state.get("discarded_segments", [])),
                   "recoveries": len(state.get("recoveries", []))},
        )  # fmt: skip
        write_json_atomic(self.record_path, record)
        state["complete"] = True
        save_state(self, state)
        return record


def _classify_segment(seg: dict[str, Any], result: ProcessResult, output: Path, end: int | None, steps: int) -> None:
    """Set ``ended`` (completed | walltime | external_exit | killed | failed), ``stop_reason`` and a note,
    from the process's outcome and :func:`~qdphonon.parsers.verdicts.output_end`."""
    reason = result.stop_reason
    seg["stop_reason"] = None if reason is None else reason.value
    by_process = process_end(result, output)
    if by_process is not None:
        seg["ended"], seg["note"] = by_process[0].value, by_process[1]
    elif end is not None and end >= steps:
        seg["ended"] = SegmentEnd.COMPLETED.value
    else:
        how = output_end(output)
        if how is OutputEnd.WALLTIME:
            seg["ended"] = SegmentEnd.WALLTIME.value
        elif how is OutputEnd.EXIT_FILE:
            seg["ended"] = SegmentEnd.EXTERNAL_EXIT.value
            seg["note"] = "CP2K stopped on an EXIT file (terminated by external request)"
        else:
            seg["ended"] = SegmentEnd.FAILED.value
            seg["note"] = f"CP2K ended cleanly at MD step {end} of {steps} without a wall-time stop"


def _raise_for_segment(seg: dict[str, Any], result: ProcessResult, output: Path, steps: int) -> None:
    ended, end = seg["ended"], seg["end_step"]
    if ended == SegmentEnd.COMPLETED.value:
        return
    where = f"segment {seg['input']} (MD steps {seg['start_step']}..{end} of {steps})"
    if ended == SegmentEnd.WALLTIME.value and (end is None or end <= seg["start_step"]):
        raise EngineError(f"CP2K's WALLTIME ended {where} before it finished an MD step; give the job more "
                          "time (runtime) or a smaller wall-time margin")  # fmt: skip
    if ended == SegmentEnd.WALLTIME.value:
        raise WalltimeReached(f"CP2K reached its WALLTIME in {where}; run again to continue from the restart file")
    if ended == SegmentEnd.EXTERNAL_EXIT.value:
        raise RunInterrupted(f"CP2K stopped on an EXIT file in {where}; run again to continue", EXIT_WALLTIME)
    if result.stop_reason is StopReason.SCF_NOT_CONVERGED:
        raise SCFConvergenceError(f"{seg['note']} in {where}")
    if ended == SegmentEnd.KILLED.value:
        raise RunInterrupted(f"CP2K stopped ({seg['note']}) in {where}; run again to continue", killed_status(result))
    raise EngineError(f"CP2K failed in {where} with exit status {result.exit_status}: {seg.get('note')}")
