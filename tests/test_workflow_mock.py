"""The default (mock) campaign end to end: outputs, byte-identical repeats, dry-run truth.

One full run of the default config (the reference study's size series) is shared by the
tests of this module; a second run in another directory checks reproducibility.
"""

from __future__ import annotations

import csv
import json
import os
import re
import time
from pathlib import Path

import pytest
import yaml

from workflow_helpers import (REPO, assert_nothing_to_be_done, default_config, files_under, planned_jobs, snakemake,
                              write_config)

pytestmark = pytest.mark.workflow

FIGURES = ("spectral_densities", "size_dependence", "core_shell_comparison", "phonon_dos")


@pytest.fixture(scope="module")
def campaign(tmp_path_factory):
    work = tmp_path_factory.mktemp("mock-campaign")
    write_config(work, default_config())
    t0 = time.monotonic()
    res = snakemake(work, "--cores", "2")
    assert res.returncode == 0, res.stderr[-5000:]
    return work, time.monotonic() - t0


def test_default_campaign_reaches_summary_and_figures(campaign):
    work, seconds = campaign
    rows = list(csv.DictReader((work / "results/summary.csv").open()))
    assert [r["system"] for r in rows] == [
        "cspbbr3_3x3x3", "cspbbr3_4x4x4", "cspbbr3_5x5x5", "cspbbr3_6x6x6", "cspbbr3_7x7x7", "cspbbr3_6x6x6_ca1"]
    for name in FIGURES:
        for ext in ("png", "pdf"):
            assert (work / "results/figures" / f"{name}.{ext}").stat().st_size > 1000


def test_mock_outputs_are_labelled_synthetic(campaign):
    work, _ = campaign
    meta = json.loads((work / "results/band_edges/cspbbr3_4x4x4/r0.json").read_text())
    assert meta["synthetic"] is True and meta["level"] == "mock" and "synthetic (mock engine)" in meta["note"]
    linewidth = json.loads((work / "results/analysis/cspbbr3_4x4x4/linewidth.json").read_text())
    assert linewidth["synthetic"] is True
    record = json.loads((work / "results/aimd/cspbbr3_4x4x4/r0/run.json").read_text())
    assert record["synthetic"] is True and record["engine"] == "mock"
    relaxed = (work / "results/relaxed/cspbbr3_4x4x4.xyz").read_text().splitlines()[1]
    assert "mock" in relaxed


def test_default_campaign_fits_in_10_MB_per_replica(campaign):
    """Positions and velocities in CP2K's binary DCD every 20 steps; nothing else is large: the
    default campaign's 32 replicas of 1500 steps take under 10 MB each, all outputs included."""
    work, _ = campaign
    total = sum(p.stat().st_size for p in (work / "results").rglob("*") if p.is_file())
    replicas = len(list((work / "results/aimd").glob("*/*/run.json")))
    assert replicas == 32
    assert total <= 10e6 * replicas, f"{total / 1e6:.0f} MB for {replicas} replicas"
    assert next((work / "results/aimd").rglob("md-pos-1.dcd"), None) is not None


