"""Tests of the QD models (docs/physics.md §2): compositions, neutrality, Cs-removal rule, labels, files."""

from __future__ import annotations

import functools
import itertools
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from qdphonon.structures.lattice import a_site_class
from qdphonon.structures.model import REGIONS
from qdphonon.structures.neutrality import _coulomb_terms, _descend, _greedy_start, removal_candidates, removal_energy, select_removed_cs
from qdphonon.structures.build import build_quantum_dot
from qdphonon.structures.io import read_structure, write_structure
from qdphonon.structures.model import QuantumDotSpec, system_name


@functools.lru_cache(maxsize=None)
def dot(size: tuple[int, int, int], shell_layers: int = 0, shell_metal: str = "Ca"):
    """Built dot, cached across tests (n = 7 is built once)."""
    return build_quantum_dot(QuantumDotSpec(size, shell_layers, shell_metal))


def cube(n: int, k: int = 0):
    return dot((n, n, n), k)


def positions_of(d, element: str) -> np.ndarray:
    return d.positions_A[[i for i, s in enumerate(d.symbols) if s == element]]


def relative_positions(d) -> np.ndarray:
    """Positions relative to the centre of the raw (unremoved) cut, i.e. the Pb bounding-box centre."""
    b = d.positions_A[[i for i, s in enumerate(d.symbols) if s in ("Pb", "Ca", "Sr")]]
    return d.positions_A - 0.5 * (b.min(axis=0) + b.max(axis=0))


# --- compositions ----------------------------------------------------------------------
CUBES = {
    1: ("Cs4PbBr6", 11),
    2: ("Cs20Pb8Br36", 64),
    3: ("Cs54Pb27Br108", 189),
    4: ("Cs112Pb64Br240", 416),
    5: ("Cs200Pb125Br450", 775),
    6: ("Cs324Pb216Br756", 1296),
    7: ("Cs490Pb343Br1176", 2009),
}


@pytest.mark.parametrize("n", sorted(CUBES))
def test_cube_composition(n):
    d = cube(n)
    formula, n_atoms = CUBES[n]
    assert d.formula == formula
    assert d.n_atoms == n_atoms
    assert d.counts_by_element == {"Cs": n * n * (n + 3), "Pb": n**3, "Br": 3 * n * n * (n + 1)}
    assert d.charge == 0


def test_core_shell_reference_composition():
    d = cube(6, 1)
    assert d.formula == "Cs324Ca152Pb64Br756"
    assert d.charge == 0
    assert system_name(d.spec) == "cspbbr3_6x6x6_ca1"


SHAPES = [(1, 1, 2), (1, 2, 1), (2, 1, 1), (1, 1, 7), (1, 2, 3), (2, 3, 4), (3, 3, 5), (2, 2, 6), (4, 5, 6), (7, 7, 3), (3, 4, 5)]


@pytest.mark.parametrize("size", SHAPES)
def test_non_cubes_are_neutral(size):
    nx, ny, nz = size
    d = dot(size)
    assert d.charge == 0
    counts = d.counts_by_element
    assert counts["Pb"] == nx * ny * nz
    assert counts["Br"] == (nx + 1) * ny * nz + nx * (ny + 1) * nz + nx * ny * (nz + 1)
    assert counts["Cs"] == nx * ny * nz + nx * ny + ny * nz + nx * nz


def test_system_names():
    assert system_name(QuantumDotSpec((6, 6, 6))) == "cspbbr3_6x6x6"
    assert system_name(QuantumDotSpec((6, 6, 6), 1)) == "cspbbr3_6x6x6_ca1"
    assert system_name(QuantumDotSpec((2, 3, 4))) == "cspbbr3_2x3x4"
    assert system_name(QuantumDotSpec((7, 7, 7), 2, "Sr")) == "cspbbr3_7x7x7_sr2"
    assert system_name(QuantumDotSpec((4, 4, 4), 0, "Sr")) == "cspbbr3_4x4x4"


