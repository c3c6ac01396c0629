"""Band edges per MD step from the main outputs and the MOLog, every step once across segments."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Sequence
import numpy as np
from qdphonon.parsers.common import _warn
from qdphonon.parsers.main_output import Evaluation, MainOutput, electron_count_line
from qdphonon.parsers.molog import MOBlock, UnsupportedMOLogFormat, read_molog
from qdphonon.parsers.xyz import dedupe_keep_last


NO_BAND_EDGES = "this run printed no band edges (no MOLog, no eigenvalue lists in the main output)"


class NoBandEdgesError(FileNotFoundError):
    """The run printed no band edges: no MOLog and no eigenvalue lists in its main outputs."""


@dataclasses.dataclass(frozen=True)
class BandEdges:
    """Band edges per MD step (every step once, sorted).

    vbm_eV / cbm_eV: HOMO (orbital ``homo_index``) and LUMO (``homo_index + 1``)
    eigenvalues; gap_eV = cbm_eV - vbm_eV. scf_converged: CP2K's verdict for that
    step's SCF. homo_occupation / lumo_occupation: occupations of the two orbitals
    (2 and 0 without smearing; NaN when not printed).
    """

    step: np.ndarray
    time_fs: np.ndarray
    vbm_eV: np.ndarray
    cbm_eV: np.ndarray
    gap_eV: np.ndarray
    scf_converged: np.ndarray
    homo_occupation: np.ndarray
    lumo_occupation: np.ndarray
    homo_index: int
    source: str
    synthetic: bool = False

    def select(self, mask: np.ndarray) -> "BandEdges":
        """The rows where ``mask`` is True."""
        kw = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        for name in ("step", "time_fs", "vbm_eV", "cbm_eV", "gap_eV", "scf_converged", "homo_occupation", "lumo_occupation"):
            kw[name] = kw[name][mask]
        return BandEdges(**kw)


def _evaluation_times(mains: Sequence[MainOutput]) -> None:
    """Fill step and time of ``init`` evaluations that the segment itself cannot date."""
    last_step: int | None = None
    last_time: float | None = None
    for mo in mains:
        for ev in mo.evaluations:
            if ev.kind == "init":
                if ev.step is None:
                    ev.step = last_step if last_step is not None else 0
                if ev.time_fs is None:
                    if last_step is not None and ev.step == last_step and last_time is not None:
                        ev.time_fs = last_time
                    elif mo.timestep_fs is not None:
                        ev.time_fs = ev.step * mo.timestep_fs
            if ev.kind in ("init", "step") and ev.step is not None:
                last_step, last_time = ev.step, ev.time_fs
            if ev.kind == "step" and ev.time_fs is None and mo.timestep_fs is not None:
                ev.time_fs = ev.step * mo.timestep_fs


def align_mo_blocks(mains: Sequence[MainOutput], blocks: Sequence[MOBlock], molog: str,
                    counts: Sequence[int | None] | None = None,
                    warn_sink: list[str] | None = None) -> list[tuple[Evaluation, MOBlock]]:
    """Pair every dated evaluation (``init``/``step``) with its MOLog block, in order.

    ``counts`` (the MD blocks each segment left in the MOLog, as our engine records them; the
    last may be None, "the rest"): segment i's blocks are the next ``counts[i]`` ones, paired
    with its first dated evaluations; its later evaluations are of steps a continuation
    re-evaluated (the engine cut their blocks) and must be dated at or after the next
    segment's first step; blocks beyond its dated evaluations belong to its killed last step.
    Without ``counts`` (any CP2K directory):

    Guess blocks are skipped. An evaluation whose SCF CP2K's WALLTIME cut short wrote
    no block (although its energy line is printed) and is not paired. A killed
    segment's trailing evaluation consumed a block if it certainly wrote one (its
    energy line is printed), certainly did not (its SCF did not end), or possibly did
    (SCF ended, killed during the post-SCF prints); the possible ones are decided by
    the block count, and an undecidable count raises ValueError, as does any count
    that does not fit.
    """
    md_blocks = [b for b in blocks if not b.guess]
    if counts is not None:
        return _align_counted(mains, md_blocks, molog, counts, warn_sink)
    evals = [ev for mo in mains for ev in mo.evaluations if not ev.scf_stopped]
    dated = sum(ev.kind != "trailing" for ev in evals)
    certain = [ev for ev in evals if ev.kind == "trailing" and ev.force_done]
    maybe = [ev for ev in evals if ev.kind == "trailing" and not ev.force_done and ev.scf_converged is not None]
    extra = len(md_blocks) - dated - len(certain)
    if extra < 0 or extra > len(maybe):
        if extra < 0:
            last = md_blocks[-1].line_no if md_blocks else 1
            where = f"line {last}: the last MO block; {-extra} missing"
        else:
            where = f"line {md_blocks[dated + len(certain) + len(maybe)].line_no}: first MO block too many"
        raise ValueError(
            f"{molog}: {where}: {len(md_blocks)} MO blocks do not fit the {dated} dated force evaluations"
            f" (+{len(certain)} certain and {len(maybe)} possible from killed segments) of "
            + ", ".join(Path(mo.path).name for mo in mains)
        )
    if 0 < extra < len(maybe):
        raise ValueError(
            f"{molog}: cannot tell which of {len(maybe)} killed segments wrote an MO block ({extra} did), so the "
            "blocks cannot be aligned to steps; trim each killed segment's output and MOLog back to its restart step"
        )
    wrote = {id(ev) for ev in certain} | ({id(ev) for ev in maybe} if extra else set())
    pairs: list[tuple[Evaluation, MOBlock]] = []
    k = 0
    for ev in evals:
        if ev.kind == "trailing":
            if id(ev) in wrote:
                if not md_blocks[k].complete:
                    _warn(f"{molog}: line {md_blocks[k].line_no}: MO block of a killed step cut short: not used", warn_sink)
                k += 1
            continue
        b = md_blocks[k]
        k += 1
        if not b.complete:
            raise ValueError(f"{molog}: line {b.line_no}: MO block cut short, but its step ({ev.step}) completed")
        pairs.append((ev, b))
    return pairs


def _align_counted(mains: Sequence[MainOutput], md_blocks: Sequence[MOBlock], molog: str,
                   counts: Sequence[int | None], warn_sink: list[str] | None = None) -> list[tuple[Evaluation, MOBlock]]:
    if len(counts) != len(mains):
        raise ValueError(f"{molog}: {len(counts)} recorded MO block counts for {len(mains)} main outputs")
    dated = [[ev for ev in mo.evaluations if ev.kind != "trailing" and not ev.scf_stopped] for mo in mains]
    pairs: list[tuple[Evaluation, MOBlock]] = []
    k = 0
    for i, (mo, evs, c) in enumerate(zip(mains, dated, counts)):
        c = len(md_blocks) - k if c is None else int(c)
        mine = md_blocks[k : k + c]
        if len(mine) < c:
            raise ValueError(f"{molog}: {len(md_blocks)} MO blocks, but the segments up to {Path(mo.path).name} "
                             f"recorded {k + c} (segments.json)")  # fmt: skip
        k += c
        later = [ev.step for evs_j in dated[i + 1 :] for ev in evs_j if ev.step is not None]
        for ev in evs[c:]:
            if not later or ev.step is None or ev.step < min(later):
                raise ValueError(f"{molog}: no MO block for step {ev.step} of {Path(mo.path).name} (line {ev.line_no}): "
                                 f"segments.json records {c} blocks for that segment")  # fmt: skip
        for ev, b in zip(evs, mine):
            if not b.complete:
                raise ValueError(f"{molog}: line {b.line_no}: MO block cut short, but its step ({ev.step}) completed")
            pairs.append((ev, b))
    rest = md_blocks[k:]
    if rest and counts and counts[-1] is not None:
        if len(rest) == 1 and not rest[0].complete:  # what a kill during its write leaves, never continued
            _warn(f"{molog}: line {rest[0].line_no}: MO block cut short after the {k} that segments.json accounts "
                  "for (the last segment was killed while CP2K wrote it): not used", warn_sink)  # fmt: skip
        else:
            raise ValueError(f"{molog}: line {rest[0].line_no}: MO block after the {k} that segments.json accounts for")
    return pairs


def _molog_rows(pairs, homo: int, molog: str) -> list[tuple] | None:
    """(evaluation, HOMO eV, LUMO eV, HOMO occ., LUMO occ.) per pair; None when the LUMO is not printed (OT)."""
    rows = []
    for ev, b in pairs:
        h, lumo = b.orbital(homo), b.orbital(homo + 1)
        if h is None:
            raise ValueError(f"{molog}: line {b.line_no}: orbital {homo} (HOMO) not printed (MO_INDEX_RANGE?)")
        if lumo is None:
            return None
        rows.append((ev, h[0], lumo[0], h[1], lumo[1]))
    return rows


def _ot_rows(evals: Sequence[Evaluation], homo: int, why: str) -> list[tuple]:
    """Rows of the OT route (main output ``MO_CUBES`` eigenvalues); ValueError naming a step without them."""
    for ev in evals:
        if ev.ot_homo_eV is None or ev.ot_lumo_eV is None:
            raise ValueError(f"{why}, and {ev.segment}: line {ev.line_no}: no MO_CUBES eigenvalue print for step {ev.step}")
        if ev.ot_n_occupied != homo:
            raise ValueError(
                f"{ev.segment}: line {ev.line_no}: {ev.ot_n_occupied} occupied eigenvalues printed, expected {homo}"
            )
    return [(ev, ev.ot_homo_eV, ev.ot_lumo_eV, 2.0, 0.0) for ev in evals]


def band_edges_from_outputs(
    mains: Sequence[MainOutput], molog_path: Path | None, warn_sink: list[str] | None = None,
    molog_blocks: Sequence[int | None] | None = None,
) -> BandEdges:
    """Band edges of every dated evaluation (restart duplicates resolved: the later copy wins).

    MOLog route when the MOLog holds the LUMO, else the OT route from the main outputs.
    A dated evaluation whose SCF CP2K's WALLTIME cut short is left out (warned).
    """
    _evaluation_times(mains)
    evals = [ev for mo in mains for ev in mo.evaluations if ev.kind != "trailing"]
    for ev in evals:
        if ev.scf_stopped:
            by = "CP2K's WALLTIME" if ev.walltime_stopped else "an EXIT file"
            _warn(
                f"{ev.segment}: line {ev.line_no}: {by} stopped the SCF of step {ev.step} (no MO block): "
                "not used for the band edges",
                warn_sink,
            )
    evals = [ev for ev in evals if not ev.scf_stopped]
    if not evals:
        raise ValueError(f"{', '.join(mo.path for mo in mains)}: no completed MD force evaluation")
    counted = [(mo, n) for mo in mains for n in [next((e.n_electrons for e in mo.evaluations if e.n_electrons), None)] if n]
    for mo, n in counted[1:]:
        if n != counted[0][1]:
            (line, _), (line0, _) = electron_count_line(mo.path), electron_count_line(counted[0][0].path)
            raise ValueError(
                f"{mo.path}: line {line}: {n} electrons, but {counted[0][0].path} (line {line0}) has "
                f"{counted[0][1]}: an output of another system or input"
            )
    n_el = next((ev.n_electrons for ev in evals if ev.n_electrons is not None), None)
    if n_el is None:
        raise ValueError(f"{mains[0].path}: no 'Number of electrons' line: cannot tell which orbital is the HOMO")
    if n_el % 2:
        raise ValueError(f"{mains[0].path}: odd electron count {n_el}: closed-shell band edges undefined")
    homo = n_el // 2
    smeared = any(mo.smearing_K is not None for mo in mains)
    if not smeared:
        n_occ = {ev.n_occupied for ev in evals if ev.n_occupied is not None}
        if n_occ and n_occ != {homo}:
            _warn(f"{mains[0].path}: 'Number of occupied orbitals' {sorted(n_occ)} differs from N_el/2 = {homo}", warn_sink)
    rows = None
    synthetic = any(mo.synthetic for mo in mains)
    if molog_path is not None and molog_path.is_file():
        try:
            blocks, molog_synthetic = read_molog(molog_path)
        except UnsupportedMOLogFormat as exc:
            versions = sorted({mo.cp2k_version for mo in mains if mo.cp2k_version})
            raise UnsupportedMOLogFormat(f"{exc}; the main output says CP2K version {', '.join(versions) or '?'}; "
                                         "read are the rows 'MO| index eig[a.u.] eig[eV] occupation' of CP2K 8.2 and "
                                         "later") from None  # fmt: skip
        synthetic = synthetic or molog_synthetic
        rows = _molog_rows(align_mo_blocks(mains, blocks, str(molog_path), molog_blocks, warn_sink), homo, str(molog_path))
        source = f"{molog_path.name} (orbital {homo} = HOMO, {homo + 1} = LUMO)"
        why = f"{molog_path} does not print orbital {homo + 1} (LUMO)"
    else:
        why = (f"{molog_path}: MO print file not found" if molog_path is not None else
               f"no MOLog file next to {mains[0].path} (name it with --molog)")
        if not any(ev.ot_lumo_eV is not None or ev.ot_homo_eV is not None for ev in evals):
            if molog_path is None:
                raise NoBandEdgesError(f"{', '.join(mo.path for mo in mains)}: {NO_BAND_EDGES}")
            raise FileNotFoundError(why)
    if rows is None:
        rows = _ot_rows(evals, homo, why)
        source = f"main output MO_CUBES eigenvalues (HOMO = orbital {homo}, last of the occupied subspace; LUMO = lowest unoccupied)"
    step = np.asarray([r[0].step for r in rows], dtype=np.int64)
    keep = dedupe_keep_last(step)
    rows = [rows[i] for i in keep]
    time_fs = np.asarray([np.nan if r[0].time_fs is None else r[0].time_fs for r in rows], dtype=np.float64)
    vbm = np.asarray([r[1] for r in rows], dtype=np.float64)
    cbm = np.asarray([r[2] for r in rows], dtype=np.float64)
    conv = np.asarray([r[0].scf_converged is not False for r in rows], dtype=bool)
    return BandEdges(
        step[keep], time_fs, vbm, cbm, cbm - vbm, conv,
        np.asarray([r[3] for r in rows], dtype=np.float64), np.asarray([r[4] for r in rows], dtype=np.float64),
        homo, source, synthetic,
    )  # fmt: skip
