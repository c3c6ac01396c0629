"""CP2K main outputs: force evaluations in order, SCF verdicts, time step, smearing, OT band edges."""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import Sequence
from qdphonon.units import HARTREE_eV
from qdphonon.parsers.common import _is_synthetic_line, _text_lines


@dataclasses.dataclass
class Evaluation:
    """One force evaluation (SCF) found in a main output.

    kind: ``init`` (the SCF before ``MD_INI|``: start or restart step), ``step`` (the
    SCF before ``MD| Step number N``) or ``trailing`` (no step line after it: killed).
    scf_converged: the last SCF verdict line of the evaluation (None if none was printed).
    walltime_stopped: CP2K's WALLTIME cut the SCF short (``SCF run terminated - exceeded
    requested execution time``): no MO block, not a valid MD step.
    external_stopped: an ``EXIT`` file cut the SCF short (``SCF run terminated by external
    request``): the same (CP2K 2023.1 prints 'NOT converged' and the energy, but no MO block).
    ot_homo_eV / ot_lumo_eV: from the ``MO_CUBES`` eigenvalue print (OT route), else None.
    """

    segment: str
    line_no: int
    kind: str = "trailing"
    step: int | None = None
    time_fs: float | None = None
    scf_converged: bool | None = None
    walltime_stopped: bool = False
    external_stopped: bool = False
    force_done: bool = False
    ot_homo_eV: float | None = None
    ot_lumo_eV: float | None = None
    ot_n_occupied: int = 0
    fermi_eV: float | None = None
    gap_eV: float | None = None
    n_electrons: int | None = None
    n_occupied: int | None = None

    @property
    def scf_stopped(self) -> bool:
        """CP2K stopped this SCF (WALLTIME or EXIT file): no MO block, not an SCF failure."""
        return self.walltime_stopped or self.external_stopped


@dataclasses.dataclass
class MainOutput:
    """What :func:`read_main_output` takes from one segment's main output.

    timestep_fs: ``MD_PAR| Time step``; smearing_K: electronic temperature when a smearing
    method is active, else None; complete: CP2K printed ``PROGRAM ENDED AT``.
    """

    path: str
    evaluations: list[Evaluation]
    timestep_fs: float | None
    smearing_K: float | None
    cp2k_version: str | None
    synthetic: bool
    complete: bool
    md_temperature_K: float | None = None
    level: str | None = None
    run_type: str | None = None
    run_type_line: int | None = None


_FLOAT = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[EeDd][-+]?\d+)?"


_RE_STEP = re.compile(r"^\s*MD\|\s+Step number\s+(\d+)\s*$")
_RE_STEP_OLD = re.compile(r"^\s*STEP NUMBER\s+=\s+(\d+)\s*$")
"""CP2K <= 7.1 (2.6.2 too): the MD step summary is a ``STEP NUMBER = N`` / ``TIME [fs] = t`` block."""
_RE_TIME_OLD = re.compile(rf"^\s*TIME \[fs\]\s+=\s+({_FLOAT})\s*$")
_OLD_MD_INIT = "INITIAL POTENTIAL ENERGY[hartree]"
"""CP2K <= 7.1: first line of the MD initialisation block (``MD_INI|`` from 8.1 on)."""


_RE_TIME = re.compile(rf"^\s*MD\|\s+Time \[fs\]\s+({_FLOAT})\s*$")


_RE_DT = re.compile(rf"^\s*MD_PAR\|\s+Time step \[fs\]\s+({_FLOAT})\s*$")
_RE_TMD = re.compile(rf"^\s*MD_PAR\|\s+Temperature \[K\]\s+({_FLOAT})\s*$")
_RE_DT_OLD = re.compile(rf"^\s*MD\|\s+Time Step \[fs\]\s+({_FLOAT})\s*$")
_RE_TMD_OLD = re.compile(rf"^\s*MD\|\s+Temperature \[K\]\s+({_FLOAT})\s*$")
"""CP2K <= 7.1 MD parameters (one number; the per-step ``MD| Temperature [K]`` of >= 8.1 has two)."""
_RE_RUN_TYPE = re.compile(r"^\s*GLOBAL\|\s+Run type\s+(\S+)\s*$")
_RE_FUNCTIONAL = re.compile(r"^\s*FUNCTIONAL\|\s+([A-Za-z][A-Za-z0-9_+\-]*):\s*$")
"""A functional's name line (``FUNCTIONAL| PBE:``), not ``ROUTINE=NEW`` (CP2K <= 9.1) nor a reference line."""