# --- Cs removal ------------------------------------------------------------------------
def test_n1_keeps_td_symmetry():
    d = cube(1)
    cs = positions_of(d, "Cs")
    pb = positions_of(d, "Pb")[0]
    a = d.spec.lattice_A
    pair = np.linalg.norm(cs[:, None] - cs[None], axis=-1)[np.triu_indices(4, 1)]
    np.testing.assert_allclose(pair, a * np.sqrt(2), atol=1e-8)
    np.testing.assert_allclose(np.linalg.norm(cs - pb, axis=1), a * np.sqrt(3) / 2, atol=1e-8)
    np.testing.assert_allclose(d.dipole_eA, 0, atol=1e-8)


def _maps_onto_itself(symbols, pos, op) -> bool:
    key = lambda s, p: (s,) + tuple(np.round(p, 6) + 0.0)  # noqa: E731
    return sorted(key(s, p) for s, p in zip(symbols, pos)) == sorted(key(s, p) for s, p in zip(symbols, pos @ op.T))


def test_n2_removes_seven_corners_keeping_c3v():
    d = cube(2)
    removed = select_removed_cs((2, 2, 2))
    assert (a_site_class(removed, (2, 2, 2)) == 3).all() and len(removed) == 7
    rel = relative_positions(d)
    kept_corner = [p for s, p in zip(d.symbols, rel) if s == "Cs" and np.allclose(np.abs(p), d.spec.lattice_A)]
    assert len(kept_corner) == 1
    flip = np.diag(np.sign(kept_corner[0]))
    rel = rel @ flip
    c3 = np.array([[0, 0, 1], [1, 0, 0], [0, 1, 0]], dtype=float)
    mirror = np.array([[0, 1, 0], [1, 0, 0], [0, 0, 1]], dtype=float)
    assert _maps_onto_itself(d.symbols, rel, c3)
    assert _maps_onto_itself(d.symbols, rel, mirror)


@pytest.mark.parametrize("n", [1, 3, 4, 5, 7])
def test_cube_dipole_vanishes(n):
    np.testing.assert_allclose(cube(n).dipole_eA, 0, atol=1e-6)


@pytest.mark.parametrize("n", [3, 4, 5, 6, 7])
def test_cube_removes_all_corners_and_spreads_edges(n):
    size = (n, n, n)
    removed = select_removed_cs(size)
    cls = a_site_class(removed, size)
    assert (cls == 3).sum() == 8 and (cls == 2).sum() == 3 * n - 7
    edges = removed[cls == 2]
    outer = (edges == -1) | (edges == 2 * n - 1)
    edge_ids = [tuple(np.where(o, e, 0)) for e, o in zip(edges.tolist(), outer)]
    per_edge = [edge_ids.count(e) for e in set(edge_ids)] + [0] * (12 - len(set(edge_ids)))
    assert max(per_edge) - min(per_edge) <= 1


def _brute_force_minimum(size):
    cands = removal_candidates(size)
    phi, pair = _coulomb_terms(size, cands)
    q = sum(size) + 1
    combos = np.array(list(itertools.combinations(range(len(cands)), q)))
    energy = -phi[combos].sum(axis=1)
    for i, j in itertools.combinations(range(q), 2):
        energy += pair[combos[:, i], combos[:, j]]
    return energy.min(), phi, pair, cands


@pytest.mark.parametrize("size", [(1, 1, 1), (1, 1, 2), (2, 2, 2)])
def test_removal_is_the_exhaustive_coulomb_minimum(size):
    e_min, phi, pair, cands = _brute_force_minimum(size)
    removed = {tuple(r) for r in select_removed_cs(size).tolist()}
    mask = np.array([tuple(c) in removed for c in cands.tolist()])
    assert removal_energy(phi, pair, mask) == pytest.approx(e_min, abs=1e-9)


def test_removal_beats_greedy_start_for_n5():
    size = (5, 5, 5)
    cands = removal_candidates(size)
    phi, pair = _coulomb_terms(size, cands)
    greedy = _descend(phi, pair, _greedy_start(phi, pair, 16))
    removed = {tuple(r) for r in select_removed_cs(size).tolist()}
    chosen = np.array([tuple(c) in removed for c in cands.tolist()])
    assert removal_energy(phi, pair, chosen) < removal_energy(phi, pair, greedy) - 1e-3


