"""Figures of a campaign: reorganisation-energy spectra, size dependence, core/shell, phonon DOS,
Gamma(T) and the emission lineshape.

Every ``*_figure`` function builds and returns a matplotlib Figure (tests read its text and
its plotted arrays) without touching the disk; :func:`save_figure` writes PNG and PDF
reproducibly (fixed hash salt, no creation date); :func:`plot_campaign` makes them all and
returns the files written. Every figure states its level of theory (``level: mock`` for the
mock engine, with the label ``synthetic data (mock engine)``); GFN1-xTB data carry a note that
gaps are underestimated; with mock data the size-dependence figure says that the mock was
calibrated to the study's values it is compared with.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Sequence

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from qdphonon.figures.common import (RC_PARAMS, SYNTHETIC_LABEL, XTB_LABEL, _flags, _grid, _placeholder,  # noqa: F401
                                    annotate_provenance, figure_texts, load_analysis_dir, new_figure, read_summary,
                                    save_figure, size_title)  # fmt: skip

from qdphonon.figures.size import (LATTICE_nm, MOCK_CALIBRATION_LABEL, REFERENCE_FWHM_300K_meV,  # noqa: F401,E402
                                  REFERENCE_LABEL, edge_lengths_nm, size_dependence_figure)

REGION_COLORS = ("#fde0c5", "#c9e3f6", "#d8f0d2", "#eadcf2", "#f6d5d5")
from qdphonon.figures.names import FIGURE_STEMS  # noqa: E402


# ----------------------------------------------------------------------------- spectra
def spectrum_density(spec: pd.DataFrame, column: str = "S_hw_smoothed_meV") -> tuple[np.ndarray, np.ndarray, float]:
    """(energy meV, lambda density per meV, bin width meV): ``column`` (S_k hbar w_k) over the bin width;
    falls back to the Eq. 1 column ``S_hw_meV`` for older tables."""
    e = spec["energy_meV"].to_numpy(float)
    col = column if column in spec else "S_hw_meV"
    de = float(e[1] - e[0]) if e.size > 1 else (float(e[0]) if e.size else 1.0)
    return e, spec[col].to_numpy(float) / de, de


def _shade_regions(ax, regions: Sequence[dict]) -> None:
    for i, reg in enumerate(regions):
        lo, hi = reg.get("lo_meV"), reg.get("hi_meV")
        if lo is None or hi is None:
            continue
        ax.axvspan(lo, hi, color=REGION_COLORS[i % len(REGION_COLORS)], alpha=0.6, lw=0, zorder=0)
        label = reg.get("name", "") + (" (unresolved)" if reg.get("resolved") is False else "")
        ax.text((lo + hi) / 2, 0.97, label, transform=ax.get_xaxis_transform(), ha="center", va="top", fontsize=7)


def _x_max_meV(analyses: Sequence[dict]) -> float:
    his = [r.get("hi_meV") or 0 for a in analyses for r in a["linewidth"].get("regions", [])]
    return 1.2 * max(his) if his else 40.0


def _report_T(lw: dict) -> float | None:
    return lw.get("report_temperature_K", lw.get("temperature_K"))


DENSITY_LABEL = "dλ/d(ħω) = S·ħω / bin (meV/meV, dimensionless)"
"""The spectra's y axis: reorganisation energy per meV of phonon energy (S per bin is dimensionless)."""


def gamma_text(lw: dict) -> str:
    """``Γ_cl(Eq. 2, 300 K) = 220 meV``: which Γ (classical, paper Eq. 2) and at what temperature."""
    fw, T = lw.get("fwhm_meV"), _report_T(lw)
    if fw is None:
        return ""
    return f"Γ classical (Eq. 2, {T:g} K) = {fw:.0f} meV" if T is not None else f"Γ classical (Eq. 2) = {fw:.0f} meV"


def _warning_line(lw: dict) -> str:
    from qdphonon.analysis.qualifiers import warning_kinds

    kinds = warning_kinds(lw)
    return f"\nwarnings: {', '.join(kinds)}" if kinds else ""