def test_every_table_is_plain_csv_with_a_sidecar(campaign):
    """pandas.read_csv with no options opens every CSV; every CSV has a JSON sidecar saying mock."""
    import pandas as pd

    from qdphonon import results

    work, _ = campaign
    tables = sorted((work / "results").rglob("*.csv"))
    assert len(tables) >= 6 + 12 + 1
    for path in tables:
        df = pd.read_csv(path)
        assert len(df) > 0 and not any(str(c).startswith("#") for c in df.columns), path
        meta = json.loads(path.with_suffix(".json").read_text())
        assert meta["synthetic"] is True and "mock" in meta["level"], path
    summary = pd.read_csv(work / "results/summary.csv")
    for col in ("edge_x_nm", "edge_y_nm", "edge_z_nm", "edge_nm", "fwhm_meV", "lambda_meV"):
        assert summary[col].dtype == float, col
    assert (summary["level"] == "mock").all() and summary["config_digest"].nunique() == 1
    assert summary.loc[summary.system == "cspbbr3_4x4x4", "edge_nm"].item() == pytest.approx(4 * 0.587)
    r = results.load(work / "results")
    assert r.synthetic and list(r.summary.system) == list(summary.system)
    replicas = r.band_edges["cspbbr3_4x4x4"]
    assert len(replicas) >= 2 and set(replicas) == {f"r{i}" for i in range(len(replicas))}
    assert r.linewidths.loc["cspbbr3_4x4x4", "lambda_meV"] == pytest.approx(
        summary.loc[summary.system == "cspbbr3_4x4x4", "lambda_meV"].item(), rel=1e-6)
    assert r.metadata("band_edges/cspbbr3_4x4x4/r0.csv")["md_temperature_K"] == 10.0


def test_mock_campaign_shows_the_studys_trends(campaign):
    """Calibrated mock: linewidth falls with size and with a shell (synthetic, docs/architecture.md §4)."""
    work, _ = campaign
    rows = {r["system"]: r for r in csv.DictReader((work / "results/summary.csv").open())}
    fwhm = {k: float(v["fwhm_meV"]) for k, v in rows.items()}
    assert fwhm["cspbbr3_3x3x3"] > fwhm["cspbbr3_4x4x4"] > fwhm["cspbbr3_6x6x6"] > fwhm["cspbbr3_7x7x7"]
    assert fwhm["cspbbr3_6x6x6_ca1"] < fwhm["cspbbr3_6x6x6"]
    assert fwhm["cspbbr3_4x4x4"] == pytest.approx(164, rel=0.2)
    assert fwhm["cspbbr3_6x6x6"] == pytest.approx(126, rel=0.2)
    assert fwhm["cspbbr3_6x6x6_ca1"] == pytest.approx(90, rel=0.2)


def test_finished_campaign_dry_runs_to_nothing(campaign):
    work, _ = campaign
    assert_nothing_to_be_done(snakemake(work, "-n"))


def test_touching_package_code_schedules_no_job(campaign):
    """Editing plotting or analysis code is not a rerun trigger: the rules call the package,
    whose files are not inputs. (Re-running plots is `--forcerun plot_figures`.)"""
    work, _ = campaign
    for module in ("figures/campaign.py", "analysis/spectrum.py", "run/layout.py"):
        path = REPO / "workflow/qdphonon" / module
        st = path.stat()
        os.utime(path, None)
        try:
            res = snakemake(work, "-n")
        finally:
            os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
        assert_nothing_to_be_done(res)


def _alt_config(work: Path, cfg: dict) -> str:
    alt = work / "alt"
    alt.mkdir(exist_ok=True)
    (alt / "config.yaml").write_text(yaml.safe_dump(cfg))
    return str(alt / "config.yaml")


def test_analysis_setting_change_reruns_analysis_only(campaign):
    work, _ = campaign
    cfg = default_config()
    cfg["analysis"]["report_temperature_K"] = 250.0
    res = snakemake(work, "-n", "--configfile", _alt_config(work, cfg))
    jobs = planned_jobs(res)
    assert jobs.get("analyze_system") == 6 and "run_aimd" not in jobs and "write_cp2k_input" not in jobs, res.stdout


