"""Band-edge localisation: CP2K's &PDOS/&LDOS print of the frontier orbitals' weight per region.

Real CP2K 2023.1 (GFN1-xTB, Cs4PbBr6, 11 atoms; its atoms split into two lists here, since every
atom of this dot is a surface atom): the generated input prints every K steps, the parser's and
the campaign reader's VBM/CBM weights equal an independent reading of the printed files (plain
line splitting; lists matched to regions through the LIST lines of the input CP2K ran), and
the weights of each orbital sum to 1 within the print's 8 decimals. Hand-made files: a block cut
short is dropped, a malformed row is an error naming the file and line.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from qdphonon.analysis.localisation import frontier_weights, write_localisation
from qdphonon.analysis.localisation_run import replica_weights
from qdphonon.cp2k.inputs import MDSettings, SCFSettings, cp2k_input_tree, homo_index
from qdphonon.cp2k.localisation import localisation_lists
from qdphonon.cp2k.readback import render_tree
from qdphonon.cp2k.xmlspec import bundled_xmlspec, installed_xmlspec
from qdphonon.engines.cp2k import run_cp2k
from qdphonon.parsers.pdos import list_pdos_files, read_list_pdos
from qdphonon.structures.io import read_structure

DATA = Path(__file__).resolve().parent / "data" / "cp2k-2023.1" / "structures"

BLOCK = """# Projected DOS for list 1 of 2 atoms, at iteration step i = {step}, E(Fermi) =    -0.337127 a.u.
#     MO Eigenvalue [a.u.]      Occupation                 s                 p
       1         -0.731892        2.000000        0.02295857        0.19297491
       2         -0.280267        0.000000        0.74926015        0.00937720
