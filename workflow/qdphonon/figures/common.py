"""What every figure of qdphonon shares: reading an analysis directory, the provenance strip
(``synthetic data (mock engine)``, ``level: ...``, the GFN1-xTB note), layout, size titles and
reproducible PNG/PDF output. The figures themselves are in :mod:`qdphonon.figures.campaign`."""

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
RC_PARAMS = {"svg.hashsalt": "qdphonon", "figure.dpi": 100, "savefig.dpi": 150, "font.size": 9}


# ----------------------------------------------------------------------------- loading
def load_analysis_dir(path: str | os.PathLike) -> dict:
    """``{'dir', 'system', 'linewidth', 'spectrum', 'vdos', 'lineshape'}`` from an analysis directory
    (tables are DataFrames, None when the file is absent)."""
    path = Path(path)
    lw_path = path / "linewidth.json"
    if not lw_path.is_file():
        raise FileNotFoundError(f"{lw_path}: linewidth.json not found")
    lw = json.loads(lw_path.read_text(encoding="utf-8"))

    def table(name):
        return pd.read_csv(path / name) if (path / name).is_file() else None

    return {"dir": str(path), "system": lw.get("system") or path.name, "linewidth": lw,
            "spectrum": table("spectral_density.csv"), "vdos": table("vdos.csv"), "lineshape": table("lineshape.csv")}  # fmt: skip


def _levels(linewidths: Sequence[dict], summary: pd.DataFrame | None = None) -> tuple[bool, list[str]]:
    """(synthetic, levels) over everything a figure shows; synthetic data are level ``mock``."""
    synthetic = any(bool(lw.get("synthetic")) for lw in linewidths)
    levels = ["mock" if lw.get("synthetic") else str(lw.get("level") or "") for lw in linewidths]
    if summary is not None and len(summary):
        syn = summary["synthetic"].astype(str).str.lower().isin(["true", "1"]) if "synthetic" in summary else None
        if syn is not None:
            synthetic |= bool(syn.any())
        if "level" in summary:
            levels += ["mock" if (syn is not None and syn.iloc[i]) else str(x) for i, x in enumerate(summary["level"])]
    return synthetic, sorted({lv for lv in levels if lv and lv != "nan"})


def _flags(linewidths: Sequence[dict], summary: pd.DataFrame | None = None) -> tuple[bool, bool, list[str]]:
    """(synthetic, xtb, levels) over everything a figure shows."""
    synthetic, levels = _levels(linewidths, summary)
    return synthetic, any("xtb" in lv.lower() for lv in levels), levels


def annotate_provenance(fig: Figure, synthetic: bool, xtb: bool, levels: Sequence[str] = ()) -> None:
    """Put the synthetic-data label, ``level: ...`` and the xTB note in the strip kept free at the top."""
    from matplotlib.transforms import offset_copy

    x_pt = 4.0
    items = []
    if synthetic:
        items.append((SYNTHETIC_LABEL, dict(color="crimson", fontsize=10, fontweight="bold"), 190.0))
    if levels:
        items.append((f"level: {', '.join(levels)}", dict(color="crimson" if synthetic else "dimgray", fontsize=9), 90.0))
    if xtb:
        items.append((XTB_LABEL, dict(color="dimgray", fontsize=8, style="italic"), 0.0))
    for text, style, width in items:
        tr = offset_copy(fig.transFigure, fig=fig, x=x_pt, y=-2.0, units="points")
        fig.text(0.0, 1.0, text, transform=tr, ha="left", va="top", **style)
        x_pt += width


def new_figure(width_in: float, height_in: float) -> Figure:
    """A constrained-layout Figure with a 0.25 inch strip at the top kept free for provenance labels
    (at least 6 inch wide so that the labels fit side by side)."""
    from matplotlib.layout_engine import ConstrainedLayoutEngine

    width_in = max(width_in, 6.0)
    fig = Figure(figsize=(width_in, height_in))
    fig.set_layout_engine(ConstrainedLayoutEngine(rect=(0.0, 0.0, 1.0, 1.0 - 0.25 / height_in)))
    return fig


def figure_texts(fig: Figure) -> list[str]:
    """Every text string drawn on a figure (figure texts, titles, labels, legends, annotations)."""
    return [t.get_text() for t in fig.findobj(matplotlib.text.Text) if t.get_text()]


def size_title(lw: dict, fallback: str) -> str:
    """``"2.4 nm cube"``, ``"3.5 nm core/shell"``, ``"1.8x1.8x2.3 nm cuboid"`` from a linewidth.json's
    structure keys; ``fallback`` (the system name) when the size is unknown."""
    edge = lw.get("edge_nm")
    if isinstance(edge, (int, float)):
        edge = [edge] * 3
    if not isinstance(edge, (list, tuple)) or len(edge) != 3 or any(e is None for e in edge):
        return fallback
    shape = "cube" if max(edge) - min(edge) < 1e-6 else "cuboid"
    size = f"{edge[0]:.1f} nm" if shape == "cube" else "×".join(f"{e:.1f}" for e in edge) + " nm"
    return f"{size} core/shell" if lw.get("shell_layers") else f"{size} {shape}"


def _grid(fig: Figure, n: int, sharey: bool = False):
    ncols = min(3, max(n, 1))
    nrows = math.ceil(max(n, 1) / ncols)
    return np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False, sharey=sharey)).ravel()


def _placeholder(fig: Figure, message: str) -> None:
    ax = fig.subplots()
    ax.set_axis_off()
    ax.text(0.5, 0.5, message, ha="center", va="center", fontsize=12, transform=ax.transAxes)


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
