"""Engines that fill an AIMD run directory: real CP2K, and the synthetic mock (DESIGN §3, §4).

Run directory (the contract with :mod:`qdphonon.parsers`)
    ``seg000.inp``/``seg000.out`` is the first CP2K run (``cp2k -i seg000.inp -o seg000.out``),
    ``seg001.inp``/``seg001.out`` the first continuation (``&EXT_RESTART`` from ``md-1.restart``
    plus ``SCF_GUESS RESTART`` from ``md-RESTART.wfn``), and so on. CP2K's own files of project
    ``md`` are shared by all segments and appended to: ``md-pos-1.xyz``, ``md-vel-1.xyz``,
    ``md-1.ener``, ``md-mo-1.MOLog``, ``md-1.restart``, ``md-RESTART.wfn``. The engine keeps its
    state in ``segments.json`` (input SHA-256, and per segment start/end step, process id, wall
    time, exit status and how it ended); ``run.json`` is written atomically, only once the last
    MD step equals ``STEPS``, and is the only declared output of the workflow rule.

Resume
    Before a continuation, a killed segment's partial last records are cut
    (:func:`qdphonon.parsers.truncate_to_complete_records`); complete records it wrote after
    its restart file (the step being finished when it was killed) stay: the parser keeps the
    continuation's copy of every step and aligns MO blocks with the segment outputs. A run
    killed before CP2K wrote any restart file starts afresh (its files are removed and the
    segments listed under ``discarded_segments`` in ``segments.json``). A restart file cut
    short by the kill falls back to its backup (``md-1.restart.bak-1``, enabled in every
    segment input), a wavefunction file cut short to its backup.

``run.json``
    ``engine``, ``level``, ``cp2k_version`` (``mock`` for the mock), ``command`` (first
    segment's launch line), ``qdphonon_command``, ``input``, ``input_sha256``, ``project``,
    ``files``, ``steps_requested``, ``total_steps``, ``timestep_fs``, ``temperature_K``,
    ``seed``, ``smearing_K``, ``segments`` (``index``, ``input``, ``output``, ``start_step``,
    ``end_step``, ``wall_s``, ``exit_status``, ``signal``, ``ended`` = completed | walltime |
    killed | failed, ``note``, ``command``, ``started_at``, ``restart_file``),
    ``scf_unconverged_steps``, ``synthetic``, ``completed_at``; the mock adds ``structure``,
    ``mock_params`` and ``mock_model``.

CP2K facts this relies on (2023.1, measured): with ``EXT_RESTART`` and restored counters,
``STEPS`` counts from the restart step (so a continuation asks for the remaining steps;
``MAX_STEPS`` stops one step short), and ``CENTER_COORDINATES`` would re-centre the restored
positions (so continuations switch it off); ``GLOBAL/WALLTIME`` ends a run cleanly (exit 0,
"MD run terminated - exceeded requested execution time", restart file of the last finished
step; the interrupted SCF prints its energy line but no MO block); trajectory, energy and
restart files are written step by step in that order, so a SIGKILL leaves at most one
partial record per file.

Mock engine
    No CP2K: writes the same files (names and formats of a real CP2K 2023.1 run) from a
    harmonic model, each with a first line ``# synthetic (mock engine)``, and
    ``synthetic: true`` in ``run.json``. See :data:`MOCK_DEFAULTS` and :func:`run_mock`.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime
import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from qdphonon import cp2k_input, units
from qdphonon.cp2k_input import parse_input_text

ENGINES = ("cp2k", "mock")
SCF_FAILURE_POLICIES = ("drop_step", "keep_flagged", "fail")
EXIT_WALLTIME = 75
"""Exit status of ``qdphonon run-aimd`` when CP2K stopped on its WALLTIME before STEPS (EX_TEMPFAIL):
the scheduler re-submits the job and the next one continues from the restart file."""

SYNTHETIC_LABEL = "synthetic (mock engine)"
STATE_FILE = "segments.json"
CP2K_INSTALL_HINT = (
    "install CP2K: 'apt-get install cp2k openmpi-bin' (Debian/Ubuntu) or 'conda install -c conda-forge cp2k'"
)

AMU_eV_fs2_per_A2 = 103.642697
"""1 amu * (Angstrom/fs)^2 in eV: converts 1/2 m v^2 with m in amu and v in Angstrom/fs to eV."""
BOLTZMANN_Ha_per_K = 3.166811563e-6
"""k_B in Hartree/K."""
CP2K_HARTREE_eV = 27.21138386
"""The Hartree-to-eV factor CP2K 2023.1 prints its MO eigenvalues with (CODATA 2006)."""
MASSES_AMU = {"Cs": 132.90545196, "Pb": 207.2, "Br": 79.904, "Ca": 40.078, "Sr": 87.62}


class EngineError(RuntimeError):
    """A run that cannot go on; the message says why and what to do."""


class CP2KNotFoundError(EngineError, FileNotFoundError):
    """The CP2K executable (or the MPI launcher) is not on PATH."""


class RunDirMismatchError(EngineError, ValueError):
    """The run directory holds another run (different input) or files the engine did not write."""


class WalltimeReached(EngineError):
    """CP2K stopped on its WALLTIME before STEPS; the run directory is ready to be continued."""

    exit_status = EXIT_WALLTIME


class SCFConvergenceError(EngineError):
    """An MD step's SCF did not converge and the policy is ``fail``."""


# --- reading a CP2K input back -----------------------------------------------------------

def render_tree(tree: Mapping[str, Any], xmlspec: str | os.PathLike, header: str = "") -> str:
    """Render and validate a tree (canonical ``+section`` keys or the simplified form)."""
    return header + cp2k_input.render_input(tree, xmlspec)


def _sec(tree: Mapping[str, Any] | None, *path: str) -> dict[str, Any] | None:
    """A nested section of a canonical tree (first instance of repeated sections), or None."""
    node: Any = tree
    for name in path:
        if not isinstance(node, Mapping):
            return None
        node = node.get("+" + name)
        if isinstance(node, list):
            node = node[0] if node else None
        if node is None:
            return None
    return node


def _on(section: Mapping[str, Any] | None) -> bool:
    """Whether a section is present and switched on (section parameter absent, True or ON)."""
    if section is None:
        return False
    value = section.get("_", True)
    return value is True or str(value).upper() in ("ON", "T", "TRUE", ".TRUE.")


def _each_md(section: Mapping[str, Any] | None) -> int:
    each = _sec(section, "each")
    return int(each.get("md", 1)) if each else 1


CP2K_DEFAULTS = {"project_name": "PROJECT", "steps": 3, "timestep": 0.5, "temperature": 300.0, "seed": 2000}
"""CP2K's own defaults of the keywords read back when an input leaves them out."""


@dataclasses.dataclass(frozen=True)
class MDInput:
    """What CP2K will do with an MD input: the settings the engines and the mock honour.

    Times in fs, temperatures in K, positions in Angstrom as written in ``&COORD``.
    ``level`` is ``xtb`` when ``QS/METHOD`` is XTB, else ``pbe``. ``mo_index_range`` is the
    printed orbital window (1-based, inclusive); ``lumo_in_output`` is True when the LUMO
    comes from the MO_CUBES print of the main output (OT) rather than from the MOLog.
    """

    text: str
    sha256: str
    tree: dict[str, Any]
    project: str
    run_type: str
    level: str
    steps: int
    timestep_fs: float
    temperature_K: float
    seed: int
    positions_every: int | None
    velocities_every: int | None
    mo_every: int | None
    mo_filename: str
    mo_index_range: tuple[int, int] | None
    lumo_in_output: bool
    smearing_K: float | None
    symbols: list[str]
    positions_A: np.ndarray
    box_A: float
    center_coordinates: bool
    walltime: str | None

    @property
    def files(self) -> dict[str, str]:
        """CP2K's file names of this project (trajectories, energies, MOLog, restarts)."""
        return run_files(self.project, self.mo_filename)


def run_files(project: str = "md", mo_filename: str = "mo") -> dict[str, str]:
    """File names CP2K writes for an MD of ``project`` (shared by all segments)."""
    return {
        "positions": f"{project}-pos-1.xyz",
        "velocities": f"{project}-vel-1.xyz",
        "energies": f"{project}-1.ener",
        "molog": f"{project}-{mo_filename}-1.MOLog",
        "restart": f"{project}-1.restart",
        "wfn": f"{project}-RESTART.wfn",
    }


def segment_files(index: int) -> tuple[str, str]:
    """Input and output file names of segment ``index``: ``seg000.inp``, ``seg000.out``."""
    return f"seg{index:03d}.inp", f"seg{index:03d}.out"


