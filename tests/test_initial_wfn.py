"""The MD's first SCF starts from the relaxation's converged wavefunction, with real CP2K (GFN1-xTB).

Cs20Pb8Br36 (n = 2, 300 K Fermi-Dirac smearing as in config/xtb-smoke.yaml) is relaxed for a few
steps with ``wfn_out``; the same 2-step MD is then run twice, once from the input's own guess
(MOPAC) and once with ``initial_wfn``. The restarted run must say that it read the file, need
fewer SCF iterations at step 0 and land on the same band edges.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from qdphonon.cp2k.inputs import MDSettings, SCFSettings, cp2k_input_tree
from qdphonon.cp2k.readback import render_tree
from qdphonon.cp2k.xmlspec import installed_xmlspec
from qdphonon.engines.cp2k import run_cp2k
from qdphonon.run.errors import EngineError
from qdphonon.engines.relax import relax
from qdphonon.parsers.run_dir import parse_run_dir
from qdphonon.run.layout import INITIAL_WFN_FILE

DATA = Path(__file__).resolve().parent / "data" / "cp2k-2023.1"
SMEARING_K = 300.0


def _md_input(tmp: Path, xyz: Path, spec) -> Path:
    from qdphonon.structures.io import read_structure

    dot = read_structure(xyz)
    tree = cp2k_input_tree(dot.symbols, dot.positions_A, dot.box_A, level="xtb",
                           md=MDSettings(steps=2, trajectory_every_steps=1, trajectory_format="xyz"),
                           scf=SCFSettings(smearing_K=SMEARING_K))  # fmt: skip
    inp = tmp / "md.inp"
    inp.write_text("! qdphonon MD input, level xtb\n" + render_tree(tree, spec))
    return inp


def _first_scf_iterations(out: Path) -> int:
    found = re.search(r"SCF run converged in\s+(\d+) steps", out.read_text())
    assert found, f"{out}: no converged SCF"
    return int(found.group(1))


@pytest.fixture(scope="module")
def relaxed_n2(tmp_path_factory, cp2k_exe):
    tmp = tmp_path_factory.mktemp("wfn")
    xyz, wfn = tmp / "relaxed.xyz", tmp / "relaxed.wfn"
    summary = relax(DATA / "structures" / "cspbbr3_2x2x2_xtb_relaxed.xyz", tmp / "relax", xyz, "xtb",
                    max_iter=2, smearing_K=SMEARING_K, wfn_out=wfn, tasks=2, mpi="mpirun")  # fmt: skip
    spec, _ = installed_xmlspec()
    return {"xyz": xyz, "wfn": wfn, "summary": summary, "input": _md_input(tmp, xyz, spec), "tmp": tmp}


@pytest.mark.cp2k
def test_relaxation_keeps_its_last_wavefunction(relaxed_n2):
    wfn, summary = relaxed_n2["wfn"], relaxed_n2["summary"]
    assert summary["wfn"] == str(wfn)
    assert wfn.stat().st_size > 1000
    relax_dir = relaxed_n2["tmp"] / "relax"
    produced = sorted(relax_dir.glob("*-RESTART.wfn"))
    assert produced and wfn.read_bytes() == produced[-1].read_bytes()


@pytest.mark.cp2k
def test_first_md_scf_starts_from_the_relaxation_wavefunction(relaxed_n2):
    tmp = relaxed_n2["tmp"]
    cold = run_cp2k(relaxed_n2["input"], tmp / "cold", tasks=2, mpi="mpirun")
    warm = run_cp2k(relaxed_n2["input"], tmp / "warm", tasks=2, mpi="mpirun", initial_wfn=relaxed_n2["wfn"])
    assert cold["total_steps"] == warm["total_steps"] == 2

    warm_inp = (tmp / "warm" / "seg000.inp").read_text().upper()
    assert "SCF_GUESS RESTART" in warm_inp and f"WFN_RESTART_FILE_NAME {INITIAL_WFN_FILE.upper()}" in warm_inp
    assert "SCF_GUESS RESTART" not in (tmp / "cold" / "seg000.inp").read_text().upper()
    warm_out = (tmp / "warm" / "seg000.out").read_text()
    assert re.search(r"Density guess:\s+RESTART", warm_out)
    assert not re.search(r"file not found|switching to|does not exist", warm_out, re.I)
    assert (tmp / "warm" / INITIAL_WFN_FILE).read_bytes() == relaxed_n2["wfn"].read_bytes()

    n_cold = _first_scf_iterations(tmp / "cold" / "seg000.out")
    n_warm = _first_scf_iterations(tmp / "warm" / "seg000.out")
    print(f"step-0 SCF iterations: MOPAC guess {n_cold}, relaxation wavefunction {n_warm}")
    assert n_warm < n_cold

    a, b = parse_run_dir(tmp / "cold").band_edges, parse_run_dir(tmp / "warm").band_edges
    np.testing.assert_array_equal(a.step, b.step)
    assert np.abs(a.vbm_eV - b.vbm_eV).max() < 2e-3 and np.abs(a.cbm_eV - b.cbm_eV).max() < 2e-3


@pytest.mark.cp2k
def test_a_cut_short_wavefunction_is_refused_before_cp2k_starts(relaxed_n2, tmp_path):
    bad = tmp_path / "bad.wfn"
    bad.write_bytes(relaxed_n2["wfn"].read_bytes()[:-7])
    with pytest.raises(EngineError, match="not a whole CP2K wavefunction file"):
        run_cp2k(relaxed_n2["input"], tmp_path / "run", initial_wfn=bad)
    assert not (tmp_path / "run" / "seg000.out").exists()