def _warned_systems(analyses: Sequence[dict]) -> str:
    """``"\nwarnings: 3.5 nm cube (stationarity)"`` over the systems a figure shows; empty when none."""
    from qdphonon.analysis.qualifiers import warning_kinds

    items = [f"{size_title(a['linewidth'], a['system'])} ({', '.join(k)})"
             for a in analyses if (k := warning_kinds(a["linewidth"]))]  # fmt: skip
    return f"\nwarnings: {'; '.join(items)}" if items else ""


def _fit_y(axes, xmax: float) -> None:
    """Every plotted curve inside [0, xmax] fits on the (shared) y axis: nothing clipped."""
    top = 0.0
    for ax in axes:
        for ln in ax.lines:
            x, y = np.asarray(ln.get_xdata(), float), np.asarray(ln.get_ydata(), float)
            inside = (x >= 0) & (x <= xmax) & np.isfinite(y)
            if inside.any():
                top = max(top, float(y[inside].max()))
    if top > 0:
        for ax in axes:
            ax.set_ylim(0, 1.12 * top)


def spectral_density_figure(analyses: Sequence[dict]) -> Figure:
    """Reorganisation-energy spectrum per system on one common y-axis, titled by size (seed Fig. 2c):
    paper Eq. 1 per bin (grey) and its display smoothing (black), regions shaded."""
    fig = new_figure(4.0 * min(3, max(len(analyses), 1)), 3.0 * math.ceil(max(len(analyses), 1) / 3) + 0.4)
    axes = _grid(fig, len(analyses), sharey=True)
    xmax = _x_max_meV(analyses)
    for ax, a in zip(axes, analyses):
        lw = a["linewidth"]
        _shade_regions(ax, lw.get("regions", []))
        if a["spectrum"] is not None and len(a["spectrum"]):
            e, raw, de = spectrum_density(a["spectrum"], "S_hw_meV")
            ax.plot(e, raw, color="0.6", lw=0.7, label=f"Eq. 1, bin {de:.2f} meV")
            if "S_hw_smoothed_meV" in a["spectrum"]:
                ax.plot(e, spectrum_density(a["spectrum"])[1], color="k", lw=1.2, label="smoothed (display)")
        lam = lw.get("lambda_meV")
        title = size_title(lw, a["system"])
        if lam is not None:
            title += f"\nλ = {lam:.1f} meV, {gamma_text(lw)}"
        ax.set_title(title + _warning_line(lw), fontsize=8)
        ax.set_xlim(0, xmax)
        ax.set_xlabel("ħω (meV)")
        ax.set_ylabel(DENSITY_LABEL, fontsize=8)
        ax.legend(loc="center right", fontsize=7, frameon=False)
    _fit_y(axes[:len(analyses)], xmax)
    for ax in axes[len(analyses):]:
        ax.set_axis_off()
    if not analyses:
        axes[0].text(0.5, 0.5, "no analysed systems", ha="center", va="center", transform=axes[0].transAxes)
    annotate_provenance(fig, *_flags([a["linewidth"] for a in analyses]))
    return fig


def core_shell_pairs(analyses: Sequence[dict]) -> list[tuple[dict, dict]]:
    """(core/shell, core-only) analyses with the same outer size in octahedra."""
    def size(a):
        s = a["linewidth"].get("size_octahedra")
        return tuple(s) if isinstance(s, (list, tuple)) else None

    core = {size(a): a for a in analyses if not a["linewidth"].get("shell_layers") and size(a)}
    return [(a, core[size(a)]) for a in analyses if a["linewidth"].get("shell_layers") and size(a) in core]