def test_status_check_and_cost_after_the_run_describe_this_campaign_unasked(campaign):
    """The campaign ran with ``--configfile config.yaml`` (not config/config.yaml, which this directory lacks):
    the run recorded its merged config, so the campaign commands need no --configfile."""
    import subprocess
    import sys

    work, _ = campaign
    recorded = json.loads((work / "results/campaign_config.json").read_text())
    assert [s["size"] for s in recorded["systems"]] == [s["size"] for s in default_config()["systems"]]
    env = {**os.environ, "PYTHONPATH": str(REPO / "workflow")}
    for command in ("status", "check", "cost"):
        res = subprocess.run([sys.executable, "-m", "qdphonon", command], cwd=work, capture_output=True, text=True,
                             env=env, check=False)  # fmt: skip
        assert res.returncode == 0, (command, res.stdout, res.stderr)
        assert "results/campaign_config.json (the merged config of the last snakemake run" in res.stderr, res.stderr
        assert "warning" not in res.stderr, res.stderr  # check: the summary was made with this config
    status = subprocess.run([sys.executable, "-m", "qdphonon", "status"], cwd=work, capture_output=True, text=True,
                            env=env, check=False).stdout  # fmt: skip
    assert re.search(r"\b(\d+) of \1 replicas complete", status), status


def test_launch_settings_change_reruns_no_engine_or_analysis(campaign):
    """How CP2K is launched (MPI launcher, wall-time margin, the SCF watch) defines no result: a change
    re-runs no engine, input or analysis (the settings reach the engines as literal shell text, not as
    a param, and the default profile leaves the shell text out of the rerun triggers). Only the summary
    and the recorded campaign config are re-made: they record the whole config."""
    work, _ = campaign
    cfg = default_config()
    cfg.setdefault("cp2k", {}).update(mpi_launcher="srun", walltime_margin_min=3.0)
    cfg.setdefault("scf", {})["on_failure"] = "fail"
    jobs = planned_jobs(snakemake(work, "-n", "--configfile", _alt_config(work, cfg)))
    assert jobs.get("summarize_campaign") == 1, jobs
    assert set(jobs) <= {"summarize_campaign", "report_pages", "plot_figures", "plot_claims", "plot_localisation",
                         "plot_anharmonicity", "record_campaign_config", "all"}, jobs


def test_md_change_of_one_system_touches_only_that_system(campaign):
    work, _ = campaign
    cfg = default_config()
    cfg["systems"][0]["md"] = {"steps": 3000}
    res = snakemake(work, "-n", "--configfile", _alt_config(work, cfg))
    jobs = planned_jobs(res)
    replicas = cfg["md"]["replicas"]  # one system's replicas, nothing else
    assert jobs.get("write_cp2k_input") == replicas, res.stdout + res.stderr
    assert jobs.get("run_aimd") == replicas and jobs.get("analyze_system") == 1, res.stdout
    assert "cspbbr3_4x4x4" not in "".join(l for l in res.stdout.splitlines() if "wildcards" in l)


def test_fresh_dry_run_lists_exactly_the_jobs_a_run_performs(tmp_path, campaign):
    work, _ = campaign
    write_config(tmp_path, default_config())
    planned = planned_jobs(snakemake(tmp_path, "-n"))
    performed = {}
    for log in (work / ".snakemake/log").glob("*.snakemake.log"):
        text = log.read_text()
        if "Job stats:" in text:
            from subprocess import CompletedProcess

            performed = planned_jobs(CompletedProcess(["snakemake log", str(log)], 0, text, ""))
    assert planned and planned == performed  # planned_jobs checked the dry run's exit status


def test_repeat_run_is_byte_identical(tmp_path, campaign):
    """Two of the campaign's dots run again in a fresh directory (a system's files depend only on
    its own settings and seeds) are byte for byte the same as in the full campaign."""
    work, _ = campaign
    config = default_config()
    config["systems"] = config["systems"][:2]
    write_config(tmp_path, config)
    names = ("cspbbr3_3x3x3", "cspbbr3_4x4x4")
    targets = [f"results/analysis/{n}/{f}" for n in names for f in ("linewidth.json", "attribution.csv", "localisation.csv")]
    targets.append("results/analysis/cspbbr3_3x3x3/anharmonicity.csv")
    res = snakemake(tmp_path, "--cores", "2", *targets)
    assert res.returncode == 0, res.stderr[-3000:]
    for pattern in [p.format(n=n) for n in names for p in (
            "results/structures/{n}.*", "results/cp2k/{n}/*/md.inp", "results/band_edges/{n}/*.csv",
            "results/aimd/{n}/*/md-*", "results/analysis/{n}/*.csv")]:  # fmt: skip
        first, second = files_under(work, pattern), files_under(tmp_path, pattern)
        assert first and first.keys() == second.keys(), pattern
        different = [k for k in first if first[k] != second[k]]
        assert not different, different[:5]


