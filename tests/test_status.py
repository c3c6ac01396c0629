"""qdphonon status on a finished, a partial (wall-time stop) and a killed campaign, built by hand as the
engine leaves them: segments.json, CP2K's .ener, run.json only when complete."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

from qdphonon.cli import main
from qdphonon.parsers.energies import last_line_step
from qdphonon.status import replica_status
from archives import extract

CONFIG = {"systems": [{"size": [1, 1, 1]}, {"size": [2, 2, 2]}], "engine": "cp2k", "level": "xtb",
          "md": {"steps": 100, "replicas": 1, "equilibration_fs": 10}}  # fmt: skip


def ener(path: Path, last_step: int, project: str = "md") -> None:
    lines = ["#     Step Nr.          Time[fs]        Kin.[a.u.]          Temp[K]            Pot.[a.u.]"]
    lines += [f"{k:>10d} {2.0 * k:>20.6f} {1e-4:>20.9f} {10.0:>20.9f} {-26.5:>20.9f}" for k in range(last_step + 1)]
    (path / f"{project}-1.ener").write_text("\n".join(lines) + "\n")


def segment(index, start, end, ended, wall_s=None, pid=None, started_epoch=None):
    return {"index": index, "input": f"seg{index:03d}.inp", "output": f"seg{index:03d}.out", "start_step": start,
            "end_step": end, "ended": ended, "wall_s": wall_s, "pid": pid, "started_epoch": started_epoch}  # fmt: skip


@functools.cache
def shipped_run_json() -> str:
    """run.json of the real PBE campaign shipped in validation/pbe_n1/ (replica r0, two segments)."""
    archive = Path(__file__).resolve().parents[1] / "validation/pbe_n1/pbe_n1.tar.xz"
    with tarfile.open(archive) as tar:
        return tar.extractfile("aimd/cspbbr3_1x1x1/r0/run.json").read().decode()


def run_json(run_dir: Path, segments: list[dict], project: str = "md") -> None:
    """A run.json as the engine writes it (the shipped one's keys), for ``segments`` ending at 100 steps."""
    record = json.loads(shipped_run_json())
    segs = [{**record["segments"][0], **{k: s[k] for k in ("index", "input", "output", "start_step", "end_step",
                                                          "ended", "wall_s")}} for s in segments]  # fmt: skip
    record.update(segments=segs, total_steps=segs[-1]["end_step"], steps_requested=100, project=project,
                  run_dir=str(run_dir))  # fmt: skip
    (run_dir / "run.json").write_text(json.dumps(record, indent=2, sort_keys=True))


def campaign(root: Path, which: str) -> Path:
    results = root / "results"
    a = results / "aimd/cspbbr3_1x1x1/r0"
    b = results / "aimd/cspbbr3_2x2x2/r0"
    for d in (a, b):
        d.mkdir(parents=True)
    # n = 1: finished in two segments (a wall-time stop at 40, then to 100)
    ener(a, 100, "qd")
    segs = [segment(0, 0, 40, "walltime", 80.0), segment(1, 40, 100, "completed", 60.0)]
    (a / "segments.json").write_text(json.dumps({"engine": "cp2k", "steps": 100, "project": "qd", "segments": segs}))
    run_json(a, segs, "qd")
    if which == "partial":
        ener(b, 30)
        segs = [segment(0, 0, 30, "walltime", 300.0)]
    elif which == "killed":
        ener(b, 25)
        dead = subprocess.Popen([sys.executable, "-c", "pass"])
        dead.wait()
        segs = [segment(0, 0, 20, "walltime", 200.0), segment(1, 20, None, "running", None, dead.pid, 0.0)]
    else:
        ener(b, 100)
        segs = [segment(0, 0, 100, "completed", 150.0)]
        run_json(b, segs)
    (b / "segments.json").write_text(json.dumps({"engine": "cp2k", "steps": 100, "project": "md", "segments": segs}))
    cfg = root / "config.yaml"
    cfg.write_text(yaml.safe_dump(CONFIG))
    return cfg


def run_status(root: Path, cfg: Path, capsys, *extra):
    with contextlib.chdir(root):  # no config/config.yaml here: only cfg is read
        rc = main(["status", "--results", str(root / "results"), "--configfile", str(cfg), *extra])
    return rc, capsys.readouterr().out


def test_finished_campaign(tmp_path, capsys):
    cfg = campaign(tmp_path, "finished")
    rc, out = run_status(tmp_path, cfg, capsys, "--json")
    rows = json.loads(out)
    assert rc == 0 and [r["state"] for r in rows] == ["complete", "complete"]
    assert rows[0]["segments"] == ["walltime", "completed"] and rows[0]["steps_done"] == 100
    assert rows[0]["seconds_per_step"] == 1.0 and rows[0]["seconds_left"] == 0.0


def test_partial_campaign(tmp_path, capsys):
    cfg = campaign(tmp_path, "partial")
    rc, out = run_status(tmp_path, cfg, capsys)
    assert rc == 3
    line = next(ln for ln in out.splitlines() if ln.startswith("cspbbr3_2x2x2"))
    assert "stopped (walltime)" in line and "30/100" in line and "10" in line.split()[5]
    rows = json.loads(run_status(tmp_path, cfg, capsys, "--json")[1])
    assert rows[1]["seconds_per_step"] == 10.0 and rows[1]["seconds_left"] == 700.0
    assert "1 of 2 replicas complete, 0 running" in out


def test_killed_campaign(tmp_path, capsys):
    cfg = campaign(tmp_path, "killed")
    rc, out = run_status(tmp_path, cfg, capsys, "--json")
    row = json.loads(out)[1]
    assert rc == 3 and row["state"] == "killed (engine gone)" and not row["running"]
    assert row["steps_done"] == 25 and row["segments"] == ["walltime", "running"]


def test_running_now(tmp_path):
    d = tmp_path / "run"
    d.mkdir()
    ener(d, 50)
    seg = segment(1, 20, None, "running", None, os.getpid(), 0.0)
    (d / "segments.json").write_text(json.dumps({"steps": 200, "project": "md", "segments": [seg]}))
    row = replica_status(d, 200, now_s=300.0)
    assert row["running"] and row["state"] == "running"
    assert row["seconds_per_step"] == 10.0 and row["seconds_left"] == 1500.0


def test_last_line_step_ignores_a_torn_line(tmp_path):
    ener(tmp_path, 12)
    p = tmp_path / "md-1.ener"
    p.write_text(p.read_text() + "        13   26.00")
    assert last_line_step(p) == 12


def test_status_and_check_name_the_key_of_a_broken_config(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**CONFIG, "md": {**CONFIG["md"], "steps": -1}}))
    (tmp_path / "results").mkdir()
    for command in ("status", "check"):
        res = subprocess.run([sys.executable, "-m", "qdphonon", command, "--results", str(tmp_path / "results"),
                              "--configfile", str(bad)], capture_output=True, text=True, cwd=tmp_path)  # fmt: skip
        assert res.returncode == 1, res.stderr
        assert "md.steps" in res.stderr and "Traceback" not in res.stderr


