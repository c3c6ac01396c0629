"""The harmonic route in a campaign: the cost model prices it beside the MD route, and a mock campaign with
``route: harmonic`` / ``both`` runs end to end to one summary row per system and route (synthetic, labelled)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from qdphonon.config import campaign_from_config, validate_config
from qdphonon.cli.cost import cost_table_text
from qdphonon.harmonic.cost import harmonic_cost
from qdphonon.harmonic.plan import n_batches, tight_relax_overrides
from workflow_helpers import snakemake, write_config

REPO = Path(__file__).resolve().parents[1]


def _config(systems, **extra):
    return validate_config({"systems": systems, **extra})


def test_cost_prices_the_harmonic_route_for_every_system():
    cfg = _config([{"size": [1, 1, 1]}, {"size": [2, 2, 2], "route": "both"}], level="pbe")
    systems = campaign_from_config(cfg)
    small, big = systems["cspbbr3_1x1x1"], systems["cspbbr3_2x2x2"]
    assert (small.routes, big.routes) == (["md"], ["md", "harmonic"])
    h = harmonic_cost(cfg, big)
    assert h["single_points"] == 80 + 1  # phonopy's symmetry-reduced displacements of the C3v cut, and the reference
    assert h["jobs"] == n_batches(80, h["per_job"])
    cartesian = harmonic_cost({**cfg, "harmonic": {**cfg["harmonic"], "displacements": "cartesian"}}, big)
    assert cartesian["single_points"] == 6 * big.n_atoms + 1
    assert h["per_job"] * h["sp_s"] <= cfg["harmonic"]["job_minutes"] * 60 or h["per_job"] == 1
    text = cost_table_text(cfg)
    assert "harmonic route" in text and f"{h['single_points']} single points" in text
    assert "cspbbr3_1x1x1 [md]: 9 single points" in text and "cspbbr3_2x2x2 [both]" in text


def test_single_point_jobs_are_resubmitted_with_real_cp2k_only():
    from qdphonon.harmonic.cost import HARMONIC_JOB_RETRIES, harmonic_job_retries

    assert harmonic_job_retries(_config([{"size": [1, 1, 1]}], engine="cp2k")) == HARMONIC_JOB_RETRIES >= 1
    assert harmonic_job_retries(_config([{"size": [1, 1, 1]}], engine="mock")) == 0
    rules = (REPO / "workflow/rules/harmonic.smk").read_text()
    assert "retries: harmonic_job_retries()" in rules.split("rule harmonic_single_points:")[1].split("\nrule ")[0]


def test_tight_relaxation_overrides_win_over_the_users_and_keep_the_rest():
    user = {"motion": {"geo_opt": {"max_force": 1e-3, "optimizer": "BFGS"}}, "force_eval": {"dft": {"mgrid": {"cutoff": 300}}}}
    out = tight_relax_overrides(user)
    assert out["motion"]["geo_opt"]["max_force"] == 1e-5 and out["motion"]["geo_opt"]["optimizer"] == "BFGS"
    assert out["force_eval"] == user["force_eval"] and user["motion"]["geo_opt"]["max_force"] == 1e-3


@pytest.mark.workflow
def test_mock_campaign_with_both_routes(tmp_path):
    write_config(tmp_path, {"systems": [{"size": [1, 1, 1], "route": "harmonic"},
                                        {"size": [1, 1, 2], "route": "both", "md": {"steps": 400, "replicas": 2}}],
                            "engine": "mock", "md": {"equilibration_fs": 100}})  # fmt: skip
    res = snakemake(tmp_path, "--cores", "1", timeout_s=1500)
    assert res.returncode == 0, (res.stdout + res.stderr)[-4000:]
    rows = pd.read_csv(tmp_path / "results" / "summary.csv")
    assert sorted(zip(rows["system"], rows["route"])) == [
        ("cspbbr3_1x1x1", "harmonic"), ("cspbbr3_1x1x2", "harmonic"), ("cspbbr3_1x1x2", "md")]
    assert rows["synthetic"].all() and set(rows["level"]) == {"mock"}
    for system in ("cspbbr3_1x1x1", "cspbbr3_1x1x2"):
        out = tmp_path / "results" / "analysis_harmonic" / system
        lw = json.loads((out / "linewidth.json").read_text())
        assert lw["route"] == "harmonic" and lw["synthetic"] is True and lw["degeneracy"]["n_vbm"] == 3
        sd = pd.read_csv(out / "spectral_density.csv")
        assert (sd["S"] * sd["energy_meV"]).sum() == pytest.approx(lw["lambda_meV"], rel=1e-6)
        assert json.loads((out / "spectral_density.json").read_text())["note"].startswith("synthetic")
    md = json.loads((tmp_path / "results" / "analysis" / "cspbbr3_1x1x2" / "linewidth.json").read_text())
    assert md["route"] == "md"
    assert not list((tmp_path / "results" / "analysis" / "cspbbr3_1x1x1").glob("*"))  # no MD analysis of a harmonic-only system
    # the system run by both routes gets their comparison, labelled mock
    table = pd.read_csv(tmp_path / "results" / "analysis_harmonic" / "cspbbr3_1x1x2" / "route_comparison.csv")
    assert table["quantity"].tolist()[:2] == ["lambda_meV", "fwhm_meV"]
    h = json.loads((tmp_path / "results" / "analysis_harmonic" / "cspbbr3_1x1x2" / "linewidth.json").read_text())
    assert table.set_index("quantity").loc["lambda_meV", "harmonic"] == pytest.approx(h["lambda_meV"])
    assert table.set_index("quantity").loc["lambda_meV", "md"] == pytest.approx(md["lambda_meV"])
    side = json.loads((tmp_path / "results" / "analysis_harmonic" / "cspbbr3_1x1x2" / "route_comparison.json").read_text())
    assert side["synthetic"] is True and "built in, not found" in side["comparison_note"] and side["note"].startswith("synthetic")
    assert (tmp_path / "results" / "figures" / "routes_cspbbr3_1x1x2.png").stat().st_size > 10_000
    assert not (tmp_path / "results" / "figures" / "routes_cspbbr3_1x1x1.png").exists()
    # status and check know the routes: no MD replicas for the harmonic-only dot, a harmonic row for both
    for command in ("status", "check"):
        res = subprocess.run([sys.executable, "-m", "qdphonon", command, "--configfile", str(tmp_path / "config.yaml")],
                             cwd=tmp_path, capture_output=True, text=True)  # fmt: skip
        assert res.returncode == 0, command + ": " + res.stdout + res.stderr
        lines = [line.split() for line in res.stdout.splitlines()[1:] if line.startswith("cspbbr3_")]
        reps = sorted((w[0], w[1] if command == "status" else w[3]) for w in lines)
        assert reps == [("cspbbr3_1x1x1", "harmonic"), ("cspbbr3_1x1x2", "harmonic"), ("cspbbr3_1x1x2", "r0"),
                        ("cspbbr3_1x1x2", "r1")], res.stdout  # fmt: skip
    status = subprocess.run([sys.executable, "-m", "qdphonon", "status", "--json", "--configfile",
                             str(tmp_path / "config.yaml")], cwd=tmp_path, capture_output=True, text=True)  # fmt: skip
    harmonic = [r for r in json.loads(status.stdout) if r["replica"] == "harmonic"]
    assert all(r["complete"] and r["steps_done"] == r["steps_planned"] for r in harmonic)
    assert {r["system"]: r["steps_planned"] for r in harmonic}["cspbbr3_1x1x1"] == 9  # 8 symmetry-reduced + reference
