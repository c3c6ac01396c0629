"""Figure of one system by both routes (docs/physics.md §5.6): cumulative lambda vs phonon energy
(MD bins and harmonic modes on one axis), and lambda and the widths with the MD route's interval."""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from qdphonon.analysis.route_comparison import QUANTITIES, compare_routes, cumulative_lambda, load_route_dir
from qdphonon.figures.common import _flags, annotate_provenance, new_figure, save_figure, size_title


def route_figure(md: dict, md_spectrum, harmonic: dict, harmonic_modes):
    """Left: lambda(<= hbar w) of the MD route (its rectangular spectrum, bins) and of the harmonic route
    (modes, steps). Right: each compared quantity, MD with its interval, harmonic as a diamond."""
    fig = new_figure(9.0, 3.8)
    left, right = fig.subplots(1, 2, width_ratios=(1.4, 1.0))
    e_md, c_md = cumulative_lambda(md_spectrum["energy_meV"].to_numpy(), md_spectrum["S"].to_numpy())
    e_h, c_h = cumulative_lambda(harmonic_modes["energy_meV"].to_numpy(), harmonic_modes["S"].to_numpy())
    left.step(np.r_[0.0, e_md], np.r_[0.0, c_md], where="post", color="C0",
              label=f"MD route, T_md = {md.get('md_temperature_K'):g} K (bins of {md.get('frequency_resolution_meV', 0):.2g} meV)")
    left.step(np.r_[0.0, e_h], np.r_[0.0, c_h], where="post", color="C3", ls="--", label="harmonic route (modes)")
    left.set_xlabel("phonon energy ħω (meV)")
    left.set_ylabel("λ(≤ ħω) (meV)")
    top = max(float(md.get("band_cutoff_meV") or 0.0), float(e_h.max(initial=0.0)))
    left.set_xlim(0.0, 1.15 * top if top > 0 else float(e_md.max(initial=1.0)))
    left.legend(fontsize=7, frameon=False, loc="lower right")
    rows = compare_routes(md, harmonic)
    labels = dict(QUANTITIES)
    labelled: set[str] = set()

    def once(label: str) -> str | None:
        if label in labelled:
            return None
        labelled.add(label)
        return label

    for i, r in enumerate(rows):
        if r.md_interval is not None:
            lo, hi = r.md_interval
            right.errorbar(i, r.md, yerr=[[r.md - lo], [hi - r.md]], fmt="o", color="C0", capsize=3,
                           label=once("MD (interval)"))  # fmt: skip
        else:
            right.plot(i, r.md, "o", color="C0", mfc="white", label=once("MD (no interval)"))
        right.plot(i, r.harmonic, "D", color="C3", label=once("harmonic"))
    right.set_xticks(range(len(rows)), [labels[r.quantity].split(" (")[0].replace(" at report_temperature_K", "")
                                        for r in rows], rotation=20, ha="right", fontsize=7)  # fmt: skip
    right.set_ylabel(f"meV (widths at {md.get('report_temperature_K'):g} K)")
    right.legend(fontsize=7, frameon=False)
    left.set_title(f"{size_title(md, str(md.get('system')))}: MD route vs harmonic route", fontsize=9)
    synthetic, xtb, levels = _flags([md, harmonic])
    if synthetic:
        left.text(0.02, 0.98, "mock: both routes are synthetic and harmonic by construction;\n"
                              "their agreement is built in, not found", transform=left.transAxes, fontsize=6.5,
                  color="crimson", va="top")  # fmt: skip
    annotate_provenance(fig, synthetic, xtb, levels)
    return fig


def plot_routes(md_dir: str | os.PathLike, harmonic_dir: str | os.PathLike, outdir: str | os.PathLike,
                stem: str) -> Sequence:  # fmt: skip
    """Write ``stem``.png/.pdf into ``outdir`` from the two routes' analysis directories."""
    md, spectrum = load_route_dir(md_dir, modes=False)
    harmonic, modes = load_route_dir(harmonic_dir, modes=True)
    return save_figure(route_figure(md, spectrum, harmonic, modes), outdir, stem)
