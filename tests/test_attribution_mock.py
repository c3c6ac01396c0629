"""The mock engine's gap is a linear function of the displacements it writes, with known region
couplings (run.json ``gap_coupling``); the attribution, run on its CP2K-format files through the
real parsers, recovers them. The mock's shares are inputs, not findings: this tests the machinery."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from qdphonon.analysis.attribution_io import attribute_system
from qdphonon.cp2k.inputs import MDSettings, SCFSettings, cp2k_input_tree
from qdphonon.cp2k.readback import render_tree
from qdphonon.cp2k.xmlspec import bundled_xmlspec
from qdphonon.engines.mock import run_mock
from qdphonon.parsers.run_dir import parse_run_dir
from qdphonon.parsers.writers import write_band_edges_csv, write_trajectory_npz
from qdphonon.structures.build import build_quantum_dot
from qdphonon.structures.model import QuantumDotSpec
from qdphonon.structures.io import write_structure


def mock_run(tmp, size, shell=0, steps=3000, every=4, seed=7):
    dot = build_quantum_dot(QuantumDotSpec(size=size, shell_layers=shell))
    xyz = tmp / "dot.xyz"
    write_structure(dot, xyz)
    tree = cp2k_input_tree(dot.symbols, dot.positions_A, dot.box_A, level="xtb",
                           md=MDSettings(steps=steps, trajectory_every_steps=every, seed=seed, temperature_K=10.0),
                           scf=SCFSettings())  # fmt: skip
    inp = tmp / "md.inp"
    inp.write_text("! qdphonon MD input, level xtb\n" + render_tree(tree, bundled_xmlspec()))
    record = run_mock(inp, tmp / "run", xyz)
    result = parse_run_dir(tmp / "run")
    write_band_edges_csv(result, tmp / "edges.csv")
    write_trajectory_npz(result, tmp / "traj.npz", regions=xyz)
    return record, dot


def test_mock_gap_is_linear_in_the_written_displacements(tmp_path):
    record, dot = mock_run(tmp_path, (1, 1, 2), steps=400, every=2)  # 201 frames > 90 coordinates
    coupling = record["gap_coupling"]
    assert coupling and set(coupling["regions"]) <= {"core", "surface", "shell"}
    edges = pd.read_csv(tmp_path / "edges.csv")
    with np.load(tmp_path / "traj.npz") as d:
        pos, t = d["positions"].astype(float), d["time_fs"]
    gap = edges.set_index(np.round(edges["time_fs"], 3))["gap_eV"].loc[np.round(t, 3)].to_numpy() * 1e3
    u = pos - pos.mean(axis=0)
    X = u.reshape(len(u), -1)
    g, *_ = np.linalg.lstsq(X, gap - gap.mean(), rcond=None)
    resid = gap - gap.mean() - X @ g
    assert resid.std() < 1e-3 * gap.std()  # linear to the print precision (8 decimals of eV, float32 positions)
    assert X.shape[0] > X.shape[1] and np.linalg.matrix_rank(X) == X.shape[1]  # g is determined


@pytest.mark.parametrize("size,shell", [((3, 3, 3), 0), ((3, 3, 3), 1)])
def test_attribution_recovers_the_mocks_region_couplings(tmp_path, size, shell):
    record, _ = mock_run(tmp_path, size, shell)
    att, meta = attribute_system([tmp_path / "edges.csv"], [tmp_path / "traj.npz"], 10.0, 0.0, tmp_path / "out")
    # the mock realises lambda with T_md = 10 K; the attribution divides by the internal temperature of
    # the mock's velocities, as the linewidth does
    assert meta["temperature_source"] == "velocities"
    rescale = 10.0 / meta["normalisation_temperature_K"]
    known = {r: lam * rescale for r, lam in
             zip(record["gap_coupling"]["regions"], record["gap_coupling"]["lambda_realised_meV"])}
    total = sum(known.values())
    assert meta["synthetic"] is True and meta["explained_variance_cv"] > 0.95
    for region, lam in known.items():
        assert att.lambda_meV[region] == pytest.approx(lam, abs=0.05 * total), region
    df = pd.read_csv(tmp_path / "out" / "attribution.csv")
    assert list(df.columns) == ["region", "lambda_meV", "share", "coupling_norm_meV_per_A", "n_atoms"]
    assert df["share"].sum() == pytest.approx(1.0, abs=1e-9)
    side = json.loads((tmp_path / "out" / "attribution.json").read_text())
    assert side["synthetic"] is True and "mock" in side["note"]
    spec = pd.read_csv(tmp_path / "out" / "attribution_spectrum.csv")
    parts = spec[[c for c in spec.columns if c.startswith("S_")]].sum(axis=1)
    np.testing.assert_allclose(parts, spec["S"], rtol=1e-6, atol=1e-9 * spec["S"].abs().max())