"""


def test_input_prints_one_list_per_region_in_region_order():
    regions = ["shell", "core", "surface", "core", "shell"]
    assert localisation_lists(regions) == [("core", [2, 4]), ("surface", [3]), ("shell", [1, 5])]
    dot = read_structure(DATA / "cspbbr3_1x1x1_xtb_relaxed.xyz")
    regions = ["surface" if s == "Cs" else "core" for s in dot.symbols]
    tree = cp2k_input_tree(dot.symbols, dot.positions_A, dot.box_A, level="xtb", regions=regions,
                           localisation_every_steps=50)  # fmt: skip
    text = render_tree(tree, bundled_xmlspec())
    assert "&PDOS ON" in text and "APPEND .TRUE." in text and text.count("&LDOS") == 2
    assert "LIST 5 6 7 8 9 10 11" in text and "LIST 1 2 3 4" in text
    plain = render_tree(cp2k_input_tree(dot.symbols, dot.positions_A, dot.box_A, level="xtb"), bundled_xmlspec())
    assert "PDOS" not in plain
    with pytest.raises(ValueError, match="region"):
        localisation_lists(["core", "bulk"])


def test_parser_drops_a_cut_block_and_names_bad_lines(tmp_path):
    p = tmp_path / "md-loc-list1-1.pdos"
    p.write_text(BLOCK.format(step=0) + BLOCK.format(step=2)[:-40])
    lst = read_list_pdos(p)
    assert list(lst.step) == [0] and lst.weight[0, 1] == pytest.approx(0.74926015 + 0.00937720)
    p.write_text(BLOCK.format(step=0).replace("0.19297491", "0.19x97491"))
    with pytest.raises(ValueError, match=r"md-loc-list1-1.pdos:3"):
        read_list_pdos(p)


def _independent_weights(path: Path, orbital: int) -> list[float]:
    """Sum of the angular-momentum columns of one orbital in every block, by plain line splitting."""
    out = []
    for line in path.read_text().splitlines():
        parts = line.split()
        if parts and parts[0] == str(orbital):
            out.append(sum(float(x) for x in parts[3:]))
    return out


@pytest.mark.cp2k
def test_real_cp2k_xtb_prints_frontier_weights_that_sum_to_one(tmp_path, cp2k_exe):
    dot = read_structure(DATA / "cspbbr3_1x1x1_xtb_relaxed.xyz")
    regions = ["surface" if s == "Cs" else "core" for s in dot.symbols]  # two lists: Pb+Br and Cs
    spec, _ = installed_xmlspec()
    tree = cp2k_input_tree(dot.symbols, dot.positions_A, dot.box_A, level="xtb",
                           md=MDSettings(temperature_K=10.0, timestep_fs=2.0, steps=6, trajectory_every_steps=1,
                                         trajectory_format="xyz"),
                           scf=SCFSettings(), regions=regions, localisation_every_steps=3)  # fmt: skip
    inp = tmp_path / "md.inp"
    inp.write_text("! qdphonon MD input, level xtb\n" + render_tree(tree, spec))
    run_cp2k(inp, tmp_path / "run", tasks=1, poll_s=0.2)
    files = list_pdos_files(tmp_path / "run", "md", "loc")
    assert [f.name for f in files] == ["md-loc-list1-1.pdos", "md-loc-list2-1.pdos"]
    homo = homo_index(dot.symbols, "xtb")
    # the campaign's reader maps each list to its region by the atoms of its &LDOS in the input CP2K ran
    ran = [line.split()[1:] for line in (tmp_path / "run" / "seg000.inp").read_text().splitlines()
           if line.strip().startswith("LIST ")]  # fmt: skip
    by_text = {regions[int(atoms[0]) - 1]: k for k, atoms in enumerate(ran)}
    campaign, info = replica_weights(tmp_path / "run" / "run.json", dot.symbols, regions)
    assert info["homo_index"] == homo and info["level"] == "xtb" and list(campaign["step"]) == [0, 3, 6]
    for edge, orb in (("vbm", homo), ("cbm", homo + 1)):
        for region, k in by_text.items():
            np.testing.assert_allclose(campaign[f"{edge}_{region}"], _independent_weights(files[k], orb), atol=1e-12)
        assert (campaign[f"{edge}_shell"] == 0).all()
    files = [files[by_text["core"]], files[by_text["surface"]]]
    df = write_localisation(files, ["core", "surface"], homo, tmp_path / "localisation.csv",
                            {"synthetic": False, "level": "xtb"}, timestep_fs=2.0)  # fmt: skip
    assert list(df["step"]) == [0, 3, 6]
    for edge, orb in (("vbm", homo), ("cbm", homo + 1)):
        core, surface = _independent_weights(files[0], orb), _independent_weights(files[1], orb)
        np.testing.assert_allclose(df[f"{edge}_core"], core, atol=1e-12)
        np.testing.assert_allclose(df[f"{edge}_surface"], surface, atol=1e-12)
        np.testing.assert_allclose(np.add(core, surface), 1.0, atol=3e-8)  # 8 printed decimals, 2 lists x 3 columns
    table = pd.read_csv(tmp_path / "localisation.csv")
    assert set(table.columns) >= {"step", "time_fs", "vbm_core", "vbm_surface", "cbm_core", "cbm_surface"}
    with pytest.raises(ValueError, match="do not cover"):
        frontier_weights([read_list_pdos(files[0])], ["core"], homo)


@pytest.mark.cp2k
def test_real_cp2k_xtb_with_ot_prints_the_lumo_as_diagonalisation_does(tmp_path, cp2k_exe):
    """The print's OT path (the SCF of the pbe level): CP2K 2023.1 computes NLUMO empty orbitals for
    it. Same geometry, same step 0: the OT print holds the HOMO and the LUMO with the weights of the
    diagonalisation print, within the SCF tolerance."""
    dot = read_structure(DATA / "cspbbr3_1x1x1_xtb_relaxed.xyz")
    regions = ["surface" if s == "Cs" else "core" for s in dot.symbols]
    spec, _ = installed_xmlspec()
    homo = homo_index(dot.symbols, "xtb")
    weights = {}
    ot = {"force_eval": {"dft": {"scf": {"diagonalization": {"_": False}, "mixing": {"_": False},
                                         "ot": {"_": True, "minimizer": "DIIS", "preconditioner": "FULL_SINGLE_INVERSE"}}}}}  # fmt: skip
    for name, overrides in (("diag", None), ("ot", ot)):
        tree = cp2k_input_tree(dot.symbols, dot.positions_A, dot.box_A, level="xtb",
                               md=MDSettings(temperature_K=10.0, timestep_fs=2.0, steps=1, trajectory_every_steps=1,
                                             trajectory_format="xyz"),
                               scf=SCFSettings(added_mos=0 if overrides else 10), regions=regions,
                               localisation_every_steps=1, overrides=overrides)  # fmt: skip
        inp = tmp_path / f"{name}.inp"
        inp.write_text("! qdphonon MD input, level xtb\n" + render_tree(tree, spec))
        run_cp2k(inp, tmp_path / name, tasks=1, poll_s=0.2)
        if overrides:
            assert "&OT" in (tmp_path / name / "seg000.inp").read_text()
        df, _ = replica_weights(tmp_path / name / "run.json", dot.symbols, regions)
        weights[name] = df
        lists = [read_list_pdos(p) for p in list_pdos_files(tmp_path / name, "md", "loc")]
        assert homo + 1 in lists[0].index
    for col in ("vbm_core", "vbm_surface", "cbm_core", "cbm_surface"):
        np.testing.assert_allclose(weights["ot"][col].iloc[0], weights["diag"][col].iloc[0], atol=1e-4)
    assert weights["ot"]["cbm_weight_sum"].iloc[0] == pytest.approx(1.0, abs=3e-8)
