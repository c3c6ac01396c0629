"""The run-directory contract: which files a CP2K MD directory holds, in what order, and in what state.

Engines write run directories and parsers read them through this module only.

Names
    CP2K's files are named from the input's ``GLOBAL/PROJECT_NAME`` (``{project}``) and the
    ``&MO`` print key's ``FILENAME``: ``{project}-pos-1.xyz`` (positions, Angstrom),
    ``{project}-vel-1.xyz`` (velocities, bohr per atomic time unit), ``{project}-1.ener``,
    ``{project}-{mo}-1.MOLog``, ``{project}-1.restart`` and ``{project}-RESTART.wfn`` (with
    ``.bak-N`` backups). All segments of a run share them; continuations append.
Segments (our engine)
    ``seg000.inp``/``seg000.out`` is the first CP2K run, ``seg001.*`` the first continuation
    (``&EXT_RESTART``), and so on. ``segments.json`` records the input's SHA-256, the project,
    and per segment its start and end step, process id, wall time, exit status and how it
    ended (:class:`SegmentEnd`). ``run.json`` (:mod:`qdphonon.metadata`) is written only when
    the last MD step equals ``STEPS``.
Any CP2K directory
    Without ``segments.json`` (a run made by hand), the main outputs are the files whose
    first bytes carry CP2K's banner (``PROGRAM STARTED AT`` and ``CP2K| version string``), in
    the order of their start time; the project comes from their ``GLOBAL| Project name``
    line and the MOLog is the one ``{project}-*.MOLog`` present. :func:`discover` returns
    the same :class:`RunLayout` for both kinds.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Mapping, Sequence

from qdphonon.engines.errors import RunDirMismatchError

STATE_FILE = "segments.json"
RECORD_FILE = "run.json"
DEFAULT_PROJECT = "md"
DEFAULT_MO_FILENAME = "mo"
CP2K_DEFAULT_PROJECT = "PROJECT"
"""CP2K's own default ``PROJECT_NAME`` when an input leaves it out."""

_SEGMENT_NAME = re.compile(r"seg(\d{3,})\.(inp|out)")
_HEADER_BYTES = 65536


class SegmentEnd(str, enum.Enum):
    """How one CP2K segment ended (recorded in ``segments.json`` and ``run.json``)."""

    RUNNING = "running"
    COMPLETED = "completed"
    WALLTIME = "walltime"
    EXTERNAL_EXIT = "external_exit"
    KILLED = "killed"
    FAILED = "failed"
    EMPTY = "empty"
    """Killed before CP2K wrote its first byte: set aside, it holds no step."""


def molog_name(project: str, mo_filename: str | None) -> str | None:
    """CP2K's MOLog file name for the ``&MO`` print key's ``FILENAME`` (None: no MO print)."""
    if mo_filename is None:
        return None
    if mo_filename.startswith("="):
        return mo_filename[1:]
    return f"{project}-{mo_filename}-1.MOLog"


def run_files(project: str = DEFAULT_PROJECT, mo_filename: str | None = DEFAULT_MO_FILENAME,
              molog: str | None = None) -> dict[str, str | None]:
    """File names CP2K writes for an MD of ``project``; ``molog`` overrides the derived MOLog name."""
    return {
        "positions": f"{project}-pos-1.xyz",
        "velocities": f"{project}-vel-1.xyz",
        "energies": f"{project}-1.ener",
        "molog": molog if molog is not None else molog_name(project, mo_filename),
        "restart": f"{project}-1.restart",
        "wfn": f"{project}-RESTART.wfn",
    }


def segment_files(index: int) -> tuple[str, str]:
    """Input and output file names of segment ``index``: ``seg000.inp``, ``seg000.out``."""
    return f"seg{index:03d}.inp", f"seg{index:03d}.out"


def is_segment_file(name: str) -> bool:
    """Whether ``name`` is one of our engine's segment inputs or outputs."""
    return _SEGMENT_NAME.fullmatch(name) is not None


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
    """A JSON file's content, or None when it does not exist; ValueError naming the file when corrupt."""
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: line {exc.lineno}: not valid JSON ({exc.msg})") from None