def read_md_input(input_path: str | os.PathLike, xmlspec: str | os.PathLike | None = None) -> MDInput:
    """Read an MD (or GEO_OPT) input back with cp2k-input-tools; CP2K's defaults fill omitted keys.

    ``xmlspec`` defaults to the definition bundled with cp2k-input-tools (reading does not
    need the installed CP2K; a 2023.1 input reads with the 2024.1 definition).
    """
    from qdphonon.cp2k_input import bundled_xmlspec

    path = Path(input_path)
    raw = path.read_bytes()
    text = raw.decode()
    tree = parse_input_text(text, xmlspec or bundled_xmlspec())
    glob = _sec(tree, "global") or {}
    force_eval = _sec(tree, "force_eval") or {}
    dft = _sec(force_eval, "dft") or {}
    md = _sec(tree, "motion", "md") or {}
    mprint = _sec(tree, "motion", "print")
    traj, vel = _sec(mprint, "trajectory"), _sec(mprint, "velocities")
    for name, sec in (("TRAJECTORY", traj), ("VELOCITIES", vel)):
        if _on(sec) and str(sec.get("format", "xyz")).lower() != "xyz":
            raise ValueError(f"{path}: MOTION/PRINT/{name} FORMAT must be XYZ for the qdphonon engines")
    mo = _sec(dft, "print", "mo")
    smear = _sec(dft, "scf", "smear")
    subsys = _sec(force_eval, "subsys") or {}
    coords = (_sec(subsys, "coord") or {}).get("*", [])
    symbols, positions = [], []
    for line in coords:
        parts = line.split()
        symbols.append(parts[0])
        positions.append([float(x) for x in parts[1:4]])
    abc = (_sec(subsys, "cell") or {}).get("abc", [0.0, 0.0, 0.0])
    qs = _sec(dft, "qs") or {}
    mo_range = mo.get("mo_index_range") if mo else None
    return MDInput(
        text=text,
        sha256=hashlib.sha256(raw).hexdigest(),
        tree=tree,
        project=str(glob.get("project_name", glob.get("project", CP2K_DEFAULTS["project_name"]))),
        run_type=str(glob.get("run_type", "ENERGY_FORCE")).upper(),
        level="xtb" if str(qs.get("method", "")).lower() == "xtb" else "pbe",
        steps=int(md.get("steps", CP2K_DEFAULTS["steps"])),
        timestep_fs=float(md.get("timestep", CP2K_DEFAULTS["timestep"])),
        temperature_K=float(md.get("temperature", CP2K_DEFAULTS["temperature"])),
        seed=int(glob.get("seed", CP2K_DEFAULTS["seed"])),
        positions_every=_each_md(traj) if _on(traj) else None,
        velocities_every=_each_md(vel) if _on(vel) else None,
        mo_every=_each_md(mo) if _on(mo) else None,
        mo_filename=str(mo.get("filename", "MO")) if mo else "MO",
        mo_index_range=(int(mo_range[0]), int(mo_range[1])) if mo_range else None,
        lumo_in_output=_on(_sec(dft, "print", "mo_cubes")),
        smearing_K=float(smear.get("electronic_temperature", 300.0)) if _on(smear) else None,
        symbols=symbols,
        positions_A=np.array(positions, dtype=float).reshape(-1, 3),
        box_A=float(abc[0]),
        center_coordinates=_on(_sec(subsys, "topology", "center_coordinates")),
        walltime=None if glob.get("walltime") is None else str(glob.get("walltime")),
    )


def continuation_tree(
    tree: Mapping[str, Any],
    *,
    restart_file: str,
    wfn_file: str | None,
    remaining_steps: int,
) -> dict[str, Any]:
    """The tree of a continuation: ``EXT_RESTART`` (positions, velocities, thermostat, counters,
    random-number state), the SCF started from the saved wavefunction, ``STEPS`` set to the
    steps still to run (CP2K counts ``STEPS`` from the restored step), and
    ``CENTER_COORDINATES`` off (the restored positions are already in the box; centring them
    again shifts the whole trajectory at the restart)."""
    out = copy.deepcopy(dict(tree))
    out["+ext_restart"] = {
        "restart_file_name": restart_file,
        "restart_counters": True,
        "restart_pos": True,
        "restart_vel": True,
        "restart_thermostat": True,
        "restart_randomg": True,
    }
    force_eval = _sec(out, "force_eval")
    if wfn_file is not None and force_eval is not None:
        dft = force_eval.setdefault("+dft", {})
        dft["wfn_restart_file_name"] = wfn_file
        dft.setdefault("+scf", {})["scf_guess"] = "restart"
    out["+motion"]["+md"]["steps"] = int(remaining_steps)
    centre = _sec(force_eval, "subsys", "topology", "center_coordinates")
    if centre is not None:
        centre["_"] = False
    return out


def with_walltime(tree: Mapping[str, Any], walltime_s: float | None) -> dict[str, Any]:
    """The tree with ``GLOBAL/WALLTIME`` set (HH:MM:SS) so CP2K stops cleanly before the job does."""
    out = copy.deepcopy(dict(tree))
    if walltime_s is not None:
        out.setdefault("+global", {})["walltime"] = cp2k_input.walltime_hms(walltime_s)
    return out


def with_restart_backup(tree: Mapping[str, Any]) -> dict[str, Any]:
    """The tree with one backup of CP2K's restart file (``md-1.restart.bak-1``), the fall-back when a
    kill hits while the restart file is being written."""
    out = copy.deepcopy(dict(tree))
    restart = _sec(out, "motion", "print", "restart")
    if restart is not None:
        restart["backup_copies"] = max(1, int(restart.get("backup_copies", 1)))
    return out


# --- run-directory state and records --------------------------------------------------------

def _now_iso() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def write_json_atomic(path: str | os.PathLike, data: Mapping[str, Any]) -> None:
    """Write JSON (sorted keys, indented) through a temporary file and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            json.dump(data, fh, indent=2, sort_keys=True)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_json(path: str | os.PathLike) -> dict[str, Any] | None:
    """A JSON file's content, or None when it does not exist."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        return None


def _check_same_input(found_sha: str | None, sha: str, where: Path, input_path: Path) -> None:
    if found_sha is not None and found_sha != sha:
        raise RunDirMismatchError(
            f"{where} belongs to a run of another input (sha256 {found_sha[:12]}...) than {input_path} "
            f"(sha256 {sha[:12]}...); refusing to mix runs. Remove the run directory to start this input afresh."
        )


def _check_same_engine(found: str | None, engine: str, where: Path) -> None:
    if found is not None and found != engine:
        raise RunDirMismatchError(f"{where} records a complete {found} run; refusing to treat it as a {engine} run "
                                  "(remove the run directory to run this engine)")  # fmt: skip


def _foreign_files(run_dir: Path, files: Mapping[str, str]) -> list[str]:
    """Engine or CP2K files present in a run directory (what a fresh start must not overwrite)."""
    names = set(files.values()) | {STATE_FILE}
    found = [p.name for p in run_dir.iterdir() if p.name in names or re.fullmatch(r"seg\d{3,}\.(inp|out)", p.name)]
    return sorted(found)


def _wipe_run_files(run_dir: Path, files: Mapping[str, str]) -> None:
    """Remove CP2K's project files (and their backups) and segment files: a run that never got past step 0."""
    for p in run_dir.iterdir():
        base = re.sub(r"\.bak-\d+$", "", p.name)
        if base in files.values() or re.fullmatch(r"seg\d{3,}\.(inp|out)", p.name):
            p.unlink()


_STEP_START = re.compile(r"^\s*STEP_START_VAL\s+(\d+)\s*$", re.MULTILINE)


def restart_step(path: str | os.PathLike) -> int | None:
    """MD step stored in a CP2K restart file (``STEP_START_VAL``), or None if the file is missing or cut short.

    A complete restart file has its ``&END FORCE_EVAL`` and ends with an ``&END`` line (of
    FORCE_EVAL, or of the EXT_RESTART section that continuations append).
    """
    try:
        text = Path(path).read_text(errors="replace")
    except FileNotFoundError:
        return None
    lines = text.rstrip().splitlines()
    if not lines or not lines[-1].strip().upper().startswith("&END") or "&END FORCE_EVAL" not in text.upper():
        return None
    m = _STEP_START.search(text)
    return int(m.group(1)) if m else 0


def restart_source(run_dir: Path, files: Mapping[str, str]) -> tuple[str | None, int | None, str | None]:
    """(restart file name, its step, wavefunction file name or None) to continue from.

    Prefers CP2K's current restart file and falls back to its backup when the current one is
    cut short; the wavefunction (only an SCF guess) is used when it looks whole (same size as
    its backup), else its backup, else none.
    """
    chosen = (None, None)
    for name in (files["restart"], files["restart"] + ".bak-1"):
        step = restart_step(run_dir / name)
        if step is not None:
            chosen = (name, step)
            break
    wfn = None
    main, bak = run_dir / files["wfn"], run_dir / (files["wfn"] + ".bak-1")
    if main.is_file() and (not bak.is_file() or main.stat().st_size == bak.stat().st_size):
        wfn = files["wfn"]
    elif bak.is_file():
        wfn = bak.name
    return chosen[0], chosen[1], wfn


def last_energy_step(run_dir: Path, files: Mapping[str, str]) -> int | None:
    """Last MD step with an energy record (parsed by :func:`qdphonon.parsers.read_energies`), or None."""
    from qdphonon import parsers

    path = run_dir / files["energies"]
    if not path.is_file() or path.stat().st_size == 0:
        return None
    try:
        return int(parsers.read_energies(path).step.max())
    except ValueError:
        return None


def scf_unconverged_steps(run_dir: Path) -> list[int]:
    """MD steps whose SCF did not converge, from every segment's main output (a step re-evaluated by a
    continuation counts with its last evaluation); parsed by :func:`qdphonon.parsers.read_main_output`."""
    from qdphonon import parsers

    verdict: dict[int, bool] = {}
    for path in parsers.segment_outputs(run_dir):
        for ev in parsers.read_main_output(path).evaluations:
            if ev.kind != "trailing" and ev.step is not None:
                verdict[int(ev.step)] = ev.scf_converged is not False
    return sorted(s for s, ok in verdict.items() if not ok)


# --- launching CP2K -------------------------------------------------------------------------

def find_cp2k(cp2k_command: str = "cp2k.psmp") -> str:
    """Absolute path of the CP2K executable; :class:`CP2KNotFoundError` with install hints when missing."""
    exe = shutil.which(cp2k_command)
    if exe is None:
        raise CP2KNotFoundError(
            f"engine 'cp2k': CP2K executable {cp2k_command!r} not found on PATH; {CP2K_INSTALL_HINT}, "
            "or use --engine mock for synthetic output"
        )
    return exe


def cp2k_command_line(
    exe: str, input_name: str, output_name: str, *, mpi: str | None = None, tasks: int = 1
) -> list[str]:
    """``{mpi} -n {tasks} cp2k -i IN -o OUT`` for several MPI tasks, else a single rank ``cp2k -i IN -o OUT``."""
    cmd = [exe, "-i", input_name, "-o", output_name]
    if int(tasks) > 1:
        if not mpi:
            raise ValueError(f"{tasks} MPI tasks need an MPI launcher (--mpi mpirun or srun)")
        launcher = shutil.which(mpi)
        if launcher is None:
            raise CP2KNotFoundError(f"engine 'cp2k': MPI launcher {mpi!r} not found on PATH; {CP2K_INSTALL_HINT}")
        cmd = [launcher, "-n", str(int(tasks))] + cmd
    return cmd


