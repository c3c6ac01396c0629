"""The ``qdphonon analyze / summarize / plot`` commands (docs/architecture.md §5)."""

from __future__ import annotations

import json
import math
import subprocess
import sys

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from qdphonon.analysis.spectrum import ResolutionWarning
from qdphonon.cli import main
from qdphonon.units import BOLTZMANN_meV_per_K, HBAR_meV_fs


def band_edge_csv(path, duration_fs=12000.0, dt_fs=2.0, amplitude_meV=8.0, hw_meV=17.0, sidecar=None):
    """A plain band-edge CSV; ``sidecar`` (a dict) becomes its .json metadata."""
    t = np.arange(0.0, duration_fs, dt_fs)
    cbm = -2.0 + amplitude_meV / 1000 * np.cos(hw_meV / HBAR_meV_fs * t)
    pd.DataFrame({"step": np.arange(t.size), "time_fs": t, "vbm_eV": -4 + 0 * t, "cbm_eV": cbm}).to_csv(path, index=False)
    if sidecar is not None:
        Path(path).with_suffix(".json").write_text(json.dumps(sidecar))
    return str(path)


def test_analyze_writes_outputs(tmp_path):
    csvs = [band_edge_csv(tmp_path / f"r{i}.csv", amplitude_meV=a) for i, a in enumerate((7.0, 9.0))]
    out = tmp_path / "analysis" / "cube4"
    rc = main(["analyze", "--band-edges", *csvs, "--md-temperature-K", "10", "--report-temperature-K", "300",
               "--outdir", str(out), "--region-edges-meV", "0,4.5,12,30", "--md-equilibration-fs", "0"])
    assert rc == 0
    lw = json.loads((out / "linewidth.json").read_text())
    for key in ("lambda_meV", "fwhm_meV", "report_temperature_K", "md_temperature_K", "gap_mean_eV", "gap_std_meV",
                "n_samples", "duration_fs", "regions", "lambda_meV_err", "fwhm_meV_err", "error_method",
                "n_replicas", "fwhm_quantum_meV", "fwhm_vs_temperature", "assumptions", "synthetic", "level"):
        assert key in lw, key
    assert set(lw["regions"][0]) >= {"name", "lo_meV", "hi_meV", "S", "hw_meV", "lambda_meV", "resolved", "S_err"}
    expected = np.mean([a**2 / 4 for a in (7.0, 9.0)]) / (BOLTZMANN_meV_per_K * 10)
    assert lw["lambda_meV"] == pytest.approx(expected, rel=0.01)
    assert lw["system"] == "cube4" and lw["error_method"] == "replicas"
    assert (out / "spectral_density.csv").is_file()
    assert not (out / "vdos.csv").exists()


def test_analyze_with_velocities_structure_and_blocks(tmp_path):
    t = np.arange(0.0, 4000.0, 2.0)
    v = np.cos(5 / HBAR_meV_fs * t)[:, None, None] * np.ones((1, 3, 3))
    npz = tmp_path / "r0.npz"
    np.savez(npz, velocities=v, time_fs=t, symbols=np.array(["Cs", "Pb", "Br"]), regions=np.array(["surface", "core", "surface"]))
    st = tmp_path / "cube1.json"
    st.write_text(json.dumps({"system": "cube1", "formula": "Cs4PbBr6", "n_atoms": 11}))
    csv = band_edge_csv(tmp_path / "r0.csv", duration_fs=4000.0)
    out = tmp_path / "out"
    rc = main(["analyze", "--band-edges", csv, "--md-temperature-K", "10", "--report-temperature-K", "300", "--outdir", str(out),
               "--velocities", str(npz), "--structure-json", str(st), "--blocks", "2"])
    assert rc == 0
    lw = json.loads((out / "linewidth.json").read_text())
    assert lw["system"] == "cube1" and lw["error_method"] == "spectrum" and lw["n_blocks"] == 2
    vdos = pd.read_csv(out / "vdos.csv", comment="#")
    assert list(vdos.columns) == ["energy_meV", "total", "region_core", "region_surface", "element_Br", "element_Cs", "element_Pb"]
    assert vdos.energy_meV[vdos.total.idxmax()] == pytest.approx(5.0, abs=0.6)


