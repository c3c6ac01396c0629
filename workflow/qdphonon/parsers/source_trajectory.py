"""The positions of an existing MD trajectory, to re-evaluate band edges along it.

Two routes: a CP2K MD directory (ours or anyone's; positions as XYZ or DCD, every MD step once
across segments, the cell from its input, the time step and T_md from its main output), or any
file ASE reads (extended XYZ, VASP XDATCAR/vasprun.xml, LAMMPS dump with a type map, ...), whose
time step and T_md the caller gives. Positions in Angstrom, times in fs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np


@dataclasses.dataclass(frozen=True)
class SourceTrajectory:
    """Frames of an MD run: ``positions_A`` (frames, atoms, 3) at the MD steps ``step`` (sorted,
    unique; step 0 is the MD's start). ``cell_A``: the three cell lengths (orthorhombic) or None
    when the source has none. ``timestep_fs`` / ``md_temperature_K``: of the source MD, None when it
    does not record them. ``level``: the level of the dynamics when the source says (CP2K)."""

    path: str
    sha256: str
    origin: str
    symbols: tuple[str, ...]
    step: np.ndarray
    positions_A: np.ndarray
    cell_A: tuple[float, float, float] | None
    timestep_fs: float | None
    md_temperature_K: float | None
    level: str | None

    @property
    def n_frames(self) -> int:
        return int(self.positions_A.shape[0])


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


_RE_INPUT_NAME = re.compile(rb"CP2K\|\s+Input file name\s+(\S+)")


def _input_of(run_dir: Path, outputs: Sequence[Path]) -> Path | None:
    """The CP2K input of a run: ``seg000.inp`` (our engine), else the input the first main output
    names (``CP2K| Input file name``), else the only ``*.inp`` of the directory."""
    if (run_dir / "seg000.inp").is_file():
        return run_dir / "seg000.inp"
    for out in outputs:
        with open(out, "rb") as fh:
            m = _RE_INPUT_NAME.search(fh.read(1 << 16))
        if m and (run_dir / Path(m.group(1).decode(errors="replace")).name).is_file():
            return run_dir / Path(m.group(1).decode(errors="replace")).name
    found = sorted(run_dir.glob("*.inp"))
    return found[0] if len(found) == 1 else None


def read_cp2k_run(run_dir: str | os.PathLike, cell_A: Sequence[float] | None = None) -> SourceTrajectory:
    """Positions of a CP2K MD directory, every MD step once (continuations aligned), with the cell from
    the input's ``&CELL ABC`` (or ``cell_A``), the time step and T_md from the main output (``MD_PAR|``).

    A directory without a positions trajectory, or a trajectory that skips steps unevenly, is a
    ValueError naming the file."""
    from qdphonon.cp2k.readback import read_md_input
    from qdphonon.parsers.dcd_steps import read_dcd_run
    from qdphonon.parsers.main_output import read_main_output
    from qdphonon.parsers.xyz import read_positions
    from qdphonon.parsers.discover import discover

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"{run_dir}: no such run directory")
    layout = discover(run_dir)
    pos_path = layout.path("positions")
    if pos_path is None or not pos_path.is_file():
        raise ValueError(f"{run_dir}: no positions trajectory of project {layout.project!r} "
                         f"(looked for {layout.files.get('positions')})")  # fmt: skip
    if pos_path.suffix.lower() == ".dcd":
        traj = read_dcd_run(run_dir, "positions", project=layout.project)
    else:
        traj = read_positions(pos_path)
    mains = [read_main_output(p) for p in layout.outputs]
    dt = next((m.timestep_fs for m in mains if m.timestep_fs is not None), None)
    temp = next((m.md_temperature_K for m in mains if m.md_temperature_K is not None), None)
    level = next((m.level for m in mains if m.level), None)
    inp = _input_of(run_dir, layout.outputs)
    cell = tuple(float(x) for x in cell_A) if cell_A is not None else None
    if cell is None and inp is not None:
        try:
            md = read_md_input(inp)
        except Exception as exc:  # a foreign input the bundled definition does not read
            raise ValueError(f"{inp}: cannot read the cell from this input ({exc}); give the cell lengths (--cell-A)") from exc
        cell = _abc_of(md.tree) or (md.box_A,) * 3
        dt = dt if dt is not None else md.timestep_fs
        temp = temp if temp is not None else md.temperature_K
    if cell is None:
        raise ValueError(f"{run_dir}: no CP2K input found to read the cell from; give the cell lengths (--cell-A)")
    return SourceTrajectory(path=str(pos_path), sha256=file_sha256(pos_path), origin=f"cp2k:{run_dir}",
                            symbols=tuple(traj.symbols), step=np.asarray(traj.step, dtype=int),
                            positions_A=np.asarray(traj.values, dtype=float), cell_A=cell, timestep_fs=dt,
                            md_temperature_K=temp, level=level)  # fmt: skip


def _abc_of(tree: Mapping) -> tuple[float, float, float] | None:
    from qdphonon.cp2k.readback import _sec

    cell = _sec(tree, "force_eval", "subsys", "cell") or {}
    abc = cell.get("abc")
    if not abc:
        return None
    values = [float(x) for x in (abc if isinstance(abc, (list, tuple)) else str(abc).split())]
    return (values[0], values[1], values[2]) if len(values) == 3 else None


def parse_type_map(text: str | None) -> dict[int, str] | None:
    """``1=Cs,2=Pb,3=Br`` -> {1: 'Cs', 2: 'Pb', 3: 'Br'} (LAMMPS atom types to elements)."""
    if not text:
        return None
    out: dict[int, str] = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        if not sep or not key.strip().isdigit() or not value.strip().isalpha():
            raise ValueError(f"type map {text!r}: expected TYPE=ELEMENT pairs such as 1=Cs,2=Pb,3=Br, got {item!r}")
        out[int(key)] = value.strip()
    return out


def read_ase_trajectory(path: str | os.PathLike, *, format: str | None = None, type_map: Mapping[int, str] | None = None,
                        frame_every_steps: int = 1, first_step: int = 0, timestep_fs: float | None = None,
                        md_temperature_K: float | None = None, cell_A: Sequence[float] | None = None) -> SourceTrajectory:  # fmt: skip
    """Every frame of a trajectory ASE reads. Frame ``i`` is MD step ``first_step + i * frame_every_steps``
    unless every frame carries a ``step`` in its info (extended XYZ). ``type_map`` (LAMMPS types to
    elements) is ASE's ``specorder``. The cell is ``cell_A`` or the file's (first frame); a file
    without one and no ``cell_A`` is a ValueError."""
    import ase.io

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such trajectory file")
    kwargs = {}
    if type_map:
        kwargs["specorder"] = [type_map[k] for k in sorted(type_map)]
    try:
        frames = ase.io.read(path, index=":", format=format, **kwargs)
    except Exception as exc:
        raise ValueError(f"{path}: ASE cannot read this trajectory (format {format or 'guessed'}): {exc}") from exc
    if not isinstance(frames, list):
        frames = [frames]
    if not frames:
        raise ValueError(f"{path}: no frames")
    symbols = tuple(frames[0].get_chemical_symbols())
    for i, atoms in enumerate(frames):
        if tuple(atoms.get_chemical_symbols()) != symbols:
            raise ValueError(f"{path}: frame {i} has other atoms than frame 0 (a trajectory keeps its atoms)")
    if all("step" in a.info for a in frames):
        step = np.array([int(a.info["step"]) for a in frames])
    else:
        step = first_step + np.arange(len(frames)) * int(frame_every_steps)
    if np.any(np.diff(step) <= 0):
        raise ValueError(f"{path}: MD steps of the frames are not increasing")
    cell = tuple(float(x) for x in cell_A) if cell_A is not None else None
    if cell is None:
        lengths = frames[0].cell.lengths()
        if not np.all(lengths > 0):
            raise ValueError(f"{path}: the file has no cell; give the cell lengths in Angstrom (--cell-A)")
        if not np.allclose(frames[0].cell.angles(), 90.0):
            raise ValueError(f"{path}: non-orthorhombic cell {frames[0].cell.cellpar()}; the re-evaluation "
                             "recipes are for isolated dots in an orthorhombic box (give --cell-A)")  # fmt: skip
        cell = tuple(float(x) for x in lengths)
    positions = np.stack([a.positions for a in frames]).astype(float)
    return SourceTrajectory(path=str(path), sha256=file_sha256(path), origin=f"ase:{format or 'guessed'}",
                            symbols=symbols, step=step.astype(int), positions_A=positions, cell_A=cell,
                            timestep_fs=timestep_fs, md_temperature_K=md_temperature_K, level=None)  # fmt: skip
