"""Geometry optimisation at the MD's level before every MD (the ideal cut is far from a minimum)."""

from __future__ import annotations

import dataclasses
import os
import re
import shlex
import sys
from pathlib import Path
from typing import Any, Mapping
import numpy as np
from qdphonon.cp2k.inputs import SCFSettings, cp2k_input_tree
from qdphonon.cp2k.xmlspec import cp2k_version, installed_xmlspec, render_input
from qdphonon.engines.cp2k import ENGINES, _abort_message
from qdphonon.engines.errors import EngineError
from qdphonon.engines.process import cp2k_command_line, cp2k_environment, find_cp2k, run_process
from qdphonon.rundir import write_json_atomic
from qdphonon.structures.io import _xyz_text, read_structure


def write_labelled_structure(dot, path: str | os.PathLike, relaxed: str, extra: Mapping[str, str] | None = None) -> None:
    """Write ``dot`` as qdphonon's extended XYZ (labels preserved) with ``relaxed=<how>`` in the comment line.

    Values with spaces are quoted. Only the XYZ is written (no JSON sidecar).
    """

    lines = _xyz_text(dot).split("\n")
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
    """Geometry optimisation at the MD's level (docs/physics.md §3: the ideal cut is far from a minimum).

    ``cp2k``: a GEO_OPT input built by :func:`qdphonon.cp2k.inputs.cp2k_input_tree` (same level,
    SCF settings and overrides as the MD), run in ``workdir`` (``relax.inp``/``relax.out``);
    the final frame is written to ``out_xyz`` with the region/layer labels of the input
    structure and ``relaxed=cp2k-<level>`` (plus ``relax_converged=T|F``). ``mock``: the ideal
    structure is passed through, labelled ``relaxed="none (mock engine)"``. Returns a summary
    (also written to ``workdir/relax.json`` for cp2k).
    """

    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; expected one of {', '.join(ENGINES)}")
    dot = read_structure(structure_xyz)
    if engine == "mock":
        write_labelled_structure(dot, out_xyz, "none (mock engine)")
        return {"engine": "mock", "relaxed": False, "synthetic": True, "structure": str(structure_xyz)}
    exe = find_cp2k(cp2k_command)
    spec, spec_desc = installed_xmlspec(cp2k_command)
    tree = cp2k_input_tree(
        dot.symbols, dot.positions_A, dot.box_A, level=level, run_type="GEO_OPT",
        scf=SCFSettings(eps_scf=eps_scf, max_scf=max_scf, smearing_K=smearing_K),
        geo_opt_max_iter=max_iter, overrides=overrides,
    )  # fmt: skip
    project = tree["global"]["project_name"]
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    for p in workdir.iterdir():
        if p.name.startswith(f"{project}-") or p.name in ("relax.inp", "relax.out", "relax.json"):
            p.unlink()
    header = f"! qdphonon GEO_OPT input, level {level}; validated against {spec_desc}\n"
    (workdir / "relax.inp").write_text(header + render_input(tree, spec))
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
        "cp2k_version": cp2k_version(cp2k_command), "command": shlex.join(cmd),
        "wall_s": round(result.wall_s, 3), "final_energy_Ha": float(energy.group(1)) if energy else None,
        "max_displacement_A": float(np.abs(relaxed.positions_A - dot.positions_A).max()),
        "structure": str(structure_xyz), "out": str(out_xyz), "synthetic": False,
    }  # fmt: skip
    write_json_atomic(workdir / "relax.json", summary)
    if not converged:
        print(f"relax: warning: geometry optimisation not converged in {max_iter} steps; "
              f"{out_xyz} holds the last geometry (relax_converged=F)", file=sys.stderr)  # fmt: skip
    return summary
