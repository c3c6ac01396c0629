"""Figures of a campaign: reorganisation-energy spectra, size dependence, core/shell, phonon DOS.

Every ``*_figure`` function builds and returns a matplotlib Figure (so tests can inspect
its text) without touching the disk; :func:`save_figure` writes PNG and PDF reproducibly
(fixed hash salt, no creation date); :func:`plot_campaign` makes them all and returns the
files written. Figures from mock-engine data carry the label ``synthetic data (mock engine)``;
GFN1-xTB data carry a note that gaps are underestimated.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

SYNTHETIC_LABEL = "synthetic data (mock engine)"
XTB_LABEL = "GFN1-xTB level: gaps underestimated"
REFERENCE_LABEL = "reference values from the study (Nat. Commun. 2022, DFT)"

REFERENCE_FWHM_300K_meV: tuple[tuple[float, float, str], ...] = (
    (2.4, 164.0, "2.4 nm core-only"),
    (3.6, 126.0, "3.6 nm core-only"),
    (3.6, 90.0, "3.6 nm core/shell"),
)
"""Headline linewidths at 300 K of the seed study: (edge nm, FWHM meV, label)."""

REGION_COLORS = ("#fde0c5", "#c9e3f6", "#d8f0d2", "#eadcf2", "#f6d5d5")
RC_PARAMS = {"svg.hashsalt": "qdphonon", "figure.dpi": 100, "savefig.dpi": 150, "font.size": 9}


# ----------------------------------------------------------------------------- loading
def load_analysis_dir(path: str | os.PathLike) -> dict:
    """``{'dir', 'system', 'linewidth', 'spectrum', 'vdos'}`` from an analysis directory.

    ``spectrum``/``vdos`` are DataFrames or None when the file is absent.
    """
    path = Path(path)
    lw_path = path / "linewidth.json"
    if not lw_path.is_file():
        raise FileNotFoundError(f"{lw_path}: linewidth.json not found")
    lw = json.loads(lw_path.read_text(encoding="utf-8"))
    spec = pd.read_csv(path / "spectral_density.csv") if (path / "spectral_density.csv").is_file() else None
    vdos = pd.read_csv(path / "vdos.csv") if (path / "vdos.csv").is_file() else None
    return {"dir": str(path), "system": lw.get("system") or path.name, "linewidth": lw, "spectrum": spec, "vdos": vdos}


def _flags(linewidths: Sequence[dict], summary: pd.DataFrame | None = None) -> tuple[bool, bool]:
    """(synthetic, xtb) over everything a figure shows."""
    synthetic = any(bool(lw.get("synthetic")) for lw in linewidths)
    levels = [str(lw.get("level") or "") for lw in linewidths]
    if summary is not None and len(summary):
        if "synthetic" in summary:
            synthetic |= bool(summary["synthetic"].astype(str).str.lower().isin(["true", "1"]).any())
        if "level" in summary:
            levels += [str(x) for x in summary["level"].tolist()]
    xtb = any("xtb" in lv.lower() for lv in levels)
    return synthetic, xtb


def annotate_provenance(fig: Figure, synthetic: bool, xtb: bool) -> None:
    """Put the synthetic-data label and the xTB note in the strip kept free at the top (see :func:`new_figure`)."""
    from matplotlib.transforms import offset_copy

    x_pt = 4.0
    if synthetic:
        tr = offset_copy(fig.transFigure, fig=fig, x=x_pt, y=-2.0, units="points")
        fig.text(0.0, 1.0, SYNTHETIC_LABEL, transform=tr, ha="left", va="top", color="crimson", fontsize=10, fontweight="bold")
        x_pt += 190.0
    if xtb:
        tr = offset_copy(fig.transFigure, fig=fig, x=x_pt, y=-3.0, units="points")
        fig.text(0.0, 1.0, XTB_LABEL, transform=tr, ha="left", va="top", color="dimgray", fontsize=8, style="italic")


def new_figure(width_in: float, height_in: float) -> Figure:
    """A constrained-layout Figure with a 0.25 inch strip at the top kept free for provenance labels.

    Figures are at least 5.5 inch wide so that both labels fit side by side.
    """
    from matplotlib.layout_engine import ConstrainedLayoutEngine

    width_in = max(width_in, 5.5)
    fig = Figure(figsize=(width_in, height_in))
    fig.set_layout_engine(ConstrainedLayoutEngine(rect=(0.0, 0.0, 1.0, 1.0 - 0.25 / height_in)))
    return fig


def figure_texts(fig: Figure) -> list[str]:
    """Every text string drawn on a figure (figure texts, titles, labels, legends, annotations)."""
    return [t.get_text() for t in fig.findobj(matplotlib.text.Text) if t.get_text()]


# ----------------------------------------------------------------------------- figures
def _spectrum_density(spec: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, float]:
    """(energy meV, d(lambda)/d(hbar w) dimensionless, bin width meV): S_k hbar w_k per unit energy."""
    e = spec["energy_meV"].to_numpy(float)
    s_hw = spec["S_hw_meV"].to_numpy(float)
    de = float(e[1] - e[0]) if e.size > 1 else (float(e[0]) if e.size else 1.0)
    return e, s_hw / de, de


def _shade_regions(ax, regions: Sequence[dict]) -> None:
    for i, reg in enumerate(regions):
        lo, hi = reg.get("lo_meV"), reg.get("hi_meV")
        if lo is None or hi is None:
            continue
        ax.axvspan(lo, hi, color=REGION_COLORS[i % len(REGION_COLORS)], alpha=0.6, lw=0, zorder=0)
        label = reg.get("name", "")
        if reg.get("resolved") is False:
            label += " (unresolved)"
        ax.text((lo + hi) / 2, 0.97, label, transform=ax.get_xaxis_transform(), ha="center", va="top", fontsize=7)


def _x_max_meV(analyses: Sequence[dict]) -> float:
    his = [r.get("hi_meV") or 0 for a in analyses for r in a["linewidth"].get("regions", [])]
    return 1.2 * max(his) if his else 40.0


def spectral_density_figure(analyses: Sequence[dict]) -> Figure:
    """Reorganisation-energy spectrum ``S_k hbar w_k / d(hbar w)`` vs ``hbar w`` per system, regions shaded (seed Fig. 2c)."""
    n = max(len(analyses), 1)
    ncols = min(3, n)
    nrows = math.ceil(n / ncols)
    fig = new_figure(4.0 * ncols, 3.0 * nrows + 0.4)
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    xmax = _x_max_meV(analyses)
    for ax, a in zip(axes, analyses):
        lw = a["linewidth"]
        _shade_regions(ax, lw.get("regions", []))
        if a["spectrum"] is not None and len(a["spectrum"]):
            e, dens, de = _spectrum_density(a["spectrum"])
            ax.plot(e, dens, color="k", lw=1.0, label=f"bin {de:.2f} meV")
        lam = lw.get("lambda_meV")
        fw = lw.get("fwhm_meV")
        title = a["system"]
        if lam is not None and fw is not None:
            title += f"\nλ = {lam:.1f} meV, Γ({lw.get('temperature_K', 300):g} K) = {fw:.0f} meV"
        ax.set_title(title, fontsize=9)
        ax.set_xlim(0, xmax)
        ax.set_ylim(bottom=0)
        ax.set_xlabel("ħω (meV)")
        ax.set_ylabel("S(ω)·ħω per meV")
        ax.legend(loc="center right", fontsize=7, frameon=False)
    for ax in axes[len(analyses) :]:
        ax.set_axis_off()
    if not analyses:
        axes[0].text(0.5, 0.5, "no analysed systems", ha="center", va="center", transform=axes[0].transAxes)
    annotate_provenance(fig, *_flags([a["linewidth"] for a in analyses]))
    return fig


def _num(series: pd.Series) -> np.ndarray:
    return pd.to_numeric(series, errors="coerce").to_numpy(float)


def _region_names_from_summary(summary: pd.DataFrame) -> list[str]:
    return [c[2:] for c in summary.columns if c.startswith("S_") and not c.endswith("_err")]


def edge_lengths_nm(summary: pd.DataFrame) -> np.ndarray:
    """Mean edge length per row (the summary's numeric ``edge_nm``, from the built structure), NaN when absent."""
    return _num(summary["edge_nm"]) if "edge_nm" in summary else np.full(len(summary), np.nan)


def _edge_axis(ax, summary: pd.DataFrame, categorical: bool) -> None:
    if categorical:
        ax.set_xticks(range(len(summary)), summary["system"].astype(str).tolist(), rotation=30, ha="right")
        ax.set_xlabel("system (no size information)")
    else:
        ax.set_xlabel("edge length (nm)")


def size_dependence_figure(summary: pd.DataFrame) -> Figure:
    """S_R per region and Gamma(T) vs edge length, error bars, seed reference values (seed Fig. 2d)."""
    fig = new_figure(9.0, 3.8)
    ax_s, ax_g = fig.subplots(1, 2)
    edge = edge_lengths_nm(summary)
    order = np.argsort(np.nan_to_num(edge, nan=np.inf), kind="stable")
    summary, edge = summary.iloc[order].reset_index(drop=True), edge[order]
    categorical = bool(np.all(np.isnan(edge)))
    if categorical:
        edge = np.arange(len(summary), dtype=float)
    shell = _num(summary["shell_layers"]).astype(float) if "shell_layers" in summary else np.zeros(len(summary))
    is_cs = np.nan_to_num(shell) > 0
    markers = {False: ("o", "core-only"), True: ("s", "core/shell")}
    for i, name in enumerate(_region_names_from_summary(summary)):
        S = _num(summary[f"S_{name}"])
        err = _num(summary[f"S_{name}_err"]) if f"S_{name}_err" in summary else np.full(len(S), np.nan)
        resolved = summary[f"resolved_{name}"].astype(str).str.lower().ne("false").to_numpy() if f"resolved_{name}" in summary else np.ones(len(S), bool)
        color = f"C{i}"
        for cs in (False, True):
            sel = (is_cs == cs) & resolved
            if sel.any():
                ax_s.errorbar(edge[sel], S[sel], yerr=np.nan_to_num(err[sel]), fmt=markers[cs][0] + "-",
                              color=color, capsize=3, label=f"{name}, {markers[cs][1]}")
            sel_u = (is_cs == cs) & ~resolved
            if sel_u.any():
                ax_s.plot(edge[sel_u], S[sel_u], markers[cs][0], mfc="none", color=color, label=f"{name} (unresolved)")
    _edge_axis(ax_s, summary, categorical)
    ax_s.set_ylabel("Huang–Rhys factor $S_R$")
    ax_s.set_title("effective modes per region")
    ax_s.legend(fontsize=7, frameon=False)

    T = _num(summary["temperature_K"])[0] if "temperature_K" in summary and len(summary) else 300.0
    fw = _num(summary["fwhm_meV"]) if "fwhm_meV" in summary else np.full(len(summary), np.nan)
    fw_err = _num(summary["fwhm_meV_err"]) if "fwhm_meV_err" in summary else np.full(len(summary), np.nan)
    fq = _num(summary["fwhm_quantum_meV"]) if "fwhm_quantum_meV" in summary else np.full(len(summary), np.nan)
    for cs in (False, True):
        sel = is_cs == cs
        if sel.any():
            ax_g.errorbar(edge[sel], fw[sel], yerr=np.nan_to_num(fw_err[sel]), fmt=markers[cs][0] + "-", color="k",
                          capsize=3, label=f"classical, {markers[cs][1]}")
            ax_g.plot(edge[sel], fq[sel], markers[cs][0] + "--", color="C3", mfc="none", label=f"quantum-corrected, {markers[cs][1]}")
    for j, (e_nm, f_meV, lab) in enumerate(REFERENCE_FWHM_300K_meV if not categorical else ()):
        ax_g.plot([e_nm], [f_meV], marker="*" if "shell" not in lab else "P", ms=11, color="goldenrod", ls="none",
                  label=REFERENCE_LABEL if j == 0 else None)
        ax_g.annotate(f"{lab}: {f_meV:g} meV", (e_nm, f_meV), textcoords="offset points", xytext=(6, -3 + 8 * (j == 1)), fontsize=7)
    _edge_axis(ax_g, summary, categorical)
    finite = [x for x in list(edge) + [r[0] for r in REFERENCE_FWHM_300K_meV] if np.isfinite(x)] if not categorical else list(edge)
    ax_g.set_xlim(min(finite) - 0.3, max(finite) + 1.0)
    ax_g.set_ylabel(f"FWHM Γ({T:g} K) (meV)")
    ax_g.set_title("thermal linewidth (harmonic scaling from T_md)")
    ax_g.set_ylim(bottom=0)
    ax_g.legend(fontsize=7, frameon=False)
    annotate_provenance(fig, *_flags([], summary))
    return fig


def _placeholder(fig: Figure, message: str) -> None:
    ax = fig.subplots()
    ax.set_axis_off()
    ax.text(0.5, 0.5, message, ha="center", va="center", fontsize=12, transform=ax.transAxes)


def core_shell_pairs(analyses: Sequence[dict]) -> list[tuple[dict, dict]]:
    """(core/shell, core-only) analyses with the same outer size in octahedra."""
    def size(a):
        s = a["linewidth"].get("size_octahedra")
        return tuple(s) if isinstance(s, (list, tuple)) else None

    core = {size(a): a for a in analyses if not a["linewidth"].get("shell_layers") and size(a)}
    return [(a, core[size(a)]) for a in analyses if a["linewidth"].get("shell_layers") and size(a) in core]


def core_shell_comparison_figure(analyses: Sequence[dict]) -> Figure:
    """Spectra of each core/shell dot overlaid on the core-only dot of the same outer size (seed Fig. 2f)."""
    pairs = core_shell_pairs(analyses)
    fig = new_figure(4.5 * max(len(pairs), 1), 3.6)
    if not pairs:
        _placeholder(fig, "no core/shell system in this campaign")
        annotate_provenance(fig, *_flags([a["linewidth"] for a in analyses]))
        return fig
    axes = np.atleast_1d(fig.subplots(1, len(pairs), squeeze=False)).ravel()
    xmax = _x_max_meV(analyses)
    for ax, (cs, core) in zip(axes, pairs):
        _shade_regions(ax, cs["linewidth"].get("regions", []))
        for a, style, tag in ((core, "-", "core-only"), (cs, "-", "core/shell")):
            if a["spectrum"] is None:
                continue
            e, dens, _ = _spectrum_density(a["spectrum"])
            fw = a["linewidth"].get("fwhm_meV")
            ax.plot(e, dens, style, lw=1.0, label=f"{a['system']} ({tag})" + (f", Γ = {fw:.0f} meV" if fw is not None else ""))
        ax.set_xlim(0, xmax)
        ax.set_ylim(bottom=0)
        ax.set_xlabel("ħω (meV)")
        ax.set_ylabel("S(ω)·ħω per meV")
        ax.legend(fontsize=7, frameon=False, loc="center right")
    annotate_provenance(fig, *_flags([a["linewidth"] for p in pairs for a in p]))
    return fig


def phonon_dos_figure(analyses: Sequence[dict]) -> Figure:
    """Phonon DOS per system, total and projected on core / surface / shell (per meV, integral 3N)."""
    with_dos = [a for a in analyses if a["vdos"] is not None and len(a["vdos"])]
    n = max(len(with_dos), 1)
    ncols = min(3, n)
    nrows = math.ceil(n / ncols)
    fig = new_figure(4.0 * ncols, 3.0 * nrows + 0.4)
    if not with_dos:
        _placeholder(fig, "no velocity trajectories analysed (no vdos.csv)")
        annotate_provenance(fig, *_flags([a["linewidth"] for a in analyses]))
        return fig
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    for ax, a in zip(axes, with_dos):
        d = a["vdos"]
        e = d["energy_meV"].to_numpy(float)
        ax.plot(e, d["total"].to_numpy(float), color="k", lw=1.2, label="total")
        for col in [c for c in d.columns if c.startswith("region_")]:
            ax.plot(e, d[col].to_numpy(float), lw=0.9, label=col.removeprefix("region_"))
        ax.set_xlim(0, _x_max_meV(analyses))
        ax.set_ylim(bottom=0)
        ax.set_xlabel("ħω (meV)")
        ax.set_ylabel("phonon DOS (states/meV)")
        ax.set_title(a["system"], fontsize=9)
        ax.legend(fontsize=7, frameon=False)
    for ax in axes[len(with_dos) :]:
        ax.set_axis_off()
    annotate_provenance(fig, *_flags([a["linewidth"] for a in with_dos]))
    return fig


# ----------------------------------------------------------------------------- output
def save_figure(fig: Figure, outdir: str | os.PathLike, stem: str) -> list[Path]:
    """Write ``stem.png`` and ``stem.pdf`` into ``outdir`` reproducibly; return the two paths."""
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{stem}.png", out / f"{stem}.pdf"]
    with matplotlib.rc_context(RC_PARAMS):
        fig.savefig(paths[0], metadata={"Software": None})
        fig.savefig(paths[1], metadata={"CreationDate": None, "ModDate": None, "Producer": None, "Creator": None})
    plt.close(fig)
    return paths


def read_summary(path: str | os.PathLike) -> pd.DataFrame:
    """summary.csv as a DataFrame (ValueError naming the file when it is missing columns)."""
    df = pd.read_csv(path)
    if "system" not in df.columns:
        raise ValueError(f"{path}: not a qdphonon summary (no 'system' column)")
    return df


def plot_campaign(summary_csv: str | os.PathLike, analysis_dirs: Sequence[str | os.PathLike], outdir: str | os.PathLike) -> list[Path]:
    """All figures of a campaign into ``outdir``; returns the files written (PNG + PDF each)."""
    with matplotlib.rc_context(RC_PARAMS):
        summary = read_summary(summary_csv)
        analyses = [load_analysis_dir(d) for d in analysis_dirs]
        written: list[Path] = []
        written += save_figure(spectral_density_figure(analyses), outdir, "spectral_densities")
        written += save_figure(size_dependence_figure(summary), outdir, "size_dependence")
        written += save_figure(core_shell_comparison_figure(analyses), outdir, "core_shell_comparison")
        written += save_figure(phonon_dos_figure(analyses), outdir, "phonon_dos")
    return written