def test_aimd_output_is_protected(campaign):
    work, _ = campaign
    record = work / "results/aimd/cspbbr3_3x3x3/r0/run.json"
    assert not os.access(record, os.W_OK) or os.geteuid() == 0
    assert not (record.stat().st_mode & 0o222)


def test_snakemake_report_holds_figures_and_summary(campaign, tmp_path):
    work, _ = campaign
    report = tmp_path / "report.html"
    res = snakemake(work, "--report", str(report))
    assert res.returncode == 0, res.stderr[-3000:]
    text = report.read_text(errors="replace")
    for name in ("summary.csv", *(f"{f}.png" for f in FIGURES)):
        assert name in text


def test_check_reports_provenance_of_a_finished_campaign(campaign, tmp_path):
    import subprocess
    import sys

    from qdphonon.provenance import file_sha256

    work, _ = campaign
    cmd = [sys.executable, "-m", "qdphonon", "check", "--results", str(work / "results"),
           "--configfile", str(work / "config.yaml"), "--json"]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    rows = {r["system"]: r for r in json.loads(res.stdout)}
    assert len(rows) == 6 and all(r["complete"] for r in rows.values())
    row = rows["cspbbr3_5x5x5"]
    assert row["structure_sha256"] == file_sha256(work / "results/structures/cspbbr3_5x5x5.xyz")
    assert row["replicas"][1]["input_sha256"] == file_sha256(work / "results/cp2k/cspbbr3_5x5x5/r1/md.inp")
    assert {r["engine"] for r in row["replicas"]} == {"mock"}
    # a different MD setting of one system changes only that system's config hash
    cfg = default_config()
    cfg["systems"][2]["md"] = {"steps": 3000}
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump(cfg))
    res2 = subprocess.run(cmd[:-3] + ["--configfile", str(other), "--json"], capture_output=True, text=True, cwd=tmp_path)
    assert res2.returncode == 0
    rows2 = {r["system"]: r for r in json.loads(res2.stdout)}
    changed = [s for s in rows if rows[s]["config_sha"] != rows2[s]["config_sha"]]
    assert changed == ["cspbbr3_5x5x5"]
    # an incomplete tree is reported as such, with a non-zero exit
    (tmp_path / "empty").mkdir()
    res3 = subprocess.run(cmd[:5] + [str(tmp_path / "empty")] + cmd[6:], capture_output=True, text=True, cwd=tmp_path)
    assert res3.returncode == 3 and not any(r["complete"] for r in json.loads(res3.stdout))


def test_default_campaign_shows_where_the_band_edges_live(campaign):
    """md.localisation_every_steps is set in the default config: every system gets localisation.csv
    from the mock's synthetic &PDOS/&LDOS files, the summary its core weights, and the figure exists."""
    import pandas as pd

    work, _ = campaign
    summary = pd.read_csv(work / "results/summary.csv").set_index("system")
    for system in summary.index:
        table = pd.read_csv(work / f"results/analysis/{system}/localisation.csv")
        assert set(table["replica"]) == {f"r{i}" for i in range(4)} and (table["time_fs"] >= 1000.0).all()
    core = summary["vbm_core_weight"]
    assert core["cspbbr3_6x6x6_ca1"] > 0.9 > core["cspbbr3_6x6x6"] > core["cspbbr3_3x3x3"]  # the mock's input
    assert (summary["cbm_core_weight_sd"] > 0).all()
    for ext in ("png", "pdf"):
        assert (work / f"results/figures/localisation_vs_size.{ext}").stat().st_size > 1000