@pytest.mark.parametrize(
    "content, problem",
    [
        ("time_fs,vbm_eV\n0,-4\n1,-4\n", "missing required column"),
        ("time_fs,vbm_eV,cbm_eV\n0,-4,-2\n1,-4,-2\n3,-4,-2\n", "not uniform"),
        ("time_fs,vbm_eV,cbm_eV\n0,-4,-2\n", "1 data row"),
        ("", "empty"),
        ("time_fs,vbm_eV,cbm_eV\n0,-4,-2\n1,nan,-2\n2,-4,-2\n", "NaN"),
        ("time_fs,vbm_eV,cbm_eV\n2,-4,-2\n1,-4,-2\n0,-4,-2\n", "not strictly increasing"),
    ],
)
def test_bad_input_exits_nonzero_with_message(tmp_path, capsys, content, problem):
    bad = tmp_path / "broken_input.csv"
    bad.write_text(content)
    rc = main(["analyze", "--band-edges", str(bad), "--md-temperature-K", "10", "--report-temperature-K", "300",
               "--outdir", str(tmp_path / "o"), "--md-equilibration-fs", "0"])
    err = capsys.readouterr().err
    assert rc != 0
    assert "broken_input.csv" in err and problem in err
    assert not (tmp_path / "o" / "linewidth.json").exists()


@pytest.mark.filterwarnings("ignore:.*blocks of:qdphonon.analysis.spectrum.ResolutionWarning")
def test_short_trajectory_still_reaches_outputs(tmp_path):
    csv = band_edge_csv(tmp_path / "short.csv", duration_fs=400.0, dt_fs=1.0)
    with pytest.warns(ResolutionWarning, match="unresolved"):
        rc = main(["analyze", "--band-edges", csv, "--md-temperature-K", "10", "--report-temperature-K", "300",
                   "--outdir", str(tmp_path / "o"), "--md-equilibration-fs", "0"])
    assert rc == 0
    lw = json.loads((tmp_path / "o" / "linewidth.json").read_text())
    assert lw["regions"][0]["resolved"] is False and lw["lambda_meV"] > 0


def test_short_trajectory_warning_reaches_stderr(tmp_path):
    csv = band_edge_csv(tmp_path / "short.csv", duration_fs=400.0, dt_fs=1.0)
    proc = subprocess.run(
        [sys.executable, "-m", "qdphonon", "analyze", "--band-edges", csv, "--md-temperature-K", "10",
         "--report-temperature-K", "300", "--outdir", str(tmp_path / "o"), "--md-equilibration-fs", "0"],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0
    assert "unresolved" in proc.stderr


def test_summarize_and_plot(tmp_path, capsys):
    dirs, sts = [], []
    for name, amp in (("cube4", 9.0), ("cube5", 7.0)):
        st = tmp_path / f"{name}.json"
        st.write_text(json.dumps({"system": name, "edge_nm": 2.0 + amp / 10, "size_octahedra": [4, 4, 4], "shell_layers": 0}))
        csv = band_edge_csv(tmp_path / f"{name}.csv", amplitude_meV=amp, sidecar={"synthetic": True, "level": "mock", "md_temperature_K": 10.0})
        out = tmp_path / "analysis" / name
        assert main(["analyze", "--band-edges", csv, "--md-temperature-K", "10", "--report-temperature-K", "300",
                     "--outdir", str(out), "--structure-json", str(st)]) == 0
        dirs.append(str(out))
        sts.append(str(st))
    summary = tmp_path / "summary.csv"
    assert main(["summarize", "--linewidths", *[f"{d}/linewidth.json" for d in dirs], "--structures", *sts,
                 "--out", str(summary)]) == 0
    df = pd.read_csv(summary)
    assert list(df.system) == ["cube4", "cube5"] and df.synthetic.all()
    assert df.loc[0, "fwhm_meV"] == pytest.approx(2.3548 * 9 / math.sqrt(2) * math.sqrt(30), rel=0.01)
    capsys.readouterr()
    assert main(["plot", "--summary", str(summary), "--analysis-dirs", *dirs, "--outdir", str(tmp_path / "figs")]) == 0
    printed = capsys.readouterr().out.split()
    assert len(printed) == 12 and all(p.endswith((".png", ".pdf")) for p in printed)  # 6 figures (plots.FIGURE_STEMS)


def test_console_script_reports_errors_on_stderr(tmp_path):
    bad = tmp_path / "nocols.csv"
    bad.write_text("a,b\n1,2\n3,4\n")
    proc = subprocess.run(
        [sys.executable, "-m", "qdphonon", "analyze", "--band-edges", str(bad), "--md-temperature-K", "10",
         "--report-temperature-K", "300", "--outdir", str(tmp_path / "o"), "--md-equilibration-fs", "0"],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode != 0
    assert "nocols.csv" in proc.stderr and "missing required column" in proc.stderr
