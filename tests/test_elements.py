"""The element table (qdphonon.elements) is the one place per-element facts live.

Checked against the outside: the config schema's shell_metal enum, ASE's masses, the
pseudopotential and basis files of the installed CP2K (electron counts included), and the
electron count real CP2K (GFN1-xTB) reports for a dot holding every B-site metal of the table.
Then Sr end to end as a shell metal (structure, xtb and pbe inputs validated by the installed
CP2K's input definition, mock run), and a hypothetical metal (Ba) added as one monkeypatched
table entry, which goes the same way, while the schema still refuses it until its enum says Ba.
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from qdphonon import elements, settings
from qdphonon.config import ConfigError, system_name, validate_config
from qdphonon.cp2k.inputs import MDSettings, SCFSettings, cp2k_input_tree, homo_index, valence_electron_count
from qdphonon.cp2k.xmlspec import installed_xmlspec, render_input
from qdphonon.elements import ELEMENTS, HOST, Element, Perovskite, Role
from qdphonon.engines.mock import run_mock
from qdphonon.engines.mock_model import mock_atom_oscillators, mock_params
from qdphonon.parsers.run_dir import parse_run_dir
from qdphonon.structures.build import build_quantum_dot
from qdphonon.structures.io import read_structure, write_structure
from qdphonon.structures.model import QuantumDotSpec

BARIUM = Element("Ba", Role.SHELL_METAL, +2, valence_xtb=2, gth_pbe_q=10,
                 mock_region_weights=(0.35, 0.45, 0.20), mock_potential_Ha=-1.3)  # fmt: skip
"""A hypothetical shell metal (CsBaBr3 is not a stable perovskite; this is a test of the plumbing).
GFN1-xTB: 6s2; GTH-PBE-q10 and DZVP-MOLOPT-SR-GTH exist for Ba in CP2K's data files."""


@pytest.fixture
def with_barium(monkeypatch):
    """The element table with one more entry, and nothing else changed."""
    monkeypatch.setitem(ELEMENTS, "Ba", BARIUM)


@pytest.fixture(scope="module")
def xmlspec(cp2k_exe):
    """The installed CP2K's input definition (``cp2k --xml``), never the bundled fall-back."""
    spec, description = installed_xmlspec(cp2k_exe)
    assert "bundled" not in description, description
    return spec


def cp2k_data_dir(cp2k_exe: str) -> Path:
    """Where the installed CP2K reads BASIS_MOLOPT and GTH_POTENTIALS: ``CP2K_DATA_DIR`` if set,
    else the ``__DATA_DIR`` it was compiled with (printed by ``--version``)."""
    if os.environ.get("CP2K_DATA_DIR"):
        return Path(os.environ["CP2K_DATA_DIR"])
    out = subprocess.run([cp2k_exe, "--version"], capture_output=True, text=True, timeout=60).stdout
    m = re.search(r'__DATA_DIR="([^"]+)"', re.sub(r"\s*\n\s*", "", out))
    assert m, "cp2k --version names no data directory"
    return Path(m.group(1))


