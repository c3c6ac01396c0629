"""CP2K inputs: both levels and run types render and validate; bad keywords and bad value
types are refused; overrides merge; the xtb MD input of the n = 2 cube runs in real CP2K."""

from __future__ import annotations

import io
import re
import subprocess

import numpy as np
import pytest
from cp2k_input_tools.parser import CP2KInputParser

from qdphonon.cp2k.inputs import CP2KInputError, MDSettings, SCFSettings, cp2k_input_tree, homo_index, valence_electron_count, walltime_hms
from qdphonon.cp2k.xmlspec import bundled_xmlspec, installed_xmlspec, render_input
from qdphonon.structures.build import build_quantum_dot
from qdphonon.structures.model import QuantumDotSpec

A = 5.87


@pytest.fixture(scope="module")
def xmlspec():
    spec, description = installed_xmlspec()
    return spec


@pytest.fixture(scope="module")
def dot2():
    return build_quantum_dot(QuantumDotSpec(size=(2, 2, 2)))


def parsed(text, spec):
    return CP2KInputParser(xmlspec=str(spec)).parse(io.StringIO(text))


def tree_for(dot, **kw):
    return cp2k_input_tree(dot.symbols, dot.positions_A, dot.box_A, **kw)


def test_electron_counts_and_homo_index():
    symbols = ["Cs"] * 4 + ["Pb"] + ["Br"] * 6
    assert valence_electron_count(symbols, "xtb") == 4 + 4 + 42
    assert homo_index(symbols, "xtb") == 25
    assert homo_index(symbols, "pbe") == (36 + 4 + 42) // 2
    with pytest.raises(ValueError, match="level"):
        homo_index(symbols, "b3lyp")


@pytest.mark.parametrize("level", ["xtb", "pbe"])
@pytest.mark.parametrize("run_type", ["MD", "GEO_OPT"])
def test_inputs_render_and_parse_back(dot2, xmlspec, level, run_type):
    text = render_input(tree_for(dot2, level=level, run_type=run_type, md=MDSettings(steps=7, seed=11)), xmlspec)
    tree = parsed(text, xmlspec)
    assert tree["+global"]["run_type"].upper() == run_type
    coords = tree["+force_eval"][0]["+subsys"]["+coord"]["*"]
    assert len(coords) == 64
    assert tree["+force_eval"][0]["+subsys"]["+topology"]["+center_coordinates"]["_"] is True
    assert tree["+force_eval"][0]["+subsys"]["+cell"]["periodic"].upper() == "NONE"
    if run_type == "MD":
        md = tree["+motion"]["+md"]
        assert (md["ensemble"].upper(), md["steps"], md["timestep"], md["temperature"]) == ("NVT", 7, 2.0, 10.0)
        assert md["+thermostat"]["type"].upper() == "CSVR"
        mo = tree["+force_eval"][0]["+dft"]["+print"]["+mo"]
        assert mo["+each"]["md"] == 1 and mo["+each"]["qs_scf"] == 0
        homo = homo_index(dot2.symbols, level)
        lo, hi = mo["mo_index_range"]
        assert lo <= homo <= hi
        if level == "xtb":
            assert hi >= homo + 1
            assert tree["+force_eval"][0]["+dft"]["+scf"]["added_mos"] >= hi - homo


def test_pbe_uses_the_study_basis_and_potentials(dot2, xmlspec):
    text = render_input(tree_for(dot2, level="pbe"), xmlspec)
    assert "DZVP-MOLOPT-SR-GTH" in text
    for element, q in [("Cs", 9), ("Pb", 4), ("Br", 7)]:
        assert re.search(rf"&KIND {element}\n(.*\n)*?\s*POTENTIAL GTH-PBE-q{q}\n", text)
    assert "PSOLVER WAVELET" in text


def test_unknown_keyword_refused_by_generator(dot2, xmlspec):
    with pytest.raises(CP2KInputError, match="STEPZ"):
        render_input(tree_for(dot2, level="xtb", overrides={"motion": {"md": {"stepz": 3}}}), xmlspec)


def test_wrong_value_type_caught_by_parsing_back(dot2, xmlspec):
    with pytest.raises(CP2KInputError, match="does not parse back"):
        render_input(tree_for(dot2, level="xtb", overrides={"MOTION": {"MD": {"STEPS": "many"}}}), xmlspec)


def test_overrides_merge_case_insensitively_and_delete(dot2, xmlspec):
    tree = tree_for(dot2, level="xtb", overrides={"FORCE_EVAL": {"DFT": {"SCF": {"EPS_SCF": 1e-8, "max_diis": None}}}})
    scf = tree["force_eval"]["dft"]["scf"]
    assert scf["eps_scf"] == 1e-8 and "max_diis" not in scf
    assert scf["scf_guess"] == "MOPAC"


