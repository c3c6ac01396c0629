"""The anharmonicity check on real CP2K: GFN1-xTB MD of the 11-atom dot (Cs4PbBr6) at 10, 100 and
300 K, 200 steps each, one job at a time, through the campaign to anharmonicity.csv.

400 fs per temperature (300 fs after equilibration) resolves nothing below ~14 meV and one replica leaves wide intervals: this
checks the machinery on real output (the temperatures the runs record, the grouping, the intervals,
the reference row's identity with linewidth.json), not the physics. Nothing here is synthetic.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from workflow_helpers import snakemake, write_config

pytestmark = [pytest.mark.cp2k, pytest.mark.workflow]

CONFIG = {
    "systems": [{"size": [1, 1, 1]}],
    "level": "xtb", "engine": "cp2k",
    "md": {"temperature_K": 10.0, "temperatures_K": [10, 100, 300], "timestep_fs": 2.0, "steps": 200,
           "equilibration_fs": 100.0, "replicas": 1, "trajectory_every_steps": 1},
    "scf": {"smearing_K": 300.0, "on_failure": "keep_flagged"},
    "relax": {"max_iter": 25},
}  # fmt: skip


def test_xtb_dot_at_three_temperatures_reaches_anharmonicity_csv(tmp_path, cp2k_exe):
    write_config(tmp_path, CONFIG)
    target = "results/analysis/cspbbr3_1x1x1/anharmonicity.csv"
    res = snakemake(tmp_path, "--cores", "1", target, "results/analysis/cspbbr3_1x1x1/linewidth.json", timeout_s=1500)
    assert res.returncode == 0, res.stderr[-5000:]
    results = tmp_path / "results"
    for replica, T in (("r0", 10.0), ("r0_T100K", 100.0), ("r0_T300K", 300.0)):
        record = json.loads((results / f"aimd/cspbbr3_1x1x1/{replica}/run.json").read_text())
        assert record["engine"] == "cp2k" and not record["synthetic"] and record["md_temperature_K"] == T
    table = pd.read_csv(results / "analysis/cspbbr3_1x1x1/anharmonicity.csv")
    meta = json.loads((results / "analysis/cspbbr3_1x1x1/anharmonicity.json").read_text())
    assert meta["synthetic"] is False and meta["level"] == "xtb" and "mock_caveat" not in meta
    assert table["md_temperature_K"].tolist() == [10.0, 100.0, 300.0]
    # the internal temperature of the vibrations, measured: within a factor 2 of T_md for one short run
    ratio_T = table["normalisation_temperature_K"] / table["md_temperature_K"]
    assert ((ratio_T > 0.5) & (ratio_T < 2.0)).all(), table["normalisation_temperature_K"].tolist()
    cols = ["lambda_meV", "lambda_lo_meV", "lambda_hi_meV", "lambda_ratio_lo", "lambda_ratio_hi"]
    assert np.isfinite(table[cols].to_numpy(dtype=float)).all() and (table["lambda_meV"] > 0).all()
    linewidth = json.loads((results / "analysis/cspbbr3_1x1x1/linewidth.json").read_text())
    assert table["lambda_meV"].iloc[0] == pytest.approx(linewidth["lambda_meV"], rel=1e-9)
    print(table[["md_temperature_K", "normalisation_temperature_K", "lambda_meV", "lambda_lo_meV", "lambda_hi_meV",
                 "lambda_ratio", "lambda_ratio_lo", "lambda_ratio_hi"]].to_string())  # fmt: skip
