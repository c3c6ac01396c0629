"""Where the band edges live: the weight of the VBM (HOMO) and CBM (LUMO) on each region of the dot,
per printed MD step, from CP2K's ``&PDOS``/``&LDOS`` print (:mod:`qdphonon.cp2k.localisation`).

Weights are CP2K's projections of each orbital on the atoms of a list (Mulliken-type, summed over
angular momenta); over lists that partition the atoms they sum to 1 per orbital within the print's
8 decimals (``weight_sum_max_deviation`` reports it).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from qdphonon.metadata import write_table
from qdphonon.parsers.pdos import ListPDOS, read_list_pdos

WEIGHT_SUM_TOLERANCE = 1e-6
"""Largest accepted |sum over regions - 1| of an orbital's weights (8 printed decimals, a few lists)."""


def frontier_weights(lists: Sequence[ListPDOS], region_names: Sequence[str], homo_index: int,
                     timestep_fs: float | None = None) -> pd.DataFrame:  # fmt: skip
    """One row per printed step: ``step`` (``time_fs``), ``vbm_<region>`` and ``cbm_<region>`` weights,
    and ``vbm_weight_sum``/``cbm_weight_sum``. ``lists[k]`` is the print's list k+1, ``region_names[k]`` its region.

    ValueError when the lists disagree on steps or orbitals, the HOMO/LUMO was not printed, or the
    weights of an orbital do not sum to 1 (the lists do not partition the atoms).
    """
    if len(lists) != len(region_names) or not lists:
        raise ValueError(f"{len(lists)} PDOS list files for regions {list(region_names)}")
    steps = lists[0].step
    for lst in lists[1:]:
        if not np.array_equal(lst.step, steps) or not np.array_equal(lst.index, lists[0].index):
            raise ValueError(f"{lst.path}: steps or orbitals differ from those of {lists[0].path}")
    index = list(lists[0].index)
    missing = [o for o in (homo_index, homo_index + 1) if o not in index]
    if missing:
        raise ValueError(f"{lists[0].path}: orbital(s) {missing} not printed (HOMO {homo_index}); raise NLUMO")
    out = {"step": steps}
    if timestep_fs is not None:
        out["time_fs"] = steps * float(timestep_fs)
    for edge, orb in (("vbm", homo_index), ("cbm", homo_index + 1)):
        j = index.index(orb)
        total = np.zeros(len(steps))
        for lst, name in zip(lists, region_names):
            out[f"{edge}_{name}"] = lst.weight[:, j]
            total += lst.weight[:, j]
        out[f"{edge}_weight_sum"] = total
        worst = float(np.max(np.abs(total - 1.0)))
        if worst > WEIGHT_SUM_TOLERANCE * len(lists) * 10:
            raise ValueError(f"{lists[0].path}: the {edge.upper()} weights sum to {total[np.argmax(np.abs(total - 1))]:.8f}, "
                             "not 1: the lists do not cover every atom once")  # fmt: skip
    return pd.DataFrame(out)


def localisation_summary(df: pd.DataFrame, region_names: Sequence[str]) -> dict:
    """Mean and standard deviation over the printed steps of every ``vbm_<region>``/``cbm_<region>`` weight."""
    out = {}
    for edge in ("vbm", "cbm"):
        for name in region_names:
            col = df[f"{edge}_{name}"]
            out[f"{edge}_weight_{name}_mean"] = float(col.mean())
            out[f"{edge}_weight_{name}_std"] = float(col.std(ddof=1)) if len(col) > 1 else None
    return out


def write_localisation(pdos_files: Sequence[str | os.PathLike], region_names: Sequence[str], homo_index: int,
                       out_csv: str | os.PathLike, metadata: dict, timestep_fs: float | None = None) -> pd.DataFrame:  # fmt: skip
    """Read the list files, write ``localisation.csv`` and its sidecar (``metadata`` plus the summary)."""
    lists = [read_list_pdos(p) for p in pdos_files]
    df = frontier_weights(lists, region_names, homo_index, timestep_fs)
    meta = {**metadata, "regions": list(region_names), "homo_index": int(homo_index),
            "synthetic": bool(metadata.get("synthetic") or any(x.synthetic for x in lists)),
            "weight_sum_max_deviation": float(max(np.abs(df["vbm_weight_sum"] - 1).max(), np.abs(df["cbm_weight_sum"] - 1).max())),
            "summary": localisation_summary(df, region_names), "sources": [str(p) for p in pdos_files]}  # fmt: skip
    meta.setdefault("level", None)
    write_table(df, Path(out_csv), meta)
    return df
