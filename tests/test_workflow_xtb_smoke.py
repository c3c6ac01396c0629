"""config/xtb-smoke.yaml end to end with real CP2K (GFN1-xTB, Cs4PbBr6 and the 1x1x2 cuboid) to the figures.

The trajectories are far too short to resolve the low-energy region; the analysis must still
reach the figures, marking region values unresolved. Nothing here is labelled synthetic.
"""

from __future__ import annotations

import json

import pandas as pd

import pytest

from workflow_helpers import REPO, assert_nothing_to_be_done, snakemake, write_config

pytestmark = [pytest.mark.cp2k, pytest.mark.workflow]


def test_xtb_smoke_campaign_reaches_figures(tmp_path, cp2k_exe):
    write_config(tmp_path, REPO / "config/xtb-smoke.yaml")
    res = snakemake(tmp_path, "--profile", str(REPO / "profiles/workstation"), timeout_s=1500)
    assert res.returncode == 0, res.stderr[-5000:]
    results = tmp_path / "results"
    rows = pd.read_csv(results / "summary.csv").to_dict("records")
    assert [r["system"] for r in rows] == ["cspbbr3_1x1x1", "cspbbr3_1x1x2"]
    for system, steps in [("cspbbr3_1x1x1", 200), ("cspbbr3_1x1x2", 60)]:
        record = json.loads((results / f"aimd/{system}/r0/run.json").read_text())
        assert record["engine"] == "cp2k" and record["cp2k_version"] == "2023.1" and not record.get("synthetic")
        assert (results / f"aimd/{system}/r0/qd-orbitals-1.MOLog").is_file(), "PROJECT_NAME/FILENAME overrides"
        assert not list((results / f"aimd/{system}/r0").glob("md-*")) and record["project"] == "qd"
        band_edges = pd.read_csv(results / f"band_edges/{system}/r0.csv")
        meta = json.loads((results / f"band_edges/{system}/r0.json").read_text())
        assert meta["synthetic"] is False and meta["level"] == "xtb" and meta["project"] == "qd"
        assert list(band_edges["step"]) == list(range(steps + 1))
        linewidth = json.loads((results / f"analysis/{system}/linewidth.json").read_text())
        assert linewidth["synthetic"] is False and linewidth["lambda_meV"] > 0
        assert not all(r["resolved"] for r in linewidth["regions"])
        seg0 = (results / f"aimd/{system}/r0/seg000.inp").read_text().upper()
        assert "SCF_GUESS RESTART" in seg0, "the MD's first SCF starts from the relaxation's wavefunction"
        assert (results / f"aimd/{system}/r0/initial-guess.wfn").read_bytes() == \
            (results / f"relaxed/{system}.wfn").read_bytes()  # fmt: skip
        relaxed = (results / f"relaxed/{system}.xyz").read_text().splitlines()[1]
        assert "relaxed=cp2k-xtb" in relaxed
    # GFN1-xTB's Cs4PbBr6 gap after relaxation is ~1.55 eV (docs/physics.md §3): an independent check
    assert 1.3 < float(rows[0]["gap_mean_eV"]) < 1.8
    for path in results.rglob("*.csv"):
        pd.read_csv(path)
    for name in ("spectral_densities", "size_dependence", "phonon_dos"):
        assert (results / f"figures/{name}.png").stat().st_size > 1000
    assert_nothing_to_be_done(snakemake(tmp_path, "-n", "--profile", str(REPO / "profiles/workstation")))