def test_structure_scales_with_lattice_constant():
    a = build_quantum_dot(QuantumDotSpec((3, 4, 5), lattice_A=5.87))
    b = build_quantum_dot(QuantumDotSpec((3, 4, 5), lattice_A=6.0))
    assert a.symbols == b.symbols and a.regions == b.regions
    np.testing.assert_allclose((a.positions_A - a.box_A / 2) * 6.0 / 5.87, b.positions_A - b.box_A / 2, atol=1e-8)


# --- layers and regions ----------------------------------------------------------------
@pytest.mark.parametrize(
    "size,k", [((1, 1, 1), 0), ((2, 2, 2), 0), ((3, 3, 3), 0), ((6, 6, 6), 0), ((6, 6, 6), 1), ((2, 3, 4), 0), ((7, 7, 7), 2)]
)
def test_every_atom_has_one_region(size, k):
    d = dot(size, k)
    assert len(d.regions) == len(d.layers) == d.n_atoms
    assert set(d.regions) <= set(REGIONS)
    assert sum(d.counts_by_region.values()) == d.n_atoms
    if k:
        assert "surface" not in d.regions
        assert all((r == "shell") == (layer < k) for r, layer in zip(d.regions, d.layers))
    else:
        assert "shell" not in d.regions
        assert all((r == "surface") == (layer == 0) for r, layer in zip(d.regions, d.layers))


@pytest.mark.parametrize("n,k", [(3, 1), (4, 1), (5, 1), (6, 1), (7, 1), (7, 2), (6, 2)])
def test_core_shell_core_is_the_embedded_cuboid(n, k):
    d = cube(n, k)
    m = n - 2 * k
    core = [s for s, r in zip(d.symbols, d.regions) if r == "core"]
    shell = [s for s, r in zip(d.symbols, d.regions) if r == "shell"]
    assert "Pb" not in shell and "Ca" not in core
    assert core.count("Pb") == m**3
    assert core.count("Br") == 3 * m * m * (m + 1)
    assert core.count("Cs") == (m + 1) ** 3
    assert d.counts_by_element["Ca"] == n**3 - m**3


def test_surface_of_core_only_dot_is_shell_of_core_shell_dot():
    bare, cs = cube(6), cube(6, 1)

    def labels(d):
        rows = zip(d.positions_A, d.regions, d.layers)
        return sorted((tuple(np.round(p, 6)), r in ("surface", "shell"), layer) for p, r, layer in rows)

    assert labels(bare) == labels(cs)


def test_layers():
    d = cube(5)
    rel = relative_positions(d) / d.spec.lattice_A
    for s, p, layer in zip(d.symbols, rel, d.layers):
        if s == "Pb":
            assert layer == int(round(2 - np.abs(p).max()))
    terminal_br = [layer for s, p, layer in zip(d.symbols, rel, d.layers) if s == "Br" and np.isclose(np.abs(p).max(), 2.5)]
    assert terminal_br and set(terminal_br) == {0}
    assert max(d.layers) == 2


def test_sr_shell():
    d = dot((5, 5, 5), 1, "Sr")
    assert d.formula == "Cs200Sr98Pb27Br450"
    assert d.charge == 0


# --- box -------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [(1, 1, 1), (2, 3, 4), (1, 1, 7)])
def test_box_is_cubic_and_centred(size):
    d = dot(size)
    lo, hi = d.positions_A.min(axis=0), d.positions_A.max(axis=0)
    assert d.box_A == pytest.approx((hi - lo).max() + 2 * d.spec.vacuum_A)
    np.testing.assert_allclose(0.5 * (lo + hi), 0.5 * d.box_A, atol=1e-8)
    assert lo.min() >= d.spec.vacuum_A - 1e-8