# --- main outputs --------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class OutputHeader:
    """What the banner of a CP2K main output says (first 64 KiB)."""

    path: Path
    started_at: str | None
    cp2k_version: str | None
    project: str | None
    run_type: str | None


_RE_STARTED = re.compile(rb"PROGRAM STARTED AT\s+(\S+ \S+)")
_RE_VERSION = re.compile(rb"CP2K\|\s+version string:\s+CP2K version\s+(\S+)")
_RE_PROJECT = re.compile(rb"^\s*GLOBAL\|\s+Project name\s+(\S+)\s*$", re.M)
_RE_RUN_TYPE = re.compile(rb"^\s*GLOBAL\|\s+Run type\s+(\S+)\s*$", re.M)


def read_output_header(path: str | os.PathLike) -> OutputHeader | None:
    """The banner of a CP2K main output, or None when the file is not one (or is empty)."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            head = fh.read(_HEADER_BYTES)
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        return None
    started = _RE_STARTED.search(head)
    version = _RE_VERSION.search(head)
    if started is None or version is None:
        return None

    def text(m):
        return m.group(1).decode("ascii", "replace") if m else None

    return OutputHeader(path, text(started), text(version), text(_RE_PROJECT.search(head)),
                        text(_RE_RUN_TYPE.search(head)))  # fmt: skip


_DATA_SUFFIXES = (".xyz", ".ener", ".MOLog", ".restart", ".wfn", ".inp", ".json", ".npz", ".dcd", ".cube")


def find_main_outputs(run_dir: str | os.PathLike) -> list[Path]:
    """CP2K main outputs in a directory (any name), oldest start first; MD runs only when the header says."""
    run_dir = Path(run_dir)
    headers = []
    for p in sorted(run_dir.iterdir()):
        if not p.is_file() or re.search(r"\.bak-\d+$", p.name) or p.name.endswith(_DATA_SUFFIXES):
            continue
        h = read_output_header(p)
        if h is not None and (h.run_type is None or h.run_type.upper() == "MD"):
            headers.append(h)
    headers.sort(key=lambda h: (h.started_at or "", h.path.name))
    return [h.path for h in headers]


@dataclasses.dataclass(frozen=True)
class RunLayout:
    """The files of one MD run directory, as :func:`discover` found them.

    ``outputs`` are the main outputs in run order (empty ones set aside, listed in
    ``set_aside``); ``files`` maps ``positions``, ``velocities``, ``energies``, ``molog``
    (None when there is no MOLog), ``restart`` and ``wfn`` to file names in ``run_dir``;
    ``ours`` is True when our engine made it (``segments.json``).
    """

    run_dir: Path
    project: str
    files: dict[str, str | None]
    outputs: list[Path]
    ours: bool
    set_aside: list[Path]

    def path(self, key: str) -> Path | None:
        """Path of one of ``files`` (None when that file is not part of the run)."""
        name = self.files.get(key)
        return None if name is None else self.run_dir / name


def _molog_in(run_dir: Path, project: str) -> str | None:
    found = sorted(p.name for p in run_dir.glob(f"{glob_escape(project)}*.MOLog"))
    if len(found) > 1:
        raise ValueError(f"{run_dir}: several MOLog files of project {project!r}: {', '.join(found)}; "
                         "name the one to use (--molog)")  # fmt: skip
    return found[0] if found else None


def _project_from_files(run_dir: Path) -> str:
    """The project whose energy file is the only one in the directory, else CP2K's default name."""
    found = {p.name[: -len("-1.ener")] for p in run_dir.glob("*-1.ener")}
    return found.pop() if len(found) == 1 else CP2K_DEFAULT_PROJECT


def glob_escape(text: str) -> str:
    """``text`` with glob metacharacters escaped."""
    return re.sub(r"([*?\[])", r"[\1]", text)


def _segment_outputs(run_dir: Path) -> list[Path]:
    """Our segment outputs ``seg000.out``, ``seg001.out``, ... in order (for outputs without a banner)."""
    segs = [p for p in run_dir.glob("seg*.out") if is_segment_file(p.name)]
    return sorted(segs, key=lambda p: int(p.stem[3:]))