_RE_NEL = re.compile(r"^\s*Number of electrons:\s+(\d+)\s*$")


_RE_NOCC = re.compile(r"^\s*Number of occupied orbitals:\s+(\d+)\s*$")


_RE_SMEAR = re.compile(r"^\s*Smear method:\s+(\S+)")


_RE_TEL = re.compile(rf"^\s*Electronic temperature \[K\]:\s+({_FLOAT})\s*$")


_RE_FERMI = re.compile(rf"^\s*Fermi Energy \[eV\]\s*:\s*({_FLOAT})\s*$")


_RE_GAP = re.compile(rf"^\s*HOMO - LUMO gap \[eV\]\s*:\s*({_FLOAT})\s*$")


_RE_VERSION = re.compile(r"CP2K\|\s+version string:\s+CP2K version\s+(\S+)")


_SCF_WALLTIME_STOP = "SCF run terminated - exceeded requested execution time"
"""CP2K 2023.1's line when its WALLTIME ends an SCF (followed by ``:  1.000 seconds.``)."""
_SCF_EXTERNAL_STOP = "SCF run terminated by external request"
"""CP2K 2023.1's line when an ``EXIT`` file ends an SCF."""


def _f(text: str) -> float:
    return float(text.replace("D", "E").replace("d", "e"))


_NAMED_COMBINATIONS = {("BECKE88", "LYP"): "blyp", ("LYP", "BECKE88"): "blyp"}


def level_from_functionals(names: list[str]) -> str | None:
    """The level a list of CP2K ``FUNCTIONAL|`` names stands for, lower case: ``pbe``, ``blyp``
    (``BECKE88`` + ``LYP``), ``pade``; other combinations joined with ``+``; None for none."""
    if not names:
        return None
    return _NAMED_COMBINATIONS.get(tuple(names)) or "+".join(n.lower() for n in names)


def _numbers_only(text: str) -> bool:
    """True for a line of numbers only (a row of an eigenvalue list)."""
    try:
        return bool([float(t) for t in text.split()])
    except ValueError:
        return False


def _next_row(lines: list[str], start: int) -> str:
    """The first of ``lines[start:]`` (a few at most) that is not blank, a dash line or an ``OT|`` line."""
    for text in lines[start : start + 8]:
        t = text.strip()
        if t and not t.startswith(("---", "OT|")):
            return t
    return ""


def _stray_line(s: str, following: str) -> bool:
    """True for a line inside an eigenvalue list that is not CP2K's (a GPU build's ELPA prints ``Skipping GPU
    init, should have already been initialized`` there): unlabelled, not blank, and eigenvalues follow it.
    Anything else ends the list (``Fermi Energy``, ``HOMO - LUMO``, ``ENERGY|``, the next print)."""
    labelled = "|" in s or s.startswith(("Fermi Energy", "HOMO - LUMO", "Lowest", "Eigenvalues", "*"))
    return bool(s) and not labelled and _numbers_only(following)


