"""The names of a CP2K run directory: the only spellings of every file the engines write and the
parsers read (CP2K's project files, the engine's segments and records, the relaxation's files).

CP2K names its files from the input's ``GLOBAL/PROJECT_NAME`` and the ``&MO`` print key's
``FILENAME``; qdphonon's inputs use :data:`MD_PROJECT` (an MD), :data:`RELAX_PROJECT` (a
geometry optimisation) and :data:`MO_FILENAME`. Light: stdlib only.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator, Mapping

MD_PROJECT = "md"
"""``GLOBAL/PROJECT_NAME`` of qdphonon's MD inputs."""
RELAX_PROJECT = "relax"
"""``GLOBAL/PROJECT_NAME`` of qdphonon's geometry optimisations (continuations: ``relax_c1``, ...)."""
MO_FILENAME = "mo"
"""``FILENAME`` of the ``&MO`` print key of qdphonon's inputs."""
CP2K_DEFAULT_PROJECT = "PROJECT"
"""CP2K's own default ``PROJECT_NAME`` when an input leaves it out."""
TRAJECTORY_FORMATS = ("xyz", "dcd")
"""File extensions of CP2K's trajectory formats, the same words as config ``md.trajectory_format``."""

STATE_FILE = "segments.json"
"""The engine's record of a run's segments (:mod:`qdphonon.run.layout`)."""
RECORD_FILE = "run.json"
"""Written when the last MD step equals STEPS (:mod:`qdphonon.metadata`)."""
LOCK_FILE = "engine.lock"
"""The run directory's lock (:mod:`qdphonon.run.lock`)."""
INITIAL_WFN_FILE = "initial-guess.wfn"
"""The wavefunction a fresh run's first SCF starts from (a copy of the relaxation's); not a
project file, so it survives a restart from step 0."""
SET_ASIDE_DIR = "set_aside"
"""What recovery took out of the run, per segment: ``set_aside/seg003/md-pos-1.xyz``."""
RELAX_STATE_FILE = "relax-state.json"
"""The relaxation's record of its segments."""
RELAX_SUMMARY_FILE = "relax.json"
"""The relaxation's summary."""

_SEGMENT_NAME = re.compile(r"seg(\d{3,})\.(inp|out)")


@dataclasses.dataclass(frozen=True, eq=False)
class RunFiles(Mapping):
    """CP2K's files of one MD project; also a read-only mapping by field name (``files["energies"]``)."""

    positions: str
    """``{project}-pos-1.{xyz|dcd}``: positions, Angstrom."""
    velocities: str
    """``{project}-vel-1.{xyz|dcd}``: velocities, bohr per atomic time unit."""
    energies: str
    """``{project}-1.ener``: step, time, kinetic, temperature, potential, conserved."""
    molog: str | None
    """``{project}-{mo}-1.MOLog`` (a FILENAME starting with ``=`` is taken literally); None: no MO print."""
    restart: str
    """``{project}-1.restart`` (and its ``.bak-1``)."""
    wfn: str
    """``{project}-RESTART.wfn`` (and its ``.bak-N``)."""

    def __getitem__(self, key: str) -> str | None:
        if key not in _FIELDS:
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(_FIELDS)

    def __len__(self) -> int:
        return len(_FIELDS)


_FIELDS = tuple(f.name for f in dataclasses.fields(RunFiles))


def molog_name(project: str, mo_filename: str | None) -> str | None:
    """CP2K's MOLog file name for the ``&MO`` print key's ``FILENAME`` (None: no MO print)."""
    if mo_filename is None:
        return None
    if mo_filename.startswith("="):
        return mo_filename[1:]
    return f"{project}-{mo_filename}-1.MOLog"


def run_files(project: str = MD_PROJECT, mo_filename: str | None = MO_FILENAME,
              molog: str | None = None, trajectory_format: str = "xyz") -> RunFiles:  # fmt: skip
    """File names CP2K writes for an MD of ``project``; ``molog`` overrides the derived MOLog name;
    ``trajectory_format`` (``xyz`` or ``dcd``) names the position and velocity files."""
    if trajectory_format not in TRAJECTORY_FORMATS:
        raise KeyError(trajectory_format)
    return RunFiles(
        positions=f"{project}-pos-1.{trajectory_format}",
        velocities=f"{project}-vel-1.{trajectory_format}",
        energies=f"{project}-1.ener",
        molog=molog if molog is not None else molog_name(project, mo_filename),
        restart=f"{project}-1.restart",
        wfn=f"{project}-RESTART.wfn",
    )


def segment_files(index: int) -> tuple[str, str]:
    """Input and output file names of segment ``index``: ``seg000.inp``, ``seg000.out``."""
    return f"seg{index:03d}.inp", f"seg{index:03d}.out"


def is_segment_file(name: str) -> bool:
    """Whether ``name`` is one of our engine's segment inputs or outputs."""
    return _SEGMENT_NAME.fullmatch(name) is not None


def relax_segment_files(index: int, project: str = RELAX_PROJECT) -> tuple[str, str, str]:
    """(project, input, output) of relaxation segment ``index``: ``relax``/``relax.inp``/``relax.out``,
    then ``relax_c1``/``relax_c1.inp``/``relax_c1.out``, ..."""
    if index == 0:
        return project, f"{RELAX_PROJECT}.inp", f"{RELAX_PROJECT}.out"
    return f"{project}_c{index}", f"{RELAX_PROJECT}_c{index}.inp", f"{RELAX_PROJECT}_c{index}.out"


def relax_trajectory(project: str) -> str:
    """The positions a geometry optimisation of ``project`` writes: ``{project}-pos-1.xyz``."""
    return f"{project}-pos-1.xyz"


def relax_wavefunctions(project: str) -> tuple[str, str]:
    """The wavefunction of a geometry optimisation of ``project`` and its backup, newest first."""
    return f"{project}-RESTART.wfn", f"{project}-RESTART.wfn.bak-1"
