"""Figure of the anharmonicity check: per system run at several MD temperatures, lambda(T_md)/lambda(reference)
and Gamma at the report temperature extrapolated from each T_md, with intervals. Labelled synthetic for
mock data, with the caveat that the mock is harmonic by construction."""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np
import pandas as pd

from qdphonon.figures.common import annotate_provenance, new_figure, save_figure

ANHARMONICITY_FIGURE = "anharmonicity"
MOCK_NOTE = "mock engine: harmonic by construction; it cannot show anharmonicity, only exercises the chain"


def _errorbar(ax, x, y, lo, hi, **kw) -> None:
    y, lo, hi = (pd.to_numeric(v, errors="coerce").to_numpy(dtype=float) for v in (y, lo, hi))
    yerr = np.vstack([np.where(np.isfinite(lo), y - lo, 0.0), np.where(np.isfinite(hi), hi - y, 0.0)])
    ax.errorbar(x, y, yerr=yerr, capsize=3, **kw)


def anharmonicity_figure(tables: Sequence[tuple[str, pd.DataFrame, dict]]):
    """Left: lambda ratio vs T_md (1 = harmonic scaling); right: Gamma(report T) extrapolated from each
    T_md. ``tables``: (system, anharmonicity.csv, sidecar) per system. Placeholder text without data."""
    fig = new_figure(9.0, 3.8)
    ax_r, ax_g = fig.subplots(1, 2)
    report_K = None
    for i, (system, df, meta) in enumerate(tables):
        T = df["md_temperature_K"].to_numpy(dtype=float)
        _errorbar(ax_r, T, df["lambda_ratio"], df["lambda_ratio_lo"], df["lambda_ratio_hi"], marker="o", color=f"C{i}",
                  label=system)  # fmt: skip
        _errorbar(ax_g, T, df["fwhm_report_meV"], df["fwhm_report_lo_meV"], df["fwhm_report_hi_meV"], marker="s",
                  color=f"C{i}", label=system)  # fmt: skip
        report_K = meta.get("report_temperature_K", report_K)
    if not tables:
        ax_r.text(0.5, 0.5, "no system run at several MD temperatures", ha="center", va="center", transform=ax_r.transAxes)
    ax_r.axhline(1.0, color="0.5", lw=0.8, ls="--", label="harmonic scaling")
    ax_r.set_xlabel("MD temperature T_md (K)")
    ax_r.set_ylabel("λ(T_md) / λ(reference)")
    ax_r.set_title("λ = Var(δE)/2k_BT at each T_md", fontsize=9)
    ax_g.set_xlabel("MD temperature T_md (K)")
    ax_g.set_ylabel(f"Γ({report_K:g} K) extrapolated (meV)" if report_K else "Γ(report T) extrapolated (meV)")
    ax_g.set_title("Γ extrapolated from each run (Eq. 2)", fontsize=9)
    for ax in (ax_r, ax_g):
        ax.set_xscale("log")
        ax.legend(fontsize=7, frameon=False)
    synthetic = any(bool(meta.get("synthetic")) for _, _, meta in tables)
    levels = sorted({"mock" if meta.get("synthetic") else str(meta.get("level") or "") for _, _, meta in tables} - {""})
    if synthetic:
        fig.supxlabel(MOCK_NOTE, fontsize=8, color="crimson")
    annotate_provenance(fig, synthetic, any("xtb" in lv.lower() for lv in levels), levels)
    return fig


def plot_anharmonicity(tables_csv: Sequence[str | os.PathLike], outdir: str | os.PathLike) -> Sequence:
    """Write the anharmonicity figure (PNG + PDF) from ``anharmonicity.csv`` tables; return their paths."""
    from qdphonon.analysis.anharmonicity_io import read_anharmonicity

    return save_figure(anharmonicity_figure([read_anharmonicity(p) for p in tables_csv]), outdir, ANHARMONICITY_FIGURE)
