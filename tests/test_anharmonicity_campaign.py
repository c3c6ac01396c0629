"""The anharmonicity check in a campaign: md.temperatures_K expands into replicas per temperature
(the single-temperature campaign's names, seeds and inputs unchanged), the dry run lists exactly
those jobs, and the mock chain writes anharmonicity.csv (read with pandas.read_csv and no options),
its sidecar, the summary columns and the figure, all labelled synthetic. The mock is harmonic by
construction: the chain is exercised, no anharmonicity can be found in it."""

from __future__ import annotations

import copy
import json

import pandas as pd
import pytest
from qdphonon.config import ConfigError, campaign_from_config, replica_seed, temperature_tag, validate_config
from workflow_helpers import assert_nothing_to_be_done, planned_jobs, snakemake, write_config

TINY = {
    "systems": [{"size": [1, 1, 2], "md": {"temperatures_K": [300, 10.0, 100]}}, {"size": [1, 1, 1]}],
    "engine": "mock", "level": "xtb",
    "md": {"temperature_K": 10.0, "steps": 400, "equilibration_fs": 100.0, "replicas": 1, "trajectory_every_steps": 4},
}  # fmt: skip


def systems(cfg):
    return campaign_from_config(validate_config(copy.deepcopy(cfg)))


def test_replicas_per_temperature_keep_the_single_temperature_names():
    s = systems(TINY)
    hot, plain = s["cspbbr3_1x1x2"], s["cspbbr3_1x1x1"]
    assert hot.md_temperatures_K == [10.0, 100, 300]
    assert hot.replicas == ["r0"] and hot.all_replicas == ["r0", "r0_T100K", "r0_T300K"]
    assert [hot.replica_temperature_K(r) for r in hot.all_replicas] == [10.0, 100, 300]
    assert plain.all_replicas == plain.replicas == ["r0"] and plain.md_temperatures_K == [10.0]
    assert "temperatures_K" not in plain.md  # its md (and provenance digest) as before the option existed
    assert temperature_tag(77.5) == "77p5" and temperature_tag(300.0) == "300"
    assert replica_seed(2022, hot.name, "r0") != replica_seed(2022, hot.name, "r0_T300K")
    with pytest.raises(ValueError, match="no replica 'r1'"):
        hot.replica_temperature_K("r1")


def test_cost_counts_the_replicas_of_every_temperature():
    from qdphonon.cost import campaign_cost

    cost = campaign_cost(validate_config(copy.deepcopy(TINY)))
    assert [r["replicas"] for r in cost["systems"]] == [3, 1] and cost["totals"]["replicas"] == 4


def test_temperatures_must_include_the_main_temperature():
    cfg = copy.deepcopy(TINY)
    cfg["systems"][0]["md"]["temperatures_K"] = [100, 300]
    with pytest.raises(ConfigError, match=r"^systems\[0\]\.md\.temperatures_K: .*must include md\.temperature_K \(10 K\)"):
        systems(cfg)
    cfg = copy.deepcopy(TINY)
    cfg["md"]["temperatures_K"] = [20, 300]
    with pytest.raises(ConfigError, match=r"^md\.temperatures_K: "):
        systems(cfg)
    for bad in ([10], [10, 10], [10, -5], [10, "300"]):
        cfg = copy.deepcopy(TINY)
        cfg["md"]["temperatures_K"] = bad
        with pytest.raises(ConfigError, match=r"^md\.temperatures_K"):
            systems(cfg)


def test_a_table_without_its_temperature_is_refused(tmp_path):
    from qdphonon.analysis.anharmonicity_io import anharmonicity_system

    path = tmp_path / "r0.csv"
    path.write_text("time_fs,vbm_eV,cbm_eV\n" + "".join(f"{i},0,{2 + 0.001 * (i % 3)}\n" for i in range(20)))
    with pytest.raises(ValueError, match=r"r0\.csv: no md_temperature_K in its \.json sidecar"):
        anharmonicity_system([path, path])


