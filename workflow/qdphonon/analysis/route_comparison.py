"""The MD route and the harmonic route to the same coupling, side by side (docs/physics.md §5.6).

Both routes write ``linewidth.json`` with the same keys (``analysis/`` and ``analysis_harmonic/``).
The MD route's lambda is the gap variance at T_md divided by 2 k_B T; the harmonic route's is
``sum_k S_k hbar w_k`` from the Hessian and the gap gradient at the relaxed geometry, which does
not depend on temperature. Where the harmonic approximation and linear coupling hold at T_md
the two agree within the MD route's interval; a difference beyond it measures anharmonicity,
quadratic coupling or, for a short MD run, what its spectrum did not sample. Energies in meV.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from qdphonon.metadata import write_table

QUANTITIES: tuple[tuple[str, str], ...] = (
    ("lambda_meV", "reorganisation energy lambda (meV)"),
    ("fwhm_meV", "classical Gaussian FWHM at report_temperature_K (meV)"),
    ("fwhm_quantum_meV", "quantum Gaussian FWHM at report_temperature_K (meV)"),
    ("fwhm_lineshape_meV", "FWHM of the cumulant lineshape at report_temperature_K (meV)"),
)
"""The ``linewidth.json`` keys compared, and what each is."""

COLUMNS = {
    "quantity": "linewidth.json key",
    "md": "MD route value",
    "md_lo": "lower end of the MD route's interval (confidence_level of its linewidth.json), empty when none",
    "md_hi": "upper end of the MD route's interval, empty when none",
    "harmonic": "harmonic route value",
    "harmonic_over_md": "harmonic / md",
    "harmonic_within_md_interval": "True when the harmonic value lies inside the MD route's interval, empty when "
                                   "the MD route has none",
}


@dataclasses.dataclass(frozen=True)
class RouteRow:
    """One quantity from both routes; ``md_interval`` None when the MD route gave none."""

    quantity: str
    md: float
    md_interval: tuple[float, float] | None
    harmonic: float

    @property
    def harmonic_over_md(self) -> float:
        return self.harmonic / self.md if self.md else float("nan")

    @property
    def harmonic_within_md_interval(self) -> bool | None:
        if self.md_interval is None:
            return None
        lo, hi = self.md_interval
        return bool(lo <= self.harmonic <= hi)


def compare_routes(md: dict, harmonic: dict) -> list[RouteRow]:
    """Rows for :data:`QUANTITIES` present in both records; ValueError when the records are not of the
    two routes of one system at one report temperature."""
    if (md.get("route") or "md") != "md" or harmonic.get("route") != "harmonic":
        raise ValueError(f"expected an MD and a harmonic linewidth.json, got routes {md.get('route') or 'md'!r} "
                         f"and {harmonic.get('route')!r}")  # fmt: skip
    if md.get("system") != harmonic.get("system"):
        raise ValueError(f"the records are of two systems: {md.get('system')!r} and {harmonic.get('system')!r}")
    if md.get("report_temperature_K") != harmonic.get("report_temperature_K"):
        raise ValueError(f"report temperatures differ: {md.get('report_temperature_K')} K (md) and "
                         f"{harmonic.get('report_temperature_K')} K (harmonic)")  # fmt: skip
    rows = []
    for key, _ in QUANTITIES:
        a, b = md.get(key), harmonic.get(key)
        if a is None or b is None:
            continue
        interval = md.get(f"{key}_interval")
        rows.append(RouteRow(key, float(a), tuple(map(float, interval)) if interval else None, float(b)))
    return rows


def cumulative_lambda(energy_meV: np.ndarray, S: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """lambda(<= hbar w) = sum over bins or modes up to hbar w of S hbar w (meV), sorted by energy: the
    grid-independent way to lay a binned spectrum beside a list of modes."""
    order = np.argsort(energy_meV)
    e = np.asarray(energy_meV, float)[order]
    return e, np.cumsum(np.asarray(S, float)[order] * e)


def load_route_dir(path: str | os.PathLike, modes: bool) -> tuple[dict, pd.DataFrame]:
    """``linewidth.json`` and the spectrum of one route's analysis directory (``spectral_density_modes.csv``
    for the harmonic route, ``spectral_density.csv`` for the MD route)."""
    path = Path(path)
    record = json.loads((path / "linewidth.json").read_text())
    table = pd.read_csv(path / ("spectral_density_modes.csv" if modes else "spectral_density.csv"))
    return record, table


def write_route_comparison(md_dir: str | os.PathLike, harmonic_dir: str | os.PathLike,
                           out_csv: str | os.PathLike) -> pd.DataFrame:  # fmt: skip
    """``route_comparison.csv`` (one row per quantity, :data:`COLUMNS`) with its sidecar; returns the table."""
    md, _ = load_route_dir(md_dir, modes=False)
    harmonic, _ = load_route_dir(harmonic_dir, modes=True)
    rows = compare_routes(md, harmonic)
    table = pd.DataFrame({
        "quantity": [r.quantity for r in rows],
        "md": [r.md for r in rows],
        "md_lo": [r.md_interval[0] if r.md_interval else None for r in rows],
        "md_hi": [r.md_interval[1] if r.md_interval else None for r in rows],
        "harmonic": [r.harmonic for r in rows],
        "harmonic_over_md": [r.harmonic_over_md for r in rows],
        "harmonic_within_md_interval": [r.harmonic_within_md_interval for r in rows],
    })  # fmt: skip
    synthetic = bool(md.get("synthetic")) or bool(harmonic.get("synthetic"))
    meta = {
        "system": md.get("system"), "synthetic": synthetic,
        "level": "mock" if synthetic else ",".join(sorted({str(md.get("level")), str(harmonic.get("level"))})),
        "md_temperature_K": md.get("md_temperature_K"), "report_temperature_K": md.get("report_temperature_K"),
        "confidence_level": md.get("confidence_level"), "md_error_method": md.get("error_method"),
        "quantities": dict(QUANTITIES), "column_notes": COLUMNS,
        "comparison_note": "the harmonic route's lambda does not depend on temperature; the MD route's is measured at "
                "md_temperature_K. Agreement within the MD interval is what the harmonic approximation and "
                "linear coupling predict at that temperature" + (" (mock data: both routes are synthetic and "
                "harmonic by construction, so agreement is built in, not found)" if synthetic else ""),
        "inputs": {"md": str(Path(md_dir) / "linewidth.json"), "harmonic": str(Path(harmonic_dir) / "linewidth.json")},
    }  # fmt: skip
    write_table(table, out_csv, meta)
    return table