def discover(run_dir: str | os.PathLike, outputs: Sequence[str | os.PathLike] | None = None,
             molog: str | None = None) -> RunLayout:
    """The layout of an MD run directory, ours (``segments.json``) or any CP2K run.

    ``outputs`` names the main outputs in run order (relative to ``run_dir`` or absolute);
    without it they are taken from ``segments.json`` or found by their banner. ``molog``
    names the MOLog file. Raises FileNotFoundError naming the directory when no main
    output is found, ValueError when the outputs disagree on the project name.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"{run_dir}: run directory not found")
    state = read_json(run_dir / STATE_FILE)
    if outputs is not None:
        paths = [Path(o) if Path(o).is_absolute() else run_dir / o for o in outputs]
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            raise FileNotFoundError(f"{', '.join(missing)}: CP2K main output not found")
    elif state is not None:
        paths = [run_dir / s["output"] for s in state.get("segments", []) if (run_dir / s["output"]).is_file()]
    else:
        paths = find_main_outputs(run_dir) or _segment_outputs(run_dir)
    set_aside = [p for p in paths if p.stat().st_size == 0]
    paths = [p for p in paths if p.stat().st_size > 0]
    if not paths:
        raise FileNotFoundError(
            f"{run_dir}: no CP2K main output found (looked for files whose first bytes carry "
            "'PROGRAM STARTED AT' and 'CP2K| version string', and for seg000.out, ...; name them with --output)"
        )
    if state is not None and state.get("project"):
        project = str(state["project"])
        mo = state.get("molog") or molog_name(project, state.get("mo_filename", DEFAULT_MO_FILENAME))
    else:
        projects = {h.project for h in map(read_output_header, paths) if h is not None and h.project}
        if len(projects) > 1:
            raise ValueError(f"{run_dir}: main outputs of different projects {sorted(projects)}: "
                             + ", ".join(p.name for p in paths))  # fmt: skip
        project = projects.pop() if projects else _project_from_files(run_dir)
        mo = None
    if molog is not None:
        mo = molog
    elif mo is None or not (run_dir / mo).is_file():
        mo = _molog_in(run_dir, project)
    files = run_files(project, molog=mo)
    if mo is None:
        files["molog"] = None
    return RunLayout(run_dir, project, files, paths, state is not None, set_aside)


# --- restart files and records ---------------------------------------------------------------

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


def restart_source(run_dir: Path, files: Mapping[str, str | None]) -> tuple[str | None, int | None, str | None]:
    """(restart file name, its step, wavefunction file name or None) to continue from.

    Prefers CP2K's current restart file and falls back to its backup when the current one is
    cut short; the wavefunction (only an SCF guess) is used when it looks whole (same size as
    its backup), else its backup, else none.
    """
    chosen: tuple[str | None, int | None] = (None, None)
    for name in (files["restart"], f"{files['restart']}.bak-1"):
        step = restart_step(run_dir / name)
        if step is not None:
            chosen = (name, step)
            break
    wfn = None
    main, bak = run_dir / files["wfn"], run_dir / f"{files['wfn']}.bak-1"
    if main.is_file() and (not bak.is_file() or main.stat().st_size == bak.stat().st_size):
        wfn = files["wfn"]
    elif bak.is_file():
        wfn = bak.name
    return chosen[0], chosen[1], wfn


def output_ended(output: Path) -> bool:
    """Whether a CP2K main output reached its ``PROGRAM ENDED AT`` line."""
    try:
        with open(output, "rb") as fh:
            fh.seek(max(0, output.stat().st_size - 4096))
            return b"PROGRAM ENDED AT" in fh.read()
    except FileNotFoundError:
        return False


def ended_on_walltime(output: Path) -> bool:
    """Whether CP2K stopped an MD on its WALLTIME ("MD run terminated - exceeded requested execution time")."""
    return _tail_has(output, b"run terminated - exceeded requested execution time")


def ended_on_exit_file(output: Path) -> bool:
    """Whether CP2K stopped on an ``EXIT`` file ("terminated by external request")."""
    return _tail_has(output, b"terminated by external request")


def _tail_has(output: Path, needle: bytes) -> bool:
    try:
        with open(output, "rb") as fh:
            fh.seek(max(0, output.stat().st_size - 200_000))
            return needle in fh.read()
    except FileNotFoundError:
        return False


def check_same_input(found_sha: str | None, sha: str, where: Path, input_path: Path) -> None:
    """RunDirMismatchError unless ``where`` records the same input (SHA-256) as ``input_path``."""
    if found_sha is not None and found_sha != sha:
        raise RunDirMismatchError(
            f"{where} belongs to a run of another input (sha256 {found_sha[:12]}...) than {input_path} "
            f"(sha256 {sha[:12]}...); refusing to mix runs. Remove the run directory to start this input afresh."
        )


def check_same_engine(found: str | None, engine: str, where: Path) -> None:
    """RunDirMismatchError when ``where`` records a run of another engine."""
    if found is not None and found != engine:
        raise RunDirMismatchError(f"{where} records a complete {found} run; refusing to treat it as a {engine} run "
                                  "(remove the run directory to run this engine)")  # fmt: skip


def _is_run_file(name: str, files: Mapping[str, str | None]) -> bool:
    base = re.sub(r"\.bak-\d+$", "", name)
    return base in {v for v in files.values() if v} or is_segment_file(name)


def foreign_files(run_dir: Path, files: Mapping[str, str | None]) -> list[str]:
    """Engine or CP2K files present in a run directory (what a fresh start must not overwrite)."""
    return sorted(p.name for p in run_dir.iterdir() if p.name == STATE_FILE or _is_run_file(p.name, files))


def wipe_run_files(run_dir: Path, files: Mapping[str, str | None]) -> None:
    """Remove CP2K's project files (and their backups) and segment files: a run that never got past step 0."""
    for p in run_dir.iterdir():
        if _is_run_file(p.name, files):
            p.unlink()


