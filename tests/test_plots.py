"""Figures of qdphonon.figures.campaign: files written, provenance labels, placeholders, reproducibility, and the
plotted data themselves (arrays read back from the axes and compared with the analysis files)."""

from __future__ import annotations

import json
import math
import warnings
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from qdphonon.analysis.spectrum import ResolutionWarning
from qdphonon.analysis.summary import write_summary
from qdphonon.analysis.system import analyze_system
from qdphonon.figures import campaign as plots
from qdphonon.figures import size as figure_size
from qdphonon.units import HBAR_meV_fs

EXPECTED_STEMS = ("spectral_densities", "size_dependence", "core_shell_comparison", "phonon_dos",
                  "linewidth_vs_temperature", "lineshape")
MOCK = {"synthetic": True, "level": "mock"}
REPO = Path(__file__).resolve().parents[1]


def make_system(root, name, size, shell, edge_nm, scale, sidecar=MOCK, duration_fs=6000.0, velocities=True):
    """Band edges (two replicas, metadata in ``sidecar``), velocities and a structure sidecar; run the
    analysis; return the dir."""
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    st = root / f"{name}.json"
    st.write_text(json.dumps({"system": name, "formula": "CsPbBr", "n_atoms": 20, "size_octahedra": size,
                              "edge_nm": edge_nm, "shell_layers": shell, "shell_metal": "Ca"}))
    t = np.arange(0.0, duration_fs, 2.0)
    csvs, npzs = [], []
    for r in range(2):
        g = scale * (5 * np.cos(2.1 / HBAR_meV_fs * t + r) + 6 * np.cos(7 / HBAR_meV_fs * t) + 5 * np.cos(17 / HBAR_meV_fs * t))
        p = root / f"{name}_{r}.csv"
        pd.DataFrame({"time_fs": t, "vbm_eV": -4 + 0 * t, "cbm_eV": -2 + g / 1000}).to_csv(p, index=False)
        p.with_suffix(".json").write_text(json.dumps(sidecar))
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
        warnings.simplefilter("ignore", ResolutionWarning)
        analyze_system(csvs, 10.0, 300.0, outdir=out, velocities_npz=npzs or None, structure_json=st)
    return out, st


@pytest.fixture(scope="module")
def campaign(tmp_path_factory):
    root = tmp_path_factory.mktemp("campaign")
    systems = [make_system(root, "cube4", [4, 4, 4], 0, 2.35, 1.0),
               make_system(root, "cube6", [6, 6, 6], 0, 3.52, 0.8),
               make_system(root, "cube6_cs1", [6, 6, 6], 1, 3.52, 0.6)]
    summary = write_summary([d / "linewidth.json" for d, _ in systems], [s for _, s in systems], root / "summary.csv")
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


def _all_figures(analyses, summary_df):
    return [plots.spectral_density_figure(analyses), plots.size_dependence_figure(summary_df),
            plots.core_shell_comparison_figure(analyses), plots.phonon_dos_figure(analyses),
            plots.linewidth_vs_temperature_figure(analyses), plots.lineshape_figure(analyses)]


def test_every_figure_says_synthetic_and_level_mock(campaign):
    _, summary, dirs = campaign
    analyses = [plots.load_analysis_dir(d) for d in dirs]
    for a in analyses:
        assert a["linewidth"]["level"] == "mock" and a["linewidth"]["synthetic"] is True
    for fig in _all_figures(analyses, pd.read_csv(summary)):
        texts = plots.figure_texts(fig)
        assert plots.SYNTHETIC_LABEL in texts and "level: mock" in texts
        assert plots.XTB_LABEL not in texts  # mock data are level mock, whatever the config's level


