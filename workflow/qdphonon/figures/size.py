"""The size-dependence figure (seed Fig. 2d): S_R per region and Γ(T) against edge length, from summary.csv.

What a referee needs to see, nothing hidden: core/shell points are drawn :data:`CORE_SHELL_DODGE_nm`
to the right of the core-only points of the same edge (said in the legend); quantum-corrected Γ
is a cross drawn over the classical (Eq. 2) marker; points whose system carries a warning
(summary.csv ``warnings``) are hollow; the study's core-only and core/shell values have their own
legend entries, with their numbers in the legend rather than in annotations that could leave the axes.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from qdphonon.figures.common import _flags, annotate_provenance, new_figure

REFERENCE_LABEL = "study (DFT)"
MOCK_CALIBRATION_LABEL = "the mock engine is calibrated to these study values:\nagreement is by construction"
LATTICE_nm = 0.587
"""Lattice constant of the QD models (docs/physics.md §2), for edge lengths from octahedra counts."""

REFERENCE_FWHM_300K_meV: tuple[tuple[float, float, str], ...] = (
    (2.4, 164.0, "2.4 nm core-only"),
    (3.6, 126.0, "3.6 nm core-only"),
    (3.6, 90.0, "3.6 nm core/shell"),
)
"""Headline linewidths at 300 K of the seed study (Nat. Commun. 2022, DFT): (edge nm, FWHM meV, label)."""

CORE_SHELL_DODGE_nm = 0.08
"""Core/shell points are drawn this far right of their true edge, so they never hide behind core-only ones."""

REGION_DODGE_nm = 0.04
"""In the S_R panel, neighbouring regions are drawn this far apart (centred on the edge), so equal values stay visible."""

REAL_MARKERS = {"md": "D", "harmonic": "^"}
"""Markers of the shipped real results (:func:`real_points`), per route."""

HOLLOW_LABEL = "hollow: a warning qualifies the number (summary.csv warnings)"
KINDS = {False: ("o", "x", "core-only"), True: ("s", "+", "core/shell")}
"""shell? -> (classical/S marker, quantum marker, label)."""


def _num(series: pd.Series) -> np.ndarray:
    return pd.to_numeric(series, errors="coerce").to_numpy(float)


def _col(summary: pd.DataFrame, name: str) -> np.ndarray:
    return _num(summary[name]) if name in summary else np.full(len(summary), np.nan)


def _region_names_from_summary(summary: pd.DataFrame) -> list[str]:
    return [c[2:] for c in summary.columns if c.startswith("S_") and not c.endswith("_err")]


def warned_rows(summary: pd.DataFrame) -> np.ndarray:
    """True for rows whose ``warnings`` column names at least one warning kind."""
    if "warnings" not in summary:
        return np.zeros(len(summary), bool)
    return summary["warnings"].fillna("").astype(str).str.strip().ne("").to_numpy()


def edge_lengths_nm(summary: pd.DataFrame) -> np.ndarray:
    """Mean edge length per row: the summary's ``edge_nm``, else the octahedra counts ``nx, ny, nz``
    times the lattice constant (:data:`LATTICE_nm`); NaN when neither is there."""
    if "edge_nm" in summary:
        return _num(summary["edge_nm"])
    if all(c in summary for c in ("nx", "ny", "nz")):
        return np.mean([_num(summary[c]) for c in ("nx", "ny", "nz")], axis=0) * LATTICE_nm
    return np.full(len(summary), np.nan)


def _edge_axis(ax, summary: pd.DataFrame, categorical: bool) -> None:
    if categorical:
        ax.set_xticks(range(len(summary)), summary["system"].astype(str).tolist(), rotation=30, ha="right")
        ax.set_xlabel("system (no size information)")
    else:
        ax.set_xlabel("edge length (nm)")


def _err(values: np.ndarray) -> np.ndarray | None:
    """Error-bar array with NaN (null: no estimate) drawn as no bar; None when there is none at all."""
    return None if np.all(np.isnan(values)) else np.nan_to_num(values, nan=0.0)


def _hollow(ax, x, y, hollow, marker, color, ms, zorder) -> None:
    """White-filled markers over the points ``hollow`` (the series keeps its full data and legend entry)."""
    if hollow.any():
        ax.plot(x[hollow], y[hollow], marker, ls="none", mfc="white", mec=color, ms=ms, zorder=zorder + 0.5,
                label="_hollow")  # fmt: skip


def _legend(ax, extra: list[Line2D]) -> None:
    """The axis' legend below it, one entry a line, with ``extra`` proxy entries."""
    handles, labels = ax.get_legend_handles_labels()
    ax.legend(handles + extra, labels + [h.get_label() for h in extra], fontsize=6.5, frameon=False,
              loc="upper left", bbox_to_anchor=(0.0, -0.14), ncol=1)  # fmt: skip


