"""Band-edge localisation in the campaign: the mock engine's synthetic &PDOS/&LDOS files (CP2K
2023.1's layout, checked against lines CP2K printed), ``qdphonon localise`` on them (each list
mapped to its region by the atoms of its &LDOS in the input the engine ran), the summary's columns,
the figure, and ``snakemake -n`` asking for the table only when the print is on. The mock's
localisation is an input (run.json ``localisation_model``): recovering it tests the machinery only.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]

from qdphonon.analysis.localisation_run import SUMMARY_COLUMNS, replica_weights
from qdphonon.analysis.summary import write_summary
from qdphonon.cli import main
from qdphonon.cp2k.inputs import MDSettings, SCFSettings, cp2k_input_tree
from qdphonon.cp2k.readback import render_tree
from qdphonon.cp2k.xmlspec import bundled_xmlspec
from qdphonon.engines.mock import run_mock
from qdphonon.figures.common import SYNTHETIC_LABEL, figure_texts
from qdphonon.figures.claims import localisation_figure
from qdphonon.parsers.pdos import read_list_pdos
from qdphonon.structures.build import build_quantum_dot
from qdphonon.structures.io import write_structure
from qdphonon.structures.model import QuantumDotSpec

# Printed by CP2K 2023.1 (GFN1-xTB, Cs4PbBr6, &PDOS with two &LDOS lists, tests/test_localisation.py).
REAL = """# Projected DOS for list 1 of 7 atoms, at iteration step i = 0, E(Fermi) =    -0.337128 a.u.
#     MO Eigenvalue [a.u.]      Occupation                 s                 p                 d
       1         -0.731866        2.000000        0.72864798        0.03397957        0.02151226
      26         -0.280272        0.000000        0.03211908        0.17245197        0.03657196
""".splitlines()


def _widths(line: str) -> list[int]:
    return [len(m) for m in re.findall(r"\s+\S+", line)]


def mock_run(tmp: Path, size, shell=0, steps=300, every=20, level="pbe", replica="r0"):
    dot = build_quantum_dot(QuantumDotSpec(size=size, shell_layers=shell))
    xyz = tmp / "dot.xyz"
    write_structure(dot, xyz)
    tree = cp2k_input_tree(dot.symbols, dot.positions_A, dot.box_A, level=level,
                           md=MDSettings(steps=steps, trajectory_every_steps=50, seed=3, temperature_K=10.0),
                           scf=SCFSettings(), regions=dot.regions, localisation_every_steps=every)  # fmt: skip
    inp = tmp / f"{replica}.inp"
    inp.write_text("! qdphonon MD input\n" + render_tree(tree, bundled_xmlspec()))
    record = run_mock(inp, tmp / replica, xyz)
    return record, dot, xyz


def _independent_table(run_dir: Path, regions: list[str], orbital: int) -> dict[str, list[float]]:
    """Per region, the weight of one orbital in every block: LIST lines of the segment input read as
    text, each list file's rows split on blanks and the columns after the occupation summed."""
    lists = [[int(x) for x in line.split()[1:]] for line in (run_dir / "seg000.inp").read_text().splitlines()
             if line.strip().startswith("LIST ")]  # fmt: skip
    out = {}
    for k, atoms in enumerate(lists, 1):
        region = regions[atoms[0] - 1]
        rows = [line.split() for line in (run_dir / f"md-loc-list{k}-1.pdos").read_text().splitlines()
                if line.split() and line.split()[0] == str(orbital)]  # fmt: skip
        out[region] = [sum(float(x) for x in r[3:]) for r in rows]
    return out


def test_mock_list_files_have_cp2ks_layout(tmp_path):
    _, dot, _ = mock_run(tmp_path, (3, 3, 3), steps=40)
    lines = (tmp_path / "r0" / "md-loc-list1-1.pdos").read_text().splitlines()
    assert "synthetic" in lines[0]
    assert re.sub(r"\d+", "N", lines[1].split(", E(Fermi)")[0]) == re.sub(r"\d+", "N", REAL[0].split(", E(Fermi)")[0])
    assert lines[2] == REAL[1] and _widths(lines[1])[-2:] == _widths(REAL[0])[-2:]
    assert {tuple(_widths(line)) for line in lines[3:] if not line.startswith("#")} == {tuple(_widths(REAL[2]))}
    lst = read_list_pdos(tmp_path / "r0" / "md-loc-list1-1.pdos")
    assert lst.synthetic and list(lst.step) == [0, 20, 40]


@pytest.mark.parametrize("size,shell", [((3, 3, 3), 0), ((4, 4, 4), 1)])
def test_localise_recovers_the_mocks_input(tmp_path, size, shell):
    records = []
    for r in ("r0", "r1"):
        record, dot, xyz = mock_run(tmp_path, size, shell, replica=r)
        records.append(tmp_path / r / "run.json")
    out = tmp_path / "analysis" / "localisation.csv"
    assert main(["localise", "--run-records", *map(str, records), "--structure", str(xyz),
                 "--md-equilibration-fs", "100", "--out", str(out)]) == 0  # fmt: skip
    table = pd.read_csv(out)
    assert list(table.columns[:3]) == ["replica", "step", "time_fs"] and (table["time_fs"] >= 100).all()
    assert all(table[c].dtype.kind in "if" for c in table.columns[1:])
    for edge in ("vbm", "cbm"):
        np.testing.assert_allclose(table[f"{edge}_weight_sum"], 1.0, atol=1e-7)
    side = json.loads(out.with_suffix(".json").read_text())
    assert side["synthetic"] is True and side["level"] == "mock" and "mock" in side["note"]
    known = record["localisation_model"]["weights_without_jitter"]
    for edge in ("vbm", "cbm"):
        for region in ("core", "surface", "shell"):
            assert table[f"{edge}_{region}"].mean() == pytest.approx(known[edge][region], abs=0.02), (edge, region)
    homo = side["replicas"][0]["homo_index"]
    plain = _independent_table(tmp_path / "r1", dot.regions, homo)
    r1 = table[table["replica"] == "r1"]
    for region, values in plain.items():
        np.testing.assert_allclose(r1[f"vbm_{region}"], values[-len(r1):], atol=1e-12)
    if shell:
        assert (table["vbm_surface"] == 0).all() and table["vbm_core"].mean() > 0.9


