"""A small Python API to a finished (or partial) campaign's ``results/`` tree, as pandas objects.

Example::

    from qdphonon import results

    r = results.load("results")
    r.summary[["system", "edge_nm", "lambda_meV", "fwhm_meV", "level"]]
    r.band_edges["cspbbr3_4x4x4"]["r0"]          # step, time_fs, vbm_eV, cbm_eV, gap_eV, scf_converged
    r.spectra["cspbbr3_4x4x4"]                   # energy_meV, S, S_hw_meV
    r.linewidths.loc["cspbbr3_4x4x4", "fwhm_meV"]
    r.metadata("band_edges/cspbbr3_4x4x4/r0.csv")   # the table's JSON sidecar

Only reading; nothing is computed here. Tables come from :func:`pandas.read_csv` with no
options, their metadata from the JSON sidecars (:mod:`qdphonon.metadata`).
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import pandas as pd

from qdphonon.metadata import read_table_metadata


@dataclasses.dataclass
class CampaignResults:
    """One campaign's tables.

    ``summary``: one row per system (``summary.csv``), None before the summary exists.
    ``band_edges``: system -> replica -> DataFrame. ``spectra``, ``vdos``: system -> DataFrame.
    ``linewidths``: one row per system from the ``linewidth.json`` files (scalar keys only),
    indexed by system; ``linewidth_records`` keeps the full JSON.
    """

    root: Path
    summary: pd.DataFrame | None
    band_edges: dict[str, dict[str, pd.DataFrame]]
    spectra: dict[str, pd.DataFrame]
    vdos: dict[str, pd.DataFrame]
    linewidths: pd.DataFrame
    linewidth_records: dict[str, dict[str, Any]]

    def metadata(self, table: str | os.PathLike) -> dict[str, Any]:
        """The JSON sidecar of a table, given relative to the results root or absolute."""
        path = Path(table)
        return read_table_metadata(path if path.is_absolute() else self.root / path)

    @property
    def synthetic(self) -> bool:
        """Whether any table of the campaign comes from the mock engine."""
        return any(bool(r.get("synthetic")) for r in self.linewidth_records.values())


def load(root: str | os.PathLike = "results") -> CampaignResults:
    """Read every table under ``root``; FileNotFoundError naming ``root`` when it does not exist."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: results directory not found")
    summary = pd.read_csv(root / "summary.csv") if (root / "summary.csv").is_file() else None
    band_edges: dict[str, dict[str, pd.DataFrame]] = {}
    for csv in sorted((root / "band_edges").glob("*/*.csv")):
        band_edges.setdefault(csv.parent.name, {})[csv.stem] = pd.read_csv(csv)
    spectra, vdos, records = {}, {}, {}
    for d in sorted(p for p in (root / "analysis").glob("*") if p.is_dir()):
        if (d / "spectral_density.csv").is_file():
            spectra[d.name] = pd.read_csv(d / "spectral_density.csv")
        if (d / "vdos.csv").is_file():
            vdos[d.name] = pd.read_csv(d / "vdos.csv")
        if (d / "linewidth.json").is_file():
            records[d.name] = json.loads((d / "linewidth.json").read_text())
    scalars = [{k: v for k, v in r.items() if not isinstance(v, (list, dict))} | {"system": s}
               for s, r in records.items()]  # fmt: skip
    linewidths = pd.DataFrame(scalars).set_index("system") if scalars else pd.DataFrame()
    return CampaignResults(root, summary, band_edges, spectra, vdos, linewidths, records)
