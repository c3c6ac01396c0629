"""Figures of qdphonon.plots: files written, provenance labels, placeholders, reproducibility."""

from __future__ import annotations

import json
import math
import warnings
import zlib

import numpy as np
import pandas as pd
import pytest

from qdphonon import analysis as an
from qdphonon import plots
from qdphonon.units import HBAR_meV_fs

EXPECTED_STEMS = ("spectral_densities", "size_dependence", "core_shell_comparison", "phonon_dos")


def make_system(root, name, size, shell, edge_nm, scale, comments=("synthetic (mock engine)", "level: xtb"),
                duration_fs=6000.0, velocities=True):
    """Band edges (two replicas), velocities and a structure sidecar; run the analysis; return the dir."""
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    st = root / f"{name}.json"
    st.write_text(json.dumps({"system": name, "formula": "CsPbBr", "n_atoms": 20, "size_octahedra": size,
                              "edge_nm": edge_nm, "shell_layers": shell, "shell_metal": "Ca"}))
    t = np.arange(0.0, duration_fs, 2.0)
    csvs, npzs = [], []
    for r in range(2):
        g = scale * (5 * np.cos(2.1 / HBAR_meV_fs * t + r) + 6 * np.cos(7 / HBAR_meV_fs * t) + 5 * np.cos(17 / HBAR_meV_fs * t))
        p = root / f"{name}_{r}.csv"
        with open(p, "w") as fh:
            for c in comments:
                fh.write(f"# {c}\n")
            pd.DataFrame({"time_fs": t, "vbm_eV": -4 + 0 * t, "cbm_eV": -2 + g / 1000}).to_csv(fh, index=False)
        csvs.append(p)
        if velocities:
            sym = np.array(["Cs", "Pb", "Br", "Br", "Br"] * 4)
            reg = np.array(["core"] * 8 + ["surface"] * 8 + (["shell"] if shell else ["surface"]) * 4)
            v = np.stack([np.cos(rng.uniform(3, 20) / HBAR_meV_fs * t)[:, None] * np.ones(3) for _ in sym], axis=1)
            npz = root / f"{name}_{r}.npz"
            np.savez(npz, velocities=v, time_fs=t, symbols=sym, regions=reg)
            npzs.append(npz)
    out = root / "analysis" / name
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", an.ResolutionWarning)
        an.analyze_system(csvs, 10.0, 300.0, outdir=out, velocities_npz=npzs or None, structure_json=st)
    return out, st


@pytest.fixture(scope="module")
def campaign(tmp_path_factory):
    root = tmp_path_factory.mktemp("campaign")
    systems = [make_system(root, "cube4", [4, 4, 4], 0, 2.35, 1.0),
               make_system(root, "cube6", [6, 6, 6], 0, 3.52, 0.8),
               make_system(root, "cube6_cs1", [6, 6, 6], 1, 3.52, 0.6)]
    summary = an.write_summary([d / "linewidth.json" for d, _ in systems], [s for _, s in systems], root / "summary.csv")
    return root, summary, [d for d, _ in systems]


def test_plot_campaign_writes_png_and_pdf(campaign, tmp_path):
    _, summary, dirs = campaign
    written = plots.plot_campaign(summary, dirs, tmp_path / "figs")
    names = sorted(p.name for p in written)
    assert names == sorted(f"{s}.{ext}" for s in EXPECTED_STEMS for ext in ("png", "pdf"))
    for p in written:
        assert p.is_file() and p.stat().st_size > 1000
        head = p.read_bytes()[:8]
        assert head.startswith(b"\x89PNG") if p.suffix == ".png" else head.startswith(b"%PDF")


def test_pdf_output_is_reproducible(campaign, tmp_path):
    _, summary, dirs = campaign
    a = plots.save_figure(plots.size_dependence_figure(pd.read_csv(summary)), tmp_path / "a", "s")
    b = plots.save_figure(plots.size_dependence_figure(pd.read_csv(summary)), tmp_path / "b", "s")
    assert a[1].read_bytes() == b[1].read_bytes()
    assert b"CreationDate" not in a[1].read_bytes()


