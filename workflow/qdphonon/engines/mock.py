"""The mock engine's run: a synthetic AIMD in CP2K 2023.1's file formats, labelled synthetic, byte-identical on repeat."""

from __future__ import annotations

import os
import time
from typing import Any, Mapping
import numpy as np
from qdphonon import units
from qdphonon.cp2k.inputs import homo_index
from qdphonon.cp2k.readback import MDInput
from qdphonon.engines.segment import open_md_run
from qdphonon.run.errors import RunDirMismatchError
from qdphonon.run.files import segment_files
from qdphonon.engines.mock_dcd import cp2k_cell_record, dcd_frames_bytes, dcd_header_bytes, mock_titles
from qdphonon.engines.mock_gap import gap_coupling_record
from qdphonon.engines.mock_localisation import pdos_print, write_mock_pdos
from qdphonon.engines.mock_model import BOLTZMANN_Ha_per_K, mock_atom_oscillators, mock_band_edges, mock_params, mock_seed, oscillator_energies_eV, oscillator_motion
from qdphonon.engines.mock_writers import ENER_HEADER, mock_output_text, molog_bytes, xyz_frames_bytes
from qdphonon.structures.build import recentre
from qdphonon.metadata import SYNTHETIC_LABEL
from qdphonon.metadata import now_iso, run_record
from qdphonon.run.layout import STATE_FILE, check_same_input, foreign_files, read_json, write_json_atomic
from qdphonon.structures.io import read_structure


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


def _write_localisation(run_dir, md: MDInput, regions, homo: int, edges, seed: int, spacing_eV: float) -> dict | None:
    """The input's &PDOS/&LDOS print as synthetic list files (:mod:`qdphonon.engines.mock_localisation`), or None."""
    spec = pdos_print(md)
    if spec is None:
        return None
    steps = _printed_steps(md.steps, spec.every)
    index, orb_eV, occ = _mock_orbitals(md, homo, edges.vbm_eV[steps], edges.cbm_eV[steps], seed, spacing_eV)
    return write_mock_pdos(run_dir, md.project, spec, regions, steps, index, orb_eV, occ, homo, edges.vbm_eV[steps], seed)