# --- trimming what a kill left ----------------------------------------------------------------

def _complete_xyz_length(path: Path) -> int:
    """Byte length of the whole frames at the start of an XYZ file (keeps a leading ``#`` line)."""
    data = path.read_bytes()
    pos = 0
    if data.lstrip().startswith(b"#"):
        pos = data.index(b"\n") + 1 if b"\n" in data else len(data)
    good = pos
    while pos < len(data):
        nl = data.find(b"\n", pos)
        if nl < 0:
            break
        try:
            n = int(data[pos:nl])
        except ValueError:
            break
        end = pos
        for _ in range(n + 2):
            nl2 = data.find(b"\n", end)
            if nl2 < 0:
                return good
            end = nl2 + 1
        good = pos = end
    return good


def _complete_lines_length(path: Path) -> int:
    data = path.read_bytes()
    return data.rfind(b"\n") + 1


def _complete_molog_length(path: Path) -> int:
    """Byte length up to the end of the last complete MO block (through its ``E(Fermi)`` and optional ``Band gap`` lines)."""
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    lines = data[:end].split(b"\n")[:-1]
    pos = 0
    good = 0
    open_block = False
    for line in lines:
        pos += len(line) + 1
        if b"EIGENVALUES AND OCCUPATION NUMBERS" in line:
            open_block = True
            continue
        if b"E(Fermi)" in line or b"Band gap" in line:
            open_block = False
            good = pos
            continue
        if not open_block and not line.strip():
            good = pos
        if not open_block and line.lstrip().startswith(b"#"):
            good = pos
    return good


def truncate_to_complete_records(run_dir: str | os.PathLike, files: Mapping[str, str | None]) -> dict[str, int]:
    """Cut a killed segment's partial last records from the shared files, before a continuation appends.

    Trims the position and velocity XYZ files to whole frames, the ``.ener`` file to whole
    lines and the MOLog to whole blocks. Complete records are never removed (the parser
    aligns duplicates and a killed step's extra MO block). Returns the number of bytes
    removed per file name (0 for an untouched file; missing files are skipped).
    """
    run_dir = Path(run_dir)
    removed: dict[str, int] = {}
    measures = {"positions": _complete_xyz_length, "velocities": _complete_xyz_length,
                "energies": _complete_lines_length, "molog": _complete_molog_length}  # fmt: skip
    for key, measure in measures.items():
        name = files.get(key)
        path = run_dir / name if name else None
        if path is None or not path.is_file():
            continue
        size = path.stat().st_size
        keep = measure(path)
        if keep < size:
            with open(path, "r+b") as fh:
                fh.truncate(keep)
        removed[name] = size - keep
    return removed
