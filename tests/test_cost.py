"""The CP2K cost model (``qdphonon.cost``): the fit and its fallbacks, the job sizes the Snakefile
requests, the measurements file, and ``qdphonon cost`` (plain text, Markdown = docs/running.md's table,
a bad config). Fast: no CP2K.

Expected values come from synthetic power laws written here, from ``qdphonon.jobs`` and from the
config files themselves.
"""

from __future__ import annotations

import copy
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from qdphonon import cost, jobs
from qdphonon.cli import cost as cli_cost
from qdphonon.config import campaign_from_config, load_config_file, validate_config

REPO = Path(__file__).resolve().parents[1]


def rows(level, points, inputs="current", ranks=2, threads=1):
    return [dict(level=level, n_atoms=n, ranks=ranks, threads=threads, s_per_step=s, inputs=inputs) for n, s in points]


def law(c, p, sizes):
    return [(n, c * n**p) for n in sizes]


def qdphonon(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "qdphonon", *args], capture_output=True, text=True, cwd=REPO,
                          timeout=120)


def config_of(path="config/config.yaml", **changes):
    config = copy.deepcopy(load_config_file(REPO / path))
    for key, value in changes.items():
        node = config
        *parents, last = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return validate_config(config)


# --- fit ------------------------------------------------------------------------------------------
def test_fit_recovers_a_power_law_exactly():
    fit = cost.fit_step_cost(rows("pbe", law(0.02, 2.7, [10, 50, 200, 900])), "pbe")
    assert fit.basis == "current" and fit.measured
    assert fit.exponent == pytest.approx(2.7, rel=1e-12)
    assert fit.prefactor_s == pytest.approx(0.02, rel=1e-10)
    assert len(fit.points) == 4 and all(abs(p.residual_log10) < 1e-12 for p in fit.points)
    assert fit.s_per_step(333) == pytest.approx(0.02 * 333**2.7, rel=1e-10)
    assert fit.n_atoms_range == (10, 900)


def test_fit_ignores_other_levels_layouts_and_reports_residuals():
    data = rows("xtb", [(10, 1.0), (100, 10.0)]) + rows("pbe", [(10, 1e3)]) + rows("xtb", [(50, 99.0)], ranks=8)
    fit = cost.fit_step_cost(data, "xtb")
    assert fit.exponent == pytest.approx(1.0) and fit.prefactor_s == pytest.approx(0.1)
    skewed = cost.fit_step_cost(rows("xtb", [(10, 1.0), (100, 10.0), (1000, 1000.0)]), "xtb")
    measured_over_fit = [p.s_per_step / skewed.s_per_step(p.n_atoms) for p in skewed.points]
    assert [p.ratio for p in skewed.points] == pytest.approx(measured_over_fit)
    assert sum(p.residual_log10 for p in skewed.points) == pytest.approx(0, abs=1e-12)  # least squares in log10


def test_fallback_one_current_point_keeps_previous_exponent():
    previous = rows("pbe", law(5.0, 2.0, [10, 100]), inputs="previous")
    fit = cost.fit_step_cost(previous + rows("pbe", [(40, 1000.0)]), "pbe")
    assert fit.basis == "previous-exponent" and not fit.measured
    assert fit.exponent == pytest.approx(2.0)
    assert fit.s_per_step(40) == pytest.approx(1000.0)  # the line goes through the current point
    assert {p.inputs for p in fit.points} == {"previous", "current"}


def test_fallback_current_points_of_one_size_use_their_geometric_mean():
    previous = rows("xtb", law(1.0, 3.0, [2, 4]), inputs="previous")
    fit = cost.fit_step_cost(previous + rows("xtb", [(8, 100.0), (8, 400.0)]), "xtb")
    assert fit.basis == "previous-exponent" and fit.exponent == pytest.approx(3.0)
    assert fit.s_per_step(8) == pytest.approx(200.0)


def test_fallback_no_current_rows_is_the_previous_fit():
    fit = cost.fit_step_cost(rows("xtb", law(0.5, 1.5, [10, 40, 160]), inputs="previous"), "xtb")
    assert fit.basis == "previous" and not fit.measured
    assert (fit.prefactor_s, fit.exponent) == (pytest.approx(0.5), pytest.approx(1.5))