def test_real_xtb_figures_carry_the_xtb_note_and_no_mock_label(tmp_path):
    d, st = make_system(tmp_path, "cube2", [2, 2, 2], 0, 1.17, 1.0, sidecar={"synthetic": False, "level": "xtb"})
    summary = write_summary([d / "linewidth.json"], [st], tmp_path / "summary.csv")
    analyses = [plots.load_analysis_dir(d)]
    for fig in _all_figures(analyses, pd.read_csv(summary)):
        texts = plots.figure_texts(fig)
        assert plots.XTB_LABEL in texts and "level: xtb" in texts
        assert plots.SYNTHETIC_LABEL not in texts
    assert plots.MOCK_CALIBRATION_LABEL not in plots.figure_texts(plots.size_dependence_figure(pd.read_csv(summary)))


def test_size_dependence_shows_reference_values_and_says_the_mock_is_calibrated_to_them(campaign):
    _, summary, _ = campaign
    fig = plots.size_dependence_figure(pd.read_csv(summary))
    texts = plots.figure_texts(fig)
    joined = " ".join(texts)
    for value in ("164", "126", "90"):
        assert f"{value} meV" in joined
    assert plots.REFERENCE_LABEL == "study (DFT)"
    legend = fig.axes[1].get_legend().get_texts()
    assert any(t.get_text().startswith("study (DFT), core-only, 300 K: 164 meV") for t in legend)
    assert any(t.get_text().startswith("study (DFT), core/shell, 300 K: 90 meV") for t in legend)
    assert plots.MOCK_CALIBRATION_LABEL in texts  # mock data: the agreement is built in
    ax_g = fig.axes[1]
    refs = {(round(x, 2), round(y, 1)) for line in ax_g.lines for x, y in zip(line.get_xdata(), line.get_ydata())}
    assert {(2.4, 164.0), (3.6, 126.0), (3.6, 90.0)} <= refs


def test_size_dependence_plots_the_summary_numbers_with_quantum_points_visible(campaign):
    _, summary, _ = campaign
    df = pd.read_csv(summary).sort_values("edge_nm", kind="stable")
    fig = plots.size_dependence_figure(pd.read_csv(summary))
    ax_s, ax_g = fig.axes[:2]
    lines = {ln.get_label(): ln for ln in ax_g.lines}
    bars = {c.get_label(): c.lines[0] for c in ax_g.containers}  # errorbar series: (data line, caps, bars)
    core = df[df.shell_layers == 0]
    classical = bars["classical (Eq. 2), core-only"]
    np.testing.assert_allclose(classical.get_xdata(), core.edge_nm)
    np.testing.assert_allclose(classical.get_ydata(), core.fwhm_meV)
    q = lines["quantum-corrected, core-only"]
    np.testing.assert_allclose(q.get_xdata(), core.edge_nm)
    np.testing.assert_allclose(q.get_ydata(), core.fwhm_quantum_meV)
    assert q.get_marker() not in (None, "", "None") and q.get_markersize() >= 4 and q.get_visible()
    assert q.get_zorder() > classical.get_zorder()  # drawn on top of the classical points, not hidden
    lo, hi = ax_g.get_ylim()
    assert lo <= df.fwhm_quantum_meV.min() and df.fwhm_quantum_meV.max() <= hi
    s_line = {c.get_label(): c.lines[0] for c in ax_s.containers}["LO, core-only"]
    np.testing.assert_allclose(s_line.get_ydata(), core.S_LO)


def test_spectra_share_one_y_axis_are_titled_by_size_and_plot_the_csv(campaign):
    _, _, dirs = campaign
    analyses = [plots.load_analysis_dir(d) for d in dirs]
    fig = plots.spectral_density_figure(analyses)
    axes = [ax for ax in fig.axes if ax.lines]
    assert len(axes) == 3
    assert all(ax.get_ylim() == axes[0].get_ylim() for ax in axes)
    assert all(axes[0].get_shared_y_axes().joined(axes[0], ax) for ax in axes)
    titles = [ax.get_title().splitlines()[0] for ax in axes]
    assert titles == ["2.4 nm cube", "3.5 nm cube", "3.5 nm core/shell"]
    for ax, a in zip(axes, analyses):
        sd = a["spectrum"]
        de = sd.energy_meV[1] - sd.energy_meV[0]
        raw, smooth = ax.lines
        np.testing.assert_allclose(raw.get_xdata(), sd.energy_meV)
        np.testing.assert_allclose(raw.get_ydata(), sd.S_hw_meV / de)  # paper Eq. 1 per bin
        np.testing.assert_allclose(smooth.get_ydata(), sd.S_hw_smoothed_meV / de)
        assert smooth.get_ydata().sum() == pytest.approx(raw.get_ydata().sum(), rel=1e-6)  # smoothing keeps lambda