def test_status_and_check_show_the_warnings_that_qualify_a_system(tmp_path, capsys):
    """A linewidth.json written by hand: a drifting replica and one replica only -> both commands say so."""
    cfg = campaign(tmp_path, "finished")
    analysis = tmp_path / "results/analysis/cspbbr3_1x1x1"
    analysis.mkdir(parents=True)
    (analysis / "linewidth.json").write_text(json.dumps({
        "lambda_meV": 1.0, "fwhm_meV": 20.0, "report_temperature_K": 300.0, "n_replicas": 1,
        "stationarity": [{"source": "r0.csv", "stationary": False, "trend_relative_change": -1.38}],
        "regions": [{"name": "low", "resolved": True}, {"name": "LO", "resolved": False}]}))
    rc, out = run_status(tmp_path, cfg, capsys)
    assert "warning cspbbr3_1x1x1: stationarity, unresolved, single_replica" in out
    assert "cspbbr3_2x2x2:" not in out.split("running")[-1]
    rc, out = run_status(tmp_path, cfg, capsys, "--json")
    assert {r["system"]: r["warnings"] for r in json.loads(out)} == {
        "cspbbr3_1x1x1": ["stationarity", "unresolved", "single_replica"], "cspbbr3_2x2x2": None}
    with contextlib.chdir(tmp_path):
        rc = main(["check", "--results", str(tmp_path / "results"), "--configfile", str(cfg)])
    lines = capsys.readouterr().out.splitlines()
    assert rc == 3 and lines[0].endswith("\twarnings")  # 3: no band-edge table was parsed yet
    assert [ln.split("\t")[-1] for ln in lines[1:]] == ["stationarity,unresolved,single_replica", "-"]


