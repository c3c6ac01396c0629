"""The mock engine's band-edge localisation print: synthetic ``&PDOS``/``&LDOS`` list files in CP2K
2023.1's format (``{project}-{filename}-list{k}-1.pdos``, one block per print, ``APPEND``), first line
``# synthetic (mock engine)``.

Where an orbital lives is an input here, not a finding: every atom of a region carries a fixed
affinity (:data:`MOCK_AFFINITY`, occupied orbitals the VBM's, empty ones the CBM's), jittered per
print, region and orbital by a log-normal factor; an orbital's weight on a list is the sum of its
atoms' affinities over the total. Unlike CP2K, which prints every occupied orbital and NLUMO empty
ones, the mock prints the MOLog's window around the gap only (the campaign stays small); CP2K's
per-kind files (``-k{n}-``) are not written (qdphonon reads the lists only).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Sequence

import numpy as np

from qdphonon import units
from qdphonon.cp2k.readback import MDInput, _each_md, _on, _sec, input_ldos_lists
from qdphonon.metadata import SYNTHETIC_LABEL

MOCK_AFFINITY = {"vbm": {"core": 1.0, "surface": 0.5, "shell": 0.02},
                 "cbm": {"core": 1.0, "surface": 0.35, "shell": 0.02}}  # fmt: skip
"""Relative weight per atom of each region, for occupied (vbm) and empty (cbm) orbitals: type-I by construction."""

MOCK_JITTER_SD = 0.1
"""Standard deviation of the log of the per-print, per-region factor on the affinity."""

ANGULAR_SPLIT = {"vbm": (0.15, 0.8, 0.05), "cbm": (0.05, 0.9, 0.05)}
"""Share of a list's weight printed in the s, p and d columns."""


@dataclasses.dataclass(frozen=True)
class PDOSPrint:
    """What an input's ``&PDOS`` asks for: stride in MD steps, ``FILENAME``, the ``&LDOS`` atom lists (1-based)."""

    every: int
    filename: str
    lists: list[list[int]]


def pdos_print(md: MDInput) -> PDOSPrint | None:
    """The ``&PDOS`` print of an MD input with ``&LDOS`` lists, or None when it asks for none."""
    pdos = _sec(_sec(_sec(md.tree, "force_eval"), "dft"), "print", "pdos")
    lists = input_ldos_lists(md.tree)
    if not _on(pdos) or not lists:
        return None
    return PDOSPrint(_each_md(pdos), str(pdos.get("filename", "PDOS")), lists)


def expected_weights(regions: Sequence[str]) -> dict[str, dict[str, float]]:
    """Weight of the VBM and CBM on each region without the jitter: the mock's input, per edge and region."""
    counts = {r: list(regions).count(r) for r in MOCK_AFFINITY["vbm"]}
    out = {}
    for edge, aff in MOCK_AFFINITY.items():
        total = sum(aff[r] * n for r, n in counts.items())
        out[edge] = {r: aff[r] * n / total for r, n in counts.items()}
    return out


def _block(list_no: int, n_atoms: int, step: int, fermi_Ha: float, index: np.ndarray, energy_Ha: np.ndarray,
           occupation: np.ndarray, columns: np.ndarray) -> str:  # fmt: skip
    head = (f"# Projected DOS for list {list_no} of {n_atoms} atoms, at iteration step i = {step}, "
            f"E(Fermi) = {fermi_Ha:12.6f} a.u.\n"
            "#     MO Eigenvalue [a.u.]      Occupation" + "".join(f"{c:>18}" for c in "spd") + "\n")  # fmt: skip
    rows = "".join(f"{i:8d}{e:18.6f}{o:16.6f}" + "".join(f"{w:18.8f}" for w in ws) + "\n"
                   for i, e, o, ws in zip(index.tolist(), energy_Ha.tolist(), occupation.tolist(), columns.tolist()))  # fmt: skip
    return head + rows


def write_mock_pdos(run_dir: str | Path, project: str, spec: PDOSPrint, regions: Sequence[str], steps: np.ndarray,
                    index: np.ndarray, energies_eV: np.ndarray, occupations: np.ndarray, homo: int,
                    fermi_eV: np.ndarray, seed: int) -> dict:  # fmt: skip
    """Write one list file per ``&LDOS`` for the printed ``steps`` (orbitals ``index``, energies and
    occupations steps x orbitals); return the model record for run.json."""
    regions = list(regions)
    rng = np.random.default_rng([seed, 11])
    names = sorted(MOCK_AFFINITY["vbm"])
    member = np.array([[regions[i - 1] == r for r in names] for i in range(1, len(regions) + 1)], dtype=float)
    per_list = np.array([member[np.asarray(atoms) - 1].sum(axis=0) for atoms in spec.lists])  # lists x regions
    kind = np.where(index <= homo, "vbm", "cbm")
    aff = np.array([[MOCK_AFFINITY[k][r] for r in names] for k in kind])  # orbitals x regions
    texts = ["# " + SYNTHETIC_LABEL + "\n" for _ in spec.lists]
    for t, step in enumerate(steps.tolist()):
        jitter = np.exp(MOCK_JITTER_SD * rng.standard_normal(aff.shape))
        atom_weight = aff * jitter  # per atom of each region
        list_weight = atom_weight @ per_list.T  # orbitals x lists
        list_weight /= list_weight.sum(axis=1, keepdims=True)
        for k, atoms in enumerate(spec.lists):
            split = np.array([ANGULAR_SPLIT[x] for x in kind])
            texts[k] += _block(k + 1, len(atoms), int(step), fermi_eV[t] / units.HARTREE_eV, index,
                               energies_eV[t] / units.HARTREE_eV, occupations[t], list_weight[:, k:k + 1] * split)  # fmt: skip
    for k, text in enumerate(texts):
        Path(run_dir, f"{project}-{spec.filename}-list{k + 1}-1.pdos").write_text(text)
    return {"affinity_per_atom": MOCK_AFFINITY, "jitter_log_sd": MOCK_JITTER_SD, "every_steps": spec.every,
            "weights_without_jitter": expected_weights(regions),
            "note": "synthetic: where the band edges live is this input, not a finding"}  # fmt: skip