def test_gamma_of_T_figure_plots_the_curves_of_linewidth_json(campaign):
    _, _, dirs = campaign
    analyses = [plots.load_analysis_dir(d) for d in dirs]
    fig = plots.linewidth_vs_temperature_figure(analyses)
    lines = {ln.get_label(): ln for ln in fig.axes[0].lines}
    for a in analyses:
        name = plots.size_title(a["linewidth"], a["system"])
        curve = a["linewidth"]["fwhm_vs_temperature"]
        T = [c["report_temperature_K"] for c in curve]
        np.testing.assert_allclose(lines[f"{name}: Eq. 2 (classical)"].get_xdata(), T)
        np.testing.assert_allclose(lines[f"{name}: Eq. 2 (classical)"].get_ydata(), [c["fwhm_classical_meV"] for c in curve])
        np.testing.assert_allclose(lines[f"{name}: quantum (Gaussian)"].get_ydata(), [c["fwhm_quantum_meV"] for c in curve])
        shown = [ln for key, ln in lines.items() if key.startswith(name) and ("cumulant" in key or "not Gaussian" in key)]
        pts = sorted((x, y) for ln in shown for x, y in zip(ln.get_xdata(), ln.get_ydata()))
        np.testing.assert_allclose(pts, sorted((c["report_temperature_K"], c["fwhm_lineshape_meV"]) for c in curve))
    assert fig.axes[0].get_xlabel().startswith("temperature")


def test_lineshape_figure_plots_lineshape_csv(campaign):
    _, _, dirs = campaign
    analyses = [plots.load_analysis_dir(d) for d in dirs]
    fig = plots.lineshape_figure(analyses)
    ax = fig.axes[0]
    assert "300 K" in ax.get_title()
    for i, a in enumerate(analyses):
        d = a["lineshape"]
        line, eq2 = ax.lines[2 * i], ax.lines[2 * i + 1]
        np.testing.assert_allclose(line.get_xdata(), d.energy_offset_meV)
        np.testing.assert_allclose(line.get_ydata(), d.emission_per_meV)
        np.testing.assert_allclose(eq2.get_ydata(), d.emission_eq2_per_meV)
        de = d.energy_offset_meV.diff().median()
        assert d.emission_per_meV.sum() * de == pytest.approx(1.0, rel=0.01)  # unit area (rows trimmed below 1e-5)
        peak = d.energy_offset_meV[d.emission_per_meV.idxmax()]
        assert peak == pytest.approx(-a["linewidth"]["lambda_band_meV"], abs=0.1 * a["linewidth"]["fwhm_lineshape_meV"])


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
    d, st = make_system(tmp_path, "cube3", [3, 3, 3], 0, 1.76, 1.0, sidecar={"synthetic": False, "level": "pbe"},
                        duration_fs=600.0, velocities=False)
    summary = write_summary([d / "linewidth.json"], [st], tmp_path / "summary.csv")
    lw = json.loads((d / "linewidth.json").read_text())
    assert lw["regions"][0]["resolved"] is False
    analyses = [plots.load_analysis_dir(d)]
    cs = plots.core_shell_comparison_figure(analyses)
    assert "no core/shell system in this campaign" in plots.figure_texts(cs)
    texts = plots.figure_texts(plots.size_dependence_figure(pd.read_csv(summary)))
    assert plots.SYNTHETIC_LABEL not in texts
    assert not any("xTB" in t for t in texts) and "level: pbe" in texts
    written = plots.plot_campaign(summary, [d], tmp_path / "figs")
    assert len(written) == 2 * len(EXPECTED_STEMS) and all(p.is_file() for p in written)


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
    assert fig.axes[0].get_xlabel().startswith("edge length (nm)")


