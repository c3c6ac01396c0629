"""Files of one analysed system: ``spectral_density.csv``, ``linewidth.json``, ``vdos.csv``, ``lineshape.csv``.

Tables go through :func:`qdphonon.metadata.write_table` (plain CSV + JSON sidecar); what they are
(level, synthetic, temperatures, window) is in the sidecar, never in comment lines.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np

from qdphonon.analysis.lineshape import Lineshape, write_lineshape
from qdphonon.analysis.spectrum import MAIN_LOBE_BINS
from qdphonon.analysis.vdos import VibrationalDOS
from qdphonon.metadata import write_table

SPECTRUM_COLUMNS = {
    "energy_meV": ("meV", "bin energy hbar w_k = 2 pi hbar k / (N dt), k >= 1"),
    "S": ("1", "paper Eq. 1: F_k^2 / (4 hbar w_k k_B T_md), rectangular periodogram, replica mean; "
               "used for the quantum width, the weight above the band and the lineshape"),
    "S_hw_meV": ("meV", "S_k hbar w_k (sums to lambda_meV)"),
    "S_window": ("1", "Hann-windowed estimate rescaled to the same variance: what the region sums use"),
    "S_hw_smoothed_meV": ("meV", "S_hw_meV smoothed with a Gaussian of FWHM = the Hann main lobe (display only; same sum)"),
}


def json_clean(obj):
    """Strict-JSON form: numpy scalars to Python, NaN/inf to None, denormals to 0, tuples to lists."""
    if isinstance(obj, dict):
        return {k: json_clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_clean(v) for v in obj]
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        obj = float(obj)
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, float) and 0.0 < abs(obj) < sys.float_info.min:
        return 0.0  # a denormal: a vanishing weight, written as 0
    return obj


def smoothed_for_display(values: np.ndarray, fwhm_bins: float) -> np.ndarray:
    """Gaussian smoothing over ``fwhm_bins`` bins, reflecting at the ends so the sum is kept."""
    from scipy.ndimage import gaussian_filter1d

    v = np.asarray(values, dtype=float)
    return gaussian_filter1d(v, fwhm_bins / 2.3548200450309493, mode="reflect") if v.size > 1 else v


def table_metadata(result: dict) -> dict:
    """The sidecar fields every table of a system shares."""
    keys = ("system", "synthetic", "level", "md_temperature_K", "report_temperature_K", "window",
            "frequency_resolution_meV", "n_replicas", "band_cutoff_meV")  # fmt: skip
    return {k: result.get(k) for k in keys}


def spectral_density_frame(energy_meV: np.ndarray, S: np.ndarray, S_window: np.ndarray, window: str):
    import pandas as pd

    s_hw = S * energy_meV
    return pd.DataFrame({"energy_meV": energy_meV, "S": S, "S_hw_meV": s_hw, "S_window": S_window,
                         "S_hw_smoothed_meV": smoothed_for_display(s_hw, MAIN_LOBE_BINS.get(window, 4))})  # fmt: skip


def write_analysis(outdir, result: dict, energy_meV: np.ndarray, S: np.ndarray, S_window: np.ndarray | None = None,
                   vdos: VibrationalDOS | None = None, lineshape: Lineshape | None = None) -> list[Path]:
    """Write the system's files into ``outdir`` (each table with its JSON sidecar); return the paths."""
    import pandas as pd

    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    meta = table_metadata(result)
    written = []
    S_window = S if S_window is None else S_window
    sd = spectral_density_frame(energy_meV, S, S_window, result.get("window") or "hann")
    written += write_table(sd, out / "spectral_density.csv", {
        **meta, "units": {k: u for k, (u, _) in SPECTRUM_COLUMNS.items()},
        "columns_meaning": {k: d for k, (_, d) in SPECTRUM_COLUMNS.items()}})  # fmt: skip
    path = out / "linewidth.json"
    path.write_text(json.dumps(json_clean(result), indent=2, allow_nan=False) + "\n", encoding="utf-8")
    written.append(path)
    if vdos is not None:
        cols = {"energy_meV": vdos.energy_meV, "total": vdos.total, **vdos.projections}
        written += write_table(pd.DataFrame(cols), out / "vdos.csv", {
            **meta, "n_dof": vdos.n_dof, "rigid_motion_removed": vdos.rigid_motion_removed,
            "rigid_kinetic_fraction": vdos.rigid_kinetic_fraction,
            "units": {"energy_meV": "meV", "total": "1/meV"}})  # fmt: skip
    if lineshape is not None:
        written += write_lineshape(out / "lineshape.csv", lineshape, result["gap_mean_eV"], result["fwhm_meV"],
                                   {k: v for k, v in meta.items() if k != "report_temperature_K"})  # fmt: skip
    return written
