"""The mock engine's run: a synthetic AIMD in CP2K 2023.1's file formats, labelled synthetic, byte-identical on repeat."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, Mapping
import numpy as np
from qdphonon import units
from qdphonon.cp2k.inputs import homo_index
from qdphonon.cp2k.readback import MDInput
from qdphonon.engines.process import ProcessResult
from qdphonon.run.state_records import RunState, read_state
from qdphonon.engines.segment import InProcessLauncher, SegmentPlan, open_md_run, run_segments, save_state
from qdphonon.run.errors import RunDirMismatchError
from qdphonon.run.files import segment_files
from qdphonon.engines.mock_dcd import cp2k_cell_record, dcd_frames_bytes, dcd_header_bytes, mock_titles
from qdphonon.engines.mock_gap import gap_coupling_record
from qdphonon.engines.mock_localisation import pdos_print, write_mock_pdos
from qdphonon.engines.mock_model import BOLTZMANN_Ha_per_K, mock_atom_oscillators, mock_band_edges, mock_params, mock_seed, oscillator_energies_eV, oscillator_motion
from qdphonon.engines.mock_writers import ENER_HEADER, mock_output_text, molog_bytes, xyz_frames_bytes
from qdphonon.structures.build import recentre
from qdphonon.metadata import SYNTHETIC_LABEL
from qdphonon.metadata import run_record
from qdphonon.run.layout import STATE_FILE, SegmentEnd, check_same_input, foreign_files, write_json_atomic
from qdphonon.structures.io import read_structure


MOCK_COMMAND = "qdphonon mock engine (no CP2K)"
"""What a mock segment records as its launch line."""


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

    input_path, run_dir, record_path, sha, record, md = open_md_run(input_path, run_dir, record_path, "mock")
    if record is not None:
        return record
    dot = read_structure(structure_xyz)
    if list(dot.symbols) != list(md.symbols):
        raise ValueError(f"{structure_xyz} and the &COORD of {input_path} list different atoms")
    run_dir.mkdir(parents=True, exist_ok=True)
    job = MockJob(input_path=input_path, directory=run_dir, record_path=record_path, sha=sha, md=md,
                  structure_xyz=structure_xyz, dot=dot, params=mock_params(params), chunk_frames=chunk_frames)  # fmt: skip
    return run_segments(job, InProcessLauncher(job.write_files, MOCK_COMMAND))


@dataclasses.dataclass
class MockJob:
    """The mock's run as a :class:`~qdphonon.engines.segment.SegmentJob`: one segment, written in-process;
    ``segments.json`` its state and ``run.json`` (with the model's known answers) its record."""

    input_path: Path
    directory: Path
    record_path: Path
    sha: str
    md: MDInput
    structure_xyz: Any
    dot: Any
    params: dict[str, Any]
    chunk_frames: int = 64
    purpose: str = "run-aimd"
    model: dict[str, Any] = dataclasses.field(default_factory=dict)

    state_record = RunState

    @property
    def state_path(self) -> Path:
        return self.directory / STATE_FILE

    def open(self, lock) -> dict[str, Any]:
        """A new ``segments.json`` (a mock run is written whole; an earlier partial one is overwritten)."""
        state = read_state(RunState, self.state_path)
        if state is not None:
            check_same_input(state.get("input_sha256"), self.sha, self.state_path, self.input_path)
            if state.get("engine") != "mock":
                raise RunDirMismatchError(
                    f"{self.directory} holds a {state.get('engine')} run; refusing to overwrite it with mock output"
                )
        elif foreign_files(self.directory, self.md.files):
            raise RunDirMismatchError(f"{self.directory} holds {', '.join(foreign_files(self.directory, self.md.files)[:6])} "
                                      f"but no {STATE_FILE}; refusing to overwrite it")  # fmt: skip
        md = self.md
        state = {"engine": "mock", "input": str(self.input_path), "input_sha256": self.sha, "steps": md.steps,
                 "project": md.project, "molog": md.files["molog"], "segments": []}  # fmt: skip
        save_state(self, state)
        return state

    def plan(self, state: dict[str, Any]) -> SegmentPlan | None:
        if state["segments"]:
            return None
        seg_inp, seg_out = segment_files(0)
        return SegmentPlan(seg_inp, seg_out, self.input_path.read_text(), {"start_step": 0})

    def close(self, seg: dict[str, Any], result: ProcessResult) -> None:
        seg.update(end_step=self.md.steps, ended=SegmentEnd.COMPLETED.value)

    def check(self, seg: dict[str, Any], result: ProcessResult) -> None:
        return None

    def finish(self, state: dict[str, Any]) -> dict[str, Any]:
        record = run_record(engine="mock", md=self.md, input_path=self.input_path, run_dir=self.directory,
                            segments=state["segments"], cp2k_version="mock", synthetic=True,
                            extra={"structure": str(self.structure_xyz), "mock_params": self.params, **self.model,
                                   "scf_unconverged_steps": []})  # fmt: skip
        state["complete"] = True
        save_state(self, state)
        write_json_atomic(self.record_path, record)
        return record

    def write_files(self) -> None:
        """CP2K's files of the whole run from the harmonic model (the segment's output included), and the
        model's known answers for the record."""
        md, dot, p, run_dir, files = self.md, self.dot, self.params, self.directory, self.md.files
        seed = mock_seed(dot.name, md.seed)
        steps = np.arange(md.steps + 1)
        times = steps * md.timestep_fs
        edges = mock_band_edges(times, size=dot.spec.size, shell_layers=dot.spec.shell_layers,
                                lattice_A=dot.spec.lattice_A, layers=dot.layers, temperature_K=md.temperature_K,
                                seed=seed, params=p)  # fmt: skip
        osc = mock_atom_oscillators(md.symbols, dot.regions, md.temperature_K, seed, p, edges, md.positions_A)
        kin_eV, harm_eV = oscillator_energies_eV(osc, times)
        base_Ha = sum(float(p["potential_Ha_per_atom"].get(s, -1.0)) for s in md.symbols)
        pot_Ha = base_Ha + harm_eV / units.HARTREE_eV
        kin_Ha = kin_eV / units.HARTREE_eV
        dof = max(1, 3 * len(md.symbols) - 6)
        temp_K = 2.0 * kin_Ha / (dof * BOLTZMANN_Ha_per_K)
        r0 = recentre(md.positions_A, md.box_A) if md.center_coordinates else md.positions_A
        label = ("# " + SYNTHETIC_LABEL + "\n").encode()
        rows = np.column_stack([steps, times, kin_Ha, temp_K, pot_Ha, pot_Ha + kin_Ha, np.zeros_like(times)])
        ener_row = "%10d%20.6f%20.9f%20.9f%20.9f%20.9f%20.9f\n"
        with open(run_dir / files["energies"], "wb") as fh:
            fh.write(label + (ENER_HEADER + "\n").encode())
            fh.write("".join(ener_row % (int(r[0]), *r[1:]) for r in rows.tolist()).encode())
        for key, every, velocity in (("positions", md.positions_every, False), ("velocities", md.velocities_every, True)):
            self._write_trajectory(run_dir / files[key] if files.get(key) else None, every, velocity, osc, times,
                                   pot_Ha, r0, label)  # fmt: skip
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
        (run_dir / segment_files(0)[1]).write_text(
            mock_output_text(md, n_electrons=2 * homo, n_mo=max(int(index[-1]), homo), potential_Ha=pot_Ha,
                             kinetic_Ha=kin_Ha, temperature_K=temp_K, vbm_eV=edges.vbm_eV, cbm_eV=edges.cbm_eV)
        )  # fmt: skip
        self.model = {
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
        }  # fmt: skip

    def _write_trajectory(self, path, every, velocity: bool, osc, times, pot_Ha, r0, label: bytes) -> None:
        md = self.md
        printed = _printed_steps(md.steps, every)
        if path is None or printed.size == 0:
            return
        path.unlink(missing_ok=True)
        kind = "velocities" if velocity else "positions"
        with open(path, "ab") as fh:
            if md.trajectory_format == "xyz":
                fh.write(label)
            for i in range(0, len(printed), self.chunk_frames):
                sel = printed[i : i + self.chunk_frames]
                disp, vel = oscillator_motion(osc, times[sel])
                values = vel / units.AU_VELOCITY_A_per_fs if velocity else r0[None] + disp
                if md.trajectory_format == "dcd":
                    if i == 0:
                        fh.write(dcd_header_bytes(kind, len(md.symbols), istart=int(printed[0]), nsavc=int(every),
                                                  timestep_fs=md.timestep_fs, titles=mock_titles(kind)))  # fmt: skip
                    fh.write(dcd_frames_bytes(values, cp2k_cell_record(kind, md.box_A)))
                else:
                    fh.write(xyz_frames_bytes(md.symbols, sel, times[sel], pot_Ha[sel], values))