def core_shell_comparison_figure(analyses: Sequence[dict]) -> Figure:
    """Smoothed spectrum of each core/shell dot overlaid on the core-only dot of the same outer size (seed Fig. 2f)."""
    pairs = core_shell_pairs(analyses)
    fig = new_figure(4.5 * max(len(pairs), 1), 3.6)
    if not pairs:
        _placeholder(fig, "no core/shell system in this campaign")
        annotate_provenance(fig, *_flags([a["linewidth"] for a in analyses]))
        return fig
    axes = np.atleast_1d(fig.subplots(1, len(pairs), squeeze=False, sharey=True)).ravel()
    for ax, (cs, core) in zip(axes, pairs):
        _shade_regions(ax, cs["linewidth"].get("regions", []))
        for a in (core, cs):
            if a["spectrum"] is None:
                continue
            e, dens, _ = spectrum_density(a["spectrum"])
            label = size_title(a["linewidth"], a["system"]) + "\n" + gamma_text(a["linewidth"]) \
                + _warning_line(a["linewidth"])
            ax.plot(e, dens, lw=1.0, label=label)
        ax.set_xlim(0, _x_max_meV(analyses))
        ax.set_xlabel("ħω (meV)")
        ax.set_ylabel(DENSITY_LABEL, fontsize=8)
        ax.set_title(f"core/shell vs core-only of the same outer size ({size_title(cs['linewidth'], cs['system'])})",
                     fontsize=8)  # fmt: skip
        ax.legend(fontsize=7, frameon=False, loc="upper right")
    _fit_y(axes, _x_max_meV(analyses))
    annotate_provenance(fig, *_flags([a["linewidth"] for p in pairs for a in p]))
    return fig


def phonon_dos_figure(analyses: Sequence[dict]) -> Figure:
    """Phonon DOS per system, total and projected on core / surface / shell (per meV; integral 3N - 6
    with rigid motion removed)."""
    with_dos = [a for a in analyses if a["vdos"] is not None and len(a["vdos"])]
    fig = new_figure(4.0 * min(3, max(len(with_dos), 1)), 3.0 * math.ceil(max(len(with_dos), 1) / 3) + 0.4)
    if not with_dos:
        _placeholder(fig, "no velocity trajectories analysed (no vdos.csv)")
        annotate_provenance(fig, *_flags([a["linewidth"] for a in analyses]))
        return fig
    axes = _grid(fig, len(with_dos))
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
        ax.set_title(size_title(a["linewidth"], a["system"]), fontsize=9)
        ax.legend(fontsize=7, frameon=False)
    for ax in axes[len(with_dos):]:
        ax.set_axis_off()
    annotate_provenance(fig, *_flags([a["linewidth"] for a in with_dos]))
    return fig


