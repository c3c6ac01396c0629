"""The shipped real PBE trajectory (validation/pbe_n1/, README there) re-analysed from its band edges.

No CP2K runs here: the archive holds what a real CP2K 2023.1 PBE/DZVP run of Cs4PbBr6 made
through the workflow (config/pbe-validation.yaml). ``qdphonon analyze`` on its band edges must
reproduce the recorded reorganisation energy and linewidths, and both must agree with an
independent computation from the CSV (λ = Var(δE) / 2k_B T_md, Γ = 2√(2 ln 2)·√(2λ k_B T)).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import tarfile
from pathlib import Path

import pandas as pd
import pytest
from archives import extract

REPO = Path(__file__).resolve().parents[1]
ARCHIVE = REPO / "validation" / "pbe_n1" / "pbe_n1.tar.xz"
SYSTEM = "cspbbr3_1x1x1"
K_B_meV_per_K = 8.617333262e-2


@pytest.fixture(scope="module")
def shipped(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pbe_n1")
    with tarfile.open(ARCHIVE) as tar:
        extract(tar, out)
    return out


def test_archive_is_small_and_says_what_it_is(shipped):
    assert ARCHIVE.stat().st_size < 1_000_000
    manifest = json.loads((shipped / "manifest.json").read_text())
    assert manifest["engine"] == "cp2k" and manifest["cp2k_version"].startswith("2023")
    run = json.loads((shipped / f"aimd/{SYSTEM}/r0/run.json").read_text())
    assert run["engine"] == "cp2k" and not run.get("synthetic")
    meta = json.loads((shipped / f"band_edges/{SYSTEM}/r0.json").read_text())
    assert meta["level"] == "pbe" and meta["synthetic"] is False
    inp = (shipped / f"cp2k/{SYSTEM}/r0/md.inp").read_text().upper()
    assert "DZVP-MOLOPT-SR-GTH" in inp and "PBE" in inp and "WAVELET" in inp


def test_first_md_scf_started_from_the_relaxation_wavefunction(shipped):
    seg0 = (shipped / f"aimd/{SYSTEM}/r0/seg000.inp").read_text().upper()
    assert "SCF_GUESS RESTART" in seg0 and "INITIAL-GUESS.WFN" in seg0


def test_reanalysis_reproduces_the_recorded_linewidth(shipped, tmp_path):
    """The archive holds band edges, not trajectories: the re-analysis normalises by T_md. A record made
    with velocities (temperature_source "velocities") normalised each replica by its internal temperature
    and recorded lambda_meV_with_md_temperature, which the re-analysis must reproduce."""
    recorded = json.loads((shipped / f"analysis/{SYSTEM}/linewidth.json").read_text())
    edges = sorted((shipped / f"band_edges/{SYSTEM}").glob("r*.csv"))
    cmd = [sys.executable, "-m", "qdphonon", "analyze", "--band-edges", *map(str, edges), "--outdir", str(tmp_path),
           "--structure-json", str(shipped / f"structures/{SYSTEM}.json"), "--system", SYSTEM,
           "--md-equilibration-fs", str(recorded["discard_fs"]),
           "--report-temperature-K", str(recorded["report_temperature_K"]),
           "--region-edges-meV", ",".join(str(e) for e in [r["lo_meV"] for r in recorded["regions"]]
                                 + [recorded["regions"][-1]["hi_meV"]])]  # fmt: skip
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env={"PYTHONPATH": str(REPO / "workflow"),
                         "PATH": "/usr/bin:/bin"})  # fmt: skip
    assert res.returncode == 0, res.stderr
    again = json.loads((tmp_path / "linewidth.json").read_text())
    assert again["temperature_source"] == "md_temperature"
    by_velocities = recorded.get("temperature_source") == "velocities"
    same = ("gap_std_meV", "gap_mean_eV") if by_velocities else (
        "lambda_meV", "fwhm_meV", "fwhm_quantum_meV", "gap_std_meV", "gap_mean_eV")
    for key in same:
        assert again[key] == pytest.approx(recorded[key], rel=1e-9), key
    if by_velocities:
        assert again["lambda_meV"] == pytest.approx(recorded["lambda_meV_with_md_temperature"], rel=1e-9)

    T_md = recorded["md_temperature_K"]
    temps = recorded.get("normalisation_temperature_K_per_replica") or [T_md] * len(edges)
    variances, n_kept = [], 0
    for path in edges:
        table = pd.read_csv(path)
        kept = table[table["time_fs"] >= table["time_fs"].iloc[0] + recorded["discard_fs"]]["gap_eV"].to_numpy() * 1e3
        variances.append(float(((kept - kept.mean()) ** 2).mean()))
        n_kept += len(kept)
    assert n_kept == recorded["n_samples"]
    lam = sum(v / (2 * K_B_meV_per_K * T) for v, T in zip(variances, temps)) / len(edges)
    assert recorded["lambda_meV"] == pytest.approx(lam, rel=1e-2)
    fwhm = 2 * math.sqrt(2 * math.log(2)) * math.sqrt(2 * lam * K_B_meV_per_K * recorded["report_temperature_K"])
    assert recorded["fwhm_meV"] == pytest.approx(fwhm, rel=1e-2)


def test_attribution_rows_add_up_to_the_linewidths_lambda(shipped):
    """Region shares and linewidth divide the same gap variance by the same per-replica temperature."""
    lw = json.loads((shipped / f"analysis/{SYSTEM}/linewidth.json").read_text())
    rows = pd.read_csv(shipped / f"analysis/{SYSTEM}/attribution.csv")
    side = json.loads((shipped / f"analysis/{SYSTEM}/attribution.json").read_text())
    assert side["temperature_source"] == lw["temperature_source"] == "velocities"
    assert side["normalisation_temperature_K_per_replica"] == pytest.approx(lw["normalisation_temperature_K_per_replica"])
    assert rows["lambda_meV"].sum() == pytest.approx(lw["lambda_meV"], rel=1e-6)


def test_every_shipped_table_opens_in_pandas(shipped):
    tables = sorted(shipped.rglob("*.csv"))
    assert len(tables) >= 4
    for path in tables:
        assert len(pd.read_csv(path)) > 0, path