def run_mock(
    input_path: str | os.PathLike,
    run_dir: str | os.PathLike,
    structure_xyz: str | os.PathLike,
    params: Mapping[str, Any] | None = None,
    *,
    record_path: str | os.PathLike | None = None,
    chunk_frames: int = 64,
) -> dict[str, Any]:
    """Write a synthetic AIMD run of ``input_path`` (docs/architecture.md §4) in ``run_dir``: the files CP2K 2023.1
    writes, from a harmonic model, labelled ``# synthetic (mock engine)``; return the record.

    Honours what real CP2K would read from the input: STEPS, TIMESTEP, TEMPERATURE, SEED,
    the trajectory/velocity/MO print strides, PROJECT_NAME, the printed orbital window, smearing
    and CENTER_COORDINATES. ``structure_xyz`` (the labelled structure of the MD) gives the regions
    (surface atoms softer; coupling strengths from the surface fraction and shell). Seeded from
    the system name and the replica's SEED: repeat runs give byte-identical CP2K-format files.
    Positions in Angstrom, velocities in bohr per atomic time unit, energies in Hartree.
    """

    t0 = time.monotonic()
    input_path, run_dir, record_path, sha, record, md = open_md_run(input_path, run_dir, record_path, "mock")
    if record is not None:
        return record
    dot = read_structure(structure_xyz)
    if list(dot.symbols) != list(md.symbols):
        raise ValueError(f"{structure_xyz} and the &COORD of {input_path} list different atoms")
    p = mock_params(params)
    files = md.files
    run_dir.mkdir(parents=True, exist_ok=True)
    state = read_json(run_dir / STATE_FILE)
    if state is not None:
        check_same_input(state.get("input_sha256"), sha, run_dir / STATE_FILE, input_path)
        if state.get("engine") != "mock":
            raise RunDirMismatchError(
                f"{run_dir} holds a {state.get('engine')} run; refusing to overwrite it with mock output"
            )
    elif foreign_files(run_dir, files):
        raise RunDirMismatchError(f"{run_dir} holds {', '.join(foreign_files(run_dir, files)[:6])} but no {STATE_FILE}; "
                                  "refusing to overwrite it")  # fmt: skip
    write_json_atomic(run_dir / STATE_FILE, {"engine": "mock", "input": str(input_path), "input_sha256": sha,
                                             "steps": md.steps, "project": md.project, "molog": md.files["molog"], "segments": []})  # fmt: skip

    seed = mock_seed(dot.name, md.seed)
    steps = np.arange(md.steps + 1)
    times = steps * md.timestep_fs
    edges = mock_band_edges(times, size=dot.spec.size, shell_layers=dot.spec.shell_layers, lattice_A=dot.spec.lattice_A,
                            layers=dot.layers, temperature_K=md.temperature_K, seed=seed, params=p)  # fmt: skip
    osc = mock_atom_oscillators(md.symbols, dot.regions, md.temperature_K, seed, p, edges, md.positions_A)
    kin_eV, harm_eV = oscillator_energies_eV(osc, times)
    base_Ha = sum(float(p["potential_Ha_per_atom"].get(s, -1.0)) for s in md.symbols)
    pot_Ha = base_Ha + harm_eV / units.HARTREE_eV
    kin_Ha = kin_eV / units.HARTREE_eV
    dof = max(1, 3 * len(md.symbols) - 6)
    temp_K = 2.0 * kin_Ha / (dof * BOLTZMANN_Ha_per_K)
    r0 = recentre(md.positions_A, md.box_A) if md.center_coordinates else md.positions_A
    label = ("# " + SYNTHETIC_LABEL + "\n").encode()

    seg_inp, seg_out = segment_files(0)
    (run_dir / seg_inp).write_bytes(input_path.read_bytes())
    rows = np.column_stack([steps, times, kin_Ha, temp_K, pot_Ha, pot_Ha + kin_Ha, np.zeros_like(times)])
    ener_row = "%10d%20.6f%20.9f%20.9f%20.9f%20.9f%20.9f\n"
    with open(run_dir / files["energies"], "wb") as fh:
        fh.write(label + (ENER_HEADER + "\n").encode())
        fh.write("".join(ener_row % (int(r[0]), *r[1:]) for r in rows.tolist()).encode())
    for key, every, velocity in (("positions", md.positions_every, False), ("velocities", md.velocities_every, True)):
        printed = _printed_steps(md.steps, every)
        if printed.size == 0:
            continue
        path = run_dir / files[key]
        path.unlink(missing_ok=True)
        with open(path, "ab") as fh:
            if md.trajectory_format == "xyz":
                fh.write(label)
            for i in range(0, len(printed), chunk_frames):
                sel = printed[i : i + chunk_frames]
                disp, vel = oscillator_motion(osc, times[sel])
                values = vel / units.AU_VELOCITY_A_per_fs if velocity else r0[None] + disp
                if md.trajectory_format == "dcd":
                    kind = "velocities" if velocity else "positions"
                    if i == 0:
                        fh.write(dcd_header_bytes(kind, len(md.symbols), istart=int(printed[0]), nsavc=int(every),
                                                  timestep_fs=md.timestep_fs, titles=mock_titles(kind)))  # fmt: skip
                    fh.write(dcd_frames_bytes(values, cp2k_cell_record(kind, md.box_A)))
                else:
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
    localisation = _write_localisation(run_dir, md, dot.regions, homo, edges, seed, float(p["orbital_spacing_eV"]))
    (run_dir / seg_out).write_text(
        mock_output_text(md, n_electrons=2 * homo, n_mo=max(int(index[-1]), homo), potential_Ha=pot_Ha,
                         kinetic_Ha=kin_Ha, temperature_K=temp_K, vbm_eV=edges.vbm_eV, cbm_eV=edges.cbm_eV)
    )  # fmt: skip
    wall = time.monotonic() - t0
    segment = {"index": 0, "input": seg_inp, "output": seg_out, "start_step": 0, "end_step": md.steps,
               "wall_s": round(wall, 3), "exit_status": 0, "signal": None, "ended": "completed",
               "command": "qdphonon mock engine (no CP2K)", "started_at": now_iso()}  # fmt: skip
    record = run_record(
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
            "gap_coupling": gap_coupling_record(osc, times, md.temperature_K),
            "localisation_model": localisation,
            "scf_unconverged_steps": [],
        },
    )  # fmt: skip
    write_json_atomic(run_dir / STATE_FILE, {"engine": "mock", "input": str(input_path), "input_sha256": sha,
                                             "steps": md.steps, "project": md.project, "molog": md.files["molog"], "segments": [segment],
                                             "complete": True})  # fmt: skip
    write_json_atomic(record_path, record)
    return record