def cp2k_environment(threads: int = 1, mpi: str | None = None, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment of a CP2K process: ``OMP_NUM_THREADS`` threads per rank, one BLAS thread, and
    OpenMPI's root permission when running as root (containers, CI)."""
    env = dict(os.environ if base is None else base)
    env["OMP_NUM_THREADS"] = str(int(threads))
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        env.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
        env.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
    return env


@dataclasses.dataclass
class ProcessResult:
    """How a CP2K process ended: exit status (shell style, 128+N for signal N), signal name, wall seconds."""

    exit_status: int
    signal: str | None
    wall_s: float
    stopped_by_us: str | None = None


def run_process(
    cmd: Sequence[str],
    cwd: Path,
    env: Mapping[str, str],
    *,
    watch: Callable[[], str | None] | None = None,
    poll_s: float = 2.0,
    on_start: Callable[[int], None] | None = None,
) -> ProcessResult:
    """Run ``cmd`` in its own process group, forwarding SIGTERM/SIGINT/SIGHUP to the group.

    ``watch`` is called every ``poll_s`` seconds; a non-None return is a reason to stop the
    process (SIGTERM to the group). ``on_start`` receives the process id.
    """
    t0 = time.monotonic()
    proc = subprocess.Popen(list(cmd), cwd=cwd, env=dict(env), start_new_session=True)
    if on_start is not None:
        on_start(proc.pid)
    received: list[int] = []

    def forward(signum, _frame):
        received.append(signum)
        _signal_group(proc.pid, signal.SIGTERM)

    forwarded = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
    previous = {}
    for sig in forwarded:
        try:
            previous[sig] = signal.signal(sig, forward)
        except ValueError:  # not the main thread
            pass
    stopped = None
    try:
        while True:
            try:
                proc.wait(timeout=poll_s)
                break
            except subprocess.TimeoutExpired:
                if watch is not None and stopped is None:
                    stopped = watch()
                    if stopped is not None:
                        _signal_group(proc.pid, signal.SIGTERM)
    except BaseException:
        _signal_group(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    rc = proc.returncode
    sig_name = signal.Signals(-rc).name if rc < 0 else None
    if received and stopped is None:
        stopped = f"received {signal.Signals(received[0]).name}"
    return ProcessResult(128 - rc if rc < 0 else rc, sig_name, time.monotonic() - t0, stopped)


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


_WALLTIME_STOP = "exceeded requested execution time"


def _ended_on_walltime(output: Path) -> bool:
    """Whether CP2K stopped an MD on its WALLTIME ("MD run terminated - exceeded requested execution time")."""
    try:
        with open(output, "rb") as fh:
            fh.seek(max(0, output.stat().st_size - 200_000))
            tail = fh.read().decode(errors="replace")
    except FileNotFoundError:
        return False
    return "run terminated - " + _WALLTIME_STOP in tail


class _SCFWatch:
    """Stops a segment at the first MD step whose SCF did not converge (policy ``fail``).

    Scans the new bytes of the output for CP2K's warnings and lets
    :func:`qdphonon.parsers.read_main_output` confirm that a finished step is affected (an
    SCF cut by the WALLTIME, or an inner loop that an outer SCF loop later converges, is not).
    """

    def __init__(self, output: Path, start_step: int = 0):
        self.output = output
        self.start_step = start_step
        self.offset = 0
        self.suspect = False

    def __call__(self) -> str | None:
        from qdphonon import parsers

        try:
            with open(self.output, "rb") as fh:
                fh.seek(self.offset)
                chunk = fh.read()
        except FileNotFoundError:
            return None
        self.offset += len(chunk)
        if b"SCF run NOT converged" in chunk or b"outer SCF loop FAILED" in chunk:
            self.suspect = True
        if not self.suspect:
            return None
        evals = parsers.read_main_output(self.output).evaluations
        bad = [self.start_step if ev.step is None else ev.step
               for ev in evals if ev.kind != "trailing" and ev.scf_converged is False]  # fmt: skip
        if bad:
            return f"SCF not converged at MD step {bad[0]} (policy fail)"
        self.suspect = bool(evals) and evals[-1].kind == "trailing" and evals[-1].scf_converged is False
        return None


class RunInterrupted(EngineError):
    """The engine received a termination signal and stopped CP2K; the run directory can be continued."""

    def __init__(self, message: str, exit_status: int):
        super().__init__(message)
        self.exit_status = exit_status


def _abort_message(output: Path) -> str:
    """CP2K's ABORT box (or the last lines) of an output, for error messages."""
    try:
        text = output.read_text(errors="replace")
    except FileNotFoundError:
        return f"{output} was not written"
    m = re.search(r"\[ABORT\].*?(?=\n\s*\*{10,}\s*\n|\Z)", text, re.DOTALL)
    if m:
        return " ".join(line.strip(" *") for line in m.group(0).splitlines() if line.strip(" *"))
    return " | ".join(line.strip() for line in text.strip().splitlines()[-5:])


def _segment_header(
    index: int, md: MDInput, input_path: Path, start: int | None, restart: str | None, spec_desc: str
) -> str:
    origin = "fresh start" if start is None else f"continues from MD step {start} ({restart})"
    return (
        f"! qdphonon segment {index:03d} of {input_path.name} (sha256 {md.sha256[:16]}), level {md.level}: {origin}; "
        f"validated against {spec_desc}\n"
    )


def _reconcile_killed(state: dict[str, Any], run_dir: Path, files: Mapping[str, str]) -> None:
    """A segment still marked ``running`` was killed together with its engine (SIGKILL, node failure)."""
    for seg in state["segments"]:
        if seg.get("ended") != "running":
            continue
        out = run_dir / seg["output"]
        seg["end_step"] = restart_source(run_dir, files)[1]
        seg["exit_status"] = None
        seg["wall_s"] = round(out.stat().st_mtime - seg["started_epoch"], 3) if out.is_file() else None
        finished = seg["end_step"] is not None and seg["end_step"] >= state["steps"] and _output_ended(out)
        seg["ended"] = "completed" if finished else "killed"
        how = "after CP2K finished" if finished else "while CP2K ran (killed with its job)"
        seg["note"] = f"engine process gone {how}"


def _output_ended(output: Path) -> bool:
    """Whether a CP2K main output reached its ``PROGRAM ENDED AT`` line."""
    try:
        with open(output, "rb") as fh:
            fh.seek(max(0, output.stat().st_size - 4096))
            return b"PROGRAM ENDED AT" in fh.read()
    except FileNotFoundError:
        return False


def _open_md_run(input_path, run_dir, record_path, engine: str):
    """Paths, input SHA-256, the completion record (if this input already ran to the end with
    this engine; another input or engine is refused) and the MD settings read from the input."""
    input_path, run_dir = Path(input_path), Path(run_dir)
    record_path = Path(record_path) if record_path else run_dir / "run.json"
    sha = hashlib.sha256(input_path.read_bytes()).hexdigest()
    record = read_json(record_path)
    if record is not None:
        _check_same_input(record.get("input_sha256"), sha, record_path, input_path)
        _check_same_engine(record.get("engine"), engine, record_path)
        return input_path, run_dir, record_path, sha, record, None
    md = read_md_input(input_path)
    if md.run_type != "MD":
        raise ValueError(f"{input_path}: RUN_TYPE {md.run_type}, expected MD")
    return input_path, run_dir, record_path, sha, None, md


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
    on_scf_failure: str = "drop_step",
    record_path: str | os.PathLike | None = None,
    poll_s: float = 2.0,
) -> dict[str, Any]:
    """Run (or continue) the NVT AIMD of ``input_path`` with real CP2K in ``run_dir``; return the run record.

    One call runs at most one segment: a fresh start (``seg000``), or a continuation from
    CP2K's restart file when the directory holds a partial run (killed, wall-time stop);
    a complete run (``run.json`` present for the same input) is returned untouched; a
    directory of another input is refused (:class:`RunDirMismatchError`). With
    ``runtime_min`` (the job's wall time, minutes) CP2K's own WALLTIME is set to
    ``runtime_min - walltime_margin_min`` so the job ends cleanly with a restart file;
    a segment that stops there raises :class:`WalltimeReached` (exit status
    :data:`EXIT_WALLTIME`). ``on_scf_failure='fail'`` stops CP2K at the first MD step whose
    SCF did not converge and raises :class:`SCFConvergenceError`; ``drop_step`` and
    ``keep_flagged`` only count such steps (the parser applies them).

    MPI: ``{mpi} -n {tasks} cp2k ...`` when ``tasks > 1``, else one rank; ``threads`` OpenMP
    threads per rank. The record is written atomically to ``record_path`` (default
    ``run_dir/run.json``) only when the last MD step equals ``STEPS``.
    """
    t_called = time.monotonic()
    from qdphonon import parsers
    from qdphonon.cp2k_input import cp2k_version, installed_xmlspec

    if on_scf_failure not in SCF_FAILURE_POLICIES:
        raise ValueError(f"on_scf_failure must be one of {', '.join(SCF_FAILURE_POLICIES)}, got {on_scf_failure!r}")
    input_path, run_dir, record_path, sha, record, md = _open_md_run(input_path, run_dir, record_path, "cp2k")
    if record is not None:
        return record
    files = md.files
    state_path = run_dir / STATE_FILE
    state = read_json(state_path)
    if state is None:
        foreign = _foreign_files(run_dir, files) if run_dir.is_dir() else []
        if foreign:
            raise RunDirMismatchError(
                f"{run_dir} holds {', '.join(foreign[:6])} but no {STATE_FILE}: not a run of this engine; "
                "refusing to overwrite it (remove the directory to start afresh)"
            )
        state = {"engine": "cp2k", "input": str(input_path), "input_sha256": sha, "steps": md.steps,
                 "project": md.project, "segments": [], "discarded_segments": []}  # fmt: skip
    _check_same_input(state.get("input_sha256"), sha, state_path, input_path)
    if state.get("engine") != "cp2k":
        raise RunDirMismatchError(f"{run_dir} holds a {state.get('engine')} run; refusing to continue it with CP2K")
    exe = find_cp2k(cp2k_command)
    spec, spec_desc = installed_xmlspec(cp2k_command)
    run_dir.mkdir(parents=True, exist_ok=True)
    _reconcile_killed(state, run_dir, files)
    restart_name, k, wfn = restart_source(run_dir, files)
    if k is None and state["segments"]:
        written = last_energy_step(run_dir, files)
        if written is not None and written > 1:
            raise EngineError(
                f"{run_dir}: MD steps up to {written} were written but no readable restart file "
                f"({files['restart']} or its .bak-1) is left; cannot continue (remove the directory to start afresh)"
            )
        state["discarded_segments"].extend(state["segments"])
        state["segments"] = []
        _wipe_run_files(run_dir, files)
    write_json_atomic(state_path, state)

    if k is None or k < md.steps:
        index = len(state["segments"])
        if k is None:
            tree: dict[str, Any] = md.tree
        else:
            trimmed = parsers.truncate_to_complete_records(run_dir)
            if any(trimmed.values()):
                print(f"run-aimd: trimmed partial records before continuing: {trimmed}", file=sys.stderr)
            tree = continuation_tree(md.tree, restart_file=restart_name, wfn_file=wfn, remaining_steps=md.steps - k)
        tree = with_restart_backup(tree)
        if runtime_min is not None:
            walltime_s = (float(runtime_min) - float(walltime_margin_min)) * 60.0 - (time.monotonic() - t_called)
            if walltime_s < 1:
                raise ValueError(
                    f"runtime {runtime_min} min minus the margin {walltime_margin_min} min leaves no time for CP2K"
                )
            tree = with_walltime(tree, walltime_s)
        inp_name, out_name = segment_files(index)
        header = _segment_header(index, md, input_path, k, restart_name, spec_desc)
        (run_dir / inp_name).write_text(render_tree(tree, spec, header))
        cmd = cp2k_command_line(exe, inp_name, out_name, mpi=mpi, tasks=tasks)
        seg = {"index": index, "input": inp_name, "output": out_name, "start_step": 0 if k is None else k,
               "restart_file": restart_name, "wfn_file": wfn if k is not None else None,
               "command": shlex.join(cmd), "started_at": _now_iso(), "started_epoch": time.time(),
               "threads": int(threads), "tasks": int(tasks), "ended": "running"}  # fmt: skip
        state["segments"].append(seg)
        write_json_atomic(state_path, state)
        watch = _SCFWatch(run_dir / out_name, seg["start_step"]) if on_scf_failure == "fail" else None

        def started(pid: int) -> None:
            seg["pid"] = pid
            write_json_atomic(state_path, state)

        result = run_process(cmd, run_dir, cp2k_environment(threads, mpi), watch=watch, poll_s=poll_s, on_start=started)
        end = restart_source(run_dir, files)[1]
        seg.update(end_step=end, wall_s=round(result.wall_s, 3), exit_status=result.exit_status, signal=result.signal)
        _classify_segment(seg, result, run_dir / out_name, end, md.steps)
        write_json_atomic(state_path, state)
        _raise_for_segment(seg, result, run_dir / out_name, md.steps)
        k = end

    last = last_energy_step(run_dir, files)
    if last != md.steps:
        raise EngineError(
            f"{run_dir / files['energies']}: last MD step {last}, expected {md.steps}; the run is inconsistent"
        )
    unconverged = scf_unconverged_steps(run_dir)
    if unconverged and on_scf_failure == "fail":
        raise SCFConvergenceError(f"{run_dir}: SCF not converged at MD step(s) {unconverged[:20]} (policy fail)")
    record = _run_record(
        engine="cp2k", md=md, input_path=input_path, run_dir=run_dir, segments=state["segments"],
        cp2k_version=cp2k_version(cp2k_command) or "unknown", synthetic=False,
        extra={"scf_unconverged_steps": unconverged, "on_scf_failure": on_scf_failure,
               "discarded_segments": len(state.get("discarded_segments", []))},
    )  # fmt: skip
    write_json_atomic(record_path, record)
    state["complete"] = True
    write_json_atomic(state_path, state)
    return record


def _classify_segment(seg: dict[str, Any], result: ProcessResult, output: Path, end: int | None, steps: int) -> None:
    """Set ``ended`` (completed | walltime | killed | failed) and a note."""
    if result.stopped_by_us and result.stopped_by_us.startswith("SCF"):
        seg["ended"], seg["note"] = "failed", result.stopped_by_us
    elif result.stopped_by_us or result.signal:
        seg["ended"] = "killed"
        seg["note"] = result.stopped_by_us or f"CP2K killed by {result.signal}"
    elif result.exit_status != 0:
        seg["ended"], seg["note"] = "failed", _abort_message(output)[:500]
    elif end is not None and end >= steps:
        seg["ended"] = "completed"
    elif _ended_on_walltime(output):
        seg["ended"] = "walltime"
    else:
        seg["ended"], seg["note"] = "failed", f"CP2K ended cleanly at MD step {end} of {steps} without a wall-time stop"


def _raise_for_segment(seg: dict[str, Any], result: ProcessResult, output: Path, steps: int) -> None:
    ended, end = seg["ended"], seg["end_step"]
    if ended == "completed":
        return
    where = f"segment {seg['input']} (MD steps {seg['start_step']}..{end} of {steps})"
    if ended == "walltime" and (end is None or end <= seg["start_step"]):
        raise EngineError(f"CP2K's WALLTIME ended {where} before it finished an MD step; give the job more "
                          "time (runtime) or a smaller wall-time margin")  # fmt: skip
    if ended == "walltime":
        raise WalltimeReached(f"CP2K reached its WALLTIME in {where}; run again to continue from the restart file")
    if ended == "failed" and (seg.get("note") or "").startswith("SCF"):
        raise SCFConvergenceError(f"{seg['note']} in {where}")
    if ended == "killed":
        received = re.match(r"received (SIG\w+)", seg.get("note") or "")
        status = 128 + int(signal.Signals[received.group(1)]) if received else result.exit_status
        raise RunInterrupted(f"CP2K stopped ({seg['note']}) in {where}; run again to continue", status)
    raise EngineError(f"CP2K failed in {where} with exit status {result.exit_status}: {seg.get('note')}")


def _run_record(
    *,
    engine: str,
    md: MDInput,
    input_path: Path,
    run_dir: Path,
    segments: list[dict[str, Any]],
    cp2k_version: str,
    synthetic: bool,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``run.json`` of a complete run (DESIGN §5 provenance; keys documented in the module docstring)."""
    from qdphonon import __version__

    segs = [
        {k: s.get(k) for k in ("index", "input", "output", "start_step", "end_step", "wall_s", "exit_status",
                                "signal", "ended", "note", "command", "started_at", "restart_file")}
        for s in segments
    ]  # fmt: skip
    record = {
        "engine": engine,
        "level": md.level,
        "cp2k_version": cp2k_version,
        "command": segs[0]["command"] if segs else None,
        "qdphonon_command": shlex.join([Path(sys.argv[0]).name] + sys.argv[1:]),
        "qdphonon_version": __version__,
        "input": str(input_path),
        "input_sha256": md.sha256,
        "run_dir": str(run_dir),
        "project": md.project,
        "files": md.files,
        "steps_requested": md.steps,
        "total_steps": segs[-1]["end_step"] if segs else None,
        "timestep_fs": md.timestep_fs,
        "temperature_K": md.temperature_K,
        "seed": md.seed,
        "smearing_K": md.smearing_K,
        "segments": segs,
        "synthetic": bool(synthetic),
        "completed_at": _now_iso(),
    }
    if synthetic:
        record["note"] = SYNTHETIC_LABEL + ": no CP2K was run; files follow CP2K 2023.1 formats"
    record.update(extra or {})
    return record


# --- geometry optimisation -------------------------------------------------------------------

def write_labelled_structure(dot, path: str | os.PathLike, relaxed: str, extra: Mapping[str, str] | None = None) -> None:
    """Write ``dot`` as qdphonon's extended XYZ (labels preserved) with ``relaxed=<how>`` in the comment line.

    Values with spaces are quoted. Only the XYZ is written (no JSON sidecar).
    """
    from qdphonon import structures

    lines = structures._xyz_text(dot).split("\n")
    tokens = {"relaxed": relaxed, **(extra or {})}
    lines[1] += "".join(f' {k}="{v}"' if re.search(r"\s", v) else f" {k}={v}" for k, v in tokens.items())
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("\n".join(lines), encoding="utf-8", newline="\n")
    os.replace(tmp, path)


def last_xyz_frame(path: str | os.PathLike) -> tuple[list[str], np.ndarray, str]:
    """(symbols, positions [Angstrom], comment) of the last complete frame of a plain XYZ trajectory
    (CP2K's GEO_OPT ``relax-pos-1.xyz``, whose comment lines carry no time)."""
    lines = Path(path).read_text().splitlines()
    frames, i = [], 0
    while i < len(lines):
        try:
            n = int(lines[i].strip())
        except ValueError:
            break
        if i + 2 + n > len(lines):
            break
        frames.append(i)
        i += n + 2
    if not frames:
        raise ValueError(f"{path}: no complete XYZ frame")
    start = frames[-1]
    n = int(lines[start])
    rows = [line.split() for line in lines[start + 2 : start + 2 + n]]
    return [r[0] for r in rows], np.array([[float(x) for x in r[1:4]] for r in rows]), lines[start + 1]


def recentre(positions_A: np.ndarray, box_A: float) -> np.ndarray:
    """Positions shifted so their bounding-box centre sits at the box centre (the structures' convention
    and what CP2K's ``CENTER_COORDINATES`` does)."""
    lo, hi = positions_A.min(axis=0), positions_A.max(axis=0)
    return positions_A + (0.5 * box_A - 0.5 * (lo + hi))


def relax(
    structure_xyz: str | os.PathLike,
    workdir: str | os.PathLike,
    out_xyz: str | os.PathLike,
    level: str,
    *,
    engine: str = "cp2k",
    cp2k_command: str = "cp2k.psmp",
    mpi: str | None = None,
    tasks: int = 1,
    threads: int = 1,
    max_iter: int = 200,
    smearing_K: float | None = None,
    eps_scf: float = 1e-6,
    max_scf: int = 200,
    overrides: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Geometry optimisation at the MD's level (DESIGN §3: the ideal cut is far from a minimum).

    ``cp2k``: a GEO_OPT input built by :func:`qdphonon.cp2k_input.cp2k_input_tree` (same level,
    SCF settings and overrides as the MD), run in ``workdir`` (``relax.inp``/``relax.out``);
    the final frame is written to ``out_xyz`` with the region/layer labels of the input
    structure and ``relaxed=cp2k-<level>`` (plus ``relax_converged=T|F``). ``mock``: the ideal
    structure is passed through, labelled ``relaxed="none (mock engine)"``. Returns a summary
    (also written to ``workdir/relax.json`` for cp2k).
    """
    from qdphonon import cp2k_input, structures

    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; expected one of {', '.join(ENGINES)}")
    dot = structures.read_structure(structure_xyz)
    if engine == "mock":
        write_labelled_structure(dot, out_xyz, "none (mock engine)")
        return {"engine": "mock", "relaxed": False, "synthetic": True, "structure": str(structure_xyz)}
    exe = find_cp2k(cp2k_command)
    spec, spec_desc = cp2k_input.installed_xmlspec(cp2k_command)
    tree = cp2k_input.cp2k_input_tree(
        dot.symbols, dot.positions_A, dot.box_A, level=level, run_type="GEO_OPT",
        scf=cp2k_input.SCFSettings(eps_scf=eps_scf, max_scf=max_scf, smearing_K=smearing_K),
        geo_opt_max_iter=max_iter, overrides=overrides,
    )  # fmt: skip
    project = tree["global"]["project_name"]
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    for p in workdir.iterdir():
        if p.name.startswith(f"{project}-") or p.name in ("relax.inp", "relax.out", "relax.json"):
            p.unlink()
    header = f"! qdphonon GEO_OPT input, level {level}; validated against {spec_desc}\n"
    (workdir / "relax.inp").write_text(header + cp2k_input.render_input(tree, spec))
    cmd = cp2k_command_line(exe, "relax.inp", "relax.out", mpi=mpi, tasks=tasks)
    result = run_process(cmd, workdir, cp2k_environment(threads, mpi))
    out = workdir / "relax.out"
    if result.exit_status != 0:
        raise EngineError(
            f"CP2K geometry optimisation failed (exit status {result.exit_status}): {_abort_message(out)[:500]}"
        )
    text = out.read_text(errors="replace")
    converged = "GEOMETRY OPTIMIZATION COMPLETED" in text
    symbols, positions, comment = last_xyz_frame(workdir / f"{project}-pos-1.xyz")
    if symbols != list(dot.symbols):
        raise EngineError(f"{workdir / f'{project}-pos-1.xyz'}: atoms differ from {structure_xyz}")
    relaxed = dataclasses.replace(dot, positions_A=recentre(positions, dot.box_A))
    write_labelled_structure(relaxed, out_xyz, f"cp2k-{level}", {"relax_converged": "T" if converged else "F"})
    energy = re.search(r"E\s*=\s*(" + r"[-+0-9.Ee]+" + r")", comment)
    summary = {
        "engine": "cp2k", "level": level, "relaxed": True, "converged": converged,
        "cp2k_version": cp2k_input.cp2k_version(cp2k_command), "command": shlex.join(cmd),
        "wall_s": round(result.wall_s, 3), "final_energy_Ha": float(energy.group(1)) if energy else None,
        "max_displacement_A": float(np.abs(relaxed.positions_A - dot.positions_A).max()),
        "structure": str(structure_xyz), "out": str(out_xyz), "synthetic": False,
    }  # fmt: skip
    write_json_atomic(workdir / "relax.json", summary)
    if not converged:
        print(f"relax: warning: geometry optimisation not converged in {max_iter} steps; "
              f"{out_xyz} holds the last geometry (relax_converged=F)", file=sys.stderr)  # fmt: skip
    return summary


# --- mock engine -------------------------------------------------------------------------------

MOCK_DEFAULTS: dict[str, Any] = {
    "region_energies_meV": [2.0, 7.0, 17.0],
    "region_widths_meV": [0.5, 1.2, 1.5],
    "modes_per_region": 12,
    "lambda_ref_meV": 93.8,
    "surface_fraction_ref": 0.8293,
    "region_fractions": [0.45, 0.35, 0.20],
    "surface_exponents": [2.90, 2.90, 1.0],
    "shell_factors": [0.326, 0.326, 1.0],
    "vbm_share": 0.4,
    "common_shift_ratio": 0.5,
    "vbm_eV": -5.5,
    "gap_bulk_eV": 2.35,
    "confinement_eV_nm2": 1.8,
    "orbital_spacing_eV": 0.05,
    "calibrate_realised_variance": True,
    "atom_region_weights": {
        "Cs": [0.60, 0.35, 0.05],
        "Pb": [0.30, 0.50, 0.20],
        "Br": [0.15, 0.45, 0.40],
        "Ca": [0.20, 0.40, 0.40],
        "Sr": [0.30, 0.45, 0.25],
    },
    "surface_softening": 0.7,
    "oscillators_per_axis": 2,
    "potential_Ha_per_atom": {"Cs": -0.75, "Ca": -1.5, "Sr": -1.4, "Pb": -3.5, "Br": -3.6},
}
"""Parameters of the mock engine's harmonic model (config ``mock:``; any subset overrides these).

Band edges (a linear coupling to modes in three spectral regions):

* ``region_energies_meV`` / ``region_widths_meV`` (3 floats each): centres and spreads of the
  mode energies of the low (surface), intermediate and LO regions; mode energies are drawn
  from a normal distribution clipped to centre +- 2 widths.
* ``modes_per_region`` (int): modes per region (random phases, thermal amplitudes).
* ``lambda_ref_meV`` (float): total reorganisation energy of a core-only dot whose surface
  fraction is ``surface_fraction_ref`` (float; 0.8293 = the n = 4 cube, 345 of 416 atoms in the
  outer layer). 93.8 meV gives that 2.4 nm dot a gap std of 12.7 meV at 10 K, i.e. the
  reference study's 164 meV at 300 K.
* ``region_fractions`` (3 floats, sum 1): share of ``lambda_ref_meV`` per region.
* ``surface_exponents`` (3 floats): lambda_R scales as (surface fraction / reference)^p_R, so
  smaller dots (more surface) couple more strongly; 2.90 for the surface-dominated low and
  intermediate regions and 1.0 for the LO region give the n = 6 dot 55.4 meV (126 meV at 300 K).
* ``shell_factors`` (3 floats): factor on lambda_R per shell layer; 0.326 on the surface
  regions gives the n = 6, k = 1 core/shell dot 28.3 meV (90 meV at 300 K).
* ``vbm_share`` (float): fraction of a gap fluctuation carried by the VBM (it moves down by
  that share, the CBM up by the rest); ``common_shift_ratio`` (float): std of a shift common
  to both edges (cancels in the gap) relative to the gap std.
* ``vbm_eV`` (float), ``gap_bulk_eV`` (float), ``confinement_eV_nm2`` (float): mean VBM and mean
  gap ``gap_bulk + confinement / L^2`` with L the edge (nm) of the core (the whole dot without
  a shell): 2.93 eV at 1.8 nm to 2.45 eV at 4.2 nm. ``orbital_spacing_eV`` (float): mean spacing
  of the other printed orbitals below the HOMO and above the LUMO.
* ``calibrate_realised_variance`` (bool): rescale each region's gap modes so that the variance
  realised over the whole trajectory equals ``2 lambda_R k_B T`` exactly. Without it, a few
  periods of the ~2 meV modes in a trajectory of a few ps scatter the gap std by about 13 %
  (one sigma) between replicas, as a real finite MD would.

Atoms (independent harmonic oscillators around the input geometry, classical thermal ensemble
at the MD temperature):

* ``atom_region_weights`` (element -> 3 floats): probability that an oscillator of that
  element has an energy from the low, intermediate or LO region.
* ``surface_softening`` (float): factor on the oscillator energies of atoms outside the core
  (regions surface and shell): surface atoms are softer.
* ``oscillators_per_axis`` (int): oscillators per atom and Cartesian axis (equal energy share).
* ``potential_Ha_per_atom`` (element -> float): constant part of the synthetic potential energy.
"""


def mock_params(overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """:data:`MOCK_DEFAULTS` with ``overrides`` applied (nested element tables merged); unknown keys refused."""
    params = copy.deepcopy(MOCK_DEFAULTS)
    for key, value in (overrides or {}).items():
        if key not in MOCK_DEFAULTS:
            raise ValueError(f"mock: unknown parameter {key!r}; known: {', '.join(sorted(MOCK_DEFAULTS))}")
        if isinstance(MOCK_DEFAULTS[key], dict):
            params[key] = {**params[key], **dict(value)}
        else:
            params[key] = copy.deepcopy(value)
    for key in ("region_energies_meV", "region_widths_meV", "region_fractions", "surface_exponents", "shell_factors"):
        if len(params[key]) != 3:
            raise ValueError(f"mock: {key} needs 3 values (low, intermediate, LO), got {params[key]}")
    return params


def mock_seed(system: str, seed: int) -> int:
    """The mock's random seed from the system name and the replica's CP2K seed (reproducible runs)."""
    return int.from_bytes(hashlib.sha256(f"qdphonon-mock:{system}:{int(seed)}".encode()).digest()[:8], "little")


def surface_fraction(layers: Sequence[int]) -> float:
    """Fraction of atoms in the outermost octahedral layer (layer 0): the dot's surface fraction."""
    layers = np.asarray(layers)
    return float(np.mean(layers == 0))


def mock_reorganisation_meV(fraction: float, shell_layers: int, params: Mapping[str, Any]) -> np.ndarray:
    """Reorganisation energy per region (low, intermediate, LO) in meV of a dot with this surface fraction."""
    ratio = fraction / float(params["surface_fraction_ref"])
    lam = float(params["lambda_ref_meV"]) * np.asarray(params["region_fractions"], dtype=float)
    lam = lam * ratio ** np.asarray(params["surface_exponents"], dtype=float)
    return lam * np.asarray(params["shell_factors"], dtype=float) ** int(shell_layers)


def mock_gap_std_meV(fraction: float, shell_layers: int, temperature_K: float, params: Mapping[str, Any]) -> float:
    """Ensemble std of the mock gap (meV): sqrt(2 lambda k_B T) (classical, DESIGN §1)."""
    lam = float(mock_reorganisation_meV(fraction, shell_layers, params).sum())
    return float(np.sqrt(2.0 * lam * units.BOLTZMANN_meV_per_K * temperature_K))


def mock_mean_levels_eV(
    size: Sequence[int], shell_layers: int, lattice_A: float, params: Mapping[str, Any]
) -> tuple[float, float]:
    """(mean VBM, mean gap) in eV: a confinement law in the edge of the core, L = (min(size) - 2k) a."""
    edge_nm = max(1, min(size) - 2 * int(shell_layers)) * lattice_A / 10.0
    return float(params["vbm_eV"]), float(params["gap_bulk_eV"]) + float(params["confinement_eV_nm2"]) / edge_nm**2


def mock_modes(
    rng: np.random.Generator, lambdas_meV: Sequence[float], temperature_K: float, params: Mapping[str, Any]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(energies [meV], amplitudes [meV], phases [rad]) of the modes a band energy couples to.

    Per region, ``modes_per_region`` modes with energies around the region's centre and
    classical thermal amplitudes (exponentially distributed squares), normalised so that
    the region's ensemble variance is exactly ``2 lambda_R k_B T`` (sum of a^2/2); amplitudes
    therefore scale with sqrt(T).
    """
    n = int(params["modes_per_region"])
    kT = units.BOLTZMANN_meV_per_K * temperature_K
    energies, amplitudes = [], []
    for centre, width, lam in zip(params["region_energies_meV"], params["region_widths_meV"], lambdas_meV):
        e = np.clip(rng.normal(centre, width, n), centre - 2 * width, centre + 2 * width)
        w = rng.exponential(1.0, n)
        energies.append(np.maximum(e, 0.1))
        amplitudes.append(np.sqrt(4.0 * lam * kT * w / w.sum()))
    phases = rng.uniform(0.0, 2 * np.pi, 3 * n)
    return np.concatenate(energies), np.concatenate(amplitudes), phases


def mode_signal(times_fs: np.ndarray, energies_meV: np.ndarray, amplitudes: np.ndarray, phases: np.ndarray) -> np.ndarray:
    """Sum of a cos(omega t + phi) at the given times; omega = E / hbar."""
    omega = np.asarray(energies_meV) / units.HBAR_meV_fs
    return np.cos(np.outer(times_fs, omega) + phases) @ amplitudes


def region_signals(times_fs: np.ndarray, energies_meV: np.ndarray, amplitudes: np.ndarray, phases: np.ndarray,
                   modes_per_region: int) -> np.ndarray:  # fmt: skip
    """The mode signal of each region separately: shape (3, times), in the amplitudes' unit."""
    return np.stack([
        mode_signal(times_fs, energies_meV[sl], amplitudes[sl], phases[sl])
        for sl in (slice(r * modes_per_region, (r + 1) * modes_per_region) for r in range(3))
    ])  # fmt: skip


@dataclasses.dataclass(frozen=True)
class MockBandEdges:
    """Synthetic HOMO/LUMO per MD step (eV) and the model behind them."""

    vbm_eV: np.ndarray
    cbm_eV: np.ndarray
    gap_mean_eV: float
    gap_std_meV: float
    lambdas_meV: np.ndarray
    surface_fraction: float


def mock_band_edges(
    times_fs: np.ndarray, *, size: Sequence[int], shell_layers: int, lattice_A: float, layers: Sequence[int],
    temperature_K: float, seed: int, params: Mapping[str, Any],
) -> MockBandEdges:  # fmt: skip
    """VBM and CBM at every time: mean levels plus linear couplings to modes of the three regions."""
    fraction = surface_fraction(layers)
    lambdas = mock_reorganisation_meV(fraction, shell_layers, params)
    gap_modes = mock_modes(np.random.default_rng([seed, 1]), lambdas, temperature_K, params)
    common_lambdas = lambdas * float(params["common_shift_ratio"]) ** 2
    common_modes = mock_modes(np.random.default_rng([seed, 2]), common_lambdas, temperature_K, params)
    d_gap = region_signals(times_fs, *gap_modes, int(params["modes_per_region"]))
    if params["calibrate_realised_variance"]:
        target = 2.0 * lambdas * units.BOLTZMANN_meV_per_K * temperature_K
        var = d_gap.var(axis=1)
        d_gap = d_gap * np.sqrt(np.divide(target, var, out=np.zeros_like(var), where=var > 0))[:, None]
    d_gap = d_gap.sum(axis=0) * 1e-3
    common = mode_signal(times_fs, *common_modes) * 1e-3
    vbm0, gap0 = mock_mean_levels_eV(size, shell_layers, lattice_A, params)
    vbm = vbm0 + common - float(params["vbm_share"]) * d_gap
    return MockBandEdges(vbm, vbm + gap0 + d_gap, gap0, mock_gap_std_meV(fraction, shell_layers, temperature_K, params),
                         lambdas, fraction)  # fmt: skip


@dataclasses.dataclass(frozen=True)
class AtomOscillators:
    """Independent oscillators per atom and axis: displacement sum_o A cos(omega t + phi).

    amplitude_A, omega_per_fs, phase: shape (atoms, 3, oscillators); mass_amu: (atoms,).
    """

    amplitude_A: np.ndarray
    omega_per_fs: np.ndarray
    phase: np.ndarray
    mass_amu: np.ndarray

    @property
    def energy_eV(self) -> np.ndarray:
        """Energy of every oscillator (constant): 1/2 m omega^2 A^2."""
        m = self.mass_amu[:, None, None]
        return 0.5 * AMU_eV_fs2_per_A2 * m * (self.omega_per_fs * self.amplitude_A) ** 2


def mock_atom_oscillators(
    symbols: Sequence[str], regions: Sequence[str], temperature_K: float, seed: int, params: Mapping[str, Any]
) -> AtomOscillators:
    """Thermal oscillators of every atom: energies from the element's region weights (softer outside
    the core), classical amplitudes with <E> = k_B T per oscillator set of an axis."""
    rng = np.random.default_rng([seed, 3])
    n_osc = int(params["oscillators_per_axis"])
    n = len(symbols)
    centres = np.asarray(params["region_energies_meV"], dtype=float)
    widths = np.asarray(params["region_widths_meV"], dtype=float)
    weights = params["atom_region_weights"]
    missing = sorted(set(symbols) - set(weights) | set(symbols) - set(MASSES_AMU))
    if missing:
        raise ValueError(f"mock: no atom_region_weights or mass for element(s) {missing}")
    probs = np.array([np.asarray(weights[s], dtype=float) / np.sum(weights[s]) for s in symbols])
    u = rng.uniform(size=(n, 3, n_osc))
    region = (u[..., None] > np.cumsum(probs, axis=1)[:, None, None, :]).sum(axis=-1).clip(0, 2)
    z = np.clip(rng.normal(size=(n, 3, n_osc)), -2.0, 2.0)
    energy_meV = np.maximum(centres[region] + widths[region] * z, 0.2)
    soft = np.array([r != "core" for r in regions])
    energy_meV = energy_meV * np.where(soft, float(params["surface_softening"]), 1.0)[:, None, None]
    omega = energy_meV / units.HBAR_meV_fs
    mass = np.array([MASSES_AMU[s] for s in symbols])
    kT_eV = units.BOLTZMANN_meV_per_K * temperature_K * 1e-3
    mean_sq = 2.0 * kT_eV / (n_osc * AMU_eV_fs2_per_A2 * mass[:, None, None] * omega**2)
    amplitude = np.sqrt(mean_sq * rng.exponential(1.0, size=(n, 3, n_osc)))
    phase = rng.uniform(0.0, 2 * np.pi, size=(n, 3, n_osc))
    return AtomOscillators(amplitude, omega, phase, mass)


def oscillator_motion(osc: AtomOscillators, times_fs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Displacements [Angstrom] and velocities [Angstrom/fs], shape (times, atoms, 3)."""
    theta = osc.omega_per_fs[None] * np.asarray(times_fs)[:, None, None, None] + osc.phase[None]
    disp = (osc.amplitude_A[None] * np.cos(theta)).sum(axis=-1)
    vel = -(osc.amplitude_A[None] * osc.omega_per_fs[None] * np.sin(theta)).sum(axis=-1)
    return disp, vel


def oscillator_energies_eV(osc: AtomOscillators, times_fs: np.ndarray, chunk: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """(kinetic, harmonic potential) energy in eV at every time, summed over all oscillators."""
    e = osc.energy_eV.ravel()
    w2 = 2.0 * osc.omega_per_fs.ravel()
    p2 = 2.0 * osc.phase.ravel()
    s = np.empty(len(times_fs))
    for i in range(0, len(times_fs), chunk):
        t = np.asarray(times_fs[i : i + chunk])
        s[i : i + chunk] = np.cos(np.outer(t, w2) + p2) @ e
    total = e.sum()
    return 0.5 * (total - s), 0.5 * (total + s)


# --- CP2K-format writers (mock) ------------------------------------------------------------------

def format_fixed(values: np.ndarray, width: int, decimals: int) -> np.ndarray:
    """Fixed-point text of every value (``'%{width}.{decimals}f'``), vectorised: uint8 array of shape
    ``values.shape + (width,)``. Rounds half away from zero after scaling (a last-digit difference
    from Python's exact rounding is possible in rare ties)."""
    x = np.asarray(values, dtype=float)
    scaled = np.rint(np.abs(x) * 10.0**decimals)
    if not np.all(np.isfinite(scaled)) or (scaled.size and scaled.max() >= 2.0**62):
        raise ValueError("format_fixed: value out of range")
    v = scaled.astype(np.int64)
    out = np.full(x.shape + (width,), ord(" "), dtype=np.uint8)
    for j in range(decimals):
        out[..., width - 1 - j] = 48 + v % 10
        v //= 10
    point = width - 1 - decimals
    out[..., point] = ord(".")
    ndig = np.ones(x.shape, dtype=np.int64)
    out[..., point - 1] = 48 + v % 10
    v //= 10
    k = 1
    while np.any(v > 0):
        col = point - 1 - k
        if col < 0:
            raise ValueError(f"format_fixed: a value needs more than {width} characters")
        mask = v > 0
        out[..., col] = np.where(mask, 48 + v % 10, out[..., col])
        ndig = np.where(mask, k + 1, ndig)
        v //= 10
        k += 1
    neg = np.signbit(x)
    if np.any(neg):
        flat = out.reshape(-1, width)
        idx = np.flatnonzero(neg.ravel())
        sign_col = point - 1 - ndig.ravel()[idx]
        if np.any(sign_col < 0):
            raise ValueError(f"format_fixed: a value needs more than {width} characters")
        flat[idx, sign_col] = ord("-")
    return out


def xyz_frames_bytes(symbols: Sequence[str], steps: Sequence[int], times_fs: Sequence[float], energies_Ha: Sequence[float],
                     values: np.ndarray) -> bytes:  # fmt: skip
    """CP2K 2023.1 XYZ trajectory frames: ``%8d`` atom count, `` i = %8d, time = %12.3f, E = %20.10f``,
    then `` %-2s %20.10f%20.10f%20.10f`` per atom."""
    n = len(symbols)
    body = np.empty((len(steps), n, 65), dtype=np.uint8)
    prefix = np.frombuffer("".join(f" {s:<2s} " for s in symbols).encode(), dtype=np.uint8).reshape(n, 4)
    body[:, :, :4] = prefix
    body[:, :, 4:64] = format_fixed(values, 20, 10).reshape(len(steps), n, 60)
    body[:, :, 64] = ord("\n")
    parts = []
    for f, (step, t, e) in enumerate(zip(steps, times_fs, energies_Ha)):
        parts.append(b"%8d\n i = %8d, time = %12.3f, E = %20.10f\n" % (n, step, t, e))
        parts.append(body[f].tobytes())
    return b"".join(parts)


ENER_HEADER = ("#     Step Nr.          Time[fs]        Kin.[a.u.]          Temp[K]            Pot.[a.u.]"
               "        Cons Qty[a.u.]        UsedTime[s]")  # fmt: skip


def fortran_e(x: float, digits: int = 12) -> str:
    """Fortran ``E`` format with a leading ``0.`` (``-0.264604161461E+02``), as CP2K prints MD summaries."""
    if x == 0 or not np.isfinite(x):
        return f"0.{'0' * digits}E+00" if x == 0 else str(x)
    exp = int(np.floor(np.log10(abs(x)))) + 1
    mant = round(abs(x) / 10.0**exp, digits)
    if mant >= 1.0:
        mant, exp = mant / 10.0, exp + 1
    return f"{'-' if x < 0 else ''}0.{int(round(mant * 10**digits)):0{digits}d}E{exp:+03d}"


def _right(label: str, value: str, width: int = 80) -> str:
    return label + value.rjust(width - len(label))


def _two(label: str, inst: str, avg: str) -> str:
    return label + inst.rjust(59 - len(label)) + avg.rjust(21)


def molog_bytes(index: np.ndarray, energies_eV: np.ndarray, occupations: np.ndarray, n_electrons: int,
                fermi_eV: np.ndarray, gap_eV: np.ndarray | None) -> bytes:  # fmt: skip
    """CP2K 2023.1 MOLog blocks (one per row of ``energies_eV``: steps x orbitals)."""
    rows = "".join(f" MO|{int(i):7d}%23.8f%23.8f%23.8f\n" for i in index)
    template = (
        "\n MO| EIGENVALUES AND OCCUPATION NUMBERS\n MO|\n"
        " MO|  Index      Eigenvalue [a.u.]        Eigenvalue [eV]             Occupation\n"
        + rows
        + f" MO| Sum:{float(n_electrons):71.8f}\n"
        + " MO| E(Fermi):%20.8f a.u.%18.8f eV\n"
        + (" MO| Band gap:%20.8f a.u.%18.8f eV\n" if gap_eV is not None else "")
        + "\n"
    )
    au = energies_eV / CP2K_HARTREE_eV
    parts = []
    for s in range(energies_eV.shape[0]):
        vals = np.empty((len(index), 3))
        vals[:, 0], vals[:, 1], vals[:, 2] = au[s], energies_eV[s], occupations[s]
        extra = [fermi_eV[s] / CP2K_HARTREE_eV, fermi_eV[s]]
        if gap_eV is not None:
            extra += [gap_eV[s] / CP2K_HARTREE_eV, gap_eV[s]]
        parts.append(template % (*vals.ravel().tolist(), *extra))
    return "".join(parts).encode()


def mock_output_text(md: MDInput, *, n_electrons: int, n_mo: int, potential_Ha: np.ndarray, kinetic_Ha: np.ndarray,
                     temperature_K: np.ndarray, vbm_eV: np.ndarray, cbm_eV: np.ndarray) -> str:  # fmt: skip
    """A minimal CP2K 2023.1 main output: what :mod:`qdphonon.parsers` reads, step by step, labelled synthetic."""
    head = [
        "# " + SYNTHETIC_LABEL,
        _right(" CP2K| version string:", "CP2K version mock"),
        " CP2K| qdphonon mock engine: no CP2K was run; files follow CP2K 2023.1 formats",
        _right(" GLOBAL| Project name", md.project),
        _right(" GLOBAL| Run type", "MD"),
    ]
    if md.smearing_K is not None:
        head += [_right("                        Smear method:", "FERMI_DIRAC"),
                 _right("                        Electronic temperature [K]:", f"{md.smearing_K:.1f}")]  # fmt: skip
    head += [
        " MD_PAR| Molecular dynamics protocol (MD input parameters)",
        _right(" MD_PAR| Ensemble type", "NVT"),
        _right(" MD_PAR| Number of time steps", str(md.steps)),
        _right(" MD_PAR| Time step [fs]", f"{md.timestep_fs:.6f}"),
        _right(" MD_PAR| Temperature [K]", f"{md.temperature_K:.6f}"),
        "",
    ]
    evaluation = "\n".join([
        _right(" Number of electrons:", str(n_electrons)),
        _right(" Number of occupied orbitals:", str(n_electrons // 2)),
        _right(" Number of molecular orbitals:", str(n_mo)),
        "",
        " SCF WAVEFUNCTION OPTIMIZATION",
        "",
        "  *** SCF run converged in     1 steps ***",
        "",
    ]) + "\n"  # fmt: skip
    lines = ["\n".join(head) + "\n"]
    cons = potential_Ha + kinetic_Ha
    n = len(potential_Ha)
    avg_pot = np.cumsum(potential_Ha[1:]) / np.arange(1, n) if n > 1 else np.array([])
    avg_kin = np.cumsum(kinetic_Ha[1:]) / np.arange(1, n) if n > 1 else np.array([])
    avg_t = np.cumsum(temperature_K[1:]) / np.arange(1, n) if n > 1 else np.array([])
    for step in range(n):
        block = [evaluation]
        if md.smearing_K is not None:
            mid = 0.5 * (vbm_eV[step] + cbm_eV[step]) / units.HARTREE_eV
            block.append(_right("  Fermi energy:", f"{mid:.14f}") + "\n\n")
        if md.lumo_in_output:
            gap = cbm_eV[step] - vbm_eV[step]
            block.append(f" Fermi Energy [eV] : {vbm_eV[step]:11.6f}\n\n HOMO - LUMO gap [eV] : {gap:10.6f}\n\n")
        block.append(_right(" ENERGY| Total FORCE_EVAL ( QS ) energy [a.u.]:", f"{potential_Ha[step]:.15f}") + "\n\n")
        if step == 0:
            block.append("\n".join([
                " MD_INI| MD initialization",
                _right(" MD_INI| Potential energy [hartree]", fortran_e(potential_Ha[0])),
                _right(" MD_INI| Kinetic energy [hartree]", fortran_e(kinetic_Ha[0])),
                _right(" MD_INI| Temperature [K]", f"{temperature_K[0]:.6f}"),
            ]) + "\n\n")  # fmt: skip
        else:
            i = step - 1
            block.append("\n".join([
                " MD| " + "*" * 75,
                _right(" MD| Step number", str(step)),
                _right(" MD| Time [fs]", f"{step * md.timestep_fs:.6f}"),
                _right(" MD| Conserved quantity [hartree]", fortran_e(cons[step])),
                " MD| " + "-" * 75,
                " MD|                                          Instantaneous             Averages",
                _two(" MD| CPU time per MD step [s]", "0.000000", "0.000000"),
                _two(" MD| Potential energy [hartree]", fortran_e(potential_Ha[step]), fortran_e(avg_pot[i])),
                _two(" MD| Kinetic energy [hartree]", fortran_e(kinetic_Ha[step]), fortran_e(avg_kin[i])),
                _two(" MD| Temperature [K]", f"{temperature_K[step]:.6f}", f"{avg_t[i]:.6f}"),
                " MD| " + "*" * 75,
            ]) + "\n\n")  # fmt: skip
        lines.append("".join(block))
    lines.append(_right(" **** **** ******  **  PROGRAM ENDED AT", SYNTHETIC_LABEL) + "\n")
    return "".join(lines)


def _printed_steps(steps: int, every: int | None) -> np.ndarray:
    """MD steps CP2K prints with ``&EACH MD every``: 0 and every multiple of ``every`` up to ``steps``."""
    if every is None:
        return np.array([], dtype=np.int64)
    return np.arange(0, steps + 1, max(1, int(every)), dtype=np.int64)


def _mock_orbitals(md: MDInput, homo: int, vbm: np.ndarray, cbm: np.ndarray, seed: int, spacing_eV: float
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """Printed orbital indices, their energies (steps x orbitals, eV) and occupations.

    The window is the input's MO_INDEX_RANGE; for an OT input (LUMO printed by MO_CUBES in the
    main output) it is extended above the HOMO as the diagonalisation route prints it, instead of
    the main output's full occupied-subspace print (thousands of values per step).
    """
    lo, hi = md.mo_index_range or (max(1, homo - 4), homo + 5)
    if hi <= homo:
        hi = homo + 1 + (homo - lo)
    index = np.arange(lo, hi + 1)
    rng = np.random.default_rng([seed, 4])
    below = np.cumsum(spacing_eV * (0.5 + rng.uniform(size=max(0, homo - lo))))
    above = np.cumsum(spacing_eV * (0.5 + rng.uniform(size=max(0, hi - homo - 1))))
    energies = np.empty((len(vbm), len(index)))
    for j, orb in enumerate(index):
        if orb <= homo:
            energies[:, j] = vbm - (below[homo - orb - 1] if orb < homo else 0.0)
        else:
            energies[:, j] = cbm + (above[orb - homo - 2] if orb > homo + 1 else 0.0)
    if md.smearing_K is None:
        occupations = np.where(index <= homo, 2.0, 0.0)[None, :].repeat(len(vbm), axis=0)
    else:
        kT_eV = units.BOLTZMANN_meV_per_K * 1e-3 * md.smearing_K
        mid = 0.5 * (vbm + cbm)[:, None]
        occupations = 2.0 / (1.0 + np.exp(np.clip((energies - mid) / kT_eV, -700, 700)))
    return index, energies, occupations


def run_mock(
    input_path: str | os.PathLike,
    run_dir: str | os.PathLike,
    structure_xyz: str | os.PathLike,
    params: Mapping[str, Any] | None = None,
    *,
    record_path: str | os.PathLike | None = None,
    chunk_frames: int = 64,
) -> dict[str, Any]:
    """Write a synthetic AIMD run of ``input_path`` (DESIGN §4) in ``run_dir``: the files CP2K 2023.1
    writes, from a harmonic model, labelled ``# synthetic (mock engine)``; return the record.

    Honours what real CP2K would read from the input: STEPS, TIMESTEP, TEMPERATURE, SEED,
    the trajectory/velocity/MO print strides, PROJECT_NAME, the printed orbital window, smearing
    and CENTER_COORDINATES. ``structure_xyz`` (the labelled structure of the MD) gives the regions
    (surface atoms softer; coupling strengths from the surface fraction and shell). Seeded from
    the system name and the replica's SEED: repeat runs give byte-identical CP2K-format files.
    Positions in Angstrom, velocities in bohr per atomic time unit, energies in Hartree.
    """
    from qdphonon import structures
    from qdphonon.cp2k_input import homo_index

    t0 = time.monotonic()
    input_path, run_dir, record_path, sha, record, md = _open_md_run(input_path, run_dir, record_path, "mock")
    if record is not None:
        return record
    dot = structures.read_structure(structure_xyz)
    if list(dot.symbols) != list(md.symbols):
        raise ValueError(f"{structure_xyz} and the &COORD of {input_path} list different atoms")
    p = mock_params(params)
    files = md.files
    run_dir.mkdir(parents=True, exist_ok=True)
    state = read_json(run_dir / STATE_FILE)
    if state is not None:
        _check_same_input(state.get("input_sha256"), sha, run_dir / STATE_FILE, input_path)
        if state.get("engine") != "mock":
            raise RunDirMismatchError(
                f"{run_dir} holds a {state.get('engine')} run; refusing to overwrite it with mock output"
            )
    elif _foreign_files(run_dir, files):
        raise RunDirMismatchError(f"{run_dir} holds {', '.join(_foreign_files(run_dir, files)[:6])} but no {STATE_FILE}; "
                                  "refusing to overwrite it")  # fmt: skip
    write_json_atomic(run_dir / STATE_FILE, {"engine": "mock", "input": str(input_path), "input_sha256": sha,
                                             "steps": md.steps, "project": md.project, "segments": []})  # fmt: skip

    seed = mock_seed(dot.name, md.seed)
    steps = np.arange(md.steps + 1)
    times = steps * md.timestep_fs
    edges = mock_band_edges(times, size=dot.spec.size, shell_layers=dot.spec.shell_layers, lattice_A=dot.spec.lattice_A,
                            layers=dot.layers, temperature_K=md.temperature_K, seed=seed, params=p)  # fmt: skip
    osc = mock_atom_oscillators(md.symbols, dot.regions, md.temperature_K, seed, p)
    kin_eV, harm_eV = oscillator_energies_eV(osc, times)
    base_Ha = sum(float(p["potential_Ha_per_atom"].get(s, -1.0)) for s in md.symbols)
    pot_Ha = base_Ha + harm_eV / units.HARTREE_eV
    kin_Ha = kin_eV / units.HARTREE_eV
    dof = max(1, 3 * len(md.symbols) - 6)
    temp_K = 2.0 * kin_Ha / (dof * BOLTZMANN_Ha_per_K)
    r0 = recentre(md.positions_A, md.box_A) if md.center_coordinates else md.positions_A
    label = ("# " + SYNTHETIC_LABEL + "\n").encode()

    (run_dir / "seg000.inp").write_bytes(input_path.read_bytes())
    rows = np.column_stack([steps, times, kin_Ha, temp_K, pot_Ha, pot_Ha + kin_Ha, np.zeros_like(times)])
    ener_row = "%10d%20.6f%20.9f%20.9f%20.9f%20.9f%20.9f\n"
    with open(run_dir / files["energies"], "wb") as fh:
        fh.write(label + (ENER_HEADER + "\n").encode())
        fh.write("".join(ener_row % (int(r[0]), *r[1:]) for r in rows.tolist()).encode())
    for key, every, velocity in (("positions", md.positions_every, False), ("velocities", md.velocities_every, True)):
        printed = _printed_steps(md.steps, every)
        if printed.size == 0:
            continue
        with open(run_dir / files[key], "wb") as fh:
            fh.write(label)
            for i in range(0, len(printed), chunk_frames):
                sel = printed[i : i + chunk_frames]
                disp, vel = oscillator_motion(osc, times[sel])
                values = vel / units.AU_VELOCITY_A_per_fs if velocity else r0[None] + disp
                fh.write(xyz_frames_bytes(md.symbols, sel, times[sel], pot_Ha[sel], values))
    homo = homo_index(md.symbols, md.level)
    mo_steps = _printed_steps(md.steps, md.mo_every)
    index, orb_eV, occ = _mock_orbitals(md, homo, edges.vbm_eV[mo_steps], edges.cbm_eV[mo_steps], seed,
                                        float(p["orbital_spacing_eV"]))  # fmt: skip
    if mo_steps.size:
        fermi = edges.vbm_eV[mo_steps] if md.smearing_K is None else 0.5 * (edges.vbm_eV + edges.cbm_eV)[mo_steps]
        gap = (edges.cbm_eV - edges.vbm_eV)[mo_steps] if md.smearing_K is None and index[-1] > homo else None
        with open(run_dir / files["molog"], "wb") as fh:
            fh.write(label + molog_bytes(index, orb_eV, occ, 2 * homo, fermi, gap))
    (run_dir / "seg000.out").write_text(
        mock_output_text(md, n_electrons=2 * homo, n_mo=max(int(index[-1]), homo), potential_Ha=pot_Ha,
                         kinetic_Ha=kin_Ha, temperature_K=temp_K, vbm_eV=edges.vbm_eV, cbm_eV=edges.cbm_eV)
    )  # fmt: skip
    wall = time.monotonic() - t0
    segment = {"index": 0, "input": "seg000.inp", "output": "seg000.out", "start_step": 0, "end_step": md.steps,
               "wall_s": round(wall, 3), "exit_status": 0, "signal": None, "ended": "completed",
               "command": "qdphonon mock engine (no CP2K)", "started_at": _now_iso()}  # fmt: skip
    record = _run_record(
        engine="mock", md=md, input_path=input_path, run_dir=run_dir, segments=[segment], cp2k_version="mock",
        synthetic=True,
        extra={
            "structure": str(structure_xyz),
            "mock_params": p,
            "mock_model": {
                "seed": seed, "surface_fraction": edges.surface_fraction,
                "lambda_meV": [round(float(x), 6) for x in edges.lambdas_meV],
                "gap_std_meV": round(edges.gap_std_meV, 6), "gap_mean_eV": round(edges.gap_mean_eV, 6),
                "fwhm_300K_meV": round(
                    float(units.FWHM_PER_SIGMA * edges.gap_std_meV * np.sqrt(300.0 / md.temperature_K)), 3
                ),
            },
            "scf_unconverged_steps": [],
        },
    )  # fmt: skip
    write_json_atomic(run_dir / STATE_FILE, {"engine": "mock", "input": str(input_path), "input_sha256": sha,
                                             "steps": md.steps, "project": md.project, "segments": [segment],
                                             "complete": True})  # fmt: skip
    write_json_atomic(record_path, record)
    return record