def test_two_current_sizes_win_over_previous_rows():
    data = rows("pbe", law(9.0, 0.5, [10, 60]), inputs="previous") + rows("pbe", law(0.1, 2.0, [20, 80]))
    fit = cost.fit_step_cost(data, "pbe")
    assert fit.basis == "current" and fit.exponent == pytest.approx(2.0)
    assert {p.inputs for p in fit.points} == {"current"}


def test_no_rows_or_one_size_only_is_an_error():
    with pytest.raises(ValueError, match="no pbe cost measurements"):
        cost.fit_step_cost(rows("xtb", [(10, 1.0), (20, 2.0)]), "pbe")
    with pytest.raises(ValueError, match="two sizes"):
        cost.fit_step_cost(rows("pbe", [(10, 1.0), (10, 2.0)], inputs="previous"), "pbe")


# --- seconds per step -----------------------------------------------------------------------------
def test_a_measured_point_returns_exactly_its_value():
    data = rows("pbe", [(11, 24.7), (64, 51.3), (189, 300.1)]) + rows("pbe", [(64, 13.9)], ranks=8)
    for n, s in [(11, 24.7), (64, 51.3), (189, 300.1)]:
        assert cost.seconds_per_md_step("pbe", n, 2, rows=data) == (s, "measured")
    assert cost.seconds_per_md_step("pbe", 64, 8, rows=data) == (13.9, "measured")


def test_status_and_ideal_rank_scaling():
    data = rows("xtb", law(0.01, 2.0, [10, 100]))
    inside, outside = cost.seconds_per_md_step("xtb", 50, rows=data), cost.seconds_per_md_step("xtb", 500, rows=data)
    assert inside == (pytest.approx(25.0), "interpolated") and outside == (pytest.approx(2500.0), "extrapolated")
    scaled = cost.seconds_per_md_step("xtb", 50, ranks=10, threads=2, rows=data)
    assert scaled.s_per_step == pytest.approx(25.0 * 2 / 20) and scaled.status == "interpolated"
    previous_only = rows("xtb", law(0.01, 2.0, [10, 100]), inputs="previous")
    assert cost.seconds_per_md_step("xtb", 10, rows=previous_only).status == "interpolated"  # not current inputs


# --- the measurements file --------------------------------------------------------------------------
def test_packaged_csv_opens_with_pandas_without_options():
    table = pd.read_csv(cost.DATA_PATH)
    assert tuple(table.columns) == cost.COLUMNS
    assert set(table["level"]) == {"xtb", "pbe"} and set(table["inputs"]) <= {"current", "previous"}
    assert (table["s_per_step"] > 0).all() and table["n_atoms"].dtype.kind == "i"
    assert not table.duplicated(list(cost.KEY_COLUMNS)).any() and table["source"].notna().all()
    assert cost.DATA_PATH.relative_to(REPO / "workflow/qdphonon") == Path("data/cp2k_step_costs.csv")


def test_csv_ships_with_the_package():
    text = (REPO / "pyproject.toml").read_text()
    assert re.search(r'\[tool\.setuptools\.package-data\]\s*\nqdphonon = \[[^]]*"data/\*"', text)