def read_main_output(path: str | os.PathLike) -> MainOutput:
    """The force evaluations of one CP2K MD main output, in order, with step, time, SCF verdict
    and (OT route) band edges; plus time step, smearing, version, level and run type.

    MD steps are read in both of CP2K's formats: ``MD_INI|`` / ``MD| Step number`` (8.1 and
    later; the ``MD STEP: n / N`` banner that 2026.2 prints before each step is not needed) and
    ``INITIAL POTENTIAL ENERGY`` / ``STEP NUMBER =`` (7.1 and earlier, 2.6.2 included)."""
    path = Path(path)
    lines, complete = _text_lines(path, "CP2K main output")
    if not complete:
        lines = lines[:-1]
    out = MainOutput(str(path), [], None, None, None, False, False)
    seg = path.name
    evals = out.evaluations
    cur: Evaluation | None = None
    smear_method: str | None = None
    t_el: float | None = None
    n_el = n_occ = None
    mode = None  # None | "occ" | "unocc"
    occ_last: float | None = None
    occ_count = 0
    xtb = False
    functionals: list[str] = []

    def current(i: int) -> Evaluation:
        """The force evaluation being read; a new one, starting at line ``i``, when none is open."""
        nonlocal cur
        if cur is None:
            cur = Evaluation(seg, i, n_electrons=n_el, n_occupied=n_occ)
            evals.append(cur)
        return cur

    for i, line in enumerate(lines, start=1):
        if mode is not None:
            s = line.strip()
            if s.startswith("---") or s.startswith("OT|") or (mode == "unocc" and not s):
                continue
            try:
                vals = [float(t) for t in s.split()]
            except ValueError:
                vals = []
            if vals and mode == "occ":
                occ_last, occ_count = vals[-1], occ_count + len(vals)
                continue
            if vals and mode == "unocc":
                if cur is not None and cur.ot_lumo_eV is None:
                    cur.ot_lumo_eV = vals[0] * HARTREE_eV
                mode = None
                continue
            if not vals and _stray_line(s, _next_row(lines, i)):
                continue
            if mode == "occ" and occ_last is not None and cur is not None:
                cur.ot_homo_eV, cur.ot_n_occupied = occ_last * HARTREE_eV, occ_count
            mode = None
        if i == 1 and line.lstrip().startswith("#"):
            out.synthetic = _is_synthetic_line(line)
            continue
        if "SCF WAVEFUNCTION OPTIMIZATION" in line:
            current(i)
            continue
        if "SCF run converged" in line and "NOT" not in line:
            current(i).scf_converged = True
            continue
        if "SCF run NOT converged" in line or "outer SCF loop FAILED to converge" in line:
            current(i).scf_converged = False
            continue
        if _SCF_WALLTIME_STOP in line:
            current(i).walltime_stopped = True
            continue
        if _SCF_EXTERNAL_STOP in line:
            current(i).external_stopped = True
            continue
        if "outer SCF loop converged" in line:
            if cur is not None:
                cur.scf_converged = True
            continue
        if line.lstrip().startswith("ENERGY| Total FORCE_EVAL"):
            if cur is not None:
                cur.force_done = True
            continue
        if "Eigenvalues of the occupied subspace" in line:
            mode, occ_last, occ_count = "occ", None, 0
            continue
        if "Lowest Eigenvalues of the unoccupied subspace" in line or "Lowest eigenvalues of the unoccupied subspace" in line:
            mode = "unocc"
            continue
        s = line.lstrip()
        if s.startswith("MD_INI| MD initialization") or s.startswith(_OLD_MD_INIT):
            if cur is None:  # an output without SCF prints (the mock engine's minimal one)
                evals.append(Evaluation(seg, i, n_electrons=n_el, n_occupied=n_occ))
                cur = evals[-1]
            cur.kind = "init"
            cur = None
            continue
        if s.startswith("MD| Step number") or s.startswith("STEP NUMBER"):
            old = s.startswith("STEP NUMBER")
            m = (_RE_STEP_OLD if old else _RE_STEP).match(line)
            if m is None:
                raise ValueError(f"{path}: line {i}: bad step line {line.strip()[:80]!r}")
            if cur is None:
                evals.append(Evaluation(seg, i, n_electrons=n_el, n_occupied=n_occ))
                cur = evals[-1]
            cur.kind, cur.step = "step", int(m.group(1))
            if i < len(lines):
                mt = (_RE_TIME_OLD if old else _RE_TIME).match(lines[i])
                if mt:
                    cur.time_fs = _f(mt.group(1))
            cur = None
            continue
        if s.startswith("Number of electrons:"):
            m = _RE_NEL.match(line)
            if m:
                n_el = int(m.group(1))
                if cur is not None:
                    cur.n_electrons = n_el
            continue
        if s.startswith("Number of occupied orbitals:"):
            m = _RE_NOCC.match(line)
            if m:
                n_occ = int(m.group(1))
                if cur is not None:
                    cur.n_occupied = n_occ
            continue
        if s.startswith("Fermi Energy [eV]"):
            m = _RE_FERMI.match(line)
            if m and cur is not None:
                cur.fermi_eV = _f(m.group(1))
            continue
        if s.startswith("HOMO - LUMO gap [eV]"):
            m = _RE_GAP.match(line)
            if m and cur is not None:
                cur.gap_eV = _f(m.group(1))
            continue
        if s.startswith("MD_PAR| Time step [fs]"):
            m = _RE_DT.match(line)
            if m:
                out.timestep_fs = _f(m.group(1))
            continue
        if s.startswith("MD_PAR| Temperature [K]"):
            m = _RE_TMD.match(line)
            if m:
                out.md_temperature_K = _f(m.group(1))
            continue
        if s.startswith("MD| Time Step [fs]") or s.startswith("MD| Temperature [K]"):
            m_dt, m_t = _RE_DT_OLD.match(line), _RE_TMD_OLD.match(line)
            if m_dt and out.timestep_fs is None:
                out.timestep_fs = _f(m_dt.group(1))
            if m_t and out.md_temperature_K is None:
                out.md_temperature_K = _f(m_t.group(1))
            continue
        if s.startswith("xTB| "):
            xtb = True
            continue
        if s.startswith("FUNCTIONAL| "):
            m = _RE_FUNCTIONAL.match(line)
            if m and not evals and m.group(1).upper() not in functionals:
                functionals.append(m.group(1).upper())
            continue
        if s.startswith("GLOBAL| Run type") and out.run_type is None:
            m = _RE_RUN_TYPE.match(line)
            if m:
                out.run_type, out.run_type_line = m.group(1).upper(), i
            continue
        if s.startswith("Smear method:"):
            m = _RE_SMEAR.match(line)
            smear_method = m.group(1) if m else None
            continue
        if s.startswith("Electronic temperature [K]:"):
            m = _RE_TEL.match(line)
            if m:
                t_el = _f(m.group(1))
            continue
        if "version string:" in line and out.cp2k_version is None:
            m = _RE_VERSION.search(line)
            if m:
                out.cp2k_version = m.group(1)
            continue
        if "PROGRAM ENDED AT" in line:
            out.complete = True
    out.level = "xtb" if xtb else level_from_functionals(functionals)
    if smear_method is not None and smear_method.upper() != "NONE":
        out.smearing_K = t_el
    _assign_init_steps(evals)
    return out