def _legend_complete(ax) -> None:
    """Every labelled artist of ``ax`` has its entry in the legend (no series left unexplained)."""
    labelled = {h.get_label() for h in ax.lines + ax.containers if not h.get_label().startswith("_")}
    legend = ax.get_legend()
    assert legend is not None, ax.get_title()
    assert labelled <= {t.get_text() for t in legend.get_texts()}


def test_size_dependence_hides_nothing_and_marks_warned_systems_hollow(campaign):
    """Core/shell points sit beside the core-only ones of the same edge, quantum crosses over classical
    markers, hollow overlays exactly on the systems whose summary row carries warnings, legends complete."""
    _, summary, _ = campaign
    df = pd.read_csv(summary).sort_values("edge_nm", kind="stable")
    df["warnings"] = ["", "stationarity", "single_replica"]  # by hand: one clean, two qualified
    fig = plots.size_dependence_figure(df)
    ax_s, ax_g = fig.axes[:2]
    bars = {c.get_label(): c.lines[0] for c in ax_g.containers}
    cs = df[df.shell_layers > 0]
    dodge = figure_size.CORE_SHELL_DODGE_nm
    (cs_label,) = [k for k in bars if k.startswith("classical (Eq. 2), core/shell")]
    np.testing.assert_allclose(bars[cs_label].get_xdata(), cs.edge_nm + dodge)
    np.testing.assert_allclose(bars[cs_label].get_ydata(), cs.fwhm_meV)
    assert f"drawn {dodge:g} nm right" in cs_label
    q_cs = {ln.get_label(): ln for ln in ax_g.lines}["quantum-corrected, core/shell"]
    np.testing.assert_allclose(q_cs.get_ydata(), cs.fwhm_quantum_meV)
    assert q_cs.get_marker() != bars[cs_label].get_marker() and q_cs.get_zorder() > bars[cs_label].get_zorder()
    hollow = sorted((round(x, 3), round(y, 3)) for ln in ax_g.lines if ln.get_label() == "_hollow"
                    for x, y in zip(ln.get_xdata(), ln.get_ydata()))  # fmt: skip
    warned = df[df.warnings != ""]
    expect = sorted((round(e + dodge * (s > 0), 3), round(f, 3))
                    for e, s, f in zip(warned.edge_nm, warned.shell_layers, warned.fwhm_meV))  # fmt: skip
    assert hollow == expect
    assert all(ln.get_markerfacecolor() == "white" for ln in ax_g.lines if ln.get_label() == "_hollow")
    assert figure_size.HOLLOW_LABEL in [t.get_text() for t in ax_g.get_legend().get_texts()]
    for ax in (ax_s, ax_g):
        _legend_complete(ax)
        lo, hi = ax.get_xlim()
        xs = np.concatenate([np.asarray(ln.get_xdata(), float) for ln in ax.lines])
        assert lo < np.nanmin(xs) and np.nanmax(xs) < hi
    lo, hi = ax_g.get_ylim()
    assert hi > np.nanmax(df.fwhm_meV + df.fwhm_meV_err.fillna(0)) and hi > 164.0
    assert not ax_g.texts or all(t.get_text() == plots.MOCK_CALIBRATION_LABEL for t in ax_g.texts)  # no annotations
    assert "300 K" in ax_g.get_ylabel() and "300 K" in ax_g.get_title()