def test_append_measurements_replaces_same_key_and_keeps_columns(tmp_path):
    path = tmp_path / "costs.csv"
    path.write_text(",".join(cost.COLUMNS) + "\n"
                    "xtb,11,,2,1,0.06,,previous,2023.1,seed\nxtb,64,,2,1,1.5,,previous,2023.1,seed\n"
                    "pbe,11,16.0,2,1,25.0,375.0,previous,2023.1,seed\n")  # fmt: skip
    before = pd.read_csv(path)
    new = dict(level="xtb", n_atoms=64, ranks=2, threads=1, s_per_step=0.9, inputs="current",
               cp2k_version="2023.1", source="bench_cp2k.py, 20 steps")
    cost.append_measurements([new], path)
    cost.append_measurements([{**new, "s_per_step": 0.8}, {**new, "n_atoms": 11, "s_per_step": 0.05}], path)
    after = pd.read_csv(path)
    assert tuple(after.columns) == cost.COLUMNS and len(after) == len(before) + 2
    pd.testing.assert_frame_equal(after.iloc[: len(before)], before)  # earlier rows untouched, same types
    current = after[after["inputs"] == "current"].set_index("n_atoms")["s_per_step"].to_dict()
    assert current == {64: 0.8, 11: 0.05}
    fit = cost.fit_step_cost(cost.read_measurements(path), "xtb")
    assert fit.basis == "current" and fit.n_atoms_range == (11, 64)
    with pytest.raises(ValueError, match="unknown column"):
        cost.append_measurements([{**new, "seconds": 1}], path)


# --- job sizes ----------------------------------------------------------------------------------------
def test_aimd_runtime_grows_with_steps_and_is_capped_at_48_h():
    runtimes = []
    for steps in (10, 1_000, 100_000, 10_000_000):
        md = {"md.steps": steps, "md.equilibration_fs": 0, "md.trajectory_every_steps": 1}
        config = config_of(engine="cp2k", **md)
        system = campaign_from_config(config)["cspbbr3_3x3x3"]
        runtimes.append(cost.aimd_runtime_min(config, system))
        hours = cost.run_hours(config, system, steps)
        assert runtimes[-1] == int(min(48 * 60, max(15, 90 * hours + config["cp2k"]["walltime_margin_min"])))
    assert runtimes == sorted(runtimes) and runtimes[0] < runtimes[2] and runtimes[-1] == 48 * 60


def test_job_sizes_of_the_mock_and_of_cp2k():
    mock = config_of()
    system = campaign_from_config(mock)["cspbbr3_4x4x4"]
    assert [f(mock, system) for f in (cost.aimd_tasks, cost.aimd_runtime_min, cost.relax_runtime_min,
                                      cost.aimd_mem_mb)] == [1, 10, 10, 2000]
    assert cost.cp2k_job_retries(mock, [system]) == 0
    real = config_of(engine="cp2k")
    assert cost.aimd_tasks(real, system) == 41 and cost.aimd_mem_mb(real, system) == 2000 + 40 * 416
    xtb = config_of(engine="cp2k", level="xtb")
    assert cost.aimd_tasks(xtb, system) == 4 and cost.aimd_mem_mb(xtb, system) == 2000 + 4 * 416


def test_retries_match_jobs_job_retries():
    config = config_of(engine="cp2k", level="xtb", **{"md.steps": 200_000})
    systems = list(campaign_from_config(config).values())
    margin = config["cp2k"]["walltime_margin_min"]
    aimd = max(jobs.job_retries(cost.run_hours(config, s, s.md["steps"]), cost.aimd_runtime_min(config, s), margin)
               for s in systems)
    relax = max(jobs.job_retries(cost.run_hours(config, s, config["relax"]["max_iter"]),
                                 cost.relax_runtime_min(config, s), margin) for s in systems)
    assert cost.cp2k_job_retries(config, systems, "aimd") == aimd > jobs.MIN_RETRIES
    assert cost.cp2k_job_retries(config, systems, "relax") == relax


def test_snakefile_resources_are_thin_wrappers_of_cost():
    text = (REPO / "workflow/rules/common.smk").read_text()
    assert "from qdphonon import cost" in text
    for name in ("aimd_tasks", "aimd_runtime_min", "relax_runtime_min", "aimd_mem_mb", "cp2k_job_retries"):
        body = re.search(rf"^def {name}\(.*?(?=^\S|\Z)", text, re.S | re.M).group(0)
        assert f"cost.{name}(config, " in body, name
    code = "import sys; sys.path.insert(0, 'workflow'); import qdphonon.cost; print(sorted(set(sys.modules) & " \
           "{'pandas', 'numpy', 'scipy', 'matplotlib', 'pymatgen', 'ase', 'yaml', 'jsonschema'}))"
    light = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert light.stdout.strip() == "[]"  # the Snakefile imports it at parse time


