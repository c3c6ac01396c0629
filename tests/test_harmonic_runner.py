"""The single-point runner's bookkeeping, with the mock engine (synthetic single points, labelled): names,
batches, done = same input and a whole parse, a changed input runs again."""

from __future__ import annotations

import os

import pytest

from qdphonon.harmonic.assemble import cartesian_displacements
from qdphonon.harmonic.plan import n_batches
from qdphonon.harmonic.runner import (OUTPUT, REFERENCE, _displacement, batches, collect, displacement_names,
                                      run_single_points, single_point_input)  # fmt: skip
from qdphonon.structures.build import build_quantum_dot
from qdphonon.structures.io import write_structure
from qdphonon.structures.model import QuantumDotSpec


@pytest.fixture()
def dot_xyz(tmp_path):
    path = tmp_path / "dot.xyz"
    write_structure(build_quantum_dot(QuantumDotSpec(size=(1, 1, 1))), path)
    return path


def test_names_batches_and_their_count():
    names = displacement_names(11)
    assert names[0] == REFERENCE and len(names) == 67 and len(set(names)) == 67
    for d in cartesian_displacements(11, 0.01):
        assert _displacement(d.name, 0.01) == d
    groups = batches(names, 20)
    assert groups[0] == [REFERENCE] and sum(map(len, groups)) == 67 and max(map(len, groups)) == 20
    assert len(groups) == n_batches(66, 20)
    for bad in ("a3yp", "a0003wp", "a0003yq", "ref2", "x0003yp"):
        with pytest.raises(ValueError, match="not a displacement name"):
            _displacement(bad, 0.01)
    with pytest.raises(ValueError):
        batches(names, 0)


def test_done_means_same_input_and_whole_output(dot_xyz, tmp_path):
    work = tmp_path / "sp"
    names = displacement_names(11)[:5]
    assert set(run_single_points(dot_xyz, work, names, "xtb", engine="mock").values()) == {"ran"}
    assert set(run_single_points(dot_xyz, work, names, "xtb", engine="mock").values()) == {"done"}
    (work / names[2] / OUTPUT).write_text("cut short\n")
    status = run_single_points(dot_xyz, work, names, "xtb", engine="mock")
    assert status[names[2]] == "ran" and list(status.values()).count("done") == 4
    status = run_single_points(dot_xyz, work, names, "xtb", step_A=0.02, engine="mock")  # other displacements
    assert status.pop(REFERENCE) == "done" and set(status.values()) == {"ran"}


def test_a_single_point_another_engine_holds_is_refused_and_left_as_it_is(dot_xyz, tmp_path):
    """A second job given a single point in flight (its directory's lock held) refuses it, naming the
    holder, and touches nothing in the directory; the ones before it in the list are done."""
    from qdphonon.run.errors import RunDirLocked
    from qdphonon.run.lock import lock_run_dir

    work = tmp_path / "sp"
    names = displacement_names(11)[:3]
    held = work / names[1]
    held.mkdir(parents=True)
    (held / "partial.out").write_text("CP2K writing\n")
    with lock_run_dir(held, "test"), pytest.raises(RunDirLocked, match=str(os.getpid())):
        run_single_points(dot_xyz, work, names, "xtb", engine="mock")
    assert (held / "partial.out").read_text() == "CP2K writing\n"
    assert (work / names[0] / OUTPUT).is_file() and not (work / names[2]).exists()
    assert set(run_single_points(dot_xyz, work, names, "xtb", engine="mock").values()) == {"done", "ran"}
    assert not (held / "partial.out").exists()


def test_collect_names_the_first_missing_single_point(dot_xyz, tmp_path):
    work = tmp_path / "sp"
    names = displacement_names(11)
    run_single_points(dot_xyz, work, [n for n in names if n != "a0007zm"], "xtb", engine="mock")
    with pytest.raises(ValueError, match="a0007zm not done"):
        collect(dot_xyz, work)
    run_single_points(dot_xyz, work, ["a0007zm"], "xtb", engine="mock")
    reference, results, facts = collect(dot_xyz, work)
    assert len(results) == 66 and facts["synthetic"] is True and facts["n_scf_unconverged"] == 0


@pytest.mark.cp2k
@pytest.mark.parametrize("level", ["xtb", "pbe"])
def test_single_point_inputs_validate_against_the_installed_cp2k(dot_xyz, cp2k_exe, level):
    """The PBE single point is never run in the suite (too slow): its input is at least validated against the
    installed CP2K's input definition, with what the parser needs (forces, MO window, OT unoccupied levels)."""
    from qdphonon.cp2k.xmlspec import installed_xmlspec, parse_input_text

    spec = installed_xmlspec()[0]
    text = single_point_input(dot_xyz, "a0004zm", level, xmlspec=spec)
    tree = parse_input_text(text, spec)
    assert tree["+global"]["run_type"].upper() == "ENERGY_FORCE"
    upper = text.upper()
    assert "&FORCES ON" in upper and "MO_INDEX_RANGE" in upper
    if level == "pbe":
        assert "NLUMO 8" in upper and "EPS_SCF 1E-07" in upper


@pytest.mark.cp2k
def test_single_points_started_from_the_relaxations_wavefunction_give_the_same_result(dot_xyz, cp2k_exe, tmp_path):
    """Real GFN1-xTB: the relaxation's wavefunction as every single point's start (what the PBE route needs
    to be affordable) leaves forces and band edges as from CP2K's own guess, to the SCF threshold."""
    import numpy as np

    from qdphonon.engines.relax import relax
    from qdphonon.parsers.single_point import read_single_point

    relax(dot_xyz, tmp_path / "relax", tmp_path / "relaxed.xyz", "xtb", wfn_out=tmp_path / "relaxed.wfn")
    names = [REFERENCE, "a0002xp"]
    run_single_points(tmp_path / "relaxed.xyz", tmp_path / "guess", names, "xtb")
    run_single_points(tmp_path / "relaxed.xyz", tmp_path / "restart", names, "xtb", initial_wfn=tmp_path / "relaxed.wfn")
    for name in names:
        text = (tmp_path / "restart" / name / "sp.inp").read_text().upper()
        assert "SCF_GUESS RESTART" in text and "WFN_RESTART_FILE_NAME START.WFN" in text
        a = read_single_point(tmp_path / "guess" / name, "sp", OUTPUT)
        b = read_single_point(tmp_path / "restart" / name, "sp", OUTPUT)
        assert a.scf_converged and b.scf_converged
        np.testing.assert_allclose(b.forces_eV_A, a.forces_eV_A, atol=1e-4)
        np.testing.assert_allclose(b.occupied_eV[-3:], a.occupied_eV[-3:], atol=1e-5)
        np.testing.assert_allclose(b.unoccupied_eV[:3], a.unoccupied_eV[:3], atol=1e-5)
    with pytest.raises(FileNotFoundError, match="start from is missing"):
        run_single_points(tmp_path / "relaxed.xyz", tmp_path / "x", names, "xtb", initial_wfn=tmp_path / "none.wfn")