def electron_count_line(path: str | os.PathLike) -> tuple[int, int] | None:
    """(line number, value) of the first ``Number of electrons`` line of a main output, or None."""
    with open(path, "rb") as fh:
        for i, raw in enumerate(fh, start=1):
            m = _RE_NEL.match(raw.decode("utf-8", "replace"))
            if m:
                return i, int(m.group(1))
    return None


def _assign_init_steps(evals: list[Evaluation]) -> None:
    """Give an ``init`` evaluation the step before the segment's first numbered step (when known)."""
    for k, ev in enumerate(evals):
        if ev.kind != "init":
            continue
        nxt = next((e for e in evals[k + 1 :] if e.kind == "step"), None)
        if nxt is not None:
            ev.step = nxt.step - 1


def scf_unconverged_steps(outputs: Sequence[Path]) -> list[int]:
    """MD steps whose SCF did not converge, from the segments' main outputs (a step re-evaluated by a
    continuation counts with its last evaluation)."""
    verdict: dict[int, bool] = {}
    for path in outputs:
        if not path.is_file() or path.stat().st_size == 0:
            continue
        for ev in read_main_output(path).evaluations:
            if ev.kind != "trailing" and ev.step is not None and not ev.scf_stopped:
                verdict[int(ev.step)] = ev.scf_converged is not False
    return sorted(s for s, ok in verdict.items() if not ok)