# --- campaign cost and the command ------------------------------------------------------------------------
def test_campaign_cost_of_the_default_config():
    config = config_of()
    result = cost.campaign_cost(config)
    systems = campaign_from_config(config)
    assert [r["system"] for r in result["systems"]] == list(systems) and result["mock_engine"]
    for r in result["systems"]:
        s = systems[r["system"]]
        assert r["md_steps"] == s.md["steps"] == r["equilibration_steps"] + r["production_steps"]
        assert r["equilibration_steps"] == round(s.md["equilibration_fs"] / s.md["timestep_fs"])
        job = r["aimd_job"]
        assert r["core_h_per_replica"] == pytest.approx(
            job["tasks"] * job["cpus_per_task"] * cost.seconds_per_md_step("pbe", s.n_atoms, job["tasks"]).s_per_step
            * (s.md["steps"] + 1) / 3600)
        assert r["core_h_per_replica"] == pytest.approx(r["s_per_step_ref"] * 2 * (s.md["steps"] + 1) / 3600)
        assert job["runtime_min"] == cost.aimd_runtime_min({**config, "engine": "cp2k"}, s)
        assert r["segments_per_replica"] == jobs.segments_needed(r["wall_h_per_replica"], job["runtime_min"],
                                                                 config["cp2k"]["walltime_margin_min"])
    assert result["totals"]["core_h"] == pytest.approx(sum(r["core_h"] for r in result["systems"]))
    assert result["totals"]["replicas"] == sum(len(s.all_replicas) for s in systems.values())


def test_cost_command_prints_every_system_and_a_total():
    res = qdphonon("cost", "--configfile", "config/config.yaml")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    config = config_of()
    for name in campaign_from_config(config):
        assert sum(line.startswith(name + " ") for line in lines) == 1, name
    total = [line for line in lines if line.startswith("total:")]
    core_h = cost.campaign_cost(config)["totals"]["core_h"]
    assert len(total) == 1 and f"{core_h:,.0f} core-h" in total[0]
    assert "engine mock" in lines[0] and "level pbe" in lines[0]
    assert qdphonon("cost").stdout == res.stdout  # config/config.yaml is the default


def test_cost_markdown_is_the_readme_table():
    res = qdphonon("cost", "--markdown", "--configfile", "config/config.yaml")
    assert res.returncode == 0, res.stderr
    readme = (REPO / "docs/running.md").read_text()
    block = re.search(r"<!-- cost-table:start -->\n(.*?)\n<!-- cost-table:end -->", readme, re.S)
    assert block, "docs/running.md has no cost-table markers"
    assert block.group(1).strip() == res.stdout.strip(), (
        "docs/running.md cost table is stale: paste `python -m qdphonon cost --markdown --configfile config/config.yaml`")
    assert "extrapolated" in res.stdout and "s/step =" in res.stdout


def test_configfiles_merge_later_wins(tmp_path):
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text("engine: cp2k\nlevel: xtb\nsystems:\n  - size: [2, 2, 2]\nmd: {steps: 100, equilibration_fs: 20}\n")
    b.write_text("md: {steps: 300}\n")
    merged = cli_cost.load_merged_config([a, b], base=REPO / "config/config.yaml")
    assert merged["md"]["steps"] == 300 and merged["md"]["replicas"] == 4  # replicas from the base
    assert merged["level"] == "xtb" and len(merged["systems"]) == 1
    res = qdphonon("cost", "--configfile", str(a), str(b))
    assert res.returncode == 0 and "300 (10 + 290) x 4" in res.stdout and "engine mock" not in res.stdout


@pytest.mark.parametrize("text, key", [("md:\n  steps: -1\n", "md.steps"),
                                       ("systems:\n  - size: [3, 3, 3]\n    colour: red\n", "systems[0].colour")])
def test_invalid_config_names_the_key_without_traceback(tmp_path, text, key):
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    res = qdphonon("cost", "--configfile", str(bad))
    assert res.returncode != 0
    assert key in res.stderr and "Traceback" not in res.stderr + res.stdout, res.stderr
    assert str(bad) in res.stderr