def gth_electrons(text: str, symbol: str, name: str) -> int | None:
    """Valence electrons of pseudopotential ``name`` of ``symbol`` in a GTH_POTENTIALS text (sum
    of the electron counts per angular momentum on the line after the header), None if absent."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        words = line.split()
        if len(words) >= 2 and words[0] == symbol and name in words[1:]:
            return sum(int(n) for n in lines[i + 1].split())
    return None


def has_basis(text: str, symbol: str, name: str) -> bool:
    """Whether a BASIS_MOLOPT text holds basis ``name`` (or an alias of it) for ``symbol``."""
    return any(ln.split()[:1] == [symbol] and name in ln.split()[1:] for ln in text.splitlines())


# --- the table and its owners ----------------------------------------------------------------------

def test_schema_shell_metals_agree_with_the_table():
    """The schema owns what a config may say; every value it allows is a table entry and back."""
    assert sorted(settings.choices("systems[].shell_metal")) == sorted(elements.shell_metals())
    assert settings.default("systems[].shell_metal") in elements.shell_metals()


def test_roles_and_the_host():
    assert (HOST.a_site, HOST.b_site, HOST.halide) == ("Cs", "Pb", "Br") and HOST.formula == "CsPbBr3"
    assert ELEMENTS[HOST.a_site].role is Role.A_SITE and ELEMENTS[HOST.b_site].role is Role.B_SITE
    assert ELEMENTS[HOST.halide].role is Role.HALIDE
    assert elements.shell_metals() == ("Ca", "Sr")
    assert elements.formula_order() == ("Cs", "Ca", "Sr", "Pb", "Br")
    # ABX3 neutral with formal charges, and every shell metal keeps it so
    assert sum(elements.formal_charge_e(s) for s in (HOST.a_site, HOST.b_site, *[HOST.halide] * 3)) == 0
    assert {elements.formal_charge_e(m) for m in elements.shell_metals()} == {elements.formal_charge_e("Pb")}


def test_a_shell_metal_of_the_wrong_charge_is_refused(monkeypatch):
    monkeypatch.setitem(ELEMENTS, "Y", dataclasses.replace(BARIUM, symbol="Y", formal_charge_e=3))
    with pytest.raises(ValueError, match=r"\['Y'\] must carry the B-site charge \+2 e of Pb"):
        QuantumDotSpec((4, 4, 4), 1, "Y")


def test_unknown_elements_are_named():
    with pytest.raises(ValueError, match=r"element 'Zn' is not in the element table \(known: Cs, Pb, Br, Ca, Sr\)"):
        valence_electron_count(["Cs", "Zn"], "pbe")
    with pytest.raises(ValueError, match="'Xx' is not a chemical symbol"):
        elements.mass_amu("Xx")


def test_masses_are_ases_standard_atomic_weights():
    """IUPAC 2016 standard atomic weights (Pure Appl. Chem. 88, 265 (2016); Pb and Br are the
    conventional values), typed in here from the IUPAC table, not from ASE."""
    iupac_2016 = {"Cs": 132.90545196, "Pb": 207.2, "Br": 79.904, "Ca": 40.078, "Sr": 87.62}
    for symbol, entry in ELEMENTS.items():
        assert entry.mass_amu == pytest.approx(iupac_2016[symbol], abs=1e-6), symbol


def test_valence_electrons_per_level():
    pbe = {s: e.valence_electrons["pbe"] for s, e in ELEMENTS.items()}
    assert pbe == {"Cs": 9, "Pb": 4, "Br": 7, "Ca": 10, "Sr": 10}
    assert {s: e.valence_electrons["xtb"] for s, e in ELEMENTS.items()} == {"Cs": 1, "Pb": 4, "Br": 7, "Ca": 2, "Sr": 2}
    assert {s: e.gth_potential for s, e in ELEMENTS.items()} == {
        "Cs": "GTH-PBE-q9", "Pb": "GTH-PBE-q4", "Br": "GTH-PBE-q7", "Ca": "GTH-PBE-q10", "Sr": "GTH-PBE-q10"}


def test_system_names_come_from_the_host_formula(monkeypatch):
    assert system_name((6, 6, 6), 1, "Sr") == "cspbbr3_6x6x6_sr1"
    monkeypatch.setattr(elements, "HOST", Perovskite("Cs", "Pb", "I"))
    assert system_name((6, 6, 6), 1, "Sr") == "cspbi3_6x6x6_sr1"


@pytest.mark.cp2k
@pytest.mark.parametrize("symbol", sorted({*ELEMENTS, "Ba"}))
def test_potentials_and_bases_exist_in_the_installed_cp2k_data(cp2k_exe, symbol):
    """Every entry (and the hypothetical Ba) names a GTH-PBE potential that CP2K's GTH_POTENTIALS
    holds with exactly q valence electrons, and a basis that BASIS_MOLOPT holds."""
    entry = ELEMENTS.get(symbol, BARIUM)
    data = cp2k_data_dir(cp2k_exe)
    assert gth_electrons((data / "GTH_POTENTIALS").read_text(), symbol, entry.gth_potential) == entry.gth_pbe_q
    assert has_basis((data / "BASIS_MOLOPT").read_text(), symbol, entry.pbe_basis)


@pytest.mark.cp2k
def test_real_gfn1_xtb_counts_the_tables_valence_electrons(tmp_path, cp2k_exe, xmlspec):
    """One GFN1-xTB energy of a chain dot whose B-sites hold Pb and every shell metal of the table
    (Cs10CaSrPbBr16, 29 atoms): CP2K's electron count equals the table's."""
    metals = (HOST.b_site, *elements.shell_metals())
    dot = build_quantum_dot(QuantumDotSpec((len(metals), 1, 1)))
    b_sites = [i for i, s in enumerate(dot.symbols) if s == HOST.b_site]
    symbols = list(dot.symbols)
    for i, metal in zip(b_sites, metals):
        symbols[i] = metal
    tree = cp2k_input_tree(symbols, dot.positions_A, dot.box_A, level="xtb", scf=SCFSettings(smearing_K=300.0),
                           overrides={"global": {"run_type": "ENERGY"}, "motion": None})  # fmt: skip
    (tmp_path / "e.inp").write_text(render_input(tree, xmlspec))
    subprocess.run([cp2k_exe, "-i", "e.inp", "-o", "e.out"], cwd=tmp_path, check=True, timeout=600, capture_output=True)
    out = (tmp_path / "e.out").read_text()
    assert "PROGRAM ENDED" in out
    n_el = {int(n) for n in re.findall(r"Number of electrons:\s+(\d+)", out)}
    assert n_el == {valence_electron_count(symbols, "xtb")} == {10 * 1 + 4 + 2 + 2 + 16 * 7}


# --- a shell metal end to end ----------------------------------------------------------------------

def shell_metal_end_to_end(tmp_path: Path, metal: str, xmlspec) -> None:
    """A 3x3x3 dot with one shell layer of ``metal``: built neutral with the expected formula and the
    Ca dot's geometry; its xtb and pbe MD inputs validated by the installed CP2K's definition, with
    the table's potential; a short mock run parsed back."""
    spec = QuantumDotSpec((3, 3, 3), 1, metal)
    dot = build_quantum_dot(spec)
    reference = build_quantum_dot(QuantumDotSpec((3, 3, 3), 1, "Ca"))
    assert dot.charge == 0 and dot.formula == f"Cs54{metal}26PbBr108" and dot.name == f"cspbbr3_3x3x3_{metal.lower()}1"
    assert [s if s != metal else "Ca" for s in dot.symbols] == reference.symbols
    np.testing.assert_array_equal(dot.positions_A, reference.positions_A)
    np.testing.assert_allclose(dot.dipole_eA, reference.dipole_eA, atol=1e-12)  # same charges, same sites
    for level in ("xtb", "pbe"):
        tree = cp2k_input_tree(dot.symbols, dot.positions_A, dot.box_A, level=level, md=MDSettings(steps=8))
        text = render_input(tree, xmlspec)
        if level == "pbe":
            entry = ELEMENTS[metal]
            assert re.search(rf"&KIND {metal}\n\s*ELEMENT {metal}\n\s*BASIS_SET {entry.pbe_basis}\n"
                             rf"\s*POTENTIAL {entry.gth_potential}\n", text)  # fmt: skip
        n_el = valence_electron_count(dot.symbols, level)
        assert n_el == 54 * ELEMENTS["Cs"].valence_electrons[level] + 26 * ELEMENTS[metal].valence_electrons[level] \
            + ELEMENTS["Pb"].valence_electrons[level] + 108 * ELEMENTS["Br"].valence_electrons[level]
        assert homo_index(dot.symbols, level) == n_el // 2
    xyz = tmp_path / "dot.xyz"
    write_structure(dot, xyz)
    assert read_structure(xyz).symbols == dot.symbols
    inp = tmp_path / "md.inp"
    tree = cp2k_input_tree(dot.symbols, dot.positions_A, dot.box_A, level="xtb", md=MDSettings(steps=20, seed=3))
    inp.write_text(render_input(tree, xmlspec))
    record = run_mock(inp, tmp_path / "run", xyz)
    result = parse_run_dir(tmp_path / "run")
    assert result.synthetic and record["mock_model"]["gap_std_meV"] > 0
    assert len(result.band_edges.vbm_eV) == 21 and np.all(result.band_edges.cbm_eV > result.band_edges.vbm_eV)
    osc = mock_atom_oscillators(dot.symbols, dot.regions, 300.0, 1, mock_params())
    is_metal = np.array(dot.symbols) == metal
    np.testing.assert_array_equal(osc.mass_amu[is_metal], ELEMENTS[metal].mass_amu)


def test_sr_is_a_shell_metal_end_to_end(tmp_path, xmlspec):
    shell_metal_end_to_end(tmp_path, "Sr", xmlspec)


def test_a_new_shell_metal_is_one_table_entry(tmp_path, xmlspec, with_barium):
    """Ba added only to the element table: built, rendered, validated and mocked like Sr."""
    assert "Ba" in elements.shell_metals() and mock_params()["atom_region_weights"]["Ba"] == [0.35, 0.45, 0.20]
    shell_metal_end_to_end(tmp_path, "Ba", xmlspec)


def test_the_schema_still_owns_what_a_config_may_say(with_barium):
    """With Ba in the table but not in the schema's enum, a config naming Ba is refused by the key,
    and the agreement test above would fail: the enum is the second line of the change."""
    with pytest.raises(ConfigError, match=r"systems\[0\]\.shell_metal"):
        validate_config({"systems": [{"size": [4, 4, 4], "shell_layers": 1, "shell_metal": "Ba"}]})
    assert sorted(settings.choices("systems[].shell_metal")) != sorted(elements.shell_metals())