def real_points(level: str | None = "pbe") -> pd.DataFrame:
    """The real results the package ships (``data/real_points.csv``, made by validation/real_points.py from
    the validation archives) at ``level`` (None: all levels)."""
    from importlib.resources import files

    with files("qdphonon").joinpath("data/real_points.csv").open("r", encoding="utf-8") as fh:
        table = pd.read_csv(fh)
    return table if level is None else table[table["level"] == level].reset_index(drop=True)


def _real_label(rows: pd.DataFrame, route: str) -> str:
    parts = []
    for r in rows.itertuples():
        interval = f" [{r.fwhm_lo_meV:.0f}–{r.fwhm_hi_meV:.0f}]" if np.isfinite(r.fwhm_lo_meV) else " (no sampling error)"
        parts.append(f"{r.formula} {r.fwhm_meV:.0f} meV{interval}")
    sources = ", ".join(sorted(set(rows["source"])))
    return f"real {str(rows['level'].iloc[0]).upper()}, {route} route ({sources}): " + "; ".join(parts)


def _draw_real(ax, real: pd.DataFrame) -> list[float]:
    """Γ of the shipped real results (one marker per route, 68 % interval where the route has one); returns
    their tops for the axis range."""
    tops = []
    for route, rows in real.groupby("route", sort=True):
        lo, hi, y = (rows[c].to_numpy(float) for c in ("fwhm_lo_meV", "fwhm_hi_meV", "fwhm_meV"))
        yerr = np.vstack([y - lo, hi - y]) if np.isfinite(lo).all() else None
        ax.errorbar(rows["edge_nm"].to_numpy(float), y, yerr=yerr, fmt=REAL_MARKERS.get(route, "v"), color="C2", ms=8, capsize=3,
                    ls="none", zorder=5, label=_real_label(rows, route))  # fmt: skip
        tops += list(np.where(np.isfinite(hi), hi, y))
    return tops