# --- spec validation -------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs,field",
    [
        ({"size": (0, 1, 1)}, "size"),
        ({"size": (2, 2)}, "size"),
        ({"size": (2, 2, 2.5)}, "size"),
        ({"size": 3}, "size"),
        ({"size": (4, 4, 4), "shell_layers": -1}, "shell_layers"),
        ({"size": (4, 4, 4), "shell_layers": 2}, "shell_layers"),
        ({"size": (6, 6, 3), "shell_layers": 2}, "shell_layers"),
        ({"size": (4, 4, 4), "shell_metal": "Zn"}, "shell_metal"),
        ({"size": (4, 4, 4), "lattice_A": 0.0}, "lattice_A"),
        ({"size": (4, 4, 4), "lattice_A": float("nan")}, "lattice_A"),
        ({"size": (4, 4, 4), "vacuum_A": -1.0}, "vacuum_A"),
    ],
)
def test_bad_specs_raise_naming_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        QuantumDotSpec(**kwargs)


def test_spec_accepts_lists_and_allows_single_pb_core():
    spec = QuantumDotSpec([3, 3, 3], 1)
    assert spec.size == (3, 3, 3)
    assert build_quantum_dot(spec).counts_by_element["Pb"] == 1


# --- files -----------------------------------------------------------------------------
def test_files_are_byte_identical(tmp_path):
    spec = QuantumDotSpec((3, 2, 4), 0)
    paths = []
    for sub in ("a", "b"):
        path = tmp_path / sub / "dot.xyz"
        write_structure(build_quantum_dot(spec), path)
        paths.append(path)
    assert paths[0].read_bytes() == paths[1].read_bytes()
    assert paths[0].with_suffix(".json").read_bytes() == paths[1].with_suffix(".json").read_bytes()


def test_ase_reads_the_xyz(tmp_path):
    from ase.io import read

    d = cube(6, 1)
    path = tmp_path / "cs.xyz"
    write_structure(d, path)
    atoms = read(path)
    symbols = atoms.get_chemical_symbols()
    assert len(atoms) == 1296
    assert {el: symbols.count(el) for el in ("Cs", "Ca", "Pb", "Br")} == {"Cs": 324, "Ca": 152, "Pb": 64, "Br": 756}
    assert list(atoms.arrays["region"]) == d.regions
    assert list(atoms.arrays["layer"]) == d.layers
    assert not atoms.pbc.any()
    np.testing.assert_allclose(atoms.cell.lengths(), d.box_A)
    np.testing.assert_allclose(atoms.positions, d.positions_A, atol=1e-8)
    assert atoms.info["system"] == "cspbbr3_6x6x6_ca1"
    assert atoms.info["formula"] == "Cs324Ca152Pb64Br756"


def test_json_sidecar(tmp_path):
    path = tmp_path / "d.xyz"
    write_structure(cube(6, 1), path)
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["system"] == "cspbbr3_6x6x6_ca1"
    assert meta["formula"] == "Cs324Ca152Pb64Br756"
    assert meta["counts_by_element"] == {"Br": 756, "Ca": 152, "Cs": 324, "Pb": 64}
    assert meta["counts_by_region"] == {"core": 429, "shell": 867, "surface": 0}
    assert meta["n_atoms"] == 1296 and meta["charge"] == 0
    assert meta["size_octahedra"] == [6, 6, 6]
    assert meta["edge_nm"] == [3.522, 3.522, 3.522]
    assert meta["shell_layers"] == 1 and meta["shell_metal"] == "Ca"
    assert meta["lattice_A"] == 5.87 and meta["vacuum_A"] == 5.0
    assert meta["box_A"] == pytest.approx(cube(6, 1).box_A)
    # 7^3 A-sites of the 6x6x6 cut, 324 Cs kept: 19 = nx+ny+nz+1 removed, as the recorded rule says
    assert meta["n_removed_cs"] == 7**3 - 324 == 6 + 6 + 6 + 1
    assert meta["removed_cs_rule"].startswith("remove nx+ny+nz+1 Cs among corner and edge A-sites")
    charges = {"Cs": 1, "Ca": 2, "Pb": 2, "Br": -1}  # formal ionic charges
    d = cube(6, 1)
    dipole = sum(charges[el] * pos for el, pos in zip(d.symbols, d.positions_A))  # neutral: origin-free
    np.testing.assert_allclose(meta["point_charge_dipole_eA"], dipole, atol=1e-6)
    import tomllib

    pyproject = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    assert meta["qdphonon_version"] == pyproject["project"]["version"]