def test_spectra_are_not_clipped_say_which_gamma_and_label_a_dimensionless_density(campaign):
    _, _, dirs = campaign
    analyses = [plots.load_analysis_dir(d) for d in dirs]
    for fig in (plots.spectral_density_figure(analyses), plots.core_shell_comparison_figure(analyses)):
        axes = [ax for ax in fig.axes if ax.lines]
        for ax in axes:
            lo, hi = ax.get_ylim()
            x0, x1 = ax.get_xlim()
            for ln in ax.lines:
                x, y = np.asarray(ln.get_xdata(), float), np.asarray(ln.get_ydata(), float)
                assert np.nanmax(y[(x >= x0) & (x <= x1)]) <= hi, "a curve is clipped at the top"
            assert "dimensionless" in ax.get_ylabel() and "per meV" not in ax.get_ylabel()
            _legend_complete(ax)
    fig = plots.spectral_density_figure(analyses)
    for ax, a in zip([ax for ax in fig.axes if ax.lines], analyses):
        lw = a["linewidth"]
        assert f"Γ classical (Eq. 2, 300 K) = {lw['fwhm_meV']:.0f} meV" in ax.get_title()
    cs_fig = plots.core_shell_comparison_figure(analyses)
    ax = [ax for ax in cs_fig.axes if ax.lines][0]
    assert ax.get_title().startswith("core/shell vs core-only")
    assert all("Γ classical (Eq. 2, 300 K)" in t.get_text() for t in ax.get_legend().get_texts())


def test_warnings_reach_the_titles_of_the_per_system_figures(campaign):
    from qdphonon.analysis.qualifiers import warning_kinds

    _, _, dirs = campaign
    analyses = [plots.load_analysis_dir(d) for d in dirs]
    kinds = {plots.size_title(a["linewidth"], a["system"]): warning_kinds(a["linewidth"]) for a in analyses}
    assert any(kinds.values())  # the fixture's velocities are far from T_md: kinetic_temperature
    for fig in (plots.linewidth_vs_temperature_figure(analyses), plots.lineshape_figure(analyses)):
        title = fig.axes[0].get_title()
        for name, k in kinds.items():
            assert (f"{name} ({', '.join(k)})" in title) == bool(k), (name, title)


def test_size_dependence_draws_the_shipped_real_points_apart_from_the_campaign(campaign):
    """The real PBE results (data/real_points.csv) sit in the Γ panel with their own marker, colour and
    a label that says real, the route, the source and the interval; the campaign's own series is unchanged."""
    _, summary, _ = campaign
    real = plots.real_points_for(pd.DataFrame({"level": ["pbe"]}))
    assert len(real) >= 2 and set(real["route"]) >= {"md", "harmonic"}
    fig = plots.size_dependence_figure(pd.read_csv(summary), real)
    ax_g = fig.axes[1]
    bars = {c.get_label(): c.lines[0] for c in ax_g.containers}
    md = next(k for k in bars if k.startswith("real PBE, md route (validation/pbe_n1)"))
    assert "Cs4PbBr6 326 meV [252–399]" in md
    np.testing.assert_allclose(bars[md].get_xdata(), [0.587])
    np.testing.assert_allclose(bars[md].get_ydata(), real[real.route == "md"].fwhm_meV)
    harmonic = next(k for k in bars if k.startswith("real PBE, harmonic route"))
    assert "no sampling error" in harmonic and bars[harmonic].get_marker() != bars[md].get_marker()
    lo, hi = ax_g.get_xlim()
    assert lo < 0.587 < hi and ax_g.get_ylim()[1] > 398.9
    assert plots.MOCK_CALIBRATION_LABEL in plots.figure_texts(fig)
    assert len(plots.real_points_for(pd.DataFrame({"level": ["xtb"]}))) == 0
    assert len(plots.real_points_for(pd.DataFrame({"level": ["mock", "mock"]}))) == len(real)  # beside the mock series


def test_shipped_real_points_are_what_the_archives_hold():
    import importlib.util

    spec = importlib.util.spec_from_file_location("real_points", REPO / "validation" / "real_points.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    shipped = pd.read_csv(REPO / "workflow" / "qdphonon" / "data" / "real_points.csv")
    remade = module.real_points()
    pd.testing.assert_frame_equal(shipped, remade, check_dtype=False, rtol=1e-7)
    assert (shipped["level"] == "pbe").all()
