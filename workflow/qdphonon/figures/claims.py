"""Figures of the study's further claims: where in the dot the coupling lives (lambda share per atom
region vs size, core-only and core/shell) and where the band edges live (core weight of VBM/CBM vs size). Labelled synthetic for mock data, as every figure is."""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np
import pandas as pd

from qdphonon.figures.common import _flags, annotate_provenance, new_figure, read_summary, save_figure

ATTRIBUTION_FIGURE = "attribution_vs_size"
ATTRIBUTION_REGIONS = ("surface", "core", "shell", "unexplained")


def attribution_figure(summary: pd.DataFrame):
    """Share of lambda carried by the surface, core and shell atoms (and left unexplained by the linear
    fit) vs edge length; filled markers core-only, squares core/shell. Placeholder text without data."""
    from qdphonon.figures.campaign import edge_lengths_nm

    fig = new_figure(5.5, 3.8)
    ax = fig.subplots(1, 1)
    edge = edge_lengths_nm(summary)
    is_cs = np.nan_to_num(pd.to_numeric(summary.get("shell_layers", pd.Series([0] * len(summary))), errors="coerce")) > 0
    drawn = False
    for i, region in enumerate(ATTRIBUTION_REGIONS):
        col = f"lambda_share_{region}"
        if col not in summary:
            continue
        share = pd.to_numeric(summary[col], errors="coerce").to_numpy(dtype=float)
        for cs, marker, kind in ((False, "o", "core-only"), (True, "s", "core/shell")):
            sel = (is_cs == cs) & np.isfinite(share) & np.isfinite(edge)
            if sel.any():
                order = np.argsort(edge[sel])
                ax.plot(edge[sel][order], share[sel][order], marker + ("-" if not cs else ""), color=f"C{i}",
                        label=f"{region}, {kind}", mfc="white" if region == "unexplained" else None)  # fmt: skip
                drawn = True
    if not drawn:
        ax.text(0.5, 0.5, "no attribution.csv in this campaign", ha="center", va="center", transform=ax.transAxes)
    ax.axhline(0.0, color="0.6", lw=0.6)
    ax.set_xlabel("edge length (nm)")
    ax.set_ylabel("share of λ")
    ax.set_title("where the gap coupling lives: λ_R = Cov(g_R·u_R, δE)/2k_BT")
    ax.legend(fontsize=7, frameon=False)
    return _with_provenance(fig, ax, summary, "mock: the coupling geometry is an input, not a finding")


LOCALISATION_FIGURE = "localisation_vs_size"


def localisation_figure(summary: pd.DataFrame):
    """Weight of the VBM and CBM on the core atoms vs edge length (mean, bars: spread over the printed
    frames); circles core-only, squares core/shell. Placeholder text without data."""
    from qdphonon.figures.campaign import edge_lengths_nm

    fig = new_figure(5.5, 3.8)
    ax = fig.subplots(1, 1)
    edge = edge_lengths_nm(summary)
    is_cs = np.nan_to_num(pd.to_numeric(summary.get("shell_layers", pd.Series([0] * len(summary))), errors="coerce")) > 0
    drawn = False
    for i, band in enumerate(("vbm", "cbm")):
        if f"{band}_core_weight" not in summary:
            continue
        w = pd.to_numeric(summary[f"{band}_core_weight"], errors="coerce").to_numpy(dtype=float)
        sd = pd.to_numeric(summary.get(f"{band}_core_weight_sd", pd.Series([np.nan] * len(summary))), errors="coerce")
        for cs, marker, kind in ((False, "o", "core-only"), (True, "s", "core/shell")):
            sel = (is_cs == cs) & np.isfinite(w) & np.isfinite(edge)
            if sel.any():
                order = np.argsort(edge[sel])
                ax.errorbar(edge[sel][order], w[sel][order], yerr=np.nan_to_num(sd.to_numpy(dtype=float)[sel][order]),
                            fmt=marker + ("-" if not cs else ""), color=f"C{i}", capsize=2,
                            label=f"{band.upper()}, {kind}", mfc="none" if band == "cbm" else None)  # fmt: skip
                drawn = True
    if not drawn:
        ax.text(0.5, 0.5, "no localisation.csv in this campaign\n(md.localisation_every_steps is null)", ha="center",
                va="center", transform=ax.transAxes)  # fmt: skip
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("edge length (nm)")
    ax.set_ylabel("weight on the core atoms")
    ax.set_title("where the band edges live (bars: spread over MD frames)")
    ax.legend(fontsize=7, frameon=False, loc="lower right")
    return _with_provenance(fig, ax, summary, "mock: where the band edges live is an input, not a finding")


CLAIMS_FIGURES = {"attribution": (attribution_figure, ATTRIBUTION_FIGURE),
                  "localisation": (localisation_figure, LOCALISATION_FIGURE)}  # fmt: skip


def plot_claims(summary_csv: str | os.PathLike, outdir: str | os.PathLike,
                figures: Sequence[str] = ("attribution",)) -> Sequence:  # fmt: skip
    """Write the named claims figures (PNG + PDF) from a campaign summary.csv; return their paths."""
    summary = read_summary(summary_csv)
    paths = []
    for name in figures:
        make, stem = CLAIMS_FIGURES[name]
        paths += list(save_figure(make(summary), outdir, stem))
    return paths


def _with_provenance(fig, ax, summary: pd.DataFrame, mock_note: str):
    """The figure with its provenance banner, and ``mock_note`` in the axes when the rows are the mock's."""
    synthetic, xtb, levels = _flags([], summary)
    if synthetic:
        ax.text(0.02, 0.98, mock_note, transform=ax.transAxes, fontsize=6.5, color="crimson", va="top")
    annotate_provenance(fig, synthetic, xtb, levels)
    return fig