def test_read_structure_round_trip(tmp_path):
    d = dot((2, 3, 4))
    path = tmp_path / "r.xyz"
    write_structure(d, path)
    back = read_structure(path)
    assert back.spec == d.spec
    assert back.symbols == d.symbols and back.regions == d.regions and back.layers == d.layers
    assert back.box_A == pytest.approx(d.box_A)
    np.testing.assert_allclose(back.positions_A, d.positions_A, atol=1e-8)


@pytest.mark.parametrize(
    "line_no,replacement",
    [
        (1, "sixty-four"),
        (2, 'Lattice="1 0 0 0 1 0 0 0 1"'),
        (5, "Cs 1.0 2.0 x surface 0"),
        (7, "Cs 1.0 2.0 3.0 bulk 0"),
        (9, "Xx 1 2 3 core 0"),
    ],
)
def test_read_structure_rejects_malformed_lines(tmp_path, line_no, replacement):
    path = tmp_path / "bad.xyz"
    write_structure(cube(2), path)
    lines = path.read_text().splitlines()
    lines[line_no - 1] = replacement
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=rf"bad\.xyz: line {line_no}\b"):
        read_structure(path)


def test_read_structure_rejects_truncated_file(tmp_path):
    path = tmp_path / "short.xyz"
    write_structure(cube(1), path)
    path.write_text("\n".join(path.read_text().splitlines()[:-2]) + "\n")
    with pytest.raises(ValueError, match="short.xyz: line"):
        read_structure(path)


def test_to_molecule():
    mol = cube(2).to_molecule()
    assert len(mol) == 64
    assert mol.charge == 0
    assert mol.composition.reduced_formula == "Cs5Pb2Br9"  # Cs20Pb8Br36
    assert mol.site_properties["region"] == cube(2).regions
    assert mol.site_properties["layer"] == cube(2).layers


def test_import_does_not_load_pymatgen():
    code = "import sys, qdphonon.structures; sys.exit('pymatgen' in sys.modules or 'ase' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_cli_build_writes_the_dot_it_is_asked_for(tmp_path):
    """`qdphonon build`: the XYZ and its sidecar hold the composition of a 2x3x4 cuboid, counted here from
    the file (Pb nx ny nz; Br (nx+1)ny nz + nx(ny+1)nz + nx ny(nz+1); Cs nx ny nz + nx ny + ny nz + nx nz)."""
    out = tmp_path / "d.xyz"
    res = subprocess.run(["qdphonon", "build", "--size", "2", "3", "4", "--lattice-A", "6.0", "--out", str(out)],
                         capture_output=True, text=True)  # fmt: skip
    assert res.returncode == 0, res.stderr
    lines = out.read_text().splitlines()
    assert int(lines[0]) == len(lines) - 2 == 24 + 98 + 50
    symbols = [ln.split()[0] for ln in lines[2:]]
    assert {el: symbols.count(el) for el in ("Cs", "Pb", "Br")} == {"Cs": 50, "Pb": 24, "Br": 98}
    pb = np.array([[float(x) for x in ln.split()[1:4]] for ln in lines[2:] if ln.startswith("Pb")])
    spans = pb.max(axis=0) - pb.min(axis=0)
    np.testing.assert_allclose(spans, [6.0, 12.0, 18.0], atol=1e-8)  # (n - 1) a between the Pb centres
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["formula"] == "Cs50Pb24Br98" and meta["system"] == "cspbbr3_2x3x4" and meta["lattice_A"] == 6.0
    bad = subprocess.run(["qdphonon", "build", "--size", "0", "1", "1", "--out", str(tmp_path / "bad.xyz")],
                         capture_output=True, text=True)  # fmt: skip
    assert bad.returncode == 1 and "size" in bad.stderr and not (tmp_path / "bad.xyz").exists()
