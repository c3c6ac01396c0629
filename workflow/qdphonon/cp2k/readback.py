"""Reading a CP2K input back: :class:`MDInput`, what CP2K will do with an MD (or GEO_OPT) input."""

from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path
from typing import Any, Mapping
import numpy as np
from qdphonon.cp2k.xmlspec import parse_input_text
from qdphonon.cp2k.xmlspec import bundled_xmlspec, render_input
from qdphonon.run.layout import run_files


def render_tree(tree: Mapping[str, Any], xmlspec: str | os.PathLike, header: str = "") -> str:
    """Render and validate a tree (canonical ``+section`` keys or the simplified form)."""
    return header + render_input(tree, xmlspec)


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
    trajectory_format: str = "xyz"

    @property
    def files(self) -> dict[str, str]:
        """CP2K's file names of this project (trajectories, energies, MOLog, restarts)."""
        return run_files(self.project, self.mo_filename, trajectory_format=self.trajectory_format)


def read_md_input(input_path: str | os.PathLike, xmlspec: str | os.PathLike | None = None) -> MDInput:
    """Read an MD (or GEO_OPT) input back with cp2k-input-tools; CP2K's defaults fill omitted keys.

    ``xmlspec`` defaults to the definition bundled with cp2k-input-tools (reading does not
    need the installed CP2K; a 2023.1 input reads with the 2024.1 definition).
    """

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
    formats = {str(sec.get("format", "xyz")).lower() for sec in (traj, vel) if _on(sec)}
    if not formats <= {"xyz", "dcd"} or len(formats) > 1:
        raise ValueError(f"{path}: MOTION/PRINT/TRAJECTORY and VELOCITIES FORMAT must both be XYZ or both DCD "
                         f"for the qdphonon engines, got {sorted(formats)}")  # fmt: skip
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
        trajectory_format=formats.pop() if formats else "xyz",
    )


def read_subsys(input_path: str | os.PathLike) -> tuple[list[str], np.ndarray | None]:
    """Element symbols of any CP2K input's ``&COORD`` (in order; empty when it has none) and its
    ``&CELL ABC`` in Angstrom (a ``[unit]`` converted by cp2k-input-tools; None when absent).

    For trajectories that carry no symbols (DCD) and their unit check. ValueError naming the file
    when the input does not parse."""
    path = Path(input_path)
    try:
        tree = parse_input_text(path.read_text(errors="replace"), bundled_xmlspec())
    except Exception as exc:  # cp2k-input-tools raises its own error types
        raise ValueError(f"{path}: not a CP2K input cp2k-input-tools can read: {exc}") from exc
    subsys = _sec(_sec(tree, "force_eval"), "subsys") or {}
    symbols = [line.split()[0] for line in (_sec(subsys, "coord") or {}).get("*", []) if line.split()]
    abc = (_sec(subsys, "cell") or {}).get("abc")
    return symbols, None if abc is None else np.array([float(x) for x in abc], dtype=float)


def input_ldos_lists(tree: dict[str, Any]) -> list[list[int]]:
    """The 1-based atom indices of every ``&LDOS`` of a parsed CP2K input (canonical tree of
    :func:`qdphonon.cp2k.xmlspec.parse_input_text`), in the order CP2K numbers its list files."""
    pdos = _sec(_sec(_sec(tree, "force_eval"), "dft"), "print", "pdos") or {}
    lists = []
    for ldos in pdos.get("+ldos", []):
        atoms: list[int] = []
        for row in ldos.get("list", []):
            atoms += [int(x) for x in (row if isinstance(row, (list, tuple)) else str(row).split())]
        lists.append(atoms)
    return lists