def test_check_shares_summary_digest_and_warns_when_the_summary_was_made_with_another_config(tmp_path, capsys):
    from qdphonon.config import settings_digest, validate_config

    cfg = campaign(tmp_path, "finished")
    digest = settings_digest(validate_config(yaml.safe_load(cfg.read_text())))
    summary = tmp_path / "results/summary.csv"
    for recorded, warned in ((digest, False), ("0123456789abcdef", True)):
        summary.write_text(f"system,lambda_meV,config_digest\ncspbbr3_1x1x1,1.0,{recorded}\n")
        res = subprocess.run([sys.executable, "-m", "qdphonon", "check", "--results", str(tmp_path / "results"),
                              "--configfile", str(cfg), "--json"], capture_output=True, text=True, cwd=tmp_path)
        assert res.returncode == 3, res.stderr  # no analysis files: not complete
        assert {r["config_digest"] for r in json.loads(res.stdout)} == {digest}
        assert ("made with config digest 0123456789abcdef" in res.stderr) == warned, res.stderr


def test_the_harmonic_route_is_one_row_from_not_started_to_complete(tmp_path, capsys):
    """A harmonic-only system: no MD replicas listed; its row follows the route's directories as the rules
    leave them (relax-state.json, relaxed.xyz, single points copied from the real PBE archive, batch records)."""
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump({"systems": [{"size": [1, 1, 1], "route": "harmonic"}], "engine": "mock"}))
    root = tmp_path / "results" / "harmonic" / "cspbbr3_1x1x1"
    (tmp_path / "results").mkdir()

    def row():
        rc, out = run_status(tmp_path, cfg, capsys, "--json")
        rows = json.loads(out)
        assert [r["replica"] for r in rows] == ["harmonic"]
        return rc, rows[0]

    rc, r = row()
    assert rc == 3 and r["state"] == "not started" and (r["steps_done"], r["steps_planned"]) == (0, 9)
    (root / "relax").mkdir(parents=True)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (root / "relax" / "relax-state.json").write_text(json.dumps({"segments": [
        {"index": 0, "ended": "running", "pid": dead.pid, "output": "relax.out"}]}))  # fmt: skip
    rc, r = row()
    assert rc == 3 and r["state"] == "relaxation killed (engine gone)" and not r["running"] and r["segments"] == ["running"]
    (root / "relaxed.xyz").write_text("")
    archive = Path(__file__).resolve().parents[1] / "validation/pbe_n1_harmonic/pbe_n1_harmonic.tar.xz"
    with tarfile.open(archive) as tar:
        members = [m for m in tar.getmembers() if m.name.split("/")[3:4] in (["ref"], ["a0000xp"])]
        extract(tar, tmp_path / "x", members=members)
    (root / "sp").mkdir()
    for name in ("ref", "a0000xp"):
        os.replace(tmp_path / "x" / "harmonic/cspbbr3_1x1x1/sp" / name, root / "sp" / name)
    (root / "sp" / "a0001xp").mkdir()  # started, nothing written
    rc, r = row()
    assert rc == 3 and r["state"] == "single points" and r["steps_done"] == 2
    # CP2K's own total time of the two real single points (17.137 s and the displaced one's): their median
    assert r["seconds_per_step"] > 10 and r["seconds_left"] == pytest.approx(7 * r["seconds_per_step"])
    # a live engine holds a01's lock (as run_single_points does while CP2K runs): counted as running
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys; from qdphonon.run.lock import lock_run_dir\n"
        f"with lock_run_dir({str(root / 'sp' / 'a0001xp')!r}, 'test'):\n"
        "    print('held', flush=True); sys.stdin.read()")], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        rc, r = row()
        assert rc == 3 and r["state"] == "single points (1 running)" and r["running"] and r["steps_done"] == 2
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)
    rc, r = row()
    assert r["state"] == "single points" and not r["running"]
    (root / "batches").mkdir()
    for b in (0, 1):
        (root / "batches" / f"b{b}.json").write_text("{}")
    rc, r = row()
    assert rc == 0 and r["state"] == "complete" and r["complete"]