def test_every_figure_carries_synthetic_and_xtb_labels(campaign):
    _, summary, dirs = campaign
    analyses = [plots.load_analysis_dir(d) for d in dirs]
    df = pd.read_csv(summary)
    figures = [plots.spectral_density_figure(analyses), plots.size_dependence_figure(df),
               plots.core_shell_comparison_figure(analyses), plots.phonon_dos_figure(analyses)]
    for fig in figures:
        texts = plots.figure_texts(fig)
        assert plots.SYNTHETIC_LABEL in texts
        assert "GFN1-xTB level: gaps underestimated" in texts


def test_size_dependence_shows_reference_values(campaign):
    _, summary, _ = campaign
    fig = plots.size_dependence_figure(pd.read_csv(summary))
    joined = " ".join(plots.figure_texts(fig))
    for value in ("164", "126", "90"):
        assert f"{value} meV" in joined
    assert "reference values from the study" in joined
    ax_g = fig.axes[1]
    refs = {(round(x, 2), round(y, 1)) for line in ax_g.lines for x, y in zip(line.get_xdata(), line.get_ydata())}
    assert {(2.4, 164.0), (3.6, 126.0), (3.6, 90.0)} <= refs


def test_core_shell_pair_is_overlaid(campaign):
    _, _, dirs = campaign
    analyses = [plots.load_analysis_dir(d) for d in dirs]
    pairs = plots.core_shell_pairs(analyses)
    assert [(cs["system"], core["system"]) for cs, core in pairs] == [("cube6_cs1", "cube6")]
    fig = plots.core_shell_comparison_figure(analyses)
    assert "no core/shell system in this campaign" not in plots.figure_texts(fig)
    assert len(fig.axes[0].lines) == 2


def test_single_real_level_system_without_core_shell_or_vdos(tmp_path):
    """One system, PBE, no velocities, short enough that the low region is unresolved."""
    d, st = make_system(tmp_path, "cube3", [3, 3, 3], 0, 1.76, 1.0, comments=("level: pbe",), duration_fs=600.0,
                        velocities=False)
    summary = an.write_summary([d / "linewidth.json"], [st], tmp_path / "summary.csv")
    lw = json.loads((d / "linewidth.json").read_text())
    assert lw["regions"][0]["resolved"] is False
    analyses = [plots.load_analysis_dir(d)]
    cs = plots.core_shell_comparison_figure(analyses)
    assert "no core/shell system in this campaign" in plots.figure_texts(cs)
    texts = plots.figure_texts(plots.size_dependence_figure(pd.read_csv(summary)))
    assert plots.SYNTHETIC_LABEL not in texts
    assert not any("xTB" in t for t in texts)
    written = plots.plot_campaign(summary, [d], tmp_path / "figs")
    assert len(written) == 8 and all(p.is_file() for p in written)


def test_nan_regions_are_tolerated(campaign, tmp_path):
    _, summary, _ = campaign
    df = pd.read_csv(summary)
    df.loc[0, ["S_low", "hw_low_meV", "fwhm_meV_err"]] = math.nan
    df["resolved_low"] = [False, True, True]
    fig = plots.size_dependence_figure(df)
    assert plots.save_figure(fig, tmp_path, "nan")[0].is_file()


def test_edge_length_falls_back_to_octahedra(campaign):
    _, summary, _ = campaign
    df = pd.read_csv(summary).drop(columns="edge_nm")
    np.testing.assert_allclose(plots.edge_lengths_nm(df), [4 * 0.587, 6 * 0.587, 6 * 0.587])
    fig = plots.size_dependence_figure(df)
    assert fig.axes[0].get_xlabel() == "edge length (nm)"