# ----------------------------------------------------------------------------- Gamma(T), lineshape
def linewidth_vs_temperature_figure(analyses: Sequence[dict]) -> Figure:
    """Gamma(T) per system: Eq. 2 (line), band-limited quantum Gaussian (dashed) and the FWHM read from the
    cumulant line (markers; hollow where the line is not Gaussian, so Eq. 2 does not apply)."""
    fig = new_figure(9.0, 4.2)
    ax = fig.subplots()
    with_curve = [a for a in analyses if a["linewidth"].get("fwhm_vs_temperature")]
    for i, a in enumerate(with_curve):
        curve = a["linewidth"]["fwhm_vs_temperature"]
        T = np.array([c.get("report_temperature_K", c.get("temperature_K")) for c in curve], dtype=float)
        get = lambda k: np.array([np.nan if c.get(k) is None else c[k] for c in curve], dtype=float)  # noqa: E731
        name, color = size_title(a["linewidth"], a["system"]), f"C{i}"
        ax.plot(T, get("fwhm_classical_meV"), "-", color=color, lw=1.2, label=f"{name}: Eq. 2 (classical)")
        ax.plot(T, get("fwhm_quantum_meV"), "--", color=color, lw=1.0, label=f"{name}: quantum (Gaussian)")
        line, ok = get("fwhm_lineshape_meV"), np.array([bool(c.get("gaussian_valid")) for c in curve])
        ax.plot(T[ok], line[ok], "o", color=color, ms=4, label=f"{name}: cumulant line FWHM")
        if (~ok).any():
            ax.plot(T[~ok], line[~ok], "o", mfc="none", color=color, ms=5, label=f"{name}: line not Gaussian")
    if not with_curve:
        ax.text(0.5, 0.5, "no Γ(T) curve in the analyses", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("temperature T (K)")
    ax.set_ylabel("emission FWHM Γ(T) (meV)")
    ax.set_title("Γ(T), harmonic scaling from T_md" + _warned_systems(with_curve), fontsize=9)
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=6, frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    annotate_provenance(fig, *_flags([a["linewidth"] for a in analyses]))
    return fig


def lineshape_figure(analyses: Sequence[dict]) -> Figure:
    """Emission line of each system at the report temperature vs ``E - E_0`` (zero-phonon line), from the
    second-order cumulant, with paper Eq. 2's Gaussian (dotted) for comparison, on one axis."""
    fig = new_figure(7.0, 4.2)
    ax = fig.subplots()
    with_line = [a for a in analyses if a.get("lineshape") is not None and len(a["lineshape"])]
    temps, span = set(), []
    for i, a in enumerate(with_line):
        d, lw = a["lineshape"], a["linewidth"]
        x = d["energy_offset_meV"].to_numpy(float)
        ls = lw.get("lineshape") or {}
        fw = ls.get("fwhm_lineshape_meV")
        name = size_title(lw, a["system"]) + (f", cumulant FWHM {fw:.0f} meV" if fw is not None else "")
        if ls.get("gaussian_valid") is False:
            name += " (not Gaussian)"
        ax.plot(x, d["emission_per_meV"].to_numpy(float), "-", color=f"C{i}", lw=1.2, label=name)
        ax.plot(x, d["emission_eq2_per_meV"].to_numpy(float), ":", color=f"C{i}", lw=1.0, label=f"{size_title(lw, a['system'])}: Eq. 2 Gaussian")
        temps.add(_report_T(lw))
        y = d["emission_per_meV"].to_numpy(float)
        visible = x[y >= 1e-3 * y.max()] if y.max() > 0 else x
        span += [float(visible.min()), float(visible.max())]
    if not with_line:
        ax.text(0.5, 0.5, "no lineshape.csv in the analyses", ha="center", va="center", transform=ax.transAxes)
    T_txt = ", ".join(f"{t:g} K" for t in sorted(t for t in temps if t is not None))
    ax.set_xlabel("E − E₀ (meV), E₀ = zero-phonon line (absolute position not trusted)")
    ax.set_ylabel("emission (per meV, unit area)")
    ax.set_title(f"emission lineshape (second-order cumulant){' at ' + T_txt if T_txt else ''}"
                 + _warned_systems(with_line), fontsize=9)  # fmt: skip
    if span:
        pad = 0.05 * (max(span) - min(span))
        ax.set_xlim(min(span) - pad, max(span) + pad)
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=6, frameon=False)
    annotate_provenance(fig, *_flags([a["linewidth"] for a in analyses]))
    return fig


def real_points_for(summary: pd.DataFrame) -> pd.DataFrame:
    """The shipped real PBE results (:func:`qdphonon.figures.size.real_points`) for a campaign at the pbe level or
    the mock's (calibrated to the study's DFT, drawn beside it as real, not synthetic); none for an xtb campaign."""
    from qdphonon.figures.size import real_points

    levels = set(summary["level"].dropna().astype(str)) if "level" in summary else set()
    return real_points("pbe") if levels and levels <= {"pbe", "mock"} else real_points("pbe").iloc[0:0]


def plot_campaign(summary_csv: str | os.PathLike, analysis_dirs: Sequence[str | os.PathLike],
                  outdir: str | os.PathLike, stems: Sequence[str] = FIGURE_STEMS) -> list[Path]:
    """The figures ``stems`` (default: all of :data:`FIGURE_STEMS`) into ``outdir``; returns the files
    written (PNG + PDF each)."""
    unknown = sorted(set(stems) - set(FIGURE_STEMS))
    if unknown:
        raise ValueError(f"unknown figure(s) {', '.join(unknown)}; known: {', '.join(FIGURE_STEMS)}")
    with matplotlib.rc_context(RC_PARAMS):
        summary = read_summary(summary_csv)
        analyses = [load_analysis_dir(d) for d in analysis_dirs]
        makers = {
            "spectral_densities": lambda: spectral_density_figure(analyses),
            "size_dependence": lambda: size_dependence_figure(summary, real_points_for(summary)),
            "core_shell_comparison": lambda: core_shell_comparison_figure(analyses),
            "phonon_dos": lambda: phonon_dos_figure(analyses),
            "linewidth_vs_temperature": lambda: linewidth_vs_temperature_figure(analyses),
            "lineshape": lambda: lineshape_figure(analyses),
        }
        written: list[Path] = []
        for stem in stems:
            written += save_figure(makers[stem](), outdir, stem)
    return written