@pytest.mark.workflow
def test_dry_run_lists_every_temperature_and_a_single_temperature_campaign_is_unchanged(tmp_path):
    write_config(tmp_path / "multi", TINY)
    jobs = planned_jobs(snakemake(tmp_path / "multi", "-n"))
    assert jobs["write_cp2k_input"] == jobs["run_aimd"] == jobs["parse_band_edges"] == 4  # 3 temperatures + 1
    assert jobs["anharmonicity_system"] == 1 and jobs["plot_anharmonicity"] == 1 and jobs["analyze_system"] == 2
    single = copy.deepcopy(TINY)
    del single["systems"][0]["md"]
    write_config(tmp_path / "single", single)
    res = snakemake(tmp_path / "single", "-n")
    jobs = planned_jobs(res)
    assert jobs["run_aimd"] == 2 and "anharmonicity_system" not in jobs and "plot_anharmonicity" not in jobs
    assert "_T" not in res.stdout and "anharmonicity" not in res.stdout


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    work = tmp_path_factory.mktemp("anharmonic-mock")
    cfg = copy.deepcopy(TINY)
    cfg["systems"] = cfg["systems"][:1]
    write_config(work, cfg)
    res = snakemake(work, "--cores", "2")
    assert res.returncode == 0, res.stderr[-5000:]
    return work


@pytest.mark.workflow
def test_mock_chain_writes_the_table_its_sidecar_and_the_summary_columns(chain):
    out = chain / "results/analysis/cspbbr3_1x1x2"
    table = pd.read_csv(out / "anharmonicity.csv")
    assert table["md_temperature_K"].tolist() == [10.0, 100.0, 300.0]
    assert table["lambda_ratio"].iloc[0] == 1.0 and (table["error_method"] == "spectrum").all()
    assert table[["lambda_lo_meV", "lambda_hi_meV", "lambda_ratio_lo", "lambda_ratio_hi"]].notna().all().all()
    assert (table["lambda_lo_meV"] < table["lambda_meV"]).all() and (table["lambda_meV"] < table["lambda_hi_meV"]).all()
    meta = json.loads((out / "anharmonicity.json").read_text())
    assert meta["synthetic"] is True and meta["level"] == "mock" and "harmonic by construction" in meta["mock_caveat"]
    assert meta["reference_temperature_K"] == 10.0
    linewidth = json.loads((out / "linewidth.json").read_text())  # second route to the reference row
    assert table["lambda_meV"].iloc[0] == pytest.approx(linewidth["lambda_meV"], rel=1e-9)
    hot_input = (chain / "results/cp2k/cspbbr3_1x1x2/r0_T300K/md.inp").read_text()
    assert "TEMPERATURE 300.0" in hot_input
    assert json.loads((chain / "results/aimd/cspbbr3_1x1x2/r0_T300K/run.json").read_text())["md_temperature_K"] == 300.0
    summary = pd.read_csv(chain / "results/summary.csv")
    assert summary["anharmonic_md_temperature_K"].item() == 300.0
    assert summary["anharmonic_fwhm_deviation"].item() == pytest.approx(table["fwhm_deviation"].iloc[-1])
    assert (chain / "results/figures/anharmonicity.png").stat().st_size > 1000


@pytest.mark.workflow
def test_the_figure_says_synthetic_and_that_the_mock_cannot_show_anharmonicity(chain):
    from qdphonon.analysis.anharmonicity_io import read_anharmonicity
    from qdphonon.figures.common import figure_texts
    from qdphonon.figures.anharmonicity import anharmonicity_figure

    fig = anharmonicity_figure([read_anharmonicity(chain / "results/analysis/cspbbr3_1x1x2/anharmonicity.csv")])
    texts = " ".join(figure_texts(fig))
    assert "synthetic data (mock engine)" in texts and "cannot show anharmonicity" in texts


@pytest.mark.workflow
def test_finished_chain_dry_runs_to_nothing(chain):
    assert_nothing_to_be_done(snakemake(chain, "-n"))


@pytest.mark.workflow
def test_status_and_provenance_list_every_temperature(chain):
    import yaml

    from qdphonon.provenance import campaign_provenance
    from qdphonon.status import campaign_status, format_status

    cfg = validate_config(yaml.safe_load((chain / "config.yaml").read_text()))
    rows = campaign_status(chain / "results", cfg)
    assert [r["replica"] for r in rows] == ["r0", "r0_T100K", "r0_T300K"] and all(r["complete"] for r in rows)
    assert "3 of 3 replicas complete" in format_status(rows)
    (prov,) = campaign_provenance(chain / "results", cfg)
    assert prov["complete"] and [r["replica"] for r in prov["replicas"]] == ["r0", "r0_T100K", "r0_T300K"]