def test_summary_has_the_columns_blank_without_a_print_and_the_figure_is_labelled(tmp_path):
    _, _, xyz = mock_run(tmp_path, (3, 3, 3), steps=100)
    with_loc, without = tmp_path / "analysis" / "a", tmp_path / "analysis" / "b"
    assert main(["localise", "--run-records", str(tmp_path / "r0" / "run.json"), "--structure", str(xyz),
                 "--md-equilibration-fs", "0", "--out", str(with_loc / "localisation.csv")]) == 0  # fmt: skip
    without.mkdir()
    import tarfile

    with tarfile.open(REPO / "validation" / "pbe_n1" / "pbe_n1.tar.xz") as tar:  # a whole linewidth.json
        real = json.loads(tar.extractfile("analysis/cspbbr3_1x1x1/linewidth.json").read())
    for d in (with_loc, without):
        (d / "linewidth.json").write_text(json.dumps({**real, "system": d.name, "synthetic": True, "level": "mock"}))
    path = write_summary([with_loc / "linewidth.json", without / "linewidth.json"], [], tmp_path / "summary.csv")
    summary = pd.read_csv(path)
    assert set(SUMMARY_COLUMNS) <= set(summary.columns)
    table = pd.read_csv(with_loc / "localisation.csv")
    assert summary.loc[0, "vbm_core_weight"] == pytest.approx(table["vbm_core"].mean(), rel=1e-7)
    assert summary.loc[0, "cbm_core_weight_sd"] == pytest.approx(table["cbm_core"].std(), rel=1e-7)
    assert summary.loc[1, list(SUMMARY_COLUMNS)].isna().all()
    summary["edge_nm"] = [1.8, 2.3]
    assert SYNTHETIC_LABEL in " ".join(figure_texts(localisation_figure(summary)))


def test_bad_prints_are_refused_with_the_file(tmp_path):
    _, dot, xyz = mock_run(tmp_path, (3, 3, 3), steps=40)
    record = tmp_path / "r0" / "run.json"
    wrong = ["core" if r == "surface" and i % 2 else r for i, r in enumerate(dot.regions)]
    with pytest.raises(ValueError, match=r"seg000\.inp: &LDOS list \d mixes regions"):
        replica_weights(record, dot.symbols, wrong)
    with pytest.raises(ValueError, match="no printed step after the equilibration"):
        replica_weights(record, dot.symbols, dot.regions, md_equilibration_fs=1e6)
    data = json.loads(record.read_text())
    seg0 = (tmp_path / "r0" / "seg000.inp").read_text()
    first, second = [line for line in seg0.splitlines() if line.strip().startswith("LIST ")]
    (tmp_path / "r0" / "seg001.inp").write_text(seg0.replace(first, "@").replace(second, first).replace("@", second))
    record.write_text(json.dumps(data | {"segments": data["segments"] + [{"input": "seg001.inp"}]}))
    with pytest.raises(ValueError, match=r"seg001\.inp: its &LDOS lists differ from those of seg000\.inp"):
        replica_weights(record, dot.symbols, dot.regions)
    record.write_text(json.dumps(data))
    for p in (tmp_path / "r0").glob("*.pdos"):
        p.unlink()
    with pytest.raises(FileNotFoundError, match="md.localisation_every_steps"):
        replica_weights(record, dot.symbols, dot.regions)


def test_a_step_printed_again_after_a_restart_keeps_its_last_block(tmp_path):
    block = REAL[0].replace("i = 0", "i = {step}") + "\n" + REAL[1] + "\n" + "\n".join(REAL[2:]) + "\n"
    again = block.format(step=50).replace("0.72864798", "0.70000000")
    p = tmp_path / "md-loc-list1-1.pdos"
    p.write_text(block.format(step=0) + block.format(step=50) + again + block.format(step=100))
    lst = read_list_pdos(p)
    assert list(lst.step) == [0, 50, 100]
    assert lst.weight[1, 0] == pytest.approx(0.70000000 + 0.03397957 + 0.02151226)


@pytest.mark.workflow
@pytest.mark.parametrize("every", [None, 50])
def test_dry_run_asks_for_localisation_only_when_printed(tmp_path, every):
    from workflow_helpers import default_config, planned_jobs, snakemake, write_config

    config = default_config()
    config["systems"] = [{"size": [3, 3, 3]}]
    config["md"]["localisation_every_steps"] = every
    write_config(tmp_path, config)
    jobs = planned_jobs(snakemake(tmp_path, "-n"))
    expected = {"localise_system": 1, "plot_localisation": 1} if every else {}
    assert {k: v for k, v in jobs.items() if "locali" in k} == expected