def test_smearing_only_when_asked(dot2):
    assert "smear" not in tree_for(dot2, level="xtb")["force_eval"]["dft"]["scf"]
    smear = tree_for(dot2, level="xtb", scf=SCFSettings(smearing_K=300))["force_eval"]["dft"]["scf"]["smear"]
    assert smear["electronic_temperature"] == 300


def test_walltime_is_rendered_as_hms(dot2, xmlspec):
    tree = tree_for(dot2, level="xtb", walltime_s=3000)
    assert tree["global"]["walltime"] == "00:50:00"
    assert "WALLTIME 00:50:00" in render_input(tree, xmlspec)
    assert walltime_hms(90061) == "25:01:01"


def test_bundled_definition_is_fallback():
    spec, description = installed_xmlspec("no-such-cp2k")
    assert spec == bundled_xmlspec() and "bundled" in description


def test_cli_writes_validated_input(tmp_path):
    xyz = tmp_path / "s.xyz"
    subprocess.run(["qdphonon", "build", "--size", "1", "1", "1", "--out", str(xyz)], check=True)
    out = tmp_path / "md.inp"
    res = subprocess.run(["qdphonon", "cp2k-input", "--structure", str(xyz), "--level", "xtb", "--steps", "3",
                          "--out", str(out)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    text = out.read_text()
    assert "validated against" in res.stderr and re.search(r"^\s*STEPS\s+3\s*$", text, re.MULTILINE)
    # the &COORD block holds the structure's atoms, in order, at its positions; the cell is its box
    atoms = [ln.split() for ln in xyz.read_text().splitlines()[2:]]
    coord = re.search(r"&COORD\n(.*?)\n\s*&END COORD", text, re.DOTALL).group(1).splitlines()
    assert [c.split()[0] for c in coord] == [a[0] for a in atoms]
    np.testing.assert_allclose([[float(x) for x in c.split()[1:4]] for c in coord],
                               [[float(x) for x in a[1:4]] for a in atoms], atol=1e-6)  # fmt: skip
    box = float(re.search(r'Lattice="(\S+)', xyz.read_text().splitlines()[1]).group(1))
    assert [float(x) for x in re.search(r"^\s*ABC\s+(.+)$", text, re.MULTILINE).group(1).split()] == pytest.approx([box] * 3)
    bad = subprocess.run(["qdphonon", "cp2k-input", "--structure", str(xyz), "--level", "xtb",
                          "--overrides-json", '{"motion": {"md": {"steps": "many"}}}', "--out", str(tmp_path / "b.inp")],
                         capture_output=True, text=True)
    assert bad.returncode != 0 and "parse back" in bad.stderr


@pytest.mark.cp2k
def test_xtb_md_input_of_n2_cube_runs_in_real_cp2k(tmp_path, dot2, cp2k_exe, xmlspec):
    """docs/physics.md §3: n >= 2 needs explicit Fermi-Dirac smearing with xTB to converge."""
    tree = tree_for(dot2, level="xtb", md=MDSettings(steps=2, trajectory_every_steps=1, trajectory_format="xyz"), scf=SCFSettings(smearing_K=300))
    (tmp_path / "md.inp").write_text(render_input(tree, xmlspec))
    subprocess.run([cp2k_exe, "-i", "md.inp", "-o", "md.out"], cwd=tmp_path, check=True, timeout=600,
                   capture_output=True)
    out = (tmp_path / "md.out").read_text()
    assert "PROGRAM ENDED" in out
    n_occ = int(re.search(r"Number of occupied orbitals:\s+(\d+)", out).group(1))
    assert n_occ == homo_index(dot2.symbols, "xtb")
    molog = (tmp_path / "md-mo-1.MOLog").read_text()
    assert molog.count("EIGENVALUES") == 3  # steps 0, 1, 2
    assert re.search(rf"MO\|\s+{n_occ + 1}\s", molog)  # the LUMO is printed
    for name in ("md-pos-1.xyz", "md-vel-1.xyz"):  # a frame of all 64 atoms per step
        lines = (tmp_path / name).read_text().splitlines()
        assert len(lines) == 3 * 66 and [int(ln) for ln in lines[::66]] == [64] * 3
        assert [int(m) for m in re.findall(r"^ i =\s+(\d+),", "\n".join(lines), re.MULTILINE)] == [0, 1, 2]
        assert [ln.split()[0] for ln in lines[2:66]] == list(dot2.symbols)
    restart = (tmp_path / "md-1.restart").read_text()
    assert int(re.search(r"^\s*STEP_START_VAL\s+(\d+)", restart, re.MULTILINE).group(1)) == 2