def size_dependence_figure(summary: pd.DataFrame, real: pd.DataFrame | None = None) -> Figure:
    """S_R per region and Γ vs edge length with error bars, classical (Eq. 2) and quantum-corrected, and
    the study's reference values (seed Fig. 2d); with mock data, says the mock is calibrated to them.
    ``real``: real results drawn beside the campaign's own in the Γ panel (:func:`real_points`)."""
    fig = new_figure(11.0, 6.4)
    ax_s, ax_g = fig.subplots(1, 2)
    edge = edge_lengths_nm(summary)
    order = np.argsort(np.nan_to_num(edge, nan=np.inf), kind="stable")
    summary, edge = summary.iloc[order].reset_index(drop=True), edge[order]
    categorical = bool(np.all(np.isnan(edge)))
    if categorical:
        edge = np.arange(len(summary), dtype=float)
    is_cs = np.nan_to_num(_col(summary, "shell_layers")) > 0
    dodge = 0.0 if categorical else CORE_SHELL_DODGE_nm
    x = edge + np.where(is_cs, dodge, 0.0)
    warned = warned_rows(summary)
    cs_note = f" (drawn {dodge:g} nm right)" if dodge and is_cs.any() else ""

    regions = _region_names_from_summary(summary)
    region_dodge = 0.0 if categorical else REGION_DODGE_nm
    for i, name in enumerate(regions):
        S, err = _col(summary, f"S_{name}"), _col(summary, f"S_{name}_err")
        xr = x + (i - (len(regions) - 1) / 2) * region_dodge
        res_col = f"resolved_{name}"
        resolved = summary[res_col].astype(str).str.lower().ne("false").to_numpy() if res_col in summary \
            else np.ones(len(S), bool)  # fmt: skip
        for cs in (False, True):
            marker, _, kind = KINDS[cs]
            sel, sel_u = (is_cs == cs) & resolved, (is_cs == cs) & ~resolved
            label = f"{name}, {kind}" + (cs_note if cs else "")
            if sel.any():
                ax_s.errorbar(xr[sel], S[sel], yerr=_err(err[sel]), fmt=marker + "-", color=f"C{i}", capsize=3, ms=6,
                              label=label, zorder=3 + cs)  # fmt: skip
                _hollow(ax_s, xr[sel], S[sel], warned[sel], marker, f"C{i}", 6, 3 + cs)
            if sel_u.any():
                ax_s.plot(xr[sel_u], S[sel_u], marker, mfc="white", color=f"C{i}", ms=6, ls="none", zorder=3 + cs,
                          label=f"{label}, unresolved")  # fmt: skip
    _edge_axis(ax_s, summary, categorical)
    if region_dodge and len(regions) > 1:
        ax_s.set_xlabel(f"edge length (nm); regions drawn {region_dodge:g} nm apart")
    ax_s.set_ylabel("Huang–Rhys factor $S_R$ (dimensionless)")
    ax_s.set_title("effective modes per region")
    ax_s.set_ylim(bottom=0)

    T_col = "report_temperature_K" if "report_temperature_K" in summary else "temperature_K"
    T_vals = _col(summary, T_col)
    T = float(T_vals[0]) if len(T_vals) and np.isfinite(T_vals[0]) else None
    T_txt = f"{T:g} K" if T is not None else "the report temperature"
    fw, fw_err, fq = _col(summary, "fwhm_meV"), _col(summary, "fwhm_meV_err"), _col(summary, "fwhm_quantum_meV")
    for cs in (False, True):
        marker, qmarker, kind = KINDS[cs]
        sel = is_cs == cs
        if sel.any():
            ax_g.errorbar(x[sel], fw[sel], yerr=_err(fw_err[sel]), fmt=marker + "-", color="k", capsize=3, ms=7,
                          label=f"classical (Eq. 2), {kind}" + (cs_note if cs else ""), zorder=3)  # fmt: skip
            _hollow(ax_g, x[sel], fw[sel], warned[sel], marker, "k", 7, 3)
            ax_g.plot(x[sel], fq[sel], qmarker, color="C3", ms=7, mew=1.5, ls="--", zorder=4,
                      label=f"quantum-corrected, {kind}")  # fmt: skip
    synthetic, xtb, levels = _flags([], summary)
    if not categorical:
        for shell, marker in ((False, "*"), (True, "P")):
            refs = [r for r in REFERENCE_FWHM_300K_meV if ("shell" in r[2]) == shell]
            values = ", ".join(f"{f:g} meV ({e:g} nm)" for e, f, _ in refs)
            ax_g.plot([r[0] for r in refs], [r[1] for r in refs], marker=marker, ms=15, color="goldenrod", ls="none",
                      label=f"{REFERENCE_LABEL}, {'core/shell' if shell else 'core-only'}, 300 K: {values}",
                      zorder=2)  # fmt: skip
    real_tops: list[float] = []
    if real is not None and len(real) and not categorical:
        real_tops = _draw_real(ax_g, real)
    if not categorical:
        if synthetic:
            ax_g.text(0.02, 0.015, MOCK_CALIBRATION_LABEL, transform=ax_g.transAxes, fontsize=6.5, color="crimson",
                      va="bottom", wrap=True)  # fmt: skip
    _edge_axis(ax_g, summary, categorical)
    real_x = list(real["edge_nm"]) if real_tops else []
    finite = [v for v in list(x) + real_x + ([r[0] for r in REFERENCE_FWHM_300K_meV] if not categorical else [])
              if np.isfinite(v)]  # fmt: skip
    for ax in (ax_s, ax_g):
        if finite:
            ax.set_xlim(min(finite) - 0.3, max(finite) + 0.3)
    ax_g.set_ylabel(f"FWHM Γ({T_txt}) (meV)")
    ax_g.set_title(f"thermal linewidth Γ at {T_txt} (harmonic scaling from T_md)")
    top = np.nanmax(np.concatenate([fw + np.nan_to_num(fw_err), fq, [r[1] for r in REFERENCE_FWHM_300K_meV], real_tops]))
    ax_g.set_ylim(0, 1.1 * top if np.isfinite(top) else None)
    extra = [Line2D([], [], marker="o", ls="none", mfc="white", mec="0.3", label=HOLLOW_LABEL)] if warned.any() else []
    _legend(ax_s, [])
    _legend(ax_g, extra)
    annotate_provenance(fig, synthetic, xtb, levels)
    return fig
